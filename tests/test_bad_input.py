"""Malformed messages and faulty middleware: each gets an error, nobody else notices."""

from __future__ import annotations

import queue
import time

import pytest

from tests.support.server import ServerProcess

SETTINGS = """
MAX_MESSAGE_SIZE = 20_000
SYNC_TIMEOUT = 0.5
BACKENDS = {
    "messages": {},
    "faulty": {"middleware": ["apps.middleware.raise_on_boom",
                              "apps.middleware.not_found_on_missing"]},
    "stuck": {"middleware": ["apps.middleware.never_answer"]},
}
"""


@pytest.fixture(scope="module")
def server():
    with ServerProcess(SETTINGS) as srv:
        yield srv


@pytest.fixture
def client(server, connect):
    c = connect(server.url, "messages")
    c.listen()
    return c


@pytest.fixture
def bystander(server, connect):
    """Another client that must keep working and hear nothing of the failures."""
    c = connect(server.url, "messages")
    c.listen()
    return c


def assert_still_serving(client, bystander):
    created = client.ok("create", {"text": "still here"})
    assert bystander.next_synced() == ("create", created)
    assert bystander.ok("read", {"id": created["id"]}) == created


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("a string", "one request object"),
        ([1, 2], "one request object"),
        (None, "one request object"),
        ({"method": "explode", "model": {}}, "Unknown method 'explode'"),
        ({"model": {}}, "Unknown method None"),
        ({"method": "create", "model": "not an object"}, "model must be an object"),
        ({"method": "create", "model": [1]}, "model must be an object"),
        ({"method": "read", "model": {}, "options": 5}, "options must be an object"),
        ({"method": "update", "model": {"text": "no id"}}, "needs the model's id"),
        ({"method": "create", "model": {"id": {"nested": 1}}}, "must be a string or an integer"),
    ],
)
def test_malformed_sync_gets_a_bad_request_error(client, bystander, payload, message):
    error, result = client.call("sync", payload)
    assert result is None
    assert error["error"]["name"] == "BadRequest"
    assert message in error["error"]["message"]
    assert bystander.heard_nothing(0.1)
    assert_still_serving(client, bystander)


