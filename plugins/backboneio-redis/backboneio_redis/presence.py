"""Presence shared by every server process on one Redis: a :class:`PresenceStore`.

The core's :class:`backboneio.presence.Registry` keeps the seats of this
process's sockets and their grace period; this store keeps the members of
every scope in Redis, so that a member is the union of its connections on all
processes. Each change goes into one stream that every process reads, its
own changes included, and tells the sockets it holds: all sockets of a scope
hear the changes in one order, whichever process made them.
docs/presence.md has the rules, docs/cluster.md the bounds.

Keys, for the prefix ``P`` (``<REDIS_MANAGER_CHANNEL>:presence`` by default),
with ``<s>`` a scope (``b:<backend>`` or ``c:<backend>:<channel>``) and
``<m>`` a member key, both percent-encoded:

``P:s:<s>``
    sorted set of the scope's members, scored by when they joined (oldest first).
``P:s:<s>:k:<m>``
    hash of one member's connections: ``s:<conn>`` the state it said (JSON),
    ``n:<conn>`` when (a counter: the member says its newest connection's
    state), ``p:<conn>`` the process holding it.
``P:p:<process>``
    set of the connections a process holds (``<s>\\t<m>\\t<conn>``), what a
    survivor removes when that process stops beating.
``P:procs``
    sorted set of processes, scored by their last heartbeat (Redis time, ms).
``P:ev``
    stream of changes (``o`` origin process, ``s``, ``k`` kind, ``m``,
    ``t`` state, ``c`` connections), trimmed to about ``backlog`` entries;
    each process's reader delivers the others' changes to its sockets.
``P:n`` / ``P:epoch``
    the counter, and a random id of this Redis's data (a new one: Redis lost it).

Every change is one Lua script, so puts and removes of several processes on
one member are seen in one order. The scripts build keys from the prefix
(a connection's process is only known inside the script): a standalone Redis
or a primary with replicas, not Redis Cluster.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import quote, unquote

import redis
from backboneio import jsonutil
from backboneio.errors import ConfigurationError
from backboneio.presence import Change, Scope
from redis.backoff import NoBackoff
from redis.retry import Retry

from .store import UNAVAILABLE_ERRORS, quick_retry, redacted

log = logging.getLogger("backboneio.redis")

#: Seconds without a heartbeat after which a process counts as dead (its
#: connections then get the grace period, and a survivor removes them).
DEFAULT_TTL = 10.0
DEFAULT_TIMEOUT = 2.0
DEFAULT_BACKLOG = 10_000
# The reader's XREAD waits this long for changes before it looks whether to beat.
BLOCK_MS = 250
READ_COUNT = 500
RETRY_FIRST = 0.1
RETRY_MAX = 0.5
# Beats per TTL, and at most this many seconds between two (a survivor looks
# for dead processes at each of its beats).
BEATS_PER_TTL = 5
BEAT_MAX = 1.0

Deliver = Callable[[Scope, Change], None]
Ident = tuple[Scope, str, str]

# Shared by the scripts. ARGV[1] is always the prefix.
_LIB = """
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The member's newest connection's state, and its number of connections.
local function latest(h)
  local all = redis.call('HGETALL', h)
  local best, bn, count = nil, -1, 0
  for i = 1, #all - 1, 2 do
    if string.sub(all[i], 1, 2) == 'n:' then
      count = count + 1
      local n = tonumber(all[i + 1])
      if n > bn then bn = n; best = string.sub(all[i], 3) end
    end
  end
  if best == nil then return nil, 0 end
  return redis.call('HGET', h, 's:' .. best), count
end
local function publish(maxlen, origin, s, kind, m, state, count)
  redis.call('XADD', P .. ':ev', 'MAXLEN', '~', maxlen, '*',
    'o', origin, 's', s, 'k', kind, 'm', m, 't', state, 'c', count)
end
-- Connection conn of member m of scope s goes, if `holder` still holds it.
local function drop(s, m, conn, holder, origin, maxlen)
  local h = P .. ':s:' .. s .. ':k:' .. m
  if redis.call('HGET', h, 'p:' .. conn) ~= holder then return nil end
  local before = latest(h)
  redis.call('HDEL', h, 's:' .. conn, 'n:' .. conn, 'p:' .. conn)
  redis.call('SREM', P .. ':p:' .. holder, s .. '\\t' .. m .. '\\t' .. conn)
  local state, count = latest(h)
  local kind = 'update'
  if state == nil then
    kind = 'leave'
    state = before
    redis.call('ZREM', P .. ':s:' .. s, m)
  end
  publish(maxlen, origin, s, kind, m, state, count)
  return {kind, state, count}
