"""The request log of ``backboneio serve``: a line per sync, JSON lines, tracebacks at ERROR.

Each test runs a real server process and reads what it printed.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from backboneio import requestlog
from backboneio.settings import Settings
from backboneio.testing.client import BackendClient
from backboneio.testing.server import ServerProcess

# A middleware of the settings module itself: "boom" models fail as a bug would.
SETTINGS = """
def explode(req, res, next):
    if req.model.get("boom"):
        raise RuntimeError("the middleware broke")
    next()

BACKENDS = {"notes": {"middleware": [__name__ + ".explode"]}}
{extra}
"""


def settings(extra: str = "") -> str:
    return SETTINGS.replace("{extra}", extra)


def three_requests(srv: ServerProcess) -> tuple[str, dict[str, Any]]:
    """A create, a bad request and a failing one; (the client's sid, the created model)."""
    with BackendClient(srv.url, "notes") as client:
        created = client.ok("create", {"text": "hi"})
        error, _ = client.sync("update", {"text": "no id"})
        assert error["error"]["name"] == "BadRequest"
        error, _ = client.sync("create", {"boom": True})
        assert error["error"]["status"] == 500
        sid = client.sio.get_sid(client.namespace)
    # The failed request is the last: once its line is out, all three are.
    srv.wait_for_output(" 500 ")
    return sid, created


def test_text_lines_one_per_sync_and_the_traceback_at_error() -> None:
    with ServerProcess(settings()) as srv:
        sid, created = three_requests(srv)
        log = srv.log
    lines = [line for line in log.splitlines() if "backboneio.requests" in line]
    assert len(lines) == 3, log
    create, bad, failed = lines
    assert " INFO notes create " + created["id"] + " 200 " in create
    assert create.endswith(f"ms sid={sid}")
    assert " INFO notes update - 400 BadRequest " in bad
    assert " ERROR notes create - 500 ServerError " in failed
    # One traceback, the failure's, logged at ERROR before its line; none for the 400.
    assert log.count("Traceback (most recent call last)") == 1, log
    head, _, tail = log.partition("Traceback (most recent call last)")
    assert head.splitlines()[-1].endswith("backboneio ERROR backend 'notes' failed")
    assert "RuntimeError: the middleware broke" in tail.split(failed)[0]
    assert bad in head


def test_json_lines_with_named_fields() -> None:
    with ServerProcess(settings(), args=["--log-format", "json"]) as srv:
        sid, created = three_requests(srv)
        log = srv.log
    printed = [line for line in log.splitlines() if line.strip()]
    # Logging is JSON through and through; only serve's own two prints are not.
    records = [json.loads(line) for line in printed if not line.startswith("backboneio ")]
    assert len(records) >= 4, log
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys()
        assert record["time"].endswith("Z")
    requests = [r for r in records if r["logger"] == "backboneio.requests"]
    fields = ("backend", "method", "id", "status", "error", "sid", "level")
    assert [{k: r[k] for k in fields} for r in requests] == [
        dict(zip(fields, row, strict=True))
        for row in (
            ("notes", "create", created["id"], 200, None, sid, "INFO"),
            ("notes", "update", None, 400, "BadRequest", sid, "INFO"),
            ("notes", "create", None, 500, "ServerError", sid, "ERROR"),
        )
    ]
    assert all(isinstance(r["ms"], (int, float)) and r["ms"] >= 0 for r in requests)
    (failure,) = [r for r in records if "traceback" in r]
    assert failure["level"] == "ERROR" and failure["logger"] == "backboneio"
    assert failure["traceback"].startswith("Traceback (most recent call last)")
    assert "RuntimeError: the middleware broke" in failure["traceback"]


@pytest.mark.parametrize(
    ("args", "extra"),
    [(["--log-level", "WARNING"], ""), ([], 'LOG_LEVEL = "warning"\nLOG_FORMAT = "json"')],
    ids=["flag", "settings"],
)
def test_warning_hides_the_info_lines_not_the_failures(args: list[str], extra: str) -> None:
    with ServerProcess(settings(extra), args=args) as srv:
        three_requests(srv)
        log = srv.log
    assert " 200 " not in log and "BadRequest" not in log, log
    assert "RuntimeError: the middleware broke" in log
    assert log.count(" 500 ServerError ") == 1


def test_a_client_chosen_id_cannot_forge_a_line() -> None:
    forged = "x\n2026-01-01 00:00:00,000 backboneio.requests INFO forged"
    with ServerProcess(settings()) as srv:
        with BackendClient(srv.url, "notes") as client:
            error, _ = client.sync("update", {"id": forged, "text": "?"})
            assert error is not None
        line = srv.wait_for_output(" INFO notes update ")
        log = srv.log
    assert "\\n2026-01-01" in line  # escaped, on the request's own line
    assert [x for x in log.splitlines() if "forged" in x] == [line.rstrip("\n")]


def test_bad_log_settings_are_configuration_errors() -> None:
    problems = Settings({"LOG_LEVEL": "LOUD", "LOG_FORMAT": "xml"}).problems()
    assert problems == [
        "Setting LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'",
        "Setting LOG_FORMAT must be 'text' or 'json', got 'xml'",
    ]
    assert Settings({"LOG_LEVEL": "debug", "LOG_FORMAT": "json"}).problems() == []
    done = subprocess.run(
        [sys.executable, "-m", "backboneio", "serve", "--log-level", "loud"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--log-level: invalid choice: 'LOUD'" in done.stderr
    assert "Traceback" not in done.stderr


def test_every_line_is_out_by_shutdown_and_before_stopped() -> None:
    """Lines are written in batches: none is lost when the server stops right after."""
    count = 200
    srv = ServerProcess(settings()).start()
    try:
        with BackendClient(srv.url, "notes") as client:
            ids = [client.ok("create", {"n": n})["id"] for n in range(count)]
    finally:
        srv.stop()  # SIGTERM at once: the last lines are likely still queued
    srv.wait_for_output("backboneio stopped")
    lines = srv.log.splitlines()
    stopped = next(i for i, line in enumerate(lines) if "backboneio stopped" in line)
    creates = [line for line in lines if " INFO notes create " in line]
    assert [line.split()[6] for line in creates] == ids
    assert all(lines.index(line) < stopped for line in creates)


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """requestlog.configure() in this process, to a string; the logging setup restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging._srcfile, logging.logThreads)
    stream = io.StringIO()
    requestlog.configure("INFO", "text", stream)
    try:
        yield stream
    finally:
        if requestlog._writer is not None:
            requestlog._writer.close()  # written out, its flusher ended
        requestlog.log.handlers.clear()
        root.handlers[:], level, logging._srcfile, logging.logThreads = saved
        root.setLevel(level)
        logging.logProcesses = logging.logMultiprocessing = True
        requestlog._writer = None


ODD_IDS = ["abc", "x\n2026-01-01 forged", 42, {"a": [1]}, None, "é" * 3, "a b", "y" * 100]


def log_syncs() -> None:
    for model_id in ODD_IDS:
        args = ({"method": "update", "model": {"id": model_id}},)
        requestlog.synced("notes", "SID", args, (None, {"id": model_id}), time.perf_counter(), "id")
    refused = ({"error": {"status": 404, "name": "NotFound"}},)
    requestlog.synced("notes", "SID", ({"method": "delete"},), refused, time.perf_counter(), "id")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_queued_line_is_what_logging_would_write(configured: io.StringIO, fmt: str) -> None:
    stream = io.StringIO()
    requestlog.configure("INFO", fmt, stream)
    writer = requestlog._writer
    assert writer is not None
    log_syncs()
    queued = list(writer.queue)
    assert len(queued) == len(ODD_IDS) + 1  # all INFO, none written yet
    assert stream.getvalue() == ""
    requestlog.flush()
    expected = [writer.format(requestlog._record(entry)) for entry in queued]
    assert stream.getvalue().splitlines() == expected
    if fmt == "text":
        assert " INFO notes update 'x\\n2026-01-01 forged' 200 " in expected[1]
        assert expected[-1].endswith(" INFO notes delete - 404 NotFound 0.0ms sid=SID")
    else:
        assert [json.loads(line)["id"] for line in expected[:-1]] == ODD_IDS


def test_a_record_written_at_once_writes_the_queue_first(configured: io.StringIO) -> None:
    log_syncs()
    logging.getLogger("backboneio").error("a failure")
    lines = configured.getvalue().splitlines()
    assert len(lines) == len(ODD_IDS) + 2
    assert lines[-1].endswith("backboneio ERROR a failure")


def test_a_handler_of_your_own_gets_the_records_with_their_fields(
    configured: io.StringIO,
) -> None:
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    requestlog.log.addHandler(Collect())
    log_syncs()
    requestlog.flush()
    assert [r.id for r in seen] == [*ODD_IDS, None]
    assert [r.status for r in seen] == [200] * len(ODD_IDS) + [404]
    assert {r.levelname for r in seen} == {"INFO"}
    assert all(r.backend == "notes" and r.sid == "SID" for r in seen)
    assert len(configured.getvalue().splitlines()) == len(ODD_IDS) + 1  # and still written


def test_a_patched_logging_module_gets_the_records(
    configured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An integration that wraps Logger.callHandlers (as Sentry's does) sees every line."""
    seen: list[logging.LogRecord] = []
    call_handlers = logging.Logger.callHandlers

    def wrapped(self: logging.Logger, record: logging.LogRecord) -> None:
        seen.append(record)
        call_handlers(self, record)

    monkeypatch.setattr(logging.Logger, "callHandlers", wrapped)
    log_syncs()
    requestlog.flush()
    assert [r.status for r in seen] == [200] * len(ODD_IDS) + [404]
    assert len(configured.getvalue().splitlines()) == len(ODD_IDS) + 1
