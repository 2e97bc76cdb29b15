"""The change log every server process on one Redis shares, on Redis Streams.

Keys, for the prefix ``P`` (``<REDIS_MANAGER_CHANNEL>:log`` by default), with
``<b>`` and ``<c>`` the backend and channel names percent-encoded (so a name
may hold ``:`` or any other character):

``P:b:<b>`` / ``P:c:<b>:<c>``
    one Redis stream per change-log stream: the backend's writes made without
    a channel, or those on one channel. Entry ids are ``<ms>-<seq>`` (Redis
    time, never going back within the stream, and the entry's ``seq``), so
    ``MINID`` trims by age and the newest ``n`` entries are ``seq`` head-n+1
    to head. Fields: ``m`` method, ``v`` the model as JSON, ``o`` origin.
``P:b:<b>:meta`` / ``P:c:<b>:<c>:meta``
    hash: ``epoch`` (random, made with the stream), ``seq`` (the head),
    ``ms`` (time of the newest entry), ``age`` (its max age in ms). Both keys
    of a stream expire after ``idle_ttl`` seconds without a write or a head().
``P:all``
    the global stream the readers follow: every entry of every stream again,
    in append order, with ids ``<gseq>-0``, trimmed to about ``backlog``
    entries. Fields as above plus ``ge`` global epoch, ``b``, ``c``, ``e``
    epoch, ``q`` seq, ``t`` ms.
``P:all:meta``
    hash: ``epoch`` and ``seq`` of the global stream.

One Lua script appends to a stream and to ``P:all``, so the order of
``P:all`` is every stream's order, whichever process wrote. docs/cluster.md
explains why one global stream rather than XREAD over every stream.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import quote

import redis
from backboneio import jsonutil
from backboneio.changelog import ChangeLog, Deliver, Entry, Position, Retention, StreamKey
from backboneio.errors import ConfigurationError, Unavailable
from redis.backoff import NoBackoff
from redis.retry import Retry

from .store import UNAVAILABLE_ERRORS, quick_retry, redacted

log = logging.getLogger("backboneio.redis")

DEFAULT_BACKLOG = 10_000
DEFAULT_IDLE_TTL = 86_400.0
DEFAULT_TIMEOUT = 2.0
# The reader's XREAD waits this long for new entries before it looks whether
# Redis was flushed under it (see _check_epoch) and whether close() was called.
BLOCK_MS = 500
READ_COUNT = 500
# Reconnecting: first retry soon, then every half second at most, so fan-out
# is back within about half a second of Redis (python-socketio's pub/sub
# backs off to minutes, which is what this log replaces).
RETRY_FIRST = 0.1
RETRY_MAX = 0.5
# An append is tried this many times, the later tries after these pauses;
# a retry looks for its write among this many of the stream's newest entries
# (only writes appended in the fraction of a second between tries can sit
# above it).
APPEND_PAUSES = (0.02, 0.2)
APPEND_LOOKBACK = 1000
# Keys of appends that failed without an answer, until the write is logged.
UNCERTAIN_MAX = 10_000

# KEYS: stream, meta, global stream, global meta. ARGV: see RedisChangeLog.append.
# When ARGV[14] is '1' an earlier attempt of this write (key ARGV[13]) may have
# been taken with its answer lost: if the stream's newest entries hold it, its
# position is answered and nothing is added.
_APPEND = """
if ARGV[14] == '1' then
  local known = redis.call('HGET', KEYS[2], 'epoch')
  if known then
    for _, e in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[15])) do
      local f = e[2]
      for j = 1, #f - 1, 2 do
        if f[j] == 'i' and f[j + 1] == ARGV[13] then
          local ms, seq = string.match(e[1], '^(%d+)-(%d+)$')
          return {known, tonumber(seq), ms}
        end
      end
    end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function int(n) return string.format('%.0f', n) end