end
"""

# ARGV: prefix, process, scope, member, conn, state, take, maxlen.
# take '0' (a process putting back what Redis lost): leave a connection that
# another process holds alone.
_PUT = (
    _LIB
    + """
local me, s, m, conn, state = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local h = P .. ':s:' .. s .. ':k:' .. m
local holder = redis.call('HGET', h, 'p:' .. conn)
if holder and holder ~= me and ARGV[7] ~= '1' then return false end
local before, count = latest(h)
local n = redis.call('INCR', P .. ':n')
redis.call('HSET', h, 's:' .. conn, state, 'n:' .. conn, n, 'p:' .. conn, me)
local entry = s .. '\\t' .. m .. '\\t' .. conn
if holder and holder ~= me then
  -- The ownership rule: a reconnect to this process takes the connection,
  -- so the old holder's grace timer removes nothing.
  redis.call('SREM', P .. ':p:' .. holder, entry)
end
redis.call('SADD', P .. ':p:' .. me, entry)
local kind = 'update'
if before == nil then
  kind = 'join'
  redis.call('ZADD', P .. ':s:' .. s, n, m)
end
if not holder then count = count + 1 end
if kind == 'update' and before == state and holder then return false end
publish(ARGV[8], me, s, kind, m, state, count)
return {kind, state, count}
"""
)

# ARGV: prefix, process, scope, member, conn, maxlen.
_REMOVE = (
    _LIB
    + """
local r = drop(ARGV[3], ARGV[4], ARGV[5], ARGV[2], ARGV[2], ARGV[6])
if r == nil then return false end
return r
"""
)

# ARGV: prefix, scope. Flat: member, state, connections, ...
_MEMBERS = (
    _LIB
    + """
