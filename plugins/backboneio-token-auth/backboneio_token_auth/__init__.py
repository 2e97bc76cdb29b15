"""Bearer tokens (JWT) as the identity of a backboneio socket.

The browser passes the token in the Socket.IO ``auth`` payload,
``io(url, {auth: {token}})`` (``Backbone.io.connect({auth: {token}})``), or a
non-browser client sends ``Authorization: Bearer <token>``. The token is
checked at connect time (signature, algorithm, ``exp``, ``nbf``, issuer,
audience); a bad one is refused with a reason the client sees in
``connect_error``. Tokens must carry ``exp``. Its claims become
``req.identity``; the server disconnects the socket when ``exp`` passes (the
identity's ``expires_at``), and ``exp`` is checked again on every listen and
sync as well. Connections without a token are refused unless the settings say
``TOKEN_AUTH_REQUIRED = False``. A connected client may hand over a new token
before ``exp`` with the ``refresh`` event (``Backbone.io.refresh(token)``):
the ``authenticate`` hook below verifies it as at connect, and the socket is
then closed at the new ``exp`` instead (docs/auth.md).

A ``channels`` claim limits which channels a token may listen to: exact names,
or shell-style patterns marked ``glob:`` (``"glob:room-*"``). Anonymous
sockets, when allowed, are not limited by it. With
``TOKEN_AUTH_OWNER_ATTRIBUTE`` set, notifications about models marked private
only reach their owner.

    PLUGINS = ["backboneio-token-auth"]
    TOKEN_AUTH_SECRET = os.environ["JWT_SECRET"]          # HS256, or:
    TOKEN_AUTH_PUBLIC_KEY = "/etc/myapp/jwt-public.pem"   # RS256
    TOKEN_AUTH_ISSUER = "https://login.example.com"
    TOKEN_AUTH_AUDIENCE = "chat"

It registers under the ``backboneio`` entry point group::

    [project.entry-points.backboneio]
    token-auth = "backboneio_token_auth"
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from backboneio import (
    ConfigurationError,
    ConnectionRefused,
    Forbidden,
    Unauthorized,
    hookimpl,
)
from backboneio.backend import Request
from backboneio.settings import Settings
from cryptography.hazmat.primitives.serialization import load_pem_public_key

PLUGIN = "backboneio-token-auth"
ENTRY_POINT = "token-auth"
log = logging.getLogger("backboneio.token_auth")

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
MIN_SECRET_BYTES = 32

SETTINGS: tuple[tuple[str, Any, str], ...] = (
    ("TOKEN_AUTH_SECRET", None, "Shared secret for HS256/384/512 tokens."),
    ("TOKEN_AUTH_PUBLIC_KEY", None, "PEM public key (text or file path) for RS/PS/ES tokens."),
    (
        "TOKEN_AUTH_ALGORITHMS",
        None,
        "Accepted 'alg' values; default HS256 with a secret, RS256 with a public key.",
    ),
    ("TOKEN_AUTH_ISSUER", None, "Required 'iss' claim, if set."),
    ("TOKEN_AUTH_AUDIENCE", None, "Required 'aud' claim (a string or a list), if set."),
    (
        "TOKEN_AUTH_REQUIRED",
        True,
        "Refuse connections without a token; False lets anonymous sockets in, unconfined "
        "by any channels claim.",
    ),
    (
        "TOKEN_AUTH_REQUIRE_EXP",
        True,
        "Refuse tokens without an 'exp' claim; False accepts tokens that never expire.",
    ),
    ("TOKEN_AUTH_LEEWAY", 0, "Seconds of clock skew allowed on exp, nbf and iat."),
    ("TOKEN_AUTH_CHANNELS_CLAIM", "channels", "Claim listing the channels a token may use."),
    (
        "TOKEN_AUTH_OWNER_ATTRIBUTE",
        None,
        "Model attribute holding its owner's 'sub'; set it to make private models private.",
    ),
    (
        "TOKEN_AUTH_PRIVATE_ATTRIBUTE",
        "private",
        "Model attribute that, when true, limits notifications to the owner.",
    ),
)
DEFAULTS = {name: default for name, default, _ in SETTINGS}
# A channels claim entry with this prefix is a shell-style pattern; any other
# entry is an exact name, so a user called "*" cannot make "user-*" match all.
GLOB_PREFIX = "glob:"
# How much of a refused 'alg' header is repeated back to the client.
MAX_ALG_SHOWN = 20


class Claims(dict[str, Any]):
    """A verified token's claims: the identity of a token-authenticated socket."""

    # Set by the verifier; a class default keeps copies (which skip __init__) usable.
    leeway: float = 0

    @property
    def subject(self) -> Any:
        return self.get("sub")

    @property
    def expires_at(self) -> float | None:
        """When the token stops being valid, leeway included; the server disconnects then."""
        exp = self.get("exp")
        if isinstance(exp, (int, float)) and not isinstance(exp, bool):
            return exp + self.leeway
        return None


