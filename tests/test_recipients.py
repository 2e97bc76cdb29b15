"""Per-recipient filtering (authorize_broadcast) holds in every process of a cluster.

Two `backboneio serve` processes share broadcasts through backboneio-redis's
client manager; the test plugin's authorize_broadcast lets only a model's
owner hear about a model marked secret.
"""

from __future__ import annotations

import pytest

from tests.support import requires

SETTINGS = """
PLUGINS = ["redis", "testplugin"]
TESTPLUGIN = True  # its authenticate hook makes auth["user"] the identity
REDIS_MANAGER_URL = {url!r}
BACKENDS = {{"messages": {{}}}}
"""


@pytest.fixture(scope="module")
def redis_url():
    from backboneio_redis.testing import RedisServer

    server = RedisServer(requires.binary("redis-server", "apt-get install redis-server"))
    server.start()
    try:
        yield server.url
    finally:
        server.close()


def wait_until_bridged(sender, receiver):
    """Each process subscribes to Redis in the background after its first
    connection; probe on a channel of its own until the second one hears."""
    sender.listen("bridge")
    receiver.listen("bridge")
    for attempt in range(100):
        sender.ok("create", {"probe": attempt})
        if not receiver.heard_nothing(wait=0.2):
            return
    raise AssertionError("the two processes never heard each other through Redis")


def test_filtered_broadcasts_reach_the_allowed_recipients_of_other_processes(
    redis_url, start_server, connect
):
    first = start_server(SETTINGS.format(url=redis_url))
    second = start_server(SETTINGS.format(url=redis_url))
    wait_until_bridged(connect(first.url, "messages"), connect(second.url, "messages"))
    writer = connect(first.url, "messages", auth={"user": "bob"})
    owner_elsewhere = connect(second.url, "messages", auth={"user": "ada"})
    stranger_elsewhere = connect(second.url, "messages", auth={"user": "eve"})
    stranger_here = connect(first.url, "messages", auth={"user": "eve"})

    public = writer.ok("create", {"text": "for everyone"})
    for client in (owner_elsewhere, stranger_elsewhere, stranger_here):
        assert client.next_synced() == ("create", public)

    secret = writer.ok("create", {"text": "for ada", "secret": True, "owner": "ada"})
    assert owner_elsewhere.next_synced() == ("create", secret)
    marker = writer.ok("create", {"text": "marker"})
    # Notifications arrive in order: the marker first means the secret was skipped.
    assert stranger_elsewhere.next_synced() == ("create", marker)
    assert stranger_here.next_synced() == ("create", marker)
