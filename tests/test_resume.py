"""Gap-free sync over the real wire: positions, resume after a disconnect, the read position.

Each test runs a real ``backboneio serve`` and real python-socketio clients
over WebSocket, and counts what a client that was away received.
"""

from __future__ import annotations

import random

import pytest

from tests.support.client import BackendClient

SETTINGS = """
BACKENDS = {"messages": {"store": "memory"}}
"""
SHORT_LOG = """
BACKENDS = {"messages": {"store": "memory", "change_log_max_entries": 20}}
"""


def drain(client: BackendClient, count: int, timeout: float = 10.0) -> list[tuple[str, dict]]:
    return [client.next_synced(timeout) for _ in range(count)]


@pytest.fixture
def server(start_server):
    return start_server(SETTINGS)


def test_every_notification_carries_its_position(server, connect):
    writer, reader = connect(server.url, "messages"), connect(server.url, "messages")
    head = reader.listen_answer()["positions"][0]
    assert head["channel"] is None and head["seq"] == 0
    for i in range(3):
        writer.ok("create", {"n": i})
    drain(reader, 3)
    assert [p["seq"] for p in reader.positions] == [1, 2, 3]
    assert {p["epoch"] for p in reader.positions} == {head["epoch"]}


def test_a_channel_is_a_stream_of_its_own(server, connect):
    writer, reader = connect(server.url, "messages"), connect(server.url, "messages")
    writer.listen("room")
    answer = reader.listen_answer("room")
    assert [p["channel"] for p in answer["positions"]] == [None, "room"]
    writer.ok("create", {"in": "room"})
    reader.next_synced()
    assert reader.positions[-1]["channel"] == "room"
    assert reader.positions[-1]["seq"] == 1


def test_a_client_away_during_1000_writes_gets_exactly_what_it_missed_in_order(server, connect):
    writers = [connect(server.url, "messages") for _ in range(3)]
    writers[1].listen("a")
    writers[2].listen("b")  # writes on another channel must not be replayed
    away = connect(server.url, "messages")
    positions = away.listen_answer("a")["positions"]
    away.close()

    expected: dict[str | None, list[str]] = {None: [], "a": []}
    rng = random.Random(8)
    for i in range(1000):
        writer = rng.choice(writers)
        model = writer.ok("create", {"n": i})
        if writer is not writers[2]:
            expected[None if writer is writers[0] else "a"].append(model["id"])

    back = connect(server.url, "messages")
    answer = back.listen_answer("a", since=positions)
    assert answer["recovered"] is True and answer["failed"] == []
    replayed = drain(back, len(expected[None]) + len(expected["a"]))
    # Each stream in its own order (the streams are replayed one after the other).
    for channel, ids in expected.items():
        got = [
            model["id"]
            for (_, model), position in zip(replayed, back.positions, strict=True)
            if position["channel"] == channel
        ]
        assert got == ids
    assert back.heard_nothing(0.3), "nothing twice, nothing from channel b"
    # ... then live, with no gap.
    live = writers[0].ok("create", {"n": "live"})
    assert back.next_synced() == ("create", live)
    seqs = [(p["channel"], p["seq"]) for p in back.positions]
    for channel in (None, "a"):
        got = [seq for ch, seq in seqs if ch == channel]
        assert got == list(range(1, len(got) + 1)), f"stream {channel} has a gap or a repeat"


def test_past_retention_the_resume_says_not_recovered(start_server, connect):
    server = start_server(SHORT_LOG)
    writer, away = connect(server.url, "messages"), connect(server.url, "messages")
    positions = away.listen_answer()["positions"]
    away.close()
    for i in range(25):
        writer.ok("create", {"n": i})
    back = connect(server.url, "messages")
    answer = back.listen_answer(None, since=positions)
    assert answer["recovered"] is False
    assert answer["failed"] == positions
    assert back.heard_nothing(0.3), "a partial replay would hide the gap"
    assert answer["positions"][0]["seq"] == 25


def test_after_a_restart_the_memory_log_starts_a_new_epoch(server, connect):
    client = connect(server.url, "messages")
    client.ok("create", {"n": 1})
    positions = client.listen_answer()["positions"]
    client.close()
    server.restart()
    back = connect(server.url, "messages")
    answer = back.listen_answer(None, since=positions)
    assert answer["recovered"] is False
    assert answer["positions"][0]["epoch"] != positions[0]["epoch"]


def test_writes_after_a_read_are_all_delivered_by_a_resume_from_its_positions(server, connect):
    writer, reader = connect(server.url, "messages"), connect(server.url, "messages")
    for i in range(5):
        writer.ok("create", {"n": i})
    reader.listen()
    error, models = reader.sync("read")
    assert error is None and len(models) == 5
    read_positions = reader.last_ack[2]["positions"]
    assert read_positions[0]["seq"] == 5
    reader.close()
    later = [writer.ok("create", {"n": i})["id"] for i in range(5, 12)]
    back = connect(server.url, "messages")
    assert back.listen_answer(None, since=read_positions)["recovered"] is True
    assert [model["id"] for _, model in drain(back, len(later))] == later
    assert back.heard_nothing(0.3)


def test_a_resume_from_the_head_replays_nothing(server, connect):
    writer = connect(server.url, "messages")
    writer.ok("create", {"n": 1})
    client = connect(server.url, "messages")
    positions = client.listen_answer()["positions"]
    answer = client.listen_answer(None, since=positions)
    assert answer["recovered"] is True
    assert client.heard_nothing(0.3)


@pytest.mark.parametrize(
    "since, message",
    [
        ("nope", "list of at most"),
        ([{"channel": None, "epoch": "", "seq": 1}], "epoch"),
        ([{"channel": None, "epoch": "e", "seq": -1}], "seq"),
        ([{"channel": None, "epoch": "e", "seq": True}], "seq"),
        ([1], "position is an object"),
    ],
)
def test_a_malformed_since_is_a_bad_request_and_the_socket_keeps_working(
    server, connect, since, message
):
    client = connect(server.url, "messages")
    answer = client.sio.call("listen", (None, {"since": since}), namespace="/messages", timeout=10)
    error = answer[0] if isinstance(answer, (list, tuple)) else answer
    assert error["error"]["name"] == "BadRequest"
    assert message in error["error"]["message"]
    assert client.listen() == {"event": "backend", "channel": None}
