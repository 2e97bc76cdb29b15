"""Stores: the middleware at the bottom of a backend that keeps the models.

A store is created by a factory registered through the ``register_stores``
hook; the factory gets a :class:`StoreConfig` and returns ``mw(req, res, next)``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .backend import METHODS, WRITE_METHODS, Middleware, Request, Response
from .errors import BadRequest, ConfigurationError, Conflict, SyncError
from .idempotency import Record, error_answer, remembered, result_answer
from .query import Query

if TYPE_CHECKING:
    from .settings import Settings

StoreFactory = Callable[["StoreConfig"], Middleware]


@dataclass(frozen=True)
class StoreConfig:
    """What a store factory is told about the backend it serves.

    ``version_attribute`` names the attribute the store keeps each model's
    version in (``"_version"`` for a backend entry with ``"versioned": True``);
    None means the backend is not versioned. docs/conflicts.md has the rules.
    """

    backend: str
    id_attribute: str = "id"
    options: Mapping[str, Any] = field(default_factory=dict)
    settings: Settings | None = None
    version_attribute: str | None = None


@dataclass(frozen=True)
class StoreType:
    """A store registered by a plugin under ``name``."""

    name: str
    factory: StoreFactory
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    plugin: str = ""


def clone(value: Any) -> Any:
    """A copy of a JSON value (dicts, lists, scalars), several times faster than deepcopy.

    The memory store hands out copies so that nothing a middleware does to a
    result, or a client sends later, changes what is stored.
    """
    if isinstance(value, dict):
        return {key: clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clone(item) for item in value]
    return value


def new_id() -> str:
    return uuid.uuid4().hex


def check_id(value: Any, id_attribute: str) -> None:
    """Ids are strings or integers; anything else is refused before it is stored."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(
            f"{id_attribute} must be a string or an integer, got {type(value).__name__}",
            field=id_attribute,
        )


#: The version attribute of a backend whose entry says ``"versioned": True``.
DEFAULT_VERSION_ATTRIBUTE = "_version"


def check_version_attribute(version_attribute: Any, id_attribute: str) -> None:
    """A store's ``version_attribute`` is None or a non-empty string other than the id's."""
    if version_attribute is None:
        return
    if not isinstance(version_attribute, str) or not version_attribute:
        raise ConfigurationError(
            f"version_attribute must be a non-empty string or None, got {version_attribute!r}"
        )
    if version_attribute == id_attribute:
        raise ConfigurationError(
            f"version_attribute and id_attribute cannot both be {id_attribute!r}"
        )


def sent_version(model: Mapping[str, Any], version_attribute: str) -> int | None:
    """The version an update, patch or delete is conditional on; None if unconditional.

    A missing or null version makes the write unconditional, so clients that
    predate versions keep working. Anything but a non-negative integer is
    refused before the store is touched.
    """
    value = model.get(version_attribute)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(
            f"{version_attribute} must be the integer version the model was read at "
            f"(or left out for an unconditional write), got {value!r}",
            field=version_attribute,
        )
    return value


def stored_version(model: Mapping[str, Any], version_attribute: str) -> int:
    """The version of a stored model; one stored before versioning was on counts as 0."""
    value = model.get(version_attribute)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def version_conflict(
    method: str, version_attribute: str, sent: int, current: dict[str, Any]
) -> Conflict:
    """The error of a write made from a version the model is no longer at.

    ``current`` (the stored model) becomes a public field of the error, so the
    client can show or merge it without another read.
    """
    stored = stored_version(current, version_attribute)
    return Conflict(
        f"This {method} was made from {version_attribute} {sent}, but the model is at "
        f"{version_attribute} {stored}: it changed since it was read",
        current=current,
    )


