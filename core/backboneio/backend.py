"""Backends: a named stack of middleware that ends in a store.

A middleware is ``mw(req, res, next)``. It answers with ``res.end(result)`` or
``res.error(exc)``, or hands over with ``next()`` / ``next(exc)``. A middleware
with four parameters, ``mw(err, req, res, next)``, only runs for errors.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import runner
from .errors import NotFound, SyncTimeout, as_exception

METHODS: tuple[str, ...] = ("create", "read", "update", "patch", "delete")
WRITE_METHODS: frozenset[str] = frozenset({"create", "update", "patch", "delete"})
# backend.emit() event names, as Backbone.IO 0.4 called them, to sync methods
EMITTED_EVENTS: dict[str, str] = {
    "created": "create",
    "updated": "update",
    "patched": "patch",
    "deleted": "delete",
}

Middleware = Callable[..., Any]
Next = Callable[..., None]
Notifier = Callable[[str, Any, "str | None"], None]

log = logging.getLogger("backboneio")

if TYPE_CHECKING:
    from .idempotency import IdempotencyKey


@dataclass
class Request:
    """One ``sync`` call as it travels down a backend's stack."""

    method: str
    model: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    backend: str = ""
    channel: str | None = None
    sid: str | None = None
    environ: dict[str, Any] = field(default_factory=dict)
    identity: Any = None
    session: dict[str, Any] = field(default_factory=dict)
    id_attribute: str = "id"
    # The write's options.idempotencyKey, scoped and fingerprinted by the hub
    # (docs/idempotency.md); stores that remember keys read it.
    idempotency: IdempotencyKey | None = None

    @property
    def model_id(self) -> Any:
        """The id of the model the request is about, or None."""
        return self.model.get(self.id_attribute)

    @property
    def query(self) -> Any:
        """What ``collection.fetch({data: ...})`` sent: the query of a ``read``."""
        return self.options.get("data")

    def not_found(self) -> NotFound:
        """The error to answer when the requested model does not exist."""
        return NotFound(
            f"No {self.backend or 'model'} with {self.id_attribute} {self.model_id!r}",
            id=self.model_id,
        )


class Response:
    """How a middleware answers. Only the first ``end`` or ``error`` counts."""

    def __init__(self) -> None:
        self.finished = False
        self.result: Any = None
        self.exception: BaseException | None = None
        self._signal: runner.Signal | None = None
        self._late: Callable[[Any], None] | None = None

    def end(self, result: Any = None) -> None:
        if self.finished:
            if self._late is not None:  # the client was already told Timeout
                late, self._late = self._late, None
                late(result)
            return
        self.finished, self.result = True, result
        if self._signal is not None:
            self._signal.send()

    def error(self, error: Any) -> None:
        if self.finished:
            self._late = None
            return
        self.finished, self.exception = True, as_exception(error)
        if self._signal is not None:
            self._signal.send()

    def wait(self, timeout: float | None) -> bool:
        if self.finished:
            return True
        if self._signal is None:
            self._signal = runner.Signal()
        return self._signal.wait(timeout)

    def expire(self, exc: BaseException, late: Callable[[Any], None] | None = None) -> None:
        """Answer ``exc`` now; a result that arrives afterwards goes to ``late``."""
        if not self.finished:
            self.finished, self.exception, self._late = True, exc, late


def _handles_errors(fn: Middleware) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return False
    # Parameters with defaults (mw(req, res, next, log=None)) do not count.
    required = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(required) == 4


@dataclass(frozen=True)
class Layer:
    fn: Middleware
    methods: frozenset[str] | None  # None: every method
    handles_errors: bool
    # A middleware marked ``fn.synchronous = True`` promises to answer or hand
    # over before it returns (the memory store does): a stack of such layers
    # runs in the caller's green thread, with no timeout to watch.
    synchronous: bool = False

    def applies_to(self, method: str) -> bool:
        return self.methods is None or method in self.methods


