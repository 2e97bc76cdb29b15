"""The request log of ``backboneio serve``: a line per sync, JSON lines, tracebacks at ERROR.

Each test runs a real server process and reads what it printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
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