class MemoryStore:
    """Keeps models in a dict, in the server process; gone on restart.

    Each call runs to completion under one lock without yielding to the event
    loop, so concurrent clients (green threads, or OS threads of a program
    that calls it directly) never see a half-applied write, and a versioned
    write's check and write are one step. Idempotency keys are looked up and
    recorded under the same lock, the newest ``max_keys`` of them; they end
    with the process, like the models.
    """

    # It answers before returning, so the backend runs it without a green
    # thread of its own (Backend.handle).
    synchronous = True
    # It records a write's idempotency key in the same step as the write.
    remembers_keys = True

    def __init__(
        self,
        id_attribute: str = "id",
        max_limit: int | None = None,
        version_attribute: str | None = None,
        max_keys: int = 100_000,
    ) -> None:
        if max_limit is not None and (
            isinstance(max_limit, bool) or not isinstance(max_limit, int) or max_limit < 1
        ):
            raise ValueError(f"max_limit must be a positive integer or None, got {max_limit!r}")
        check_version_attribute(version_attribute, id_attribute)
        self.id_attribute = id_attribute
        self.max_limit = max_limit
        self.version_attribute = version_attribute
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 0:
            raise ValueError(f"max_keys must be 0 or a positive integer, got {max_keys!r}")
        self.max_keys = max_keys
        self.models: dict[Any, dict[str, Any]] = {}
        # Oldest first: every key lives IDEMPOTENCY_TTL, so this is expiry order too.
        self.keys: OrderedDict[tuple[str, str, str], Record] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, req: Request, res: Response, next: Callable[..., None]) -> None:
        if req.method not in METHODS:
            raise BadRequest(f"Unknown method {req.method!r}")
        handler = getattr(self, req.method)
        key = req.idempotency if req.method in WRITE_METHODS else None
        # The copy is taken under the lock too: a patch answers the stored dict.
        with self._lock:
            if key is None:
                result = clone(handler(req))
            else:
                recorded = self._recorded(key.scope)
                if recorded is not None:
                    result = clone(key.replay(recorded))
                else:
                    try:
                        result = clone(handler(req))
                    except SyncError as exc:
                        if remembered(exc):
                            self._remember(key.scope, key.record(error_answer(exc)))
                        raise
                    self._remember(key.scope, key.record(result_answer(clone(result))))
        res.end(result)

    def _recorded(self, scope: tuple[str, str, str]) -> Record | None:
        now = time.time()
        while self.keys:  # forget the expired ones, oldest first
            oldest = next(iter(self.keys.values()))
            if oldest.live(now):
                break
            self.keys.popitem(last=False)
        record = self.keys.get(scope)
        return record if record is not None and record.live(now) else None

    def _remember(self, scope: tuple[str, str, str], record: Record) -> None:
        if self.max_keys == 0:
            return
        self.keys[scope] = record
        self.keys.move_to_end(scope)
        while len(self.keys) > self.max_keys:
            self.keys.popitem(last=False)

    def _check_version(self, req: Request, current: dict[str, Any]) -> int | None:
        """The version the write gives the model (None: not versioned), or Conflict."""
        attribute = self.version_attribute
        if attribute is None:
            return None
        sent = sent_version(req.model, attribute)
        stored = stored_version(current, attribute)
        if sent is not None and sent != stored:
            raise version_conflict(req.method, attribute, sent, clone(current))
        return stored + 1

    def _get(self, req: Request) -> dict[str, Any]:
        model_id = req.model_id
        if model_id is None:
            raise BadRequest(f"{req.method} needs the model's {self.id_attribute}")
        check_id(model_id, self.id_attribute)
        try:
            return self.models[model_id]
        except KeyError:
            raise req.not_found() from None

    def create(self, req: Request) -> dict[str, Any]:
        model: dict[str, Any] = clone(req.model)
        model_id = model.get(self.id_attribute)
        if model_id is None:
            model_id = model[self.id_attribute] = new_id()
        check_id(model_id, self.id_attribute)
        if model_id in self.models:
            raise Conflict(f"{self.id_attribute} {model_id!r} already exists", id=model_id)
        if self.version_attribute is not None:
            model[self.version_attribute] = 1
        self.models[model_id] = model
        return model

    def read(self, req: Request) -> Any:
        if req.model_id is not None:
            return self._get(req)
        query = Query.parse(req.query, max_limit=self.max_limit, id_attribute=self.id_attribute)
        return query.apply(self.models.values())

    def update(self, req: Request) -> dict[str, Any]:
        version = self._check_version(req, self._get(req))
        model: dict[str, Any] = clone(req.model)
        if version is not None and self.version_attribute is not None:
            model[self.version_attribute] = version
        self.models[req.model_id] = model
        return model

    def patch(self, req: Request) -> dict[str, Any]:
        model = self._get(req)
        version = self._check_version(req, model)
        model.update(clone(req.model))
        if version is not None and self.version_attribute is not None:
            model[self.version_attribute] = version
        return model

    def delete(self, req: Request) -> dict[str, Any]:
        self._check_version(req, self._get(req))
        return self.models.pop(req.model_id)


def memory(
    id_attribute: str = "id",
    max_limit: int | None = None,
    version_attribute: str | None = None,
    max_keys: int = 100_000,
) -> MemoryStore:
    """A fresh in-memory store, for ``backend.use(backboneio.stores.memory())``.

    ``version_attribute="_version"`` makes it versioned (docs/conflicts.md);
    ``max_keys`` is how many idempotency keys it remembers (docs/idempotency.md).
    """
    return MemoryStore(
        id_attribute=id_attribute,
        max_limit=max_limit,
        version_attribute=version_attribute,
        max_keys=max_keys,
    )
