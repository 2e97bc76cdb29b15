"""Redis for backboneio: the ``redis`` store, and broadcasts shared between server processes.

Installed (``pip install backboneio-redis``), the plugin is found through the
``backboneio`` entry point group. In a settings module::

    BACKENDS = {"messages": {"store": "redis", "url": "redis://127.0.0.1:6379/0"}}

    # Several `backboneio serve` processes behind one load balancer: every
    # client hears every other client's writes, whichever process it is on,
    # through one change log on Redis Streams that every process shares,
    # and presence (who is here) is one list of members for all processes.
    REDIS_MANAGER_URL = "redis://127.0.0.1:6379/0"

All run over redis-py's ordinary sockets, which ``backboneio serve`` makes
cooperative by monkey-patching before it loads plugins, so no thread pool is
needed. docs/stores-redis.md has the data layout, options and costs; docs/cluster.md
how the shared change log keeps notifications gap-free across processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from backboneio import hookimpl
from backboneio.changelog import Retention
from backboneio.errors import ConfigurationError
from backboneio.settings import Settings
from backboneio.stores import StoreConfig

from .changelog import DEFAULT_BACKLOG, DEFAULT_IDLE_TTL, RedisChangeLog
from .presence import DEFAULT_TTL as DEFAULT_PRESENCE_TTL
from .presence import RedisPresence
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

__all__ = ["RedisChangeLog", "RedisPresence", "RedisStore", "connect", "make_store", "redacted"]

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
        version_attribute=config.version_attribute,
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
    register(
        "REDIS_CHANGE_LOG",
        True,
        "With REDIS_MANAGER_URL set: keep the change log on Redis Streams, shared by every "
        "process (False: each process keeps its own log and pub/sub carries notifications).",
    )
    register(
        "REDIS_CHANGE_LOG_PREFIX",
        None,
        "Start of the change log's Redis keys; None: '<REDIS_MANAGER_CHANNEL>:log'.",
    )
    register(
        "REDIS_CHANGE_LOG_BACKLOG",
        DEFAULT_BACKLOG,
        "About how many of the newest entries of all streams the processes' readers "
        "can catch up on after losing Redis for a while.",
    )
    register(
        "REDIS_CHANGE_LOG_IDLE_TTL",
        DEFAULT_IDLE_TTL,
        "Seconds after which a stream no one wrote to or listened on is deleted (0: never).",
    )
    register(
        "REDIS_PRESENCE",
        True,
        "With REDIS_MANAGER_URL set: keep presence members on Redis, one list for every "
        "process (False: each process has its own members).",
    )
    register(
        "REDIS_PRESENCE_PREFIX",
        None,
        "Start of presence's Redis keys; None: '<REDIS_MANAGER_CHANNEL>:presence'.",
    )
    register(
        "REDIS_PRESENCE_TTL",
        DEFAULT_PRESENCE_TTL,
        "Seconds without a heartbeat after which a process counts as dead: its members "
        "leave PRESENCE_GRACE seconds later (unless their clients reconnected elsewhere).",
    )


def _manager_url(settings: Settings) -> str | None:
    url = settings.get("REDIS_MANAGER_URL")
    if url is None:
        return None
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            "Setting REDIS_MANAGER_URL must be None or a redis://, rediss:// or unix:// URL, "
            f"got {redacted(url) if isinstance(url, str) else url!r}"
        )
    return url


def _manager_channel(settings: Settings) -> str:
    channel = settings.get("REDIS_MANAGER_CHANNEL", DEFAULT_MANAGER_CHANNEL)
    if not isinstance(channel, str) or not channel:
        raise ConfigurationError(
            f"Setting REDIS_MANAGER_CHANNEL must be a non-empty string, got {channel!r}"
        )
    return channel


def _change_log_on(settings: Settings) -> bool:
    on = settings.get("REDIS_CHANGE_LOG", True)
    if not isinstance(on, bool):
        raise ConfigurationError(f"Setting REDIS_CHANGE_LOG must be True or False, got {on!r}")
    return on


@hookimpl
def change_log(settings: Settings) -> RedisChangeLog | None:
    url = _manager_url(settings)
    if url is None or not _change_log_on(settings):
        return None
    prefix = settings.get("REDIS_CHANGE_LOG_PREFIX")
    if prefix is None:
        prefix = f"{_manager_channel(settings)}:log"
    if not isinstance(prefix, str) or not prefix:
        raise ConfigurationError(
            f"Setting REDIS_CHANGE_LOG_PREFIX must be None or a non-empty string, got {prefix!r}"
        )
    backlog = settings.get("REDIS_CHANGE_LOG_BACKLOG", DEFAULT_BACKLOG)
    if isinstance(backlog, bool) or not isinstance(backlog, int) or backlog < 1:
        raise ConfigurationError(
            f"Setting REDIS_CHANGE_LOG_BACKLOG must be a positive integer, got {backlog!r}"
        )
    ttl = settings.get("REDIS_CHANGE_LOG_IDLE_TTL", DEFAULT_IDLE_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl < 0:
        raise ConfigurationError(
            f"Setting REDIS_CHANGE_LOG_IDLE_TTL must be a number of seconds >= 0, got {ttl!r}"
        )
    # The hub passes each backend's retention with every append; this one
    # serves appends that come without.
    retention = Retention(
        float(settings.get("CHANGE_LOG_MAX_AGE", 300.0)),
        int(settings.get("CHANGE_LOG_MAX_ENTRIES", 1000)),
    )
    log_ = RedisChangeLog(
        url, prefix=prefix, retention=retention, backlog=backlog, idle_ttl=float(ttl)
    )
    try:
        log_.client.ping()
    except redis.exceptions.AuthenticationError as exc:
        raise ConfigurationError(
            f"REDIS_MANAGER_URL: Redis at {redacted(url)} refused to log in: {exc}"
        ) from None
    except UNAVAILABLE_ERRORS as exc:
        log.warning(
            "REDIS_MANAGER_URL: Redis at %s is unreachable (%s); writes answer Unavailable "
            "until it is back",
            redacted(url),
            exc,
        )
    return log_


@hookimpl
def client_manager(settings: Settings) -> Any:
    url = _manager_url(settings)
    if url is None:
        return None
    channel = _manager_channel(settings)
    if _change_log_on(settings):
        # Every process delivers the shared log's entries to its own sockets;
        # pub/sub would only carry them a second time.
        return None
    import socketio

    # Publishing happens before the writer's ack is sent: with redis-py's
    # default retries a Redis outage would hold every write's answer for
    # seconds. No socket_timeout: the subscriber idles in a blocking read.
    options = {"retry": quick_retry(), "socket_connect_timeout": DEFAULT_TIMEOUT}
    return socketio.RedisManager(url, channel=channel, redis_options=options)


@hookimpl
def configure_server(sio: Any, settings: Settings, hub: Any) -> None:
    url = _manager_url(settings)
    if url is None:
        return
    on = settings.get("REDIS_PRESENCE", True)
    if not isinstance(on, bool):
        raise ConfigurationError(f"Setting REDIS_PRESENCE must be True or False, got {on!r}")
    if not on:
        return
    prefix = settings.get("REDIS_PRESENCE_PREFIX")
    if prefix is None:
        prefix = f"{_manager_channel(settings)}:presence"
    if not isinstance(prefix, str) or not prefix:
        raise ConfigurationError(
            f"Setting REDIS_PRESENCE_PREFIX must be None or a non-empty string, got {prefix!r}"
        )
    ttl = settings.get("REDIS_PRESENCE_TTL", DEFAULT_PRESENCE_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
        raise ConfigurationError(
            f"Setting REDIS_PRESENCE_TTL must be a number of seconds > 0, got {ttl!r}"
        )
    # Started by use(): an unreachable Redis only warns, its reader retries.
    hub.presence.use(RedisPresence(url, prefix=prefix, ttl=float(ttl), grace=hub.presence.grace))