def test_an_unknown_event_gets_an_error_ack(client, bystander):
    error, result = client.call("frobnicate", {"x": 1})
    assert result is None
    assert error["error"]["name"] == "BadRequest"
    assert "Unknown event 'frobnicate'" in error["error"]["message"]
    assert_still_serving(client, bystander)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"x": float("nan")}, "not valid JSON"),
        ({"x": [1, {"y": float("inf")}]}, "not valid JSON"),
        ({"blob": b"\x00binary"}, "Binary data"),
        (
            {
                "deep": [
                    [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            [
                                                                                                                                                                                [
                                                                                                                                                                                    [
                                                                                                                                                                                        [
                                                                                                                                                                                            [
                                                                                                                                                                                                [
                                                                                                                                                                                                    [
                                                                                                                                                                                                        [
                                                                                                                                                                                                            [
                                                                                                                                                                                                                [
                                                                                                                                                                                                                    [
                                                                                                                                                                                                                        [
                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                                        1
                                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                ]
                                                                                                                                                                                                            ]
                                                                                                                                                                                                        ]
                                                                                                                                                                                                    ]
                                                                                                                                                                                                ]
                                                                                                                                                                                            ]
                                                                                                                                                                                        ]
                                                                                                                                                                                    ]
                                                                                                                                                                                ]
                                                                                                                                                                            ]
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                ]
            },
            "nested",
        ),
    ],
)
def test_values_a_browser_could_not_read_back_are_refused(client, bystander, model, message):
    error, result = client.sync("create", model)
    assert result is None
    assert error["error"]["name"] == "BadRequest"
    assert message in error["error"]["message"]
    assert bystander.heard_nothing(0.1)
    assert_still_serving(client, bystander)


@pytest.mark.parametrize("event", ["connect", "disconnect", "connect_error"])
def test_clients_cannot_send_the_events_socketio_triggers_itself(client, bystander, event):
    answer = client.call(event, {"REMOTE_ADDR": "10.0.0.1", "HTTP_COOKIE": "forged"})
    assert answer[0]["error"]["name"] == "BadRequest"
    # Still the same connection, still listening: its writes reach the bystander.
    assert_still_serving(client, bystander)


def test_sync_with_extra_arguments_is_refused(client, bystander):
    error, _ = client.call("sync", {"method": "read"}, "surplus")
    assert error["error"]["name"] == "BadRequest"
    assert_still_serving(client, bystander)


@pytest.mark.parametrize("channel", [123, "", "x" * 257, {"room": 1}])
def test_listen_on_a_malformed_channel_is_refused(client, bystander, channel):
    answer = client.call("listen", channel)
    assert answer["error"]["name"] == "BadRequest"
    assert_still_serving(client, bystander)


def test_sync_without_an_ack_is_answered_with_an_error_event(client, bystander):
    client.sio.emit("sync", {"method": "create", "model": {"text": "x"}}, namespace="/messages")
    error = client.errors.get(timeout=5)
    assert error["event"] == "sync"
    assert "acknowledgement" in error["error"]["message"]
    assert bystander.heard_nothing(0.2), "an unacknowledged sync must not be run"
    assert_still_serving(client, bystander)


def test_a_message_over_the_size_limit_gets_an_error_and_the_socket_survives(client, bystander):
    error, result = client.sync("create", {"text": "x" * 30_000})
    assert result is None
    assert error["error"]["name"] == "PayloadTooLarge"
    assert error["error"]["limit"] == 20_000
    assert bystander.heard_nothing(0.2)
    assert_still_serving(client, bystander)


def test_a_message_far_over_the_limit_drops_only_that_connection(server, connect, bystander):
    rude = connect(server.url, "messages")
    with pytest.raises(Exception):  # noqa: B017 - engine.io closes the socket: any error will do
        rude.sync("create", {"text": "x" * 2_000_000})
    polite = connect(server.url, "messages")
    assert_still_serving(polite, bystander)


def test_a_raising_middleware_answers_a_server_error_without_details(server, connect, bystander):
    client = connect(server.url, "faulty")
    error, result = client.sync("create", {"boom": True})
    assert result is None
    assert error["error"] == {
        "name": "ServerError",
        "message": "Internal server error",
        "status": 500,
    }
    assert "hunter2" not in str(error)
    assert client.ok("create", {"text": "fine"})["text"] == "fine"


def test_public_errors_keep_their_fields(server, connect):
    client = connect(server.url, "faulty")
    error, _ = client.sync("create", {"missing": True})
    assert error["error"] == {
        "name": "NotFound",
        "message": "nothing here",
        "status": 404,
        "hint": "try another",
    }


def test_debug_sends_details_and_stack(start_server, connect):
    srv = start_server(SETTINGS.replace("SYNC_TIMEOUT", "DEBUG = True\nSYNC_TIMEOUT"))
    client = connect(srv.url, "faulty")
    error, _ = client.sync("create", {"boom": True})
    assert error["error"]["name"] == "RuntimeError"
    assert "hunter2" in error["error"]["message"]
    assert "raise_on_boom" in error["error"]["stack"]


def test_a_middleware_that_never_answers_times_out(server, connect, client, bystander):
    stuck = connect(server.url, "stuck")
    error, result = stuck.sync("create", {"text": "lost"})
    assert result is None
    assert error["error"]["name"] == "Timeout"
    assert stuck.listen()["event"] == "backend"
    assert_still_serving(client, bystander)


def test_a_slow_middleware_does_not_hold_up_other_clients(start_server, connect):
    srv = start_server('BACKENDS = {"slow": {"middleware": ["apps.middleware.slow"]}, "fast": {}}')
    slow, fast = connect(srv.url, "slow"), connect(srv.url, "fast")
    answers: queue.Queue[str] = queue.Queue()
    slow.sio.emit(
        "sync",
        {"method": "create", "model": {"seconds": 1.5}},
        namespace="/slow",
        callback=lambda error, result: answers.put("slow"),
    )
    # Give the slow request time to reach its middleware; if that middleware
    # held the event loop, the fast request would be answered after it.
    time.sleep(0.3)
    fast.ok("create", {"text": "quick"})
    answers.put("fast")
    assert answers.get(timeout=10) == "fast"
    assert answers.get(timeout=10) == "slow"
