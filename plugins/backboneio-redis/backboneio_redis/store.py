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

``P:key:<[backend, owner, key] as JSON>``
    one hash per idempotency key (docs/idempotency.md): ``method``, ``fp``
    (the request's fingerprint) and ``result`` or ``error`` (JSON), expiring
    when the key does. A keyed write runs a variant of its script that looks
    the key up first (and then writes nothing) or records it with the write,
    so a retry can never apply twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from backboneio import jsonutil
from backboneio.backend import WRITE_METHODS, Request, Response
from backboneio.errors import BadRequest, ConfigurationError, Conflict, SyncError, Unavailable
from backboneio.idempotency import IdempotencyKey, Record, remembered
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
# last_arg: the last argument that is the script's own (a keyed variant
# appends four of its own after them).
_LUA_HELPERS = """
local last_arg = #ARGV
local function hset_pairs(key, first)
  for i = first, last_arg, 200 do
    redis.call('HSET', key, unpack(ARGV, i, math.min(i + 199, last_arg)))
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
_CREATE_BODY = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
hset_pairs(KEYS[1], 2)
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
return 1
"""

# KEYS: model hash. ARGV: field/value pairs of the whole new model.
_UPDATE_BODY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1])
hset_pairs(KEYS[1], 1)
return 1
"""

# KEYS: model hash. ARGV: field/value pairs to merge. Returns the merged model.
_PATCH_BODY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
hset_pairs(KEYS[1], 1)
return model_json(redis.call('HGETALL', KEYS[1]))
"""

# KEYS: model hash, ids zset. ARGV: id member. Returns the deleted model.
_DELETE_BODY = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return model_json(fields)
"""

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
_VERSIONED_UPDATE_BODY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local version = stored_version(KEYS[1], ARGV[1])
if stale(ARGV[2], version) then return {2, model_json(redis.call('HGETALL', KEYS[1]))} end
redis.call('DEL', KEYS[1])
hset_pairs(KEYS[1], 3)
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', version + 1))
return {1, version + 1}
"""

# KEYS: model hash. ARGV: version attribute, expected version, then the
# field/value pairs to merge. Returns {1, the merged model}.
_VERSIONED_PATCH_BODY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local version = stored_version(KEYS[1], ARGV[1])
if stale(ARGV[2], version) then return {2, model_json(redis.call('HGETALL', KEYS[1]))} end
hset_pairs(KEYS[1], 3)
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', version + 1))
return {1, model_json(redis.call('HGETALL', KEYS[1]))}
"""

# KEYS: model hash, ids zset. ARGV: id member, version attribute, expected
# version. Returns {1, the deleted model}.
_VERSIONED_DELETE_BODY = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {0} end
if stale(ARGV[3], stored_version(KEYS[1], ARGV[2])) then return {2, model_json(fields)} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return {1, model_json(fields)}
"""


# A keyed variant of a write script: KEYS gets the key's hash last, ARGV four
# more (method, fingerprint, the answer when Python knows it, expiry in ms
# since the epoch). It returns {0, method, fp, result, error} when the key is
# recorded (nothing written), else {1, what the plain script returns}, after
# recording the key with the write when it wrote. ``answer`` snippets turn
# the plain script's ``reply`` into the result's JSON, or leave it nil when
# the script refused (NotFound, Conflict: Python records those).
_LUA_KEY_PRELUDE = """
last_arg = #ARGV - 4
local record_key = KEYS[#KEYS]
local recorded = redis.call('HMGET', record_key, 'method', 'fp', 'result', 'error')
if recorded[1] then return {0, recorded[1], recorded[2], recorded[3], recorded[4]} end
local function body()
"""
_LUA_KEY_EPILOGUE = """
if answer then
  redis.call('HSET', record_key, 'method', ARGV[last_arg + 1], 'fp', ARGV[last_arg + 2],
             'result', answer)
  redis.call('PEXPIREAT', record_key, ARGV[last_arg + 4])
end
return {1, reply}
"""
_ANSWER_GIVEN = "if reply == 1 then answer = ARGV[last_arg + 3] end"
_ANSWER_REPLY = "if reply then answer = reply end"
_ANSWER_SECOND = "if reply[1] == 1 then answer = reply[2] end"
_ANSWER_STORED = "if reply[1] == 1 then answer = model_json(redis.call('HGETALL', KEYS[1])) end"