class Backend:
    """A stack of middleware, built with :meth:`use` and run by :meth:`handle`."""

    def __init__(self, name: str = "", *, id_attribute: str = "id") -> None:
        self.name = name
        self.id_attribute = id_attribute
        self.layers: list[Layer] = []
        self._layers_by_method: dict[str, list[Layer]] = {}
        self._layer_count = 0
        self._notifiers: list[Notifier] = []

    def __repr__(self) -> str:
        return f"<Backend {self.name!r} with {len(self.layers)} middleware>"

    # -- building the stack -------------------------------------------------

    def use(self, *args: str | Middleware) -> Backend:
        """``use(mw, ...)`` for every method, ``use("create", "update", mw)`` for some."""
        methods = [a for a in args if isinstance(a, str)]
        fns = [a for a in args if not isinstance(a, str)]
        if not fns:
            raise TypeError("backend.use() needs at least one middleware")
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"Unknown sync method(s) {unknown}; expected some of {METHODS}")
        for fn in fns:
            if not callable(fn):
                raise TypeError(f"middleware must be callable, got {fn!r}")
            scope = frozenset(methods) if methods else None
            synchronous = getattr(fn, "synchronous", False) is True
            self.layers.append(Layer(fn, scope, _handles_errors(fn), synchronous))
        return self

    def create(self, *fns: Middleware) -> Backend:
        return self.use("create", *fns)

    def read(self, *fns: Middleware) -> Backend:
        return self.use("read", *fns)

    def update(self, *fns: Middleware) -> Backend:
        return self.use("update", *fns)

    def patch(self, *fns: Middleware) -> Backend:
        return self.use("patch", *fns)

    def delete(self, *fns: Middleware) -> Backend:
        return self.use("delete", *fns)

    # -- running a request --------------------------------------------------

    def handle(
        self,
        req: Request,
        timeout: float | None = None,
        *,
        late: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run ``req`` down the stack and return the result or raise the error.

        A middleware may answer later from another green thread, or block on
        a cooperative driver; if nothing answers within ``timeout`` seconds
        the request fails with a Timeout, and a result that still arrives
        afterwards is handed to ``late`` (the hub notifies it: it was written).
        """
        if not req.backend:
            req.backend = self.name
        res = Response()
        layers = self.layers_for(req.method)
        if timeout is None or all(layer.synchronous for layer in layers):
            self._step(layers, 0, None, req, res)
            res.wait(timeout)
        else:
            # In a green thread of its own, so a store stuck on a lock cannot
            # hold the answer past the timeout.
            runner.spawn(self._step, layers, 0, None, req, res)
            if not res.wait(timeout):
                res.expire(
                    SyncTimeout(f"Backend {self.name!r} did not answer within {timeout}s"), late
                )
        if not res.finished:
            res.expire(SyncTimeout(f"Backend {self.name!r} did not answer within {timeout}s"))
        if res.exception is not None:
            raise res.exception
        return res.result

    def layers_for(self, method: str) -> list[Layer]:
        cache = self._layers_by_method
        if cache.get(method) is None or self._layer_count != len(self.layers):
            if self._layer_count != len(self.layers):
                cache.clear()
                self._layer_count = len(self.layers)
            cache[method] = [layer for layer in self.layers if layer.applies_to(method)]
        return cache[method]

    def dispatch(self, req: Request, res: Response) -> None:
        """Start ``req`` down the stack; the answer arrives on ``res``."""
        self._step(self.layers_for(req.method), 0, None, req, res)

    def _step(
        self,
        layers: list[Layer],
        index: int,
        err: BaseException | None,
        req: Request,
        res: Response,
    ) -> None:
        if res.finished:
            return
        while index < len(layers) and layers[index].handles_errors != (err is not None):
            index += 1
        if index == len(layers):
            if err is not None:
                res.error(err)
            else:
                res.end(req.model)
            return
        layer = layers[index]
        handed_over = False

        def next_(error: Any = None) -> None:
            nonlocal handed_over
            if handed_over:
                return
            handed_over = True
            self._step(layers, index + 1, None if error is None else as_exception(error), req, res)

        try:
            if err is None:
                layer.fn(req, res, next_)
            else:
                layer.fn(err, req, res, next_)
        except Exception as exc:
            if handed_over or res.finished:
                log.exception("middleware %r raised after answering", layer.fn)
                return
            handed_over = True
            self._step(layers, index + 1, exc, req, res)

    # -- notifying clients --------------------------------------------------

    def add_notifier(self, notifier: Notifier) -> None:
        """Called by the server this backend is served on."""
        self._notifiers.append(notifier)

    def emit(self, event: str, model: Any, channel: str | None = None) -> None:
        """Tell clients about a change made outside of a client's sync.

        ``event`` is ``"created"``, ``"updated"``, ``"patched"`` or ``"deleted"``;
        with ``channel`` only the clients listening on it hear of it.
        """
        try:
            method = EMITTED_EVENTS[event]
        except KeyError:
            raise ValueError(
                f"Unknown backend event {event!r}; expected one of {sorted(EMITTED_EVENTS)}"
            ) from None
        for notify in self._notifiers:
            notify(method, model, channel)


def create_backend(name: str = "", *middleware: Middleware, id_attribute: str = "id") -> Backend:
    """A new, empty backend; add middleware and a store with ``backend.use()``."""
    backend = Backend(name, id_attribute=id_attribute)
    if middleware:
        backend.use(*middleware)
    return backend
