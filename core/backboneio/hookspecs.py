"""Every hook backboneio calls, with when it is called, what it gets and what it returns.

Implement them in a plugin module or class decorated with
``@backboneio.hookimpl`` and expose it under the ``backboneio`` entry point
group. Hooks are called with keyword arguments, so an implementation may take
only the arguments it needs. docs/plugin_hooks.md has a section for each.

Hooks of the running server also receive ``hub``, the :class:`backboneio.Hub`
being served: its settings, backends, change log and a ``state`` dict where a
plugin keeps what it built for this server (instead of a module global).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import socketio

    from .backend import Backend, Request
    from .changelog import ChangeLog
    from .hub import Hub
    from .settings import Settings

hookspec = pluggy.HookspecMarker("backboneio")
hookimpl = pluggy.HookimplMarker("backboneio")


@hookspec
def register_settings(register: Callable[..., None]) -> None:
    """Declare the settings a plugin reads, so a settings module may set them.

    Called once while settings are loaded, before they are checked. Call
    ``register(name, default, description="")`` for each upper-case setting
    name; an unknown name in a settings module stops start-up.
    """


@hookspec
def register_stores(register: Callable[..., None]) -> None:
    """Make stores available by name to ``BACKENDS[...]["store"]``.

    Called once when backends are built from settings. Call
    ``register(name, factory, options={...}, description="")``: ``factory``
    takes a :class:`backboneio.stores.StoreConfig` and returns the store, a
    middleware ``mw(req, res, next)`` that answers the five sync methods.
    ``options`` names the keys the store reads from the backend's settings
    entry, with their defaults; other keys there are refused.
    """


@hookspec
def prepare_backend(
    name: str, backend: Backend, config: dict[str, Any], settings: Settings, hub: Hub
) -> None:
    """Add middleware to a backend built from settings, before its own middleware and store.

    Called once per backend at start-up. ``config`` is the backend's entry in
    ``BACKENDS``. Call ``backend.use(...)``; return nothing.
    """


@hookspec(firstresult=True)
def event_name(backend: str, settings: Settings, hub: Hub) -> str | None:
    """Choose the event prefix clients of ``backend`` trigger (``backend:create``...).

    Called once per backend when the server is built; ``listen`` answers
    with it. The first non-None answer wins; the core's default answers the
    backend's ``event`` key, else the ``EVENT`` setting.
    """


@hookspec(firstresult=True)
def authenticate(
    environ: dict[str, Any], auth: Any, backend: str, settings: Settings, hub: Hub
) -> Any:
    """Say who is connecting to a backend's namespace.

    Called on every connection. ``environ`` is the WSGI environ of the
    handshake (cookies, headers); ``auth`` is the Socket.IO ``auth`` payload
    (or None). Return an identity (any non-None value, ``req.identity`` from
    then on), return None to leave the decision to other plugins (anonymous
    if none decides), or raise :class:`backboneio.ConnectionRefused` to refuse
    the connection with a reason the client sees in ``connect_error``. An
    identity with an ``expires_at`` attribute (seconds since the epoch) is
    disconnected when that time passes. Also called on ``refresh`` with the
    new ``auth`` and the connection's environ: the identity returned replaces
    the socket's; ``ConnectionRefused`` or None leaves it as it was.
    """


@hookspec
def authorize(
    action: str,
    identity: Any,
    backend: str,
    channel: str | None,
    req: Request | None,
    settings: Settings,
    hub: Hub,
) -> bool | None:
    """Allow or deny a ``listen`` or a ``sync`` before it runs.

    Called for every ``listen`` (``action == "listen"``, ``channel`` the one
    asked for, ``req`` None) and every ``sync`` (``action`` the method, ``req``
    the request). Return False to deny, or raise a
    :class:`backboneio.SyncError` such as ``Forbidden`` to deny with your own
    message; True or None allows. Any one denial wins.
    """


@hookspec
def authorize_broadcast(
    identity: Any, method: str, model: Any, backend: str, channel: str | None, hub: Hub
) -> bool | None:
    """Decide whether one recipient hears a ``synced`` notification.

    Called per recipient, with the recipient's ``identity``, for every entry
    of the change log delivered live and for every entry replayed on resume,
    but only when some plugin implements it (else a notification goes out in
    one message). Return False to skip this recipient.

    Live queries ask it too, once per window, before a model enters it:
    ``method`` is ``"read"`` for the models of the first window and the
    write's method after; ``model`` is the whole model as it would enter
    (docs/live-queries.md). False keeps the model out of that window.
    """


@hookspec(firstresult=True)
def client_manager(settings: Settings, hub: Hub) -> Any:
    """Provide the ``socketio`` client manager, e.g. to fan out across processes.

    Called once when the server is built. Return a manager such as
    ``socketio.RedisManager(url)``, or None to keep the in-process default.
    """


@hookspec
def configure_server(sio: socketio.Server, settings: Settings, hub: Hub) -> None:
    """Customise the ``socketio.Server`` after backboneio has set it up.

    Called once per server, after the backend namespaces are registered.
    """


@hookspec
def after_write(
    backend: str, method: str, result: Any, req: Request | None, settings: Settings, hub: Hub
) -> None:
    """Be told about a successful write (create, update, patch or delete).

    Called after the client's answer is decided and before the write enters
    the change log (so before anyone is notified). ``req`` is None for
    writes announced with ``backend.emit()`` or an :class:`backboneio.Emitter`.
    Exceptions are logged, never sent to the client.
    """


@hookspec(firstresult=True)
def change_log(settings: Settings, hub: Hub) -> ChangeLog | None:
    """Provide the change log every write is recorded in and notified from.

    Called once when the hub is built. Return a
    :class:`backboneio.changelog.ChangeLog` (the Redis plugin returns one on
    Redis Streams that every server process shares), or None to keep the
    core's in-memory log, whose history ends with the process.
    """