local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  -- A new stream, or one whose keys Redis lost: a new epoch, and no entry of
  -- an older one may stay in the stream under it.
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'seq', 0, 'ms', 0)
end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
local ms = math.max(now, tonumber(redis.call('HGET', KEYS[2], 'ms')) or 0)
redis.call('HSET', KEYS[2], 'ms', int(ms), 'age', ARGV[7])
local fields = {'m', ARGV[3], 'v', ARGV[4]}
if ARGV[5] ~= '' then fields[5] = 'o'; fields[6] = ARGV[5] end
local own = {unpack(fields)}
own[#own + 1] = 'i'
own[#own + 1] = ARGV[13]
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[6], int(ms) .. '-' .. int(seq), unpack(own))
local age = tonumber(ARGV[7])
if age >= 0 and ms - age > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', int(ms - age))
end
local ttl = tonumber(ARGV[9])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end

local gepoch = redis.call('HGET', KEYS[4], 'epoch')
if not gepoch then
  gepoch = ARGV[2]
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[4], 'epoch', gepoch, 'seq', 0)
end
local gseq = redis.call('HINCRBY', KEYS[4], 'seq', 1)
local g = {'ge', gepoch, 'b', ARGV[10], 'e', epoch, 'q', int(seq), 't', int(ms)}
if ARGV[11] == '1' then g[#g + 1] = 'c'; g[#g + 1] = ARGV[12] end
for i = 1, #fields do g[#g + 1] = fields[i] end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], int(gseq) .. '-0', unpack(g))
return {epoch, seq, int(ms)}
"""

# KEYS: stream, meta. ARGV: a new epoch, idle ttl ms. The head, making the
# stream's epoch if it has none: a client told (epoch, 0) for a stream no one
# wrote yet must be able to resume from it once someone has.
_HEAD = """
local m = redis.call('HMGET', KEYS[2], 'epoch', 'seq')
if not m[1] then
  m = {ARGV[1], 0}
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', ARGV[1], 'seq', 0, 'ms', 0)
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {m[1], tonumber(m[2])}
"""

# KEYS: stream, meta. ARGV: epoch, seq. Returns false when the log cannot
# say (another epoch, a seq it never had, or entries after seq dropped by
# count or by age), else the entries after seq, newest first.
_SINCE = """
local m = redis.call('HMGET', KEYS[2], 'epoch', 'seq', 'age')
if not m[1] or m[1] ~= ARGV[1] then return false end
local head = tonumber(m[2])
local seq = tonumber(ARGV[2])
if seq > head or seq < 0 then return false end
if seq == head then return {} end
local entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', head - seq)
if #entries < head - seq then return false end
local age = tonumber(m[3]) or -1
if age >= 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local oldest = entries[#entries][1]
  local ms = tonumber(string.sub(oldest, 1, string.find(oldest, '-') - 1))
  if ms < now - age then return false end
end
return entries
"""


def _encode(name: str) -> str:
    # surrogatepass: a channel name JSON carried as "\\ud800" still gets a key.
    return quote(name, safe="", errors="surrogatepass")


def _new_epoch() -> str:
    return uuid.uuid4().hex[:12]


class RedisChangeLog(ChangeLog):
    """A :class:`backboneio.changelog.ChangeLog` shared by every process on one Redis.

    ``append`` runs one script that gives the entry its ``seq`` and ``epoch``;
    a reader thread per process (a green thread under ``backboneio serve``)
    follows the global stream and calls ``deliver`` once per entry, in each
    stream's order, for entries of every process including its own.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "backboneio:log",
        retention: Retention | None = None,
        backlog: int = DEFAULT_BACKLOG,
        idle_ttl: float = DEFAULT_IDLE_TTL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(
                f"The change log's prefix must be a non-empty string, got {prefix!r}"
            )
        if isinstance(backlog, bool) or not isinstance(backlog, int) or backlog < 1:
            raise ConfigurationError(
                f"The change log's backlog must be a positive integer, got {backlog!r}"
            )
        if isinstance(idle_ttl, bool) or not isinstance(idle_ttl, (int, float)) or idle_ttl < 0:
            raise ConfigurationError(
                "The change log's idle TTL must be a number of seconds >= 0 (0: never), "
                f"got {idle_ttl!r}"
            )
        self.url = url
        self.prefix = prefix
        self.retention = retention or Retention()
        self.backlog = backlog
        self.idle_ttl_ms = int(idle_ttl * 1000)
        self.global_key = f"{prefix}:all"
        self.global_meta = f"{prefix}:all:meta"
        options: dict[str, Any] = {"decode_responses": True, "encoding_errors": "surrogatepass"}
        try:
            # Writes fail soon in an outage: the author is told Unavailable.
            self.client = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=quick_retry(),
                **options,
            )
            # The reader does its own retrying (see _run); its socket timeout
            # outlasts the blocking read, so only a Redis that stopped
            # answering times it out.
            self._reader = redis.Redis.from_url(
                url,
                socket_timeout=BLOCK_MS / 1000 + timeout,
                socket_connect_timeout=min(timeout, 1.0),
                retry=Retry(NoBackoff(), 0),
                **options,
            )
            # Appends do their own retrying (see append): a retry of a script
            # whose answer was lost must say so, or the write is logged twice.
            self._writer = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                **options,
            )
        except ValueError as exc:
            raise ConfigurationError(f"Cannot use Redis URL {redacted(url)!r}: {exc}") from None
        self._uncertain: dict[str, None] = {}
        self._append = self.client.register_script(_APPEND)
        self._head = self.client.register_script(_HEAD)
        self._since = self.client.register_script(_SINCE)

        self._deliver: Deliver | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        # What the reader has delivered: the global stream's epoch and seq,
        # and per stream (epoch, seq).
        self._g_epoch: str | None = None
        self._g_last = 0
        self._synced = False  # _g_epoch/_g_last describe the Redis we talk to
        self._started = False  # the reader ever found where to start
        self._start_ms = 0
        self._last: dict[StreamKey, tuple[str, int]] = {}
        self._down_since: float | None = None
        #: How many entries the reader could not deliver because they were
        #: trimmed before it read them (it logs each case); 0 unless a process
        #: stayed cut off from Redis while the others wrote more than the backlog.
        self.undeliverable = 0

    #: Every process on this Redis delivers every entry itself (the hub then
    #: sends locally, never through a pub/sub client manager).
    shared = True

    def available(self) -> bool:
        """False while the reader is cut off from Redis: the hub then refuses
        writes before they are made, rather than storing what it cannot log."""
        return self._down_since is None

    def __repr__(self) -> str:
        return f"<RedisChangeLog {redacted(self.url)} prefix={self.prefix!r}>"

    # -- keys ------------------------------------------------------------------

    def keys(self, backend: str, channel: str | None) -> tuple[str, str]:
        """The stream key and the meta key of ``(backend, channel)``."""
        if channel is None:
            stream = f"{self.prefix}:b:{_encode(backend)}"
        else:
            stream = f"{self.prefix}:c:{_encode(backend)}:{_encode(channel)}"
        return stream, stream + ":meta"

    def _unavailable(self, exc: Exception, what: str) -> Unavailable:
        log.warning("change log on Redis %s: %s failed: %s", redacted(self.url), what, exc)
        return Unavailable("The change log is unavailable; try again later")

    # -- ChangeLog -------------------------------------------------------------

    def append(
        self,
        backend: str,
        channel: str | None,
        method: str,
        model: Any,
        *,
        origin: str | None = None,
        retention: Retention | None = None,
        key: str | None = None,
    ) -> Entry:
        retention = retention or self.retention
        key = key or uuid.uuid4().hex
        stream, meta = self.keys(backend, channel)
        max_age = retention.max_age
        age_ms = -1 if max_age == float("inf") else max(0, int(max_age * 1000))
        # Only used when the stream (or the whole log) is new; one uuid4 makes both.
        fresh = uuid.uuid4().hex
        args: list[str | int] = [
            fresh[:12],
            fresh[12:24],
            method,
            jsonutil.dumps(model),
            origin or "",
            max(int(retention.max_entries), 0),
            age_ms,
            self.backlog,
            self.idle_ttl_ms,
            backend,
            "0" if channel is None else "1",
            channel or "",
            key,
        ]
        keys = [stream, meta, self.global_key, self.global_meta]
        for pause in (*APPEND_PAUSES, None):
            retry = "1" if key in self._uncertain else "0"
            try:
                epoch, seq, ms = self._append(
                    keys=keys, args=[*args, retry, APPEND_LOOKBACK], client=self._writer
                )
                break
            except UNAVAILABLE_ERRORS as exc:
                # Redis may have run the script and lost only the answer.
                self._uncertain[key] = None
                while len(self._uncertain) > UNCERTAIN_MAX:
                    del self._uncertain[next(iter(self._uncertain))]
                if pause is None:
                    raise self._unavailable(exc, "append") from exc
                time.sleep(pause)
        self._uncertain.pop(key, None)
        return Entry(backend, channel, epoch, int(seq), method, model, origin, int(ms) / 1000)

    def head(self, backend: str, channel: str | None) -> Position:
        stream, meta = self.keys(backend, channel)
        try:
            epoch, seq = self._head(keys=[stream, meta], args=[_new_epoch(), self.idle_ttl_ms])
        except UNAVAILABLE_ERRORS as exc:
            raise self._unavailable(exc, "head") from exc
        return Position(channel, epoch, int(seq))

    def since(self, backend: str, channel: str | None, epoch: str, seq: int) -> list[Entry] | None:
        if not isinstance(epoch, str) or isinstance(seq, bool) or not isinstance(seq, int):
            return None
        stream, meta = self.keys(backend, channel)
        try:
            found = self._since(keys=[stream, meta], args=[epoch, seq])
        except UNAVAILABLE_ERRORS as exc:
            raise self._unavailable(exc, "since") from exc
        if found is None:
            return None
        entries = [
            self._stream_entry(backend, channel, epoch, id_, _fields(fields))
            for id_, fields in found
        ]
        entries.reverse()
        return entries

    def start(self, deliver: Deliver) -> None:
        if self._thread is not None:
            raise RuntimeError("RedisChangeLog.start() was already called")
        self._deliver = deliver
        self._start_ms = int(time.time() * 1000)
        try:
            # Where to start, right away when Redis is up: every entry
            # appended after start() returns is delivered.
            self._sync(self._reader)
        except UNAVAILABLE_ERRORS as exc:
            log.warning(
                "change log on Redis %s is unreachable (%s); notifications start when it is back",
                redacted(self.url),
                exc,
            )
            self._down_since = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="backboneio-redis-log", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=BLOCK_MS / 1000 + 2)
        self._reader.close()
        self._writer.close()
        self.client.close()

    # -- the reader ------------------------------------------------------------

    def _run(self) -> None:
        delay = RETRY_FIRST
        while not self._closed.is_set():
            try:
                if not self._synced:
                    self._sync(self._reader)
                self._read(self._reader)
                delay = RETRY_FIRST
            except UNAVAILABLE_ERRORS as exc:
                if self._closed.is_set():
                    break
                self._synced = False
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning(
                        "change log on Redis %s: reader lost its connection (%s); retrying",
                        redacted(self.url),
                        exc,
                    )
                self._reader.connection_pool.disconnect()
                self._closed.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
            except Exception:
                if self._closed.is_set():
                    break
                # A bug must not end fan-out for the life of the process.
                log.exception("change log on Redis %s: reader failed; retrying", redacted(self.url))
                self._synced = False
                self._closed.wait(RETRY_MAX)

    def _sync(self, r: redis.Redis) -> None:
        """Find where to read the global stream from, after start or an outage."""
        # The clients decode responses (decode_responses=True): str, not bytes.
        epoch, seq = cast(list[str | None], r.hmget(self.global_meta, ["epoch", "seq"]))
        head = int(seq or 0)
        if not self._started:
            self._g_epoch = epoch
            self._g_last = head if self._down_since is None else self._first_after_start(r, head)
            self._started = True
        elif epoch != self._g_epoch:
            # Redis lost the log (restarted without persistence, flushed):
            # every entry of the new global stream came after what we had.
            if self._g_epoch is not None or epoch is None:
                log.warning(
                    "change log on Redis %s: its history is gone (new epoch); "
                    "clients resuming from older positions will refetch",
                    redacted(self.url),
                )
            self._g_epoch = epoch
            self._g_last = 0
        elif head < self._g_last:
            # Same epoch but fewer entries: restored from a snapshot older
            # than what was delivered. Go on from there; docs/cluster.md says
            # which persistence settings avoid it.
            log.error(
                "change log on Redis %s went back from entry %d to %d (restored from an "
                "older snapshot?); entries acknowledged in between are lost",
                redacted(self.url),
                self._g_last,
                head,
            )
            self._g_last = head
        if self._down_since is not None:
            log.warning(
                "change log on Redis %s: reader back after %.1f s",
                redacted(self.url),
                time.monotonic() - self._down_since,
            )
            self._down_since = None
        self._synced = True

    def _first_after_start(self, r: redis.Redis, head: int) -> int:
        """The global seq to read after when Redis was down at start(): the
        last entry appended before start(), so none appended since is skipped."""
        after = head
        while after > 0:
            batch = cast(
                list[tuple[str, dict[str, str]]],
                r.xrevrange(self.global_key, f"{after}-0", "-", count=200),
            )
            if not batch:
                return after
            for id_, fields in batch:
                gseq = int(id_.split("-", 1)[0])
                if int(fields.get("t", 0)) < self._start_ms:
                    return gseq
                after = gseq - 1
        return 0

    def _read(self, r: redis.Redis) -> None:
        found = r.xread({self.global_key: f"{self._g_last}-0"}, count=READ_COUNT, block=BLOCK_MS)
        if not found:
            self._check_epoch(r)
            return
        # RESP2 answers a list of [key, entries]; RESP3 a dict key -> [entries].
        batches = found.values() if isinstance(found, dict) else [b[1] for b in found]
        for batch in batches:
            for id_, fields in _flat(batch):
                if self._closed.is_set():
                    return
                gseq = int(id_.split("-", 1)[0])
                fields = _fields(fields)
                if fields.get("ge") != self._g_epoch:
                    if self._g_epoch is None and self._g_last == 0:
                        self._g_epoch = fields.get("ge")  # the first entry of a fresh log
                    else:
                        # Flushed and refilled while we were connected: what
                        # the new log holds before this entry is ours too.
                        self._g_epoch = fields.get("ge")
                        self._g_last = 0
                        return
                if gseq > self._g_last + 1:
                    # Trimmed past entries this process never read (it was cut
                    # off while others wrote more than the backlog): streams it
                    # knows are backfilled from their own keys in _accept.
                    log.warning(
                        "change log on Redis %s: reader fell %d entries behind the backlog",
                        redacted(self.url),
                        gseq - self._g_last - 1,
                    )
                self._g_last = gseq
                try:
                    entry = self._global_entry(fields)
                except (KeyError, ValueError) as exc:
                    # Written by hand or by another version: skip it, never
                    # retry it forever.
                    log.error("change log: skipping unreadable entry %s: %r", id_, exc)
                    self.undeliverable += 1
                    continue
                self._accept(entry)

    def _check_epoch(self, r: redis.Redis) -> None:
        epoch = r.hget(self.global_meta, "epoch")
        if epoch != self._g_epoch:
            self._synced = False

    def _accept(self, entry: Entry) -> None:
        known = self._last.get(entry.stream)
        if known is not None and known[0] == entry.epoch:
            if entry.seq <= known[1]:
                return  # already delivered
            if entry.seq > known[1] + 1:
                self._backfill(entry, known[1])
        self._last[entry.stream] = (entry.epoch, entry.seq)
        self._call(entry)

    def _backfill(self, entry: Entry, after: int) -> None:
        """Deliver what the stream holds between ``after`` and ``entry``."""
        missing = self.since(entry.backend, entry.channel, entry.epoch, after)
        if missing is None:
            lost = entry.seq - after - 1
            self.undeliverable += lost
            log.warning(
                "change log on Redis %s: %d entries of %s were trimmed before this process "
                "read them; its clients learn it when they resume",
                redacted(self.url),
                lost,
                entry.stream,
            )
            return
        for earlier in missing:
            if after < earlier.seq < entry.seq:
                self._call(earlier)

    def _call(self, entry: Entry) -> None:
        assert self._deliver is not None
        try:
            self._deliver(entry)
        except Exception:
            log.exception("change log: delivering %s #%d failed", entry.stream, entry.seq)

    # -- decoding --------------------------------------------------------------

    @staticmethod
    def _stream_entry(
        backend: str, channel: str | None, epoch: str, id_: str, fields: dict[str, str]
    ) -> Entry:
        ms, seq = id_.split("-", 1)
        return Entry(
            backend,
            channel,
            epoch,
            int(seq),
            fields["m"],
            _loads(fields["v"]),
            fields.get("o"),
            int(ms) / 1000,
        )

    @staticmethod
    def _global_entry(fields: dict[str, str]) -> Entry:
        return Entry(
            fields["b"],
            fields.get("c"),
            fields["e"],
            int(fields["q"]),
            fields["m"],
            _loads(fields["v"]),
            fields.get("o"),
            int(fields["t"]) / 1000,
        )


def _loads(text: str) -> Any:
    try:
        return jsonutil.loads(text)
    except ValueError:
        # orjson refuses a lone surrogate ("\ud800"), which the stdlib wrote.
        return json.loads(text)


def _fields(raw: Any) -> dict[str, str]:
    # Inside a script Redis answers field/value pairs as a flat list.
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2], strict=True))


def _flat(batch: Iterable[Any]) -> Iterable[tuple[str, dict[str, str]]]:
    # RESP3 may nest each stream's entries one level deeper.
    for item in batch:
        if item and isinstance(item[0], (list, tuple)):
            yield from item
        else:
            yield item