def setting(settings: Settings, name: str) -> Any:
    # listen() can be given Settings that never ran register_settings, so
    # the plugin's defaults must not depend on that hook.
    return settings.get(name, DEFAULTS[name])


def is_configured(settings: Settings) -> bool:
    """Whether the settings ask for this plugin: named in PLUGINS or any of its settings set."""
    named = settings.PLUGINS is not None and {PLUGIN, ENTRY_POINT} & set(settings.PLUGINS)
    return bool(named) or any(name in settings.values for name in DEFAULTS)


def read_public_key(value: Any) -> str:
    if not isinstance(value, (str, bytes)) or not value:
        raise ConfigurationError("TOKEN_AUTH_PUBLIC_KEY must be PEM text or the path of a PEM file")
    text = value.decode() if isinstance(value, bytes) else value
    if "-----BEGIN" not in text:
        try:
            text = Path(text).read_text()
        except OSError as exc:
            raise ConfigurationError(f"TOKEN_AUTH_PUBLIC_KEY: cannot read {text!r}: {exc}") from exc
    if "PRIVATE KEY" in text:
        raise ConfigurationError(
            "TOKEN_AUTH_PUBLIC_KEY holds a private key; give the server only the public key"
        )
    try:
        load_pem_public_key(text.encode())
    except ValueError as exc:
        raise ConfigurationError(f"TOKEN_AUTH_PUBLIC_KEY is not a PEM public key: {exc}") from exc
    return text