def _keyed(body: str, answer: str, *, versions: bool = False) -> str:
    return (
        _LUA_HELPERS
        + (_LUA_VERSIONS if versions else "")
        + _LUA_KEY_PRELUDE
        + body
        + "end\nlocal reply = body()\nlocal answer = nil\n"
        + answer
        + _LUA_KEY_EPILOGUE
    )


CREATE = _LUA_HELPERS + _CREATE_BODY
UPDATE = _LUA_HELPERS + _UPDATE_BODY
PATCH = _LUA_HELPERS + _PATCH_BODY
DELETE = _LUA_HELPERS + _DELETE_BODY
VERSIONED_UPDATE = _LUA_HELPERS + _LUA_VERSIONS + _VERSIONED_UPDATE_BODY
VERSIONED_PATCH = _LUA_HELPERS + _LUA_VERSIONS + _VERSIONED_PATCH_BODY
VERSIONED_DELETE = _LUA_HELPERS + _LUA_VERSIONS + _VERSIONED_DELETE_BODY
KEYED = {
    "create": _keyed(_CREATE_BODY, _ANSWER_GIVEN),
    "update": _keyed(_UPDATE_BODY, _ANSWER_GIVEN),
    "patch": _keyed(_PATCH_BODY, _ANSWER_REPLY),
    "delete": _keyed(_DELETE_BODY, _ANSWER_REPLY),
    "versioned_update": _keyed(_VERSIONED_UPDATE_BODY, _ANSWER_STORED, versions=True),
    "versioned_patch": _keyed(_VERSIONED_PATCH_BODY, _ANSWER_SECOND, versions=True),
    "versioned_delete": _keyed(_VERSIONED_DELETE_BODY, _ANSWER_SECOND, versions=True),
}

# A 4xx refusal as a key's answer. KEYS: the key's hash. ARGV: method,
# fingerprint, the error's JSON, expiry in ms since the epoch. Returns {1}
# when recorded, or {0, method, fp, result, error} when the key was recorded
# meanwhile (a retry of a write that did land).
REMEMBER_REFUSAL = """
local recorded = redis.call('HMGET', KEYS[1], 'method', 'fp', 'result', 'error')
if recorded[1] then return {0, recorded[1], recorded[2], recorded[3], recorded[4]} end
redis.call('HSET', KEYS[1], 'method', ARGV[1], 'fp', ARGV[2], 'error', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return {1}
"""

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


def as_model(text: str | bytes) -> dict[str, Any]:
    """A model from the JSON text a script answered."""
    model: dict[str, Any] = json.loads(text)
    return model


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


class _Replayed(Exception):
    """A keyed write found its key recorded: answer ``result``, write nothing."""

    def __init__(self, result: Any) -> None:
        self.result = result