local out = {}
for _, m in ipairs(redis.call('ZRANGE', P .. ':s:' .. ARGV[2], 0, -1)) do
  local state, count = latest(P .. ':s:' .. ARGV[2] .. ':k:' .. m)
  if state ~= nil then
    out[#out + 1] = m; out[#out + 1] = state; out[#out + 1] = count
  end
end
return out
"""
)

# ARGV: prefix, process, dead after (ms), maxlen, a new epoch, age of this
# beat (ms: 0, or the TTL when closing, so the survivors' grace starts now),
# '1' to remove the connections of dead processes (not yet after an outage).
# Answers {epoch, '1' if this process was known, scope, kind, member, state,
# connections, ...} for the connections of dead processes it removed.
_BEAT = (
    _LIB
    + """
local me = ARGV[2]
local now = now_ms()
local epoch = redis.call('GET', P .. ':epoch')
if not epoch then
  epoch = ARGV[5]
  redis.call('SET', P .. ':epoch', epoch)
end
local known = redis.call('ZSCORE', P .. ':procs', me)
redis.call('ZADD', P .. ':procs', now - tonumber(ARGV[6]), me)
local out = {epoch, known and '1' or '0'}
local limit = now - tonumber(ARGV[3])
local dead = {}
if ARGV[7] == '1' then
  dead = redis.call('ZRANGEBYSCORE', P .. ':procs', '-inf', '(' .. limit)
end
for _, pid in ipairs(dead) do
  if pid ~= me then
    for _, entry in ipairs(redis.call('SMEMBERS', P .. ':p:' .. pid)) do
      local s, m, conn = string.match(entry, '^([^\\t]*)\\t([^\\t]*)\\t(.*)$')
      if s then
        local r = drop(s, m, conn, pid, me, ARGV[4])
        if r then
          out[#out + 1] = s; out[#out + 1] = r[1]; out[#out + 1] = m
          out[#out + 1] = r[2]; out[#out + 1] = r[3]
        end
      end
    end
    redis.call('DEL', P .. ':p:' .. pid)
    redis.call('ZREM', P .. ':procs', pid)
  end
end
return out
"""
)


def scope_id(scope: Scope) -> str:
    backend, channel = scope
    if channel is None:
        return "b:" + quote(backend, safe="")
    return f"c:{quote(backend, safe='')}:{quote(channel, safe='')}"


def parse_scope_id(text: str) -> Scope:
    kind, _, rest = text.partition(":")
    if kind == "b":
        return (unquote(rest), None)
    backend, _, channel = rest.partition(":")
    return (unquote(backend), unquote(channel))


def _id_key(id_: str) -> tuple[int, int]:
    ms, _, seq = id_.partition("-")
    return int(ms), int(seq or 0)


def _member(key: str, state: str, count: Any) -> dict[str, Any]:
    return {"id": key, "state": jsonutil.loads(state), "connections": int(count)}


class RedisPresence:
    """Members of every process's scopes, in Redis; see the module docstring.

    ``ttl``: seconds without a heartbeat after which a process is dead;
    ``grace``: the registry's grace period, which a dead process's
    connections also get (a client reconnecting elsewhere takes them over).
    A member of a killed process leaves within ``ttl + grace`` seconds and
    one beat of a survivor (at most ``min(ttl / 5, 1)`` s).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "backboneio:presence",
        ttl: float = DEFAULT_TTL,
        grace: float = 3.0,
        backlog: int = DEFAULT_BACKLOG,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(
                f"The presence prefix must be a non-empty string, got {prefix!r}"
            )
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
            raise ConfigurationError(
                f"The presence TTL must be a number of seconds > 0, got {ttl!r}"
            )
        self.url = url
        self.prefix = prefix
        self.ttl = float(ttl)
        self.grace = max(float(grace), 0.0)
        self.backlog = backlog
        self.process = uuid.uuid4().hex[:16]
        self.beat_every = min(self.ttl / BEATS_PER_TTL, BEAT_MAX)
        options: dict[str, Any] = {"decode_responses": True, "encoding_errors": "surrogatepass"}
        try:
            # Calls made for a socket give up soon: the registry goes on, and
            # what failed is made again when Redis is back (see _redo): put and
            # remove may be repeated, so an answer lost on the way is harmless.
            self.client = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=quick_retry(),
                **options,
            )
            # The reader retries by itself; its socket timeout outlasts the block.
            self._reader = redis.Redis.from_url(
                url,
                socket_timeout=BLOCK_MS / 1000 + timeout,
                socket_connect_timeout=min(timeout, 1.0),
                retry=Retry(NoBackoff(), 0),
                **options,
            )
        except ValueError as exc:
            raise ConfigurationError(f"Cannot use Redis URL {redacted(url)!r}: {exc}") from None
        self._put = self.client.register_script(_PUT)
        self._remove = self.client.register_script(_REMOVE)
        self._members = self.client.register_script(_MEMBERS)
        self._beat = self.client.register_script(_BEAT)

        self._lock = threading.Lock()
        # What this process holds (puts minus removes), whether Redis took it
        # or not: what it puts back when Redis lost it or forgot this process.
        self._own: dict[Ident, dict[str, Any]] = {}
        # Calls Redis did not take, redone when it is back.
        self._unput: set[Ident] = set()
        self._unremoved: set[Ident] = set()
        self._deliver: Deliver | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._epoch: str | None = None
        self._last_id = "0-0"
        self._synced = False
        self._next_beat = 0.0
        self._down_since: float | None = None
        self._reap_from = 0.0

    def __repr__(self) -> str:
        return f"<RedisPresence {redacted(self.url)} prefix={self.prefix!r}>"

    # -- PresenceStore -----------------------------------------------------------

    def start(self, deliver: Deliver) -> None:
        if self._thread is not None:
            raise RuntimeError("RedisPresence.start() was already called")
        self._deliver = deliver
        try:
            self._sync()
        except UNAVAILABLE_ERRORS as exc:
            self._went_down(exc)
        self._thread = threading.Thread(
            target=self._run, name="backboneio-redis-presence", daemon=True
        )
        self._thread.start()

    # put and remove answer None: every change, this process's own included,
    # reaches its sockets through the reader, so all sockets of a scope hear
    # the changes of all processes in one order (Redis's).

    def put(self, scope: Scope, key: str, conn: str, state: dict[str, Any]) -> Change | None:
        ident = (scope, key, conn)
        with self._lock:
            self._own[ident] = state
            self._unremoved.discard(ident)
        try:
            self._call_put(ident, state, take=True)
        except UNAVAILABLE_ERRORS as exc:
            with self._lock:
                self._unput.add(ident)
            self._failed(exc, "put")
            return None
        with self._lock:
            self._unput.discard(ident)
        return None

    def remove(self, scope: Scope, key: str, conn: str) -> Change | None:
        ident = (scope, key, conn)
        with self._lock:
            self._own.pop(ident, None)
            self._unput.discard(ident)
        try:
            self._call_remove(ident)
        except UNAVAILABLE_ERRORS as exc:
            with self._lock:
                self._unremoved.add(ident)
            self._failed(exc, "remove")
            return None
        with self._lock:
            self._unremoved.discard(ident)
        return None

    def members(self, scope: Scope) -> list[dict[str, Any]]:
        try:
            flat = cast(list[Any], self._members(args=[self.prefix, scope_id(scope)]))
        except UNAVAILABLE_ERRORS as exc:
            self._failed(exc, "members")
            return self._own_members(scope)
        return [_member(unquote(flat[i]), flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)]

    def close(self) -> None:
        """Stop reading; the survivors remove this process's connections after the
        grace period (unless their clients reconnect to one of them first)."""
        self._closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=BLOCK_MS / 1000 + 2)
        # Unreachable: then the survivors wait out the TTL too.
        with contextlib.suppress(*UNAVAILABLE_ERRORS):
            self._call_beat(age=self.ttl)
        self._reader.close()
        self.client.close()

    # -- the scripts -------------------------------------------------------------

    def _call_put(self, ident: Ident, state: dict[str, Any], *, take: bool) -> Change | None:
        scope, key, conn = ident
        args = [
            self.prefix,
            self.process,
            scope_id(scope),
            quote(key, safe=""),
            conn,
            jsonutil.dumps(state),
            "1" if take else "0",
            self.backlog,
        ]
        found = self._put(args=args)
        if not found:
            return None
        kind, text, count = found
        return Change(kind, _member(key, text, count))

    def _call_remove(self, ident: Ident) -> Change | None:
        scope, key, conn = ident
        args: list[str | int] = [
            self.prefix,
            self.process,
            scope_id(scope),
            quote(key, safe=""),
            conn,
            self.backlog,
        ]
        found = self._remove(args=args)
        if not found:
            return None
        kind, text, count = found
        return Change(kind, _member(key, text, count))

    def _call_beat(self, *, age: float = 0.0) -> tuple[str, bool, list[tuple[Scope, Change]]]:
        dead_after = int((self.ttl + self.grace) * 1000)
        args: list[str | int] = [
            self.prefix,
            self.process,
            dead_after,
            self.backlog,
            uuid.uuid4().hex[:12],
            int(age * 1000),
            "1" if time.monotonic() >= self._reap_from else "0",
        ]
        found = cast(list[Any], self._beat(args=args, client=self._reader))
        epoch, known = found[0], found[1] == "1"
        reaped = [
            (
                parse_scope_id(found[i]),
                Change(found[i + 1], _member(unquote(found[i + 2]), found[i + 3], found[i + 4])),
            )
            for i in range(2, len(found), 5)
        ]
        return epoch, known, reaped

    # -- the reader --------------------------------------------------------------

    def _run(self) -> None:
        delay = RETRY_FIRST
        while not self._closed.is_set():
            try:
                if not self._synced:
                    self._sync()
                self._read()
                if time.monotonic() >= self._next_beat:
                    self._heartbeat()
                delay = RETRY_FIRST
            except UNAVAILABLE_ERRORS as exc:
                if self._closed.is_set():
                    break
                self._synced = False
                self._went_down(exc)
                self._reader.connection_pool.disconnect()
                self._closed.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
            except Exception:
                if self._closed.is_set():
                    break
                # A bug must not end presence for the life of the process.
                log.exception("presence on Redis %s: reader failed; retrying", redacted(self.url))
                self._synced = False
                self._closed.wait(RETRY_MAX)

    def _sync(self) -> None:
        """Where to read changes from, after start or an outage; put right what
        Redis did not take in between."""
        if self._epoch is None:
            # Changes made before this process started are in members().
            newest = cast(list[Any], self._reader.xrevrange(f"{self.prefix}:ev", "+", "-", count=1))
            self._last_id = newest[0][0] if newest else "0-0"
        if self._down_since is not None:
            # The others lost Redis too, and their last beats are as old as
            # the outage: give them a TTL and a grace to beat again before
            # taking them for dead.
            self._reap_from = time.monotonic() + self.ttl + self.grace
        self._heartbeat()
        if self._down_since is not None:
            log.warning(
                "presence on Redis %s: back after %.1f s",
                redacted(self.url),
                time.monotonic() - self._down_since,
            )
            self._down_since = None
        self._synced = True

    def _heartbeat(self) -> None:
        epoch, known, _reaped = self._call_beat()  # told through the stream
        self._next_beat = time.monotonic() + self.beat_every
        lost = self._epoch is not None and epoch != self._epoch
        if lost:
            # Redis lost its data (restarted without persistence, flushed).
            log.warning(
                "presence on Redis %s: its members are gone (new epoch); this process "
                "announces its own again",
                redacted(self.url),
            )
            # The new stream's ids are Redis times, after those read before
            # unless its clock went back: then it is read from its start.
            oldest = cast(list[Any], self._reader.xrange(f"{self.prefix}:ev", "-", "+", count=1))
            if oldest and _id_key(oldest[0][0]) <= _id_key(self._last_id):
                self._last_id = "0-0"
        first = self._epoch is None
        self._epoch = epoch
        if not first and (lost or not known):
            self._restore()
        self._redo()

    def _restore(self) -> None:
        """Put back every connection this process holds (Redis lost them, or the
        others took this process for dead), leaving those another one took."""
        with self._lock:
            own = list(self._own.items())
        if own:
            log.warning(
                "presence on Redis %s: putting back %d connection(s)", redacted(self.url), len(own)
            )
        for ident, state in own:
            self._call_put(ident, state, take=False)
            with self._lock:
                gone = ident not in self._own
            if gone:  # removed while it was being put back
                self._call_remove(ident)

    def _redo(self) -> None:
        """Calls made while Redis was unreachable."""
        with self._lock:
            unput = [(i, self._own[i]) for i in self._unput if i in self._own]
            unremoved = list(self._unremoved)
        for ident, state in unput:
            self._call_put(ident, state, take=True)
            with self._lock:
                self._unput.discard(ident)
        for ident in unremoved:
            self._call_remove(ident)
            with self._lock:
                self._unremoved.discard(ident)

    def _read(self) -> None:
        found = self._reader.xread(
            {f"{self.prefix}:ev": self._last_id}, count=READ_COUNT, block=BLOCK_MS
        )
        if not found:
            return
        # RESP2 answers a list of [key, entries]; RESP3 a dict key -> [entries].
        batches = found.values() if isinstance(found, dict) else [b[1] for b in found]
        for batch in batches:
            for id_, fields in cast(list[tuple[str, dict[str, str]]], batch):
                self._last_id = id_
                try:
                    scope = parse_scope_id(fields["s"])
                    change = Change(
                        fields["k"], _member(unquote(fields["m"]), fields["t"], fields["c"])
                    )
                except (KeyError, ValueError) as exc:
                    log.error("presence: skipping unreadable change %s: %r", id_, exc)
                    continue
                self._tell(scope, change)

    def _tell(self, scope: Scope, change: Change) -> None:
        if self._deliver is None:
            return
        try:
            self._deliver(scope, change)
        except Exception:
            log.exception("presence: telling %s of a %s failed", scope, change.kind)

    # -- outages -------------------------------------------------------------------

    def _went_down(self, exc: Exception) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "presence on Redis %s: lost its connection (%s); members are announced "
                "again when it is back",
                redacted(self.url),
                exc,
            )

    def _failed(self, exc: Exception, what: str) -> None:
        log.warning("presence on Redis %s: %s failed: %s", redacted(self.url), what, exc)

    def _own_members(self, scope: Scope) -> list[dict[str, Any]]:
        """While Redis is unreachable: this process's own members of ``scope``."""
        members: dict[str, dict[str, Any]] = {}
        with self._lock:
            for (where, key, _conn), state in self._own.items():
                if where != scope:
                    continue
                member = members.setdefault(key, {"id": key, "state": state, "connections": 0})
                member["state"] = state
                member["connections"] += 1
        return list(members.values())
