"""backboneio-token-auth against real servers: settings, identity, where tokens come from.

The attacks (forged, expired, confused algorithms, channel limits) are in
tests/security/ at the repository root.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from backboneio import Unauthorized
from backboneio.settings import Settings
from backboneio.testing.client import BackendClient, refusal
from backboneio.testing.server import ServerProcess
from backboneio_token_auth import TokenVerifier
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.security.helpers import pem_pair

SECRET = "token-auth-plugin-test-secret-" + "z" * 40

WHOAMI = """
def whoami(req, res, next):
    res.end({"identity": req.identity})
"""


def settings(**extra: Any) -> str:
    lines = [WHOAMI, 'PLUGINS = ["backboneio-token-auth"]']
    lines += [f"{name} = {value!r}" for name, value in extra.items()]
    lines.append('BACKENDS = {"who": {"middleware": [__name__ + ".whoami"]}}')
    return "\n".join(lines) + "\n"


def mint(key: Any = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    return jwt.encode({"exp": int(time.time()) + 300, **claims}, key, algorithm=algorithm)


def whoami(url: str, **kwargs: Any) -> Any:
    with BackendClient(url, "who", **kwargs) as client:
        return client.ok("read")["identity"]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ServerProcess(settings(TOKEN_AUTH_SECRET=SECRET)) as srv:
        yield srv.url


def test_the_claims_are_the_identity(server: str) -> None:
    token = mint(sub="ann", role="editor")
    claims = whoami(server, auth={"token": token})
    assert claims["sub"] == "ann"
    assert claims["role"] == "editor"


def test_a_bearer_header_is_read_when_auth_has_no_token(server: str) -> None:
    headers = {"Authorization": f"Bearer {mint(sub='bea')}"}
    assert whoami(server, headers=headers)["sub"] == "bea"


def test_the_auth_payload_wins_over_the_header(server: str) -> None:
    headers = {"Authorization": f"Bearer {mint(sub='header')}"}
    assert whoami(server, auth={"token": mint(sub="payload")}, headers=headers)["sub"] == "payload"


def test_without_a_token_the_connection_is_refused_by_default(server: str) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        refused = refusal(server, "who", headers=headers)
        assert refused == {"message": "Token required"}


def test_anonymous_sockets_when_the_settings_allow_them() -> None:
    with ServerProcess(settings(TOKEN_AUTH_SECRET=SECRET, TOKEN_AUTH_REQUIRED=False)) as srv:
        assert whoami(srv.url) is None
        assert whoami(srv.url, headers={"Authorization": "Basic dXNlcjpwYXNz"}) is None
        assert whoami(srv.url, auth={"token": mint(sub="ann")})["sub"] == "ann"


def test_a_string_exp_becomes_a_number_in_the_identity(server: str) -> None:
    expires = int(time.time()) + 300
    claims = whoami(server, auth={"token": mint(sub="ann", exp=str(expires))})
    assert claims["exp"] == expires


def test_tokens_without_exp_only_when_the_settings_allow_them() -> None:
    forever = jwt.encode({"sub": "ann"}, SECRET)
    with ServerProcess(settings(TOKEN_AUTH_SECRET=SECRET, TOKEN_AUTH_REQUIRE_EXP=False)) as srv:
        assert whoami(srv.url, auth={"token": forever})["sub"] == "ann"
        refused = refusal(srv.url, "who", auth={"token": mint(sub="ann", exp=int(time.time()) - 5)})
        assert refused == {"message": "Token expired"}


def test_the_per_request_check_refuses_claims_past_their_expiry() -> None:
    # The server disconnects an expired socket; this check covers a request
    # already on its way at that instant, which no client can time on purpose.
    verifier = TokenVerifier(Settings({"TOKEN_AUTH_SECRET": SECRET, "TOKEN_AUTH_LEEWAY": 10}))
    late = verifier.verify(mint(sub="ann", exp=int(time.time()) - 5))
    assert late.expires_at == late["exp"] + 10
    verifier.authorize("sync", late, None)  # still inside the leeway
    late["exp"] -= 10
    with pytest.raises(Unauthorized, match="Token expired"):
        verifier.authorize("sync", late, None)


def test_issuer_and_audience_are_checked_when_set() -> None:
    text = settings(
        TOKEN_AUTH_SECRET=SECRET, TOKEN_AUTH_ISSUER="https://id.test", TOKEN_AUTH_AUDIENCE="app"
    )
    with ServerProcess(text) as srv:
        token = mint(sub="ann", iss="https://id.test", aud=["app", "other"])
        assert whoami(srv.url, auth={"token": token})["sub"] == "ann"


def test_rs256_with_the_public_key_as_pem_text() -> None:
    private, public = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with ServerProcess(settings(TOKEN_AUTH_PUBLIC_KEY=public)) as srv:
        token = mint(private, "RS256", sub="rsa")
        assert whoami(srv.url, auth={"token": token})["sub"] == "rsa"


def test_es256_when_listed_in_algorithms(tmp_path: Path) -> None:
    private, public = pem_pair(ec.generate_private_key(ec.SECP256R1()))
    (tmp_path / "ec.pem").write_text(public)
    text = settings(TOKEN_AUTH_PUBLIC_KEY=str(tmp_path / "ec.pem"), TOKEN_AUTH_ALGORITHMS=["ES256"])
    with ServerProcess(text) as srv:
        token = mint(private, "ES256", sub="ec")
        assert whoami(srv.url, auth={"token": token})["sub"] == "ec"


def test_a_secret_and_a_public_key_together_each_verify_their_own_algorithm() -> None:
    private, public = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    text = settings(
        TOKEN_AUTH_SECRET=SECRET,
        TOKEN_AUTH_PUBLIC_KEY=public,
        TOKEN_AUTH_ALGORITHMS=["HS256", "RS256"],
    )
    with ServerProcess(text) as srv:
        assert whoami(srv.url, auth={"token": mint(sub="hs")})["sub"] == "hs"
        assert whoami(srv.url, auth={"token": mint(private, "RS256", sub="rs")})["sub"] == "rs"


def test_leeway_accepts_a_token_that_just_expired() -> None:
    with ServerProcess(settings(TOKEN_AUTH_SECRET=SECRET, TOKEN_AUTH_LEEWAY=120)) as srv:
        token = mint(sub="late", exp=int(time.time()) - 30)
        assert whoami(srv.url, auth={"token": token})["sub"] == "late"


def start_fails(text: str) -> str:
    srv = ServerProcess(text)
    with pytest.raises(RuntimeError) as failed:
        srv.start()
    return str(failed.value)


def test_enabled_without_a_key_stops_start_up() -> None:
    log = start_fails(settings())
    assert "configuration error" in log
    assert "TOKEN_AUTH_SECRET" in log


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"TOKEN_AUTH_SECRET": "short"}, "TOKEN_AUTH_SECRET is 5 bytes"),
        ({"TOKEN_AUTH_SECRET": SECRET, "TOKEN_AUTH_ALGORITHMS": ["none"]}, "'none'"),
        (
            {"TOKEN_AUTH_SECRET": SECRET, "TOKEN_AUTH_ALGORITHMS": ["RS256"]},
            "TOKEN_AUTH_PUBLIC_KEY",
        ),
        ({"TOKEN_AUTH_PUBLIC_KEY": "/no/such/key.pem"}, "cannot read"),
        ({"TOKEN_AUTH_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nxx\n"}, "not a PEM public key"),
        ({"TOKEN_AUTH_SECRET": SECRET, "TOKEN_AUTH_LEEWAY": -1}, "TOKEN_AUTH_LEEWAY"),
    ],
)
def test_bad_settings_stop_start_up(extra: dict[str, Any], message: str) -> None:
    log = start_fails(settings(**extra))
    assert "configuration error" in log
    assert message in log


def test_a_private_key_given_as_the_public_key_stops_start_up() -> None:
    private, _ = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    log = start_fails(settings(TOKEN_AUTH_PUBLIC_KEY=private))
    assert "holds a private key" in log


def test_installed_but_not_configured_it_stays_out_of_the_way() -> None:
    text = WHOAMI + 'BACKENDS = {"who": {"middleware": [__name__ + ".whoami"]}}\n'
    with ServerProcess(text) as srv:
        assert whoami(srv.url, auth={"token": mint(sub="ann")}) is None
