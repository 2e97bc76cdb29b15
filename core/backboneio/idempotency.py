"""Idempotency keys: a retried write is applied once and answered like the first time.

A ``create``, ``update``, ``patch`` or ``delete`` may carry
``options.idempotencyKey``. The hub turns it into an :class:`IdempotencyKey`
on ``req.idempotency`` (scoped by backend and identity, with a fingerprint of
the method and model) before the backend's stack runs. Two places remember
answers:

* the **store**, when it can, in the same atomic step as the write (a store
  that does says so with ``remembers_keys = True``; see :class:`KeyAware`),
  so a crash between the write and its answer cannot apply a retry twice;
* the hub's :class:`KeyTable`, in the process, bounded: it lets a repeat
  skip the stack altogether, makes a request with a key that is in progress
  wait for it, and is all there is for a store that keeps no keys.

docs/idempotency.md is the prose version, with what each store promises.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from . import runner
from .errors import BadRequest, IdempotencyKeyReused, SyncError

#: The option a write carries its key in.
KEY_OPTION = "idempotencyKey"
MAX_KEY_LENGTH = 128

#: What a key remembers: ``{"result": value}`` or ``{"error": {name, message, status, ...}}``.
Answer = dict[str, Any]


def parse_key(options: Mapping[str, Any]) -> str | None:
    """``options.idempotencyKey``: None when absent (or null), else a checked string."""
    value = options.get(KEY_OPTION)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY_LENGTH:
        got = f"a string of {len(value)} characters" if isinstance(value, str) else repr(value)
        raise BadRequest(
            f"options.{KEY_OPTION} must be a string of 1 to {MAX_KEY_LENGTH} characters "
            f"(a fresh one per write, reused only to retry it), got {got}",
            field=KEY_OPTION,
        )
    return value


def canonical_json(value: Any) -> bytes:
    """JSON text with sorted keys: equal models give equal bytes, whatever their key order."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # integers beyond 64 bits
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def fingerprint(method: str, model: Any) -> str:
    """What a repeat must match: the method and the model exactly as the client sent them."""
    return hashlib.sha256(canonical_json([method, model])).hexdigest()


def identity_scope(identity: Any) -> str:
    """The part of a key's scope that names who sent it ("" for anonymous clients).

    Stable across reconnections and token refreshes: a token's subject
    (``sub``), else an ``id``, else the identity itself when it is plain JSON.
    An identity with none of these is scoped by its ``repr``, which may differ
    between connections; give it an ``id`` so keys outlive a reconnect.
    """
    if identity is None:
        return ""
    for name in ("subject", "id"):
        value = getattr(identity, name, None)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return f"{name}:{json.dumps(value)}"
    if isinstance(identity, Mapping):
        for name in ("sub", "id"):
            value = identity.get(name)
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                return f"{'subject' if name == 'sub' else name}:{json.dumps(value)}"
    try:
        return "value:" + canonical_json(identity).decode()
    except (TypeError, ValueError):
        return "repr:" + repr(identity)


def result_answer(result: Any) -> Answer:
    return {"result": result}


def error_answer(exc: SyncError) -> Answer:
    """A 4xx error as a key remembers it: its public form, as the client got it."""
    return {"error": exc.to_public()}


def ack(answer: Answer) -> tuple[Any, Any]:
    """The ``sync`` ack's arguments for a remembered answer."""
    if "error" in answer:
        return {"error": answer["error"]}, None
    return None, answer.get("result")


def remembered(exc: BaseException) -> bool:
    """Whether a key remembers this failure as its answer.

    4xx errors are the request's own fault and would be answered again, so
    they are kept; 5xx errors (Unavailable, Timeout, ServerError) are not, so
    the retry runs. IdempotencyKeyReused is about another request's key.
    """
    return (
        isinstance(exc, SyncError)
        and 400 <= exc.status < 500
        and not isinstance(exc, IdempotencyKeyReused)
    )


