"""The ``redis`` store: each backend's models in a Redis database.

Layout, for a backend whose key prefix is ``P`` (``backboneio:<backend>`` by default):

``P:model:<id>``
    one hash per model: attribute name -> the attribute's value as JSON.
    ``<id>`` is the id written as JSON, so the id ``1`` and the id ``"1"``
    are two models, as they are in the memory store.
``P:ids``
    sorted set of those ``<id>`` members, scored by creation order, so a read
    lists models in the order they were created.
``P:seq``
    the counter that hands out those scores.

Every write is one Lua script, so it is atomic in Redis: a create with a
client-given id cannot overwrite a model created a moment earlier, a patch
writes only the attributes it sends (two patches of one model both land)
and, like update, refuses to write once the model has been deleted. In a
versioned store the version is a field of the model's hash, and the script
that writes also compares and bumps it, so two writers from one version
cannot both win.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from backboneio import jsonutil
from backboneio.backend import Request, Response
from backboneio.errors import BadRequest, ConfigurationError, Conflict, Unavailable
from backboneio.query import Query
from backboneio.stores import (
    check_id,
    check_version_attribute,
    new_id,
    sent_version,
    version_conflict,
)
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

log = logging.getLogger("backboneio.redis")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TIMEOUT = 5.0
# Models fetched per round trip when a read lists the collection; each chunk
# is one short script, so other clients' commands run between chunks.
READ_CHUNK = 500

# Helpers every script starts with. hset_pairs: HSET in batches, because
# Lua's unpack() has a stack limit. model_json: a model as one JSON object
# text, built from the hash's already-JSON values, so Python decodes a whole
# model (or a whole chunk of them) with one json.loads. cjson only ever
# encodes the field names, which are strings; it never touches the values,
# whose numbers it would round.
_LUA_HELPERS = """
local function hset_pairs(key, first)
  for i = first, #ARGV, 200 do
    redis.call('HSET', key, unpack(ARGV, i, math.min(i + 199, #ARGV)))
  end
end
local function model_json(fields)
  local parts = {}
  for i = 1, #fields, 2 do
    parts[#parts + 1] = cjson.encode(fields[i]) .. ':' .. fields[i + 1]
  end
  return '{' .. table.concat(parts, ',') .. '}'
end
"""

# KEYS: model hash, ids zset, seq counter. ARGV: id member, then field/value pairs.
CREATE = (
    _LUA_HELPERS
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
hset_pairs(KEYS[1], 2)
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
return 1
"""
)

# KEYS: model hash. ARGV: field/value pairs of the whole new model.
UPDATE = (
    _LUA_HELPERS
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1])
hset_pairs(KEYS[1], 1)
return 1
"""
)

# KEYS: model hash. ARGV: field/value pairs to merge. Returns the merged model.
PATCH = (
    _LUA_HELPERS
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
hset_pairs(KEYS[1], 1)
return model_json(redis.call('HGETALL', KEYS[1]))
"""
)

# KEYS: model hash, ids zset. ARGV: id member. Returns the deleted model.
DELETE = (
    _LUA_HELPERS
    + """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return model_json(fields)
"""
)

# The versioned writes. Each returns {1, ...} when it wrote, {0} when the
# model does not exist, and {2, the stored model} when the write was made
# from another version than the stored one (nothing written). The expected
# version is '' for an unconditional write. A version that is not a
# non-negative integer (a model stored before versioning was on) counts as 0,
# as in backboneio.stores.stored_version.
_LUA_VERSIONS = """
local function stored_version(key, attribute)
  local raw = redis.call('HGET', key, attribute)
  local n = nil
  if raw then n = tonumber(raw) end
  if n == nil or n < 0 or n ~= math.floor(n) then return 0 end
  return n
end
local function stale(expected, version)
  return expected ~= '' and tonumber(expected) ~= version
end
"""

# KEYS: model hash. ARGV: version attribute, expected version, then the
# field/value pairs of the whole new model. Returns {1, new version}.
VERSIONED_UPDATE = (
    _LUA_HELPERS
    + _LUA_VERSIONS
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local version = stored_version(KEYS[1], ARGV[1])
if stale(ARGV[2], version) then return {2, model_json(redis.call('HGETALL', KEYS[1]))} end
redis.call('DEL', KEYS[1])
hset_pairs(KEYS[1], 3)
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', version + 1))
return {1, version + 1}
"""
)

# KEYS: model hash. ARGV: version attribute, expected version, then the
# field/value pairs to merge. Returns {1, the merged model}.
VERSIONED_PATCH = (
    _LUA_HELPERS
    + _LUA_VERSIONS
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local version = stored_version(KEYS[1], ARGV[1])
if stale(ARGV[2], version) then return {2, model_json(redis.call('HGETALL', KEYS[1]))} end
hset_pairs(KEYS[1], 3)
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', version + 1))
return {1, model_json(redis.call('HGETALL', KEYS[1]))}
"""
)

# KEYS: model hash, ids zset. ARGV: id member, version attribute, expected
# version. Returns {1, the deleted model}.
VERSIONED_DELETE = (
    _LUA_HELPERS
    + _LUA_VERSIONS
    + """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {0} end
if stale(ARGV[3], stored_version(KEYS[1], ARGV[2])) then return {2, model_json(fields)} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return {1, model_json(fields)}
"""
)

# KEYS: model hash. Returns the model, or nil.
READ_ONE = (
    _LUA_HELPERS
    + """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return false end
return model_json(fields)
"""
)

# KEYS: ids zset. ARGV: lowest score (exclusive form "(n", or "-inf"), count,
# prefix of model keys. Returns {ids scanned, last score, JSON array of the
# models}. Model keys are derived inside the script, which is fine on one
# Redis server but not on Redis Cluster (see docs/stores-redis.md).
READ_CHUNK_SCRIPT = (
    _LUA_HELPERS
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local models = {}
for i = 1, #ids, 2 do
  local fields = redis.call('HGETALL', ARGV[3] .. ids[i])
  -- An id whose hash is gone (evicted under a maxmemory policy, or deleted
  -- by hand) is skipped rather than answered as {}.
  if #fields > 0 then models[#models + 1] = model_json(fields) end
end
return {#ids / 2, ids[#ids] or '', '[' .. table.concat(models, ',') .. ']'}
"""
)

# The errors that mean "Redis cannot be reached or cannot serve right now",
# which a client may retry; anything else is a bug or a misconfiguration.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterDownError,
)


def redacted(url: str) -> str:
    """``url`` without its password, for log lines and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def quick_retry() -> Retry:
    """Two more tries within about a quarter of a second, then give up."""
    return Retry(ExponentialBackoff(cap=0.2, base=0.02), 2)


def connect(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> redis.Redis:
    """A client for ``url`` that gives up quickly when Redis is down.

    redis-py's default retries for several seconds; a sync should rather
    answer Unavailable soon, and the next sync reconnects by itself.
    """
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=quick_retry(),
            health_check_interval=30,
        )
    except ValueError as exc:
        raise ConfigurationError(f"Cannot use Redis URL {redacted(url)!r}: {exc}") from None


class RedisStore:
    """A store keeping a backend's models in Redis; see the module docstring for the keys."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        id_attribute: str = "id",
        max_limit: int | None = None,
        backend: str = "",
        version_attribute: str | None = None,
    ) -> None:
        check_version_attribute(version_attribute, id_attribute)
        self.client = client
        self.prefix = prefix
        self.id_attribute = id_attribute
        self.max_limit = max_limit
        self.backend = backend
        self.version_attribute = version_attribute
        self.ids_key = f"{prefix}:ids"
        self.seq_key = f"{prefix}:seq"
        self.model_prefix = f"{prefix}:model:"
        self._create = client.register_script(CREATE)
        self._update = client.register_script(UPDATE)
        self._patch = client.register_script(PATCH)
        self._delete = client.register_script(DELETE)
        self._versioned_update = client.register_script(VERSIONED_UPDATE)
        self._versioned_patch = client.register_script(VERSIONED_PATCH)
        self._versioned_delete = client.register_script(VERSIONED_DELETE)
        self._read_one = client.register_script(READ_ONE)
        self._read_chunk = client.register_script(READ_CHUNK_SCRIPT)

    def __repr__(self) -> str:
        return f"<RedisStore prefix={self.prefix!r}>"

    def __call__(self, req: Request, res: Response, next: Callable[..., None]) -> None:
        handler = getattr(self, req.method)
        try:
            result = handler(req)
        except UNAVAILABLE_ERRORS as exc:
            # The redis-py message names host and port; keep it in the log.
            log.warning("redis store of %r is unavailable: %s", self.backend or self.prefix, exc)
            raise Unavailable(
                f"The store of {self.backend or 'this backend'!r} is unavailable; try again later"
            ) from exc
        res.end(result)

    # -- keys and values -----------------------------------------------------

    def _member(self, model_id: Any) -> str:
        check_id(model_id, self.id_attribute)
        return json.dumps(model_id)

    def _key(self, member: str) -> str:
        return self.model_prefix + member

    def _required_member(self, req: Request) -> str:
        if req.model_id is None:
            raise BadRequest(f"{req.method} needs the model's {self.id_attribute}")
        return self._member(req.model_id)

    @staticmethod
    def _pairs(model: dict[str, Any]) -> list[str]:
        pairs: list[str] = []
        for name, value in model.items():
            if not isinstance(name, str):
                raise BadRequest(f"Attribute names must be strings, got {name!r}")
            try:
                name.encode()
            except UnicodeEncodeError:
                # JSON can carry a lone surrogate ("\ud800"); Redis holds bytes.
                raise BadRequest(
                    f"Attribute name {name!r} is not valid Unicode text", field=name
                ) from None
            pairs += (name, jsonutil.dumps(value))
        return pairs

    def _versioned(self, script: Any, req: Request, keys: list[str], args: list[Any]) -> Any:
        """Run a versioned write script; its payload, or NotFound / Conflict."""
        status, *payload = script(keys=keys, args=args)
        if status == 0:
            raise req.not_found()
        if status == 2:
            attribute = self.version_attribute
            assert attribute is not None
            sent = sent_version(req.model, attribute)
            assert sent is not None
            raise version_conflict(req.method, attribute, sent, json.loads(payload[0]))
        return payload[0]

    def _expected(self, req: Request) -> str:
        """The version a write is conditional on, as the scripts take it ('' for none)."""
        assert self.version_attribute is not None
        sent = sent_version(req.model, self.version_attribute)
        return "" if sent is None else str(sent)

    # -- the five methods ----------------------------------------------------

    def create(self, req: Request) -> dict[str, Any]:
        model = dict(req.model)
        if model.get(self.id_attribute) is None:
            model[self.id_attribute] = new_id()
        if self.version_attribute is not None:
            model[self.version_attribute] = 1
        model_id = model[self.id_attribute]
        member = self._member(model_id)
        pairs = self._pairs(model)
        created = self._create(
            keys=[self._key(member), self.ids_key, self.seq_key], args=[member, *pairs]
        )
        if not created:
            raise Conflict(f"{self.id_attribute} {model_id!r} already exists", id=model_id)
        return json.loads(jsonutil.dumps(model))

    def read(self, req: Request) -> Any:
        if req.model_id is not None:
            member = self._member(req.model_id)
            found = self._read_one(keys=[self._key(member)])
            if found is None:
                raise req.not_found()
            return json.loads(found)
        # Parse before touching Redis: a bad query costs no round trip.
        query = Query.parse(req.query, max_limit=self.max_limit, id_attribute=self.id_attribute)
        return self.answer(query)

    def update(self, req: Request) -> dict[str, Any]:
        member = self._required_member(req)
        model = dict(req.model)
        attribute = self.version_attribute
        if attribute is not None:
            expected = self._expected(req)
            model.pop(attribute, None)
            pairs = self._pairs(model)
            model[attribute] = self._versioned(
                self._versioned_update, req, [self._key(member)], [attribute, expected, *pairs]
            )
        elif not self._update(keys=[self._key(member)], args=self._pairs(model)):
            raise req.not_found()
        return json.loads(jsonutil.dumps(model))

    def patch(self, req: Request) -> dict[str, Any]:
        member = self._required_member(req)
        changes = dict(req.model)
        attribute = self.version_attribute
        if attribute is not None:
            expected = self._expected(req)
            changes.pop(attribute, None)
            args = [attribute, expected, *self._pairs(changes)]
            return json.loads(
                self._versioned(self._versioned_patch, req, [self._key(member)], args)
            )
        merged = self._patch(keys=[self._key(member)], args=self._pairs(changes))
        if merged is None:
            raise req.not_found()
        return json.loads(merged)

    def delete(self, req: Request) -> dict[str, Any]:
        member = self._required_member(req)
        keys = [self._key(member), self.ids_key]
        attribute = self.version_attribute
        if attribute is not None:
            args = [member, attribute, self._expected(req)]
            return json.loads(self._versioned(self._versioned_delete, req, keys, args))
        deleted = self._delete(keys=keys, args=[member])
        if deleted is None:
            raise req.not_found()
        return json.loads(deleted)

    # -- listing -------------------------------------------------------------

    def scan(self, chunk: int = READ_CHUNK) -> Iterator[dict[str, Any]]:
        """Every model, oldest first, fetched ``chunk`` models per round trip.

        Each chunk is consistent on its own; a model created while the scan
        runs may or may not be listed, as with any read racing a write.
        """
        after = "-inf"
        while True:
            scanned, last, models = self._read_chunk(
                keys=[self.ids_key], args=[after, chunk, self.model_prefix]
            )
            yield from json.loads(models)
            if scanned < chunk:
                return
            after = "(" + last.decode()

    def answer(self, query: Query) -> list[Any]:
        """Evaluate ``query`` in Python over the models the scan fetches.

        Without ``$sort`` the models are already in the answer's order
        (creation order), so the scan stops as soon as ``$skip + $limit``
        models matched; with ``$sort`` every model is fetched and decoded.
        """
        if query.sort:
            return query.apply(self.scan())
        end = None if query.limit is None else query.skip + query.limit
        found: list[dict[str, Any]] = []
        if end != 0:
            chunk = READ_CHUNK if end is None or query.where.conditions else min(end, READ_CHUNK)
            for model in self.scan(chunk=chunk):
                if query.matches(model):
                    found.append(model)
                    if end is not None and len(found) >= end:
                        break
        return [query.project(m) for m in found[query.skip : end]]

    def count(self) -> int:
        return int(self.client.zcard(self.ids_key))

    def clear(self) -> None:
        """Delete every model of this store (for tests and resets)."""
        members = self.client.zrange(self.ids_key, 0, -1)
        keys = [self.model_prefix + m.decode() for m in members]
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start : start + 1000])
        self.client.delete(self.ids_key, self.seq_key)


def make_store(
    url: str = DEFAULT_URL,
    *,
    prefix: str | None = None,
    id_attribute: str = "id",
    max_limit: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    backend: str = "",
    version_attribute: str | None = None,
) -> RedisStore:
    """A redis store for ``backend.use(...)``; ``prefix`` defaults to ``backboneio:<backend>``.

    ``version_attribute="_version"`` makes it versioned (docs/conflicts.md).
    """
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"The redis store's url must be a redis:// URL, got {url!r}")
    if prefix is None:
        prefix = f"backboneio:{backend}" if backend else "backboneio"
    if not isinstance(prefix, str) or not prefix:
        raise ConfigurationError(
            f"The redis store's prefix must be a non-empty string, got {prefix!r}"
        )
    if max_limit is not None and (
        isinstance(max_limit, bool) or not isinstance(max_limit, int) or max_limit < 1
    ):
        raise ConfigurationError(f"max_limit must be None or a positive integer, got {max_limit!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
    check_version_attribute(version_attribute, id_attribute)
    client = connect(url, timeout=float(timeout))
    return RedisStore(
        client,
        prefix=prefix,
        id_attribute=id_attribute,
        max_limit=max_limit,
        backend=backend,
        version_attribute=version_attribute,
    )