class TokenVerifier:
    """Checks settings once, then verifies tokens and answers authorization questions."""

    def __init__(self, settings: Settings) -> None:
        self.secret: str | bytes | None = setting(settings, "TOKEN_AUTH_SECRET")
        public_key = setting(settings, "TOKEN_AUTH_PUBLIC_KEY")
        if not self.secret and not public_key:
            raise ConfigurationError(
                "backboneio-token-auth needs TOKEN_AUTH_SECRET (HS256) or TOKEN_AUTH_PUBLIC_KEY "
                "(RS256); read them from the environment, never commit a secret"
            )
        if self.secret is not None:
            if not isinstance(self.secret, (str, bytes)):
                raise ConfigurationError("TOKEN_AUTH_SECRET must be a string")
            size = len(self.secret.encode() if isinstance(self.secret, str) else self.secret)
            if size < MIN_SECRET_BYTES:
                raise ConfigurationError(
                    f"TOKEN_AUTH_SECRET is {size} bytes; use at least {MIN_SECRET_BYTES} random "
                    "bytes (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
        self.public_key = read_public_key(public_key) if public_key else None
        self.algorithms = self._algorithms(setting(settings, "TOKEN_AUTH_ALGORITHMS"))
        self.issuer = setting(settings, "TOKEN_AUTH_ISSUER")
        self.audience = setting(settings, "TOKEN_AUTH_AUDIENCE")
        self.required = bool(setting(settings, "TOKEN_AUTH_REQUIRED"))
        self.require_exp = bool(setting(settings, "TOKEN_AUTH_REQUIRE_EXP"))
        self.leeway = setting(settings, "TOKEN_AUTH_LEEWAY")
        if not isinstance(self.leeway, (int, float)) or self.leeway < 0:
            raise ConfigurationError("TOKEN_AUTH_LEEWAY must be a number of seconds >= 0")
        self.channels_claim = setting(settings, "TOKEN_AUTH_CHANNELS_CLAIM")
        self.owner_attribute = setting(settings, "TOKEN_AUTH_OWNER_ATTRIBUTE")
        self.private_attribute = setting(settings, "TOKEN_AUTH_PRIVATE_ATTRIBUTE")
        self.required_claims = (["exp"] if self.require_exp else []) + (
            ["sub"] if self.owner_attribute else []
        )

    def _algorithms(self, value: Any) -> list[str]:
        if value is None:
            value = (["HS256"] if self.secret else []) + (["RS256"] if self.public_key else [])
        if isinstance(value, str):
            value = [value]
        known = HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS
        bad = [a for a in value if a not in known]
        if bad or not value:
            raise ConfigurationError(
                f"TOKEN_AUTH_ALGORITHMS: {bad or value!r} not allowed; choose from "
                f"{', '.join(sorted(known))} ('none' is never accepted)"
            )
        for alg in value:
            if alg in HMAC_ALGORITHMS and not self.secret:
                raise ConfigurationError(f"TOKEN_AUTH_ALGORITHMS has {alg}: set TOKEN_AUTH_SECRET")
            if alg in PUBLIC_KEY_ALGORITHMS and not self.public_key:
                raise ConfigurationError(
                    f"TOKEN_AUTH_ALGORITHMS has {alg}: set TOKEN_AUTH_PUBLIC_KEY"
                )
        return list(value)

    # -- connect ------------------------------------------------------------

    def token_from(self, environ: dict[str, Any], auth: Any) -> str | None:
        if isinstance(auth, dict) and auth.get("token") is not None:
            token = auth["token"]
            if not isinstance(token, str):
                raise ConnectionRefused("Malformed token: auth.token must be a string")
            return token
        header: str = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        return None

    def verify(self, token: str) -> Claims:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except (jwt.PyJWTError, TypeError, ValueError):
            # Any header PyJWT rejects (bad base64, a non-string kid...) is
            # the client's mistake, not a server failure worth a stack trace.
            raise ConnectionRefused("Malformed token") from None
        if alg not in self.algorithms:
            # Also what stops "alg: none" and HS256 tokens signed with the
            # public key: the key is chosen by our settings, never by the token.
            shown = repr(alg)
            if len(shown) > MAX_ALG_SHOWN:
                shown = shown[:MAX_ALG_SHOWN] + "..."
            raise ConnectionRefused(f"Token algorithm {shown} is not accepted")
        key = self.secret if alg in HMAC_ALGORITHMS else self.public_key
        assert key is not None  # _algorithms accepts only algorithms whose key is set
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": self.required_claims},
            )
        except jwt.ExpiredSignatureError:
            raise ConnectionRefused("Token expired") from None
        except jwt.ImmatureSignatureError:
            raise ConnectionRefused("Token not valid yet") from None
        except jwt.InvalidIssuerError:
            raise ConnectionRefused("Token has the wrong issuer") from None
        except jwt.InvalidAudienceError:
            raise ConnectionRefused("Token has the wrong audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise ConnectionRefused(f"Token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise ConnectionRefused("Token signature is invalid") from None
        except (jwt.PyJWTError, TypeError, ValueError):
            raise ConnectionRefused("Malformed token") from None
        if "exp" in claims:
            # PyJWT accepts an exp it can int(), such as "1767225600"; keep
            # the number so expiry is enforced on what was verified.
            try:
                claims["exp"] = int(claims["exp"])
                float(claims["exp"])  # 10**400 is an int, but no time the server can wait for
            except (TypeError, ValueError, OverflowError):
                raise ConnectionRefused("Token has an invalid 'exp' claim") from None
        verified = Claims(claims)
        verified.leeway = self.leeway
        return verified

    def authenticate(self, environ: dict[str, Any], auth: Any) -> Claims | None:
        token = self.token_from(environ, auth)
        if token is None:
            if self.required:
                raise ConnectionRefused("Token required")
            return None
        return self.verify(token)

    # -- while connected ----------------------------------------------------

    def expired(self, claims: Claims) -> bool:
        # The server disconnects at expires_at; this also covers a request
        # that arrives in the same instant, before the disconnect has run.
        deadline = claims.expires_at
        return deadline is not None and time.time() >= deadline

    def allowed_channels(self, claims: Claims) -> list[str] | None:
        if not self.channels_claim or self.channels_claim not in claims:
            return None
        value = claims[self.channels_claim]
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [c for c in value if isinstance(c, str)]
        return []  # a claim we cannot read allows nothing rather than everything

    def authorize(self, action: str, claims: Claims, channel: str | None) -> None:
        if self.expired(claims):
            raise Unauthorized("Token expired; reconnect with a new token")
        allowed = self.allowed_channels(claims)
        if allowed is None:
            return
        if channel is None:
            # Without a channel a socket hears (and its writes reach) every
            # client of the backend, which a channel-limited token must not.
            raise Forbidden(
                "This token is limited to channels; listen to one of them first",
                channels=allowed,
            )
        if not any(channel_matches(channel, entry) for entry in allowed):
            raise Forbidden(f"This token does not allow channel {channel!r}", channels=allowed)

    def recipient_allowed(self, identity: Any, model: Any) -> bool:
        if not isinstance(model, dict) or not model.get(self.private_attribute):
            return True
        owner = model.get(self.owner_attribute)
        return isinstance(identity, Claims) and owner is not None and identity.subject == owner


def channel_matches(channel: str, entry: str) -> bool:
    """Whether a channels claim entry allows this channel: exact, or a ``glob:`` pattern."""
    if entry.startswith(GLOB_PREFIX):
        return fnmatch.fnmatchcase(channel, entry[len(GLOB_PREFIX) :])
    return channel == entry


def verifier_for(settings: Settings, *, fresh: bool = False) -> TokenVerifier | None:
    """The verifier for these settings, None when the settings do not use the plugin."""
    return settings.memo(
        "token-auth.verifier",
        lambda: TokenVerifier(settings) if is_configured(settings) else None,
        fresh=fresh,
    )


class PrivateModels:
    """The ``authorize_broadcast`` part, registered only when the owner attribute is set.

    Implementing that hook at all sends every broadcast one recipient at a
    time, so a server that does not ask for private models should not pay.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @hookimpl
    def authorize_broadcast(self, identity: Any, model: Any) -> bool | None:
        verifier = verifier_for(self.settings)
        if verifier is None or verifier.recipient_allowed(identity, model):
            return None
        return False


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    for name, default, description in SETTINGS:
        register(name, default, description)


@hookimpl
def configure_server(sio: Any, settings: Settings) -> None:
    # Checked at start-up: a missing key stops the server instead of letting
    # every token through or refusing every one.
    verifier = verifier_for(settings, fresh=True)
    if verifier is None or not verifier.owner_attribute:
        return
    name = f"{ENTRY_POINT}-private-models"
    if sio.plugins.get_plugin(name) is None:
        sio.plugins.register(PrivateModels(settings), name=name)


@hookimpl
def authenticate(environ: dict[str, Any], auth: Any, settings: Settings) -> Any:
    verifier = verifier_for(settings)
    if verifier is None:
        return None
    return verifier.authenticate(environ, auth)


@hookimpl
def authorize(
    action: str, identity: Any, channel: str | None, req: Request | None, settings: Settings
) -> bool | None:
    verifier = verifier_for(settings)
    if verifier is not None and isinstance(identity, Claims):
        verifier.authorize(action, identity, channel)
    return None
