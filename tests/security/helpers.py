"""Helpers shared by the security tests: connection attempts and token minting."""

from __future__ import annotations

import queue
import time
from typing import Any

import jwt
import socketio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.client import TIMEOUT, BackendClient

# Test-only keys: long enough for RFC 7518, never used outside these tests.
SECRET = "test-only-hs256-secret-" + "x" * 40
OTHER_SECRET = "another-test-only-secret-" + "y" * 40


def rsa_keys() -> tuple[str, str]:
    """A fresh (private PEM, public PEM) pair."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def token(key: Any = SECRET, algorithm: str = "HS256", ttl: float = 300, **claims: Any) -> str:
    """A signed JWT; ``ttl`` seconds until ``exp`` (negative: already expired)."""
    payload = {"sub": "alice", "exp": int(time.time() + ttl), **claims}
    return jwt.encode(payload, key, algorithm=algorithm)


def refusal(
    url: str,
    backend: str,
    *,
    auth: Any = None,
    headers: dict[str, str] | None = None,
    origin: str | None = None,
) -> Any:
    """Try to connect; the ``connect_error`` data the server sent, or None if it accepted.

    A refusal at the Engine.IO level (such as a bad Origin) has no Socket.IO
    reason; it is reported as the string ``"engine.io refused"``.
    """
    extra = {"origin": origin} if origin else {}
    sio = socketio.Client(reconnection=False, websocket_extra_options=extra)
    namespace = f"/{backend}"
    errors: queue.Queue[Any] = queue.Queue()
    sio.on(
        "connect_error", lambda *data: errors.put(data[0] if data else None), namespace=namespace
    )
    try:
        sio.connect(
            url,
            namespaces=[namespace],
            transports=["websocket"],
            auth=auth,
            headers=headers or {},
            wait_timeout=TIMEOUT,
        )
    except socketio.exceptions.ConnectionError as exc:
        try:
            data = errors.get(timeout=TIMEOUT)
        except queue.Empty:
            data = None
        # A Socket.IO refusal carries {"message": ...}; a refused Engine.IO
        # handshake (HTTP 400) only a transport error string.
        return data if isinstance(data, dict) else f"engine.io refused: {data or exc}"
    else:
        sio.disconnect()
        return None


def reason(url: str, backend: str, **kwargs: Any) -> str:
    """The message of a refused connection (fails the test if it was accepted)."""
    data = refusal(url, backend, **kwargs)
    assert data is not None, "the connection was accepted"
    return data["message"] if isinstance(data, dict) else str(data)


def connect(url: str, backend: str, **kwargs: Any) -> BackendClient:
    return BackendClient(url, backend, **kwargs)
