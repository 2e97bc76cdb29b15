"""Helpers shared by the security tests: connection attempts and token minting."""

from __future__ import annotations

import queue
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.client import BackendClient, refusal

# Test-only keys: long enough for RFC 7518, never used outside these tests.
SECRET = "test-only-hs256-secret-" + "x" * 40
OTHER_SECRET = "another-test-only-secret-" + "y" * 40


def pem_pair(key: Any) -> tuple[str, str]:
    """(private PEM, public PEM) of a cryptography private key (RSA, EC...)."""
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


def rsa_keys() -> tuple[str, str]:
    """A fresh (private PEM, public PEM) pair."""
    return pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def token(key: Any = SECRET, algorithm: str = "HS256", ttl: float = 300, **claims: Any) -> str:
    """A signed JWT; ``ttl`` seconds until ``exp`` (negative: already expired)."""
    payload = {"sub": "alice", "exp": int(time.time() + ttl), **claims}
    return jwt.encode(payload, key, algorithm=algorithm)


def reason(url: str, backend: str, **kwargs: Any) -> str:
    """The message of a refused connection (fails the test if it was accepted)."""
    data = refusal(url, backend, **kwargs)
    assert data is not None, "the connection was accepted"
    return data["message"] if isinstance(data, dict) else str(data)


def connect(url: str, backend: str, **kwargs: Any) -> BackendClient:
    return BackendClient(url, backend, **kwargs)


def disconnects(client: BackendClient) -> queue.Queue[Any]:
    """A queue that gets an item when the server disconnects this client's namespace."""
    gone: queue.Queue[Any] = queue.Queue()
    client.sio.on("disconnect", lambda *reason: gone.put(reason), namespace=client.namespace)
    return gone
