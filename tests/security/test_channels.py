"""Channels: a token may be limited to some, and no notification crosses between them."""

from __future__ import annotations

import queue
import random
from collections.abc import Iterator

import pytest

from tests.security.helpers import SECRET, connect, reason, refusal, token
from tests.support.client import BackendClient
from tests.support.server import ServerProcess

CHANNEL_SETTINGS = f"""
PLUGINS = ["backboneio-token-auth"]
TOKEN_AUTH_SECRET = {SECRET!r}
BACKENDS = {{"messages": {{"store": "memory"}}}}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ServerProcess(CHANNEL_SETTINGS) as srv:
        yield srv.url


def test_a_token_listens_to_a_channel_its_claim_allows(server: str) -> None:
    with connect(server, "messages", auth={"token": token(channels=["team-a"])}) as client:
        assert client.listen("team-a") == {"event": "backend", "channel": "team-a"}


def test_a_token_is_refused_a_channel_its_claim_does_not_list(server: str) -> None:
    limited = token(channels=["team-a"])
    with (
        connect(server, "messages", auth={"token": limited}) as intruder,
        connect(server, "messages", auth={"token": token(channels=["team-b"])}) as member,
    ):
        assert intruder.listen("team-a")["channel"] == "team-a"
        answer = intruder.listen("team-b")
        assert answer["error"]["name"] == "Forbidden"
        assert answer["error"]["channels"] == ["team-a"]
        # The refused listen left it on team-a: team-b's writes do not reach it.
        member.listen("team-b")
        member.ok("create", {"text": "team-b only"})
        marker = connect(server, "messages", auth={"token": token(channels=["team-a"])})
        with marker:
            marker.listen("team-a")
            sent = marker.ok("create", {"text": "team-a marker"})
        assert intruder.next_synced() == ("create", sent)


def test_a_limited_token_cannot_leave_its_channels_for_the_whole_backend(server: str) -> None:
    with connect(server, "messages", auth={"token": token(channels=["team-a"])}) as client:
        error, _ = client.sync("create", {"text": "before listening"})
        assert error["error"]["name"] == "Forbidden"
        assert client.listen()["error"]["name"] == "Forbidden"


def test_channel_patterns_in_the_claim_are_marked_glob(server: str) -> None:
    with connect(server, "messages", auth={"token": token(channels=["glob:room-*"])}) as client:
        assert client.listen("room-42")["channel"] == "room-42"
        assert client.listen("lobby")["error"]["name"] == "Forbidden"


def test_unmarked_entries_are_exact_names_even_with_pattern_characters(server: str) -> None:
    # A token issued for the user called "*" lists "user-*": that is one
    # channel, not every user's.
    limited = token(sub="*", channels=["user-*", "team-[ab]"])
    with connect(server, "messages", auth={"token": limited}) as client:
        assert client.listen("user-*")["channel"] == "user-*"
        answer = client.listen("user-bob")
        assert answer["error"]["name"] == "Forbidden"
        assert client.listen("team-a")["error"]["name"] == "Forbidden"
        assert client.listen("team-[ab]")["channel"] == "team-[ab]"


def test_anonymous_clients_are_refused_unless_the_settings_allow_them(server: str) -> None:
    # Anonymous sockets carry no channels claim, so letting them in would
    # undo every token's channel limit.
    assert reason(server, "messages") == "Token required"
    with ServerProcess(CHANNEL_SETTINGS + "TOKEN_AUTH_REQUIRED = False\n") as open_srv:
        assert refusal(open_srv.url, "messages") is None
        with connect(open_srv.url, "messages") as anonymous:
            assert anonymous.listen("team-a")["channel"] == "team-a"


def test_a_token_without_the_claim_may_use_any_channel(server: str) -> None:
    with connect(server, "messages", auth={"token": token()}) as client:
        assert client.listen("anything")["channel"] == "anything"
        assert client.listen()["channel"] is None


# -- no leaks between channels ----------------------------------------------

CLIENTS = 30
CHANNELS = 6
WRITES = 150
LEAK_SETTINGS = {
    # One emit per channel (no plugin filters recipients)...
    "room broadcast": 'PLUGINS = []\nBACKENDS = {"notes": {"store": "memory"}}\n',
    # ...and one emit per recipient, once a plugin implements authorize_broadcast.
    "per recipient": CHANNEL_SETTINGS.replace('"messages"', '"notes"')
    + 'TOKEN_AUTH_OWNER_ATTRIBUTE = "owner"\n',
}


@pytest.mark.parametrize("path", sorted(LEAK_SETTINGS))
def test_random_writes_never_reach_another_channel(path: str) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    channels = [f"ch{i}" for i in range(CHANNELS)]
    with ServerProcess(LEAK_SETTINGS[path]) as srv:
        clients: list[tuple[BackendClient, str]] = []
        markers: dict[str, BackendClient] = {}
        try:
            for i in range(CLIENTS):
                channel = channels[i % CHANNELS]
                client = connect(srv.url, "notes", auth={"token": token(sub=f"u{i}")})
                clients.append((client, channel))
                assert client.listen(channel)["channel"] == channel
            for channel in channels:
                markers[channel] = connect(srv.url, "notes", auth={"token": token(sub="marker")})
                markers[channel].listen(channel)

            expected: dict[int, set[int]] = {i: set() for i in range(CLIENTS)}
            stored: list[tuple[int, dict[str, object]]] = []
            for n in range(WRITES):
                writer = rng.randrange(CLIENTS)
                client, channel = clients[writer]
                if stored and rng.random() < 0.3:
                    # patch a model of the writer's own channel, if there is one
                    mine = [m for w, m in stored if clients[w][1] == channel]
                    if mine:
                        target = rng.choice(mine)
                        client.ok("patch", {"id": target["id"], "n": n})
                    else:
                        stored.append((writer, client.ok("create", {"channel": channel, "n": n})))
                else:
                    stored.append((writer, client.ok("create", {"channel": channel, "n": n})))
                for i, (_, other_channel) in enumerate(clients):
                    if i != writer and other_channel == channel:
                        expected[i].add(n)

            for channel, marker in markers.items():
                marker.ok("create", {"channel": channel, "marker": True})

            for i, (client, channel) in enumerate(clients):
                heard: list[int] = []
                while True:
                    try:
                        _, model = client.next_synced()
                    except queue.Empty:
                        pytest.fail(f"client {i} never got {channel}'s marker (seed {seed})")
                    assert model["channel"] == channel, f"leak into client {i} (seed {seed})"
                    if model.get("marker"):
                        break
                    heard.append(model["n"])
                assert sorted(heard) == sorted(expected[i]), f"client {i} (seed {seed})"
        finally:
            for client, _ in clients:
                client.close()
            for marker in markers.values():
                marker.close()
