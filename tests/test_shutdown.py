"""Health checks and a graceful stop, against a real ``backboneio serve``.

SIGTERM (what systemd, Docker and Kubernetes send) must not cut a write in
half: the server stops accepting, lets the syncs in progress answer, then
closes every connection so the clients reconnect elsewhere and resume.
"""

from __future__ import annotations

import json
import queue
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import socketio
from backboneio.app import build_hub
from backboneio.health import HealthApp
from backboneio.hub import NoTransport
from backboneio.settings import Settings

from tests.support.client import BackendClient
from tests.support.server import ServerProcess

SETTINGS = """
BACKENDS = {
    "slow": {"middleware": ["apps.middleware.slow"]},
    "notes": {},
}
SHUTDOWN_TIMEOUT = 5
"""


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_healthz_and_readyz_answer_with_what_the_process_holds(start_server, connect):
    srv = start_server(SETTINGS)
    connect(srv.url, "notes")
    assert get(srv.url + "/healthz") == (200, {"status": "ok"})
    status, ready = get(srv.url + "/readyz")
    assert status == 200
    assert ready["status"] == "ready"
    assert ready["backends"] == {"slow": 0, "notes": 1}
    assert ready["change_log"] == {"shared": False, "available": True, "pending": 0}


def test_health_checks_can_be_turned_off(start_server):
    srv = start_server('BACKENDS = {"notes": {}}\nHEALTH_CHECKS = False')
    status, _ = get_status(srv.url + "/healthz")
    assert status == 404


def get_status(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_sigterm_lets_a_sync_in_progress_answer_then_closes_every_connection() -> None:
    with ServerProcess(SETTINGS) as srv:
        writer = BackendClient(srv.url, "slow")  # no reconnection: the server is gone
        idle = BackendClient(srv.url, "notes")
        closed: queue.Queue[str] = queue.Queue()
        idle.sio.on("disconnect", lambda *reason: closed.put("idle"), namespace="/notes")
        answers: queue.Queue[Any] = queue.Queue()
        writer.sio.emit(
            "sync",
            {"method": "create", "model": {"seconds": 1.0, "text": "in progress"}},
            namespace="/slow",
            callback=lambda error, result: answers.put((error, result)),
        )
        time.sleep(0.3)  # the sync is inside its middleware now
        assert srv.proc is not None
        began = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        error, result = answers.get(timeout=10)
        assert error is None
        assert result["text"] == "in progress"
        assert closed.get(timeout=10) == "idle"
        assert srv.proc.wait(10) == 0
        took = time.monotonic() - began
        assert "draining: 2 client(s), 1 request(s) in progress" in srv.log
        assert "backboneio stopped" in srv.log
        assert took < 5 + 5  # well inside SHUTDOWN_TIMEOUT and the grace, not a kill
        for client in (writer, idle):
            client.close()


def test_a_draining_hub_is_not_ready() -> None:
    hub = build_hub(Settings({"BACKENDS": {"notes": {}}}))
    hub.start(NoTransport())
    app = HealthApp(lambda environ, start_response: [b"app"], hub)
    assert call(app, "/readyz")[0] == "200 OK"
    hub.drain(0)
    assert call(app, "/healthz") == ("503 Service Unavailable", {"status": "draining"})
    status, body = call(app, "/readyz")
    assert status == "503 Service Unavailable"
    assert body["status"] == "unavailable" and body["draining"] is True
    assert call(app, "/other") == ("200 OK", b"app")


def call(app: Any, path: str) -> tuple[str, Any]:
    seen: list[str] = []
    body = b"".join(app({"PATH_INFO": path}, lambda status, headers: seen.append(status)))
    return (seen[0] if seen else "200 OK"), (json.loads(body) if path != "/other" else body)


def test_a_second_sigterm_stops_at_once() -> None:
    with ServerProcess(SETTINGS.replace("SHUTDOWN_TIMEOUT = 5", "SHUTDOWN_TIMEOUT = 30")) as srv:
        writer = BackendClient(srv.url, "slow")
        writer.sio.emit(
            "sync",
            {"method": "create", "model": {"seconds": 20}},
            namespace="/slow",
            callback=lambda *answer: None,
        )
        time.sleep(0.3)
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while "draining" not in srv.log and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get(srv.url + "/healthz") == (503, {"status": "draining"})
        status, ready = get(srv.url + "/readyz")
        assert (status, ready["draining"], ready["backends"]) == (
            503,
            True,
            {"slow": 1, "notes": 0},
        )
        late = BackendClient(srv.url, "notes", connect=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            late.connect()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(5) == 1
        writer.close()
