"""Regression cases from the field (issue 14): raw Socket.IO frames that used to
wedge a connection or go unanswered. Each is sent over a real WebSocket, and
after each the same socket must still answer a well-formed sync."""

from __future__ import annotations

import json

import pytest
import websocket

from tests.support.server import ServerProcess

SETTINGS = """
BACKENDS = {"memory": {"store": "memory"}}
"""


@pytest.fixture(scope="module")
def server():
    with ServerProcess(SETTINGS) as srv:
        yield srv


class RawSocket:
    """Engine.IO v4 over WebSocket, spoken by hand."""

    def __init__(self, url: str) -> None:
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(ws_url, timeout=5)
        assert self.ws.recv().startswith("0")  # Engine.IO open
        self.ws.send("40/memory,")
        assert self.recv().startswith("40/memory,")

    def recv(self) -> str:
        while True:
            frame = self.ws.recv()
            if frame == "2":  # ping
                self.ws.send("3")
                continue
            return frame

    def ack(self, ack_id: int) -> list:
        prefix = f"43/memory,{ack_id}"
        while True:
            frame = self.recv()
            if frame.startswith(prefix):
                return json.loads(frame[len(prefix) :])

    def still_syncs(self) -> None:
        self.ws.send('42/memory,900["sync",{"method":"create","model":{"ok":1}}]')
        error, model = self.ack(900)
        assert error is None and model["ok"] == 1

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def raw(server):
    sock = RawSocket(server.url)
    yield sock
    sock.close()


@pytest.mark.parametrize(
    "frame, ack_id",
    [
        # binary events declaring attachments never sent, or placeholders out of range
        ('451-/memory,1000["sync",{"model":{"b":{"_placeholder":true,"num":0}}}]', 1000),
        ('451-/memory,1001["sync",{"model":{"b":{"_placeholder":true,"num":5}}}]', 1001),
        ('452-/memory,1002["sync",{"model":{}}]', 1002),
        # empty or non-list event data
        ("42/memory,1003[]", 1003),
        ("42/memory,1004{}", 1004),
        ("42/memory,1005", 1005),
        ('42/memory,1006"sync"', 1006),
        # not JSON, NaN, a lone surrogate
        ("42/memory,1007[sync", 1007),
        ('42/memory,1008["sync",{"method":"create","model":{"x":NaN}}]', 1008),
        ('42/memory,1009["sync",{"method":"create","model":{"x":"\\ud800"}}]', 1009),
        # nested far past any limit
        (
            '42/memory,1010["sync",{"method":"create","model":{"x":'
            + "[" * 5000
            + "]" * 5000
            + "}}]",
            1010,
        ),
    ],
)
def test_a_malformed_frame_is_answered_bad_request_and_the_socket_keeps_working(raw, frame, ack_id):
    raw.ws.send(frame)
    answer = raw.ack(ack_id)
    assert answer[0]["error"]["name"] == "BadRequest", answer
    raw.still_syncs()


def test_a_stray_binary_attachment_is_ignored(raw):
    raw.ws.send_binary(b"\x00\x01garbage")
    raw.still_syncs()


def test_malformed_frames_are_logged_as_warnings_not_tracebacks(server, raw):
    for i in range(30):
        raw.ws.send(f"42/memory,{2000 + i}[")
        raw.ack(2000 + i)
    raw.still_syncs()
    assert "Traceback" not in server.log
    lines = [line for line in server.log.splitlines() if "JSONDecodeError" in line]
    assert len(lines) <= 2, "one line per kind of bad input per 10 s"
    assert "not connected to namespace" not in server.log
