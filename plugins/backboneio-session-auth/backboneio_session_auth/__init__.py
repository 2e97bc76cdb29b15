"""Flask's session cookie as the identity of a backboneio socket.

A user who logged in to a Flask application served by the same host is the
identity on the socket: the plugin reads the ``session`` cookie the browser
sends with the Socket.IO handshake and checks its signature exactly as
Flask's ``SecureCookieSessionInterface`` does (itsdangerous, salt
``cookie-session``, HMAC-SHA1, Flask's tagged JSON). Install it and name the
application's secret key in the settings::

    PLUGINS = ["backboneio-session-auth"]
    SESSION_AUTH_SECRET_KEY = os.environ["FLASK_SECRET_KEY"]
    SESSION_AUTH_IDENTITY_KEY = "user"   # session["user"] becomes req.identity

It registers under the ``backboneio`` entry point group::

    [project.entry-points.backboneio]
    session-auth = "backboneio_session_auth"
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from backboneio import ConfigurationError, ConnectionRefused, hookimpl
from backboneio.settings import Settings
from flask.json.tag import TaggedJSONSerializer
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.http import parse_cookie

PLUGIN = "backboneio-session-auth"
ENTRY_POINT = "session-auth"
log = logging.getLogger("backboneio.session_auth")

# Flask's PERMANENT_SESSION_LIFETIME default, which it uses as max_age for
# every session cookie, permanent or not.
DEFAULT_MAX_AGE = 31 * 24 * 3600
INVALID_POLICIES = ("anonymous", "refuse")

SETTINGS: tuple[tuple[str, Any, str], ...] = (
    ("SESSION_AUTH_SECRET_KEY", None, "The Flask application's SECRET_KEY (required)."),
    (
        "SESSION_AUTH_SECRET_KEY_FALLBACKS",
        [],
        "Older keys still accepted, like Flask's SECRET_KEY_FALLBACKS.",
    ),
    ("SESSION_AUTH_COOKIE_NAME", "session", "Name of the Flask session cookie."),
    ("SESSION_AUTH_IDENTITY_KEY", "user", "Session key whose value becomes the identity."),
    (
        "SESSION_AUTH_MAX_AGE",
        DEFAULT_MAX_AGE,
        "Seconds a session cookie stays valid (Flask's PERMANENT_SESSION_LIFETIME); None: forever.",
    ),
    (
        "SESSION_AUTH_INVALID_COOKIE",
        "anonymous",
        "A tampered, foreign-key or expired cookie: 'anonymous' (as Flask does) or 'refuse'.",
    ),
)
DEFAULTS = {name: default for name, default, _ in SETTINGS}


def setting(settings: Settings, name: str) -> Any:
    # listen() can be given Settings that never ran register_settings, so
    # the plugin's own defaults must not depend on that hook.
    return settings.get(name, DEFAULTS[name])


def is_configured(settings: Settings) -> bool:
    """Whether the settings ask for this plugin: named in PLUGINS or any of its settings set."""
    named = settings.PLUGINS is not None and {PLUGIN, ENTRY_POINT} & set(settings.PLUGINS)
    return bool(named) or any(name in settings.values for name in DEFAULTS)


def session_serializer(
    secret_key: str | bytes, fallbacks: list[str | bytes] | tuple[str | bytes, ...] = ()
) -> URLSafeTimedSerializer:
    """The serializer Flask's cookie sessions use; the last key signs, all verify."""
    return URLSafeTimedSerializer(
        [*fallbacks, secret_key],
        salt="cookie-session",
        serializer=TaggedJSONSerializer(),
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
    )


