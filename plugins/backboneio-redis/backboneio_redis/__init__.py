"""Redis for backboneio: the ``redis`` store, and broadcasts shared between server processes.

Installed (``pip install backboneio-redis``), the plugin is found through the
``backboneio`` entry point group. In a settings module::

    BACKENDS = {"messages": {"store": "redis", "url": "redis://127.0.0.1:6379/0"}}

    # Several `backboneio serve` processes behind one load balancer: every
    # client hears every other client's writes, whichever process it is on.
    REDIS_MANAGER_URL = "redis://127.0.0.1:6379/0"

Both run over redis-py's ordinary sockets, which ``backboneio serve`` makes
cooperative by monkey-patching before it loads plugins, so no thread pool is
needed. docs/stores-redis.md has the data layout, options and costs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from backboneio import hookimpl
from backboneio.errors import ConfigurationError
from backboneio.settings import Settings
from backboneio.stores import StoreConfig

from .store import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    UNAVAILABLE_ERRORS,
    RedisStore,
    connect,
    make_store,
    quick_retry,
    redacted,
)

__all__ = ["RedisStore", "connect", "make_store", "redacted"]

DEFAULT_MANAGER_CHANNEL = "backboneio"
log = logging.getLogger("backboneio.redis")


def store_from_config(config: StoreConfig) -> RedisStore:
    """The factory ``BACKENDS[...] = {"store": "redis", ...}`` runs at start-up.

    Wrong credentials stop start-up; an unreachable Redis only warns, since
    the store reconnects by itself and answers Unavailable until then.
    """
    options = config.options
    url = options.get("url", DEFAULT_URL)
    store = make_store(
        url,
        prefix=options.get("prefix"),
        id_attribute=config.id_attribute,
        max_limit=options.get("max_limit"),
        timeout=options.get("timeout", DEFAULT_TIMEOUT),
        backend=config.backend,
    )
    try:
        store.client.ping()
    except redis.exceptions.AuthenticationError as exc:
        raise ConfigurationError(
            f"BACKENDS[{config.backend!r}]: Redis at {redacted(url)} refused to log in: {exc}"
        ) from None
    except UNAVAILABLE_ERRORS as exc:
        log.warning(
            "BACKENDS[%r]: Redis at %s is unreachable (%s); its syncs answer Unavailable "
            "until it is back",
            config.backend,
            redacted(url),
            exc,
        )
    return store


@hookimpl
def register_stores(register: Callable[..., None]) -> None:
    register(
        "redis",
        store_from_config,
        options={"url": DEFAULT_URL, "prefix": None, "max_limit": None, "timeout": DEFAULT_TIMEOUT},
        description="Models kept in Redis, shared by every server process using the same prefix.",
    )


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(
        "REDIS_MANAGER_URL",
        None,
        "redis:// URL whose pub/sub carries broadcasts between server processes; "
        "None keeps them inside one process.",
    )
    register(
        "REDIS_MANAGER_CHANNEL",
        DEFAULT_MANAGER_CHANNEL,
        "Pub/sub channel the processes of one deployment share.",
    )


@hookimpl
def client_manager(settings: Settings) -> Any:
    url = settings.get("REDIS_MANAGER_URL")
    if url is None:
        return None
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            "Setting REDIS_MANAGER_URL must be None or a redis://, rediss:// or unix:// URL, "
            f"got {redacted(url) if isinstance(url, str) else url!r}"
        )
    channel = settings.get("REDIS_MANAGER_CHANNEL", DEFAULT_MANAGER_CHANNEL)
    if not isinstance(channel, str) or not channel:
        raise ConfigurationError(
            f"Setting REDIS_MANAGER_CHANNEL must be a non-empty string, got {channel!r}"
        )
    import socketio

    # Publishing happens before the writer's ack is sent: with redis-py's
    # default retries a Redis outage would hold every write's answer for
    # seconds. No socket_timeout: the subscriber idles in a blocking read.
    options = {"retry": quick_retry(), "socket_connect_timeout": DEFAULT_TIMEOUT}
    return socketio.RedisManager(url, channel=channel, redis_options=options)