@dataclass
class IdempotencyKey:
    """A write's key as it travels down the backend's stack on ``req.idempotency``.

    ``expires_at`` (seconds since the epoch) is when a record of it may be
    forgotten. A store that answers from its record sets ``replayed`` so the
    hub neither notifies nor records the write again.
    """

    backend: str
    owner: str
    key: str
    method: str
    fingerprint: str
    expires_at: float
    replayed: Answer | None = None

    @property
    def scope(self) -> tuple[str, str, str]:
        return (self.backend, self.owner, self.key)

    def check(self, method: str, fingerprint: str) -> None:
        """Raise IdempotencyKeyReused unless a record of this key is for this very request."""
        if method != self.method or fingerprint != self.fingerprint:
            article = "an" if method[:1] in "aeiou" else "a"
            what = "a different model" if method == self.method else f"{article} {method}"
            raise IdempotencyKeyReused(
                f"{KEY_OPTION} {self.key!r} was already used for {what}; "
                f"nothing was written. Send a new key with every new write",
                **{KEY_OPTION: self.key},
            )

    def replay(self, record: Record) -> Any:
        """Answer from ``record``: checks it is this request's, marks the key replayed,
        and returns the result a store hands to ``res.end`` (None for an error)."""
        self.check(record.method, record.fingerprint)
        self.replayed = record.answer
        return record.answer.get("result")

    def record(self, answer: Answer) -> Record:
        return Record(self.method, self.fingerprint, answer, self.expires_at)


@dataclass(frozen=True)
class Record:
    """What a store (or the hub's table) keeps for one key."""

    method: str
    fingerprint: str
    answer: Answer
    expires_at: float

    def live(self, now: float | None = None) -> bool:
        return self.expires_at > (time.time() if now is None else now)


class KeyAware(Protocol):
    """A store that remembers keys atomically with its writes sets ``remembers_keys = True``.

    For a write with ``req.idempotency`` set it must, in one atomic step:
    look the key up; if a live record exists, write nothing and answer with
    ``req.idempotency.replay(record)`` (which raises IdempotencyKeyReused for
    another request's key); otherwise write and record
    ``req.idempotency.record(result_answer(result))``. A 4xx error of its own
    is recorded too (``error_answer``), unless a record appeared meanwhile,
    which is then replayed instead. The conformance suite checks all of it.
    """

    remembers_keys: bool


# -- the hub's table -----------------------------------------------------------


@dataclass
class _Pending:
    method: str
    fingerprint: str
    signal: runner.Signal


class KeyTable:
    """The answers one server process remembers, newest ``max_keys`` of them.

    Also the gate for requests with a key that is in progress: they wait for
    its answer instead of running beside it.
    """

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._done: OrderedDict[tuple[str, str, str], Record] = OrderedDict()
        self._pending: dict[tuple[str, str, str], _Pending] = {}

    def __len__(self) -> int:
        return len(self._done)

    def claim(self, key: IdempotencyKey) -> Answer | runner.Signal | None:
        """A remembered answer, a signal to wait on (in progress), or None: it is
        this request's to run. Raises IdempotencyKeyReused for another request's key."""
        scope = key.scope
        pending = self._pending.get(scope)
        if pending is not None:
            key.check(pending.method, pending.fingerprint)
            return pending.signal
        record = self._done.get(scope)
        if record is not None:
            if record.live():
                key.check(record.method, record.fingerprint)
                return record.answer
            del self._done[scope]
        self._pending[scope] = _Pending(key.method, key.fingerprint, runner.Signal())
        return None

    def finish(self, key: IdempotencyKey, answer: Answer | None) -> None:
        """The claimed request ended: remember ``answer`` (None: forget the key), wake waiters."""
        pending = self._pending.pop(key.scope, None)
        if answer is not None:
            self.remember(key, answer)
        if pending is not None:
            pending.signal.send()

    def remember(self, key: IdempotencyKey, answer: Answer) -> None:
        if self.max_keys <= 0:
            return
        self._done[key.scope] = key.record(answer)
        self._done.move_to_end(key.scope)
        while len(self._done) > self.max_keys:
            self._done.popitem(last=False)

    def remember_late(self, key: IdempotencyKey, answer: Answer) -> None:
        """A write that finished after its Timeout: remembered unless its key is in use again."""
        if key.scope not in self._pending and key.scope not in self._done:
            self.remember(key, answer)