class SessionReader:
    """Checks settings once, then turns a handshake's cookies into an identity."""

    def __init__(self, settings: Settings) -> None:
        secret = setting(settings, "SESSION_AUTH_SECRET_KEY")
        if not secret or not isinstance(secret, (str, bytes)):
            raise ConfigurationError(
                "backboneio-session-auth needs SESSION_AUTH_SECRET_KEY: set it to the Flask "
                "application's SECRET_KEY (read it from the environment, never commit it)"
            )
        fallbacks = setting(settings, "SESSION_AUTH_SECRET_KEY_FALLBACKS") or []
        if isinstance(fallbacks, (str, bytes)) or not all(
            isinstance(k, (str, bytes)) and k for k in fallbacks
        ):
            raise ConfigurationError(
                "SESSION_AUTH_SECRET_KEY_FALLBACKS must be a list of non-empty keys"
            )
        self.cookie_name = setting(settings, "SESSION_AUTH_COOKIE_NAME")
        if not isinstance(self.cookie_name, str) or not self.cookie_name:
            raise ConfigurationError("SESSION_AUTH_COOKIE_NAME must be a non-empty string")
        self.identity_key = setting(settings, "SESSION_AUTH_IDENTITY_KEY")
        if not isinstance(self.identity_key, str) or not self.identity_key:
            raise ConfigurationError("SESSION_AUTH_IDENTITY_KEY must be a non-empty string")
        self.max_age = setting(settings, "SESSION_AUTH_MAX_AGE")
        if self.max_age is not None and (
            not isinstance(self.max_age, int) or isinstance(self.max_age, bool) or self.max_age <= 0
        ):
            raise ConfigurationError(
                f"SESSION_AUTH_MAX_AGE must be a positive number of seconds or None, "
                f"got {self.max_age!r}"
            )
        self.on_invalid = setting(settings, "SESSION_AUTH_INVALID_COOKIE")
        if self.on_invalid not in INVALID_POLICIES:
            raise ConfigurationError(
                f"SESSION_AUTH_INVALID_COOKIE must be one of {INVALID_POLICIES}, "
                f"got {self.on_invalid!r}"
            )
        self.serializer = session_serializer(secret, list(fallbacks))

    def identity(self, environ: dict[str, Any]) -> Any:
        value = parse_cookie(environ.get("HTTP_COOKIE", "")).get(self.cookie_name)
        if not value:
            return None
        try:
            session, signed_at = self.serializer.loads(
                value, max_age=self.max_age, return_timestamp=True
            )
        except BadSignature as exc:
            # SignatureExpired is a BadSignature too. The reason stays vague on
            # purpose: telling a forger which check failed only helps them.
            log.info("Ignoring an invalid session cookie: %s", type(exc).__name__)
            if self.on_invalid == "refuse":
                raise ConnectionRefused("Invalid or expired session cookie; log in again") from None
            return None
        if not isinstance(session, dict):
            return None
        identity = session.get(self.identity_key)
        if identity is None or self.max_age is None:
            return identity
        return with_expiry(identity, signed_at.timestamp() + self.max_age)


# Identities that carry the moment their cookie stops being valid, so the core
# disconnects the socket then (backboneio's ``expires_at`` convention). They
# still compare, hash and serialise as the plain value they wrap.
_EXPIRING: dict[type, type] = {
    base: type(f"Expiring{base.__name__.title()}", (base,), {})
    for base in (str, int, float, dict, list)
}


def with_expiry(identity: Any, expires_at: float) -> Any:
    """``identity`` as a value that also says when it expires, where its type allows."""
    wrapper = _EXPIRING.get(type(identity))
    if wrapper is None:  # bool, tuples and other tagged values stay as they are
        return identity
    wrapped = wrapper(identity)
    wrapped.expires_at = expires_at
    return wrapped


def reader_for(settings: Settings, *, fresh: bool = False) -> SessionReader | None:
    """The reader for these settings, None when the settings do not use the plugin."""
    return settings.memo(
        "session-auth.reader",
        lambda: SessionReader(settings) if is_configured(settings) else None,
        fresh=fresh,
    )


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    for name, default, description in SETTINGS:
        register(name, default, description)


@hookimpl
def configure_server(sio: Any, settings: Settings) -> None:
    # Checked at start-up so a missing secret key stops the server instead of
    # silently treating every user as anonymous.
    if reader_for(settings, fresh=True) is None:
        log.debug("backboneio-session-auth is installed but not configured; it stays inactive")


@hookimpl
def authenticate(environ: dict[str, Any], settings: Settings) -> Any:
    reader = reader_for(settings)
    if reader is None:
        return None
    return reader.identity(environ)