class RedisStore:
    """A store keeping a backend's models in Redis; see the module docstring for the keys."""

    # Idempotency keys are looked up and recorded inside the write's script.
    remembers_keys = True

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
        self.key_prefix = f"{prefix}:key:"
        self._create = client.register_script(CREATE)
        self._update = client.register_script(UPDATE)
        self._patch = client.register_script(PATCH)
        self._delete = client.register_script(DELETE)
        self._versioned_update = client.register_script(VERSIONED_UPDATE)
        self._versioned_patch = client.register_script(VERSIONED_PATCH)
        self._versioned_delete = client.register_script(VERSIONED_DELETE)
        self._read_one = client.register_script(READ_ONE)
        self._read_chunk = client.register_script(READ_CHUNK_SCRIPT)
        self._keyed = {name: client.register_script(text) for name, text in KEYED.items()}
        self._remember_refusal = client.register_script(REMEMBER_REFUSAL)
        self._scripts = {
            "create": self._create,
            "update": self._update,
            "patch": self._patch,
            "delete": self._delete,
            "versioned_update": self._versioned_update,
            "versioned_patch": self._versioned_patch,
            "versioned_delete": self._versioned_delete,
        }

    def __repr__(self) -> str:
        return f"<RedisStore prefix={self.prefix!r}>"

    def __call__(self, req: Request, res: Response, next: Callable[..., None]) -> None:
        handler = getattr(self, req.method)
        key = req.idempotency if req.method in WRITE_METHODS else None
        try:
            try:
                result = handler(req)
            except _Replayed as replayed:
                result = replayed.result
            except SyncError as exc:
                if key is None or not remembered(exc):
                    raise
                result = self._refusal_answer(key, exc)
        except UNAVAILABLE_ERRORS as exc:
            # The redis-py message names host and port; keep it in the log.
            log.warning("redis store of %r is unavailable: %s", self.backend or self.prefix, exc)
            raise Unavailable(
                f"The store of {self.backend or 'this backend'!r} is unavailable; try again later"
            ) from exc
        res.end(result)

    # -- idempotency keys ----------------------------------------------------

    def _record_key(self, key: IdempotencyKey) -> str:
        return self.key_prefix + json.dumps([key.backend, key.owner, key.key])

    @staticmethod
    def _expiry_ms(key: IdempotencyKey) -> int:
        return int(key.expires_at * 1000)

    def _run(
        self, name: str, req: Request, keys: list[str], args: list[Any], answer: str = ""
    ) -> Any:
        """Run write script ``name``; with a live idempotency key, its keyed variant,
        which raises _Replayed when the key is recorded already."""
        key = req.idempotency
        if key is None or key.expires_at <= time.time():
            return self._scripts[name](keys=keys, args=args)
        status, *reply = self._keyed[name](
            keys=[*keys, self._record_key(key)],
            args=[*args, key.method, key.fingerprint, answer, self._expiry_ms(key)],
        )
        if status == 0:
            raise _Replayed(key.replay(self._record_of(reply)))
        return reply[0]

    @staticmethod
    def _record_of(reply: list[Any]) -> Record:
        method, fp, result, error = reply
        if error is not None:
            answer = {"error": json.loads(error)}
        else:
            answer = {"result": json.loads(result)}
        return Record(method.decode(), fp.decode(), answer, float("inf"))

    def _refusal_answer(self, key: IdempotencyKey, error: SyncError) -> Any:
        """A 4xx error is the key's answer, unless the key was recorded meanwhile
        (a retry of a write that did land): then that answer is replayed."""
        if key.expires_at <= time.time():
            raise error
        status, *reply = self._remember_refusal(
            keys=[self._record_key(key)],
            args=[
                key.method,
                key.fingerprint,
                jsonutil.dumps(error.to_public()),
                self._expiry_ms(key),
            ],
        )
        if status == 1:
            raise error
        return key.replay(self._record_of(reply))

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

    def _versioned(self, name: str, req: Request, keys: list[str], args: list[Any]) -> Any:
        """Run a versioned write script; its payload, or NotFound / Conflict."""
        status, *payload = self._run(name, req, keys, args)
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
        created = self._run(
            "create",
            req,
            [self._key(member), self.ids_key, self.seq_key],
            [member, *pairs],
            answer=jsonutil.dumps(model),
        )
        if not created:
            raise Conflict(f"{self.id_attribute} {model_id!r} already exists", id=model_id)
        return as_model(jsonutil.dumps(model))

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
                "versioned_update", req, [self._key(member)], [attribute, expected, *pairs]
            )
        elif not self._run(
            "update", req, [self._key(member)], self._pairs(model), answer=jsonutil.dumps(model)
        ):
            raise req.not_found()
        return as_model(jsonutil.dumps(model))

    def patch(self, req: Request) -> dict[str, Any]:
        member = self._required_member(req)
        changes = dict(req.model)
        attribute = self.version_attribute
        if attribute is not None:
            expected = self._expected(req)
            changes.pop(attribute, None)
            args = [attribute, expected, *self._pairs(changes)]
            return as_model(self._versioned("versioned_patch", req, [self._key(member)], args))
        merged = self._run("patch", req, [self._key(member)], self._pairs(changes))
        if merged is None:
            raise req.not_found()
        return as_model(merged)

    def delete(self, req: Request) -> dict[str, Any]:
        member = self._required_member(req)
        keys = [self._key(member), self.ids_key]
        attribute = self.version_attribute
        if attribute is not None:
            args = [member, attribute, self._expected(req)]
            return as_model(self._versioned("versioned_delete", req, keys, args))
        deleted = self._run("delete", req, keys, [member])
        if deleted is None:
            raise req.not_found()
        return as_model(deleted)

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
        members: list[bytes] = self.client.zrange(self.ids_key, 0, -1)  # type: ignore[assignment]
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
