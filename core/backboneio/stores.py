"""Stores: the middleware at the bottom of a backend that keeps the models.

A store is created by a factory registered through the ``register_stores``
hook; the factory gets a :class:`StoreConfig` and returns ``mw(req, res, next)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .backend import METHODS, Middleware, Request, Response
from .errors import BadRequest, Conflict
from .query import Query

if TYPE_CHECKING:
    from .settings import Settings

StoreFactory = Callable[["StoreConfig"], Middleware]


@dataclass(frozen=True)
class StoreConfig:
    """What a store factory is told about the backend it serves."""

    backend: str
    id_attribute: str = "id"
    options: Mapping[str, Any] = field(default_factory=dict)
    settings: Settings | None = None


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


class MemoryStore:
    """Keeps models in a dict, in the server process; gone on restart.

    Each call runs to completion without yielding to the event loop, so
    concurrent clients never see a half-applied write.
    """

    def __init__(self, id_attribute: str = "id", max_limit: int | None = None) -> None:
        if max_limit is not None and (
            isinstance(max_limit, bool) or not isinstance(max_limit, int) or max_limit < 1
        ):
            raise ValueError(f"max_limit must be a positive integer or None, got {max_limit!r}")
        self.id_attribute = id_attribute
        self.max_limit = max_limit
        self.models: dict[Any, dict[str, Any]] = {}

    def __call__(self, req: Request, res: Response, next: Callable[..., None]) -> None:
        if req.method not in METHODS:
            raise BadRequest(f"Unknown method {req.method!r}")
        handler = getattr(self, req.method)
        res.end(clone(handler(req)))

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
        model = clone(req.model)
        model_id = model.get(self.id_attribute)
        if model_id is None:
            model_id = model[self.id_attribute] = new_id()
        check_id(model_id, self.id_attribute)
        if model_id in self.models:
            raise Conflict(f"{self.id_attribute} {model_id!r} already exists", id=model_id)
        self.models[model_id] = model
        return model

    def read(self, req: Request) -> Any:
        if req.model_id is not None:
            return self._get(req)
        query = Query.parse(req.query, max_limit=self.max_limit, id_attribute=self.id_attribute)
        return query.apply(self.models.values())

    def update(self, req: Request) -> dict[str, Any]:
        self._get(req)
        model = clone(req.model)
        self.models[req.model_id] = model
        return model

    def patch(self, req: Request) -> dict[str, Any]:
        model = self._get(req)
        model.update(clone(req.model))
        return model

    def delete(self, req: Request) -> dict[str, Any]:
        self._get(req)
        return self.models.pop(req.model_id)


def memory(id_attribute: str = "id", max_limit: int | None = None) -> MemoryStore:
    """A fresh in-memory store, for ``backend.use(backboneio.stores.memory())``."""
    return MemoryStore(id_attribute=id_attribute, max_limit=max_limit)
