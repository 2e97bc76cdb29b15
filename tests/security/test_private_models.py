"""Per-recipient filtering: a private model's notifications reach only its owner.

Implemented by backboneio-token-auth's opt-in TOKEN_AUTH_OWNER_ATTRIBUTE,
installed through its entry point like any user would install it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest

from tests.security.helpers import SECRET, connect, reason, token
from tests.support.server import ServerProcess

SETTINGS = f"""
PLUGINS = ["backboneio-token-auth"]
TOKEN_AUTH_SECRET = {SECRET!r}
TOKEN_AUTH_OWNER_ATTRIBUTE = "owner"
TOKEN_AUTH_REQUIRED = False  # to show anonymous sockets do not hear private models either
BACKENDS = {{"notes": {{"store": "memory"}}}}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ServerProcess(SETTINGS) as srv:
        yield srv.url


def test_only_the_owner_hears_about_a_private_model(server: str) -> None:
    with (
        connect(server, "notes", auth={"token": token(sub="alice")}) as alice_tab1,
        connect(server, "notes", auth={"token": token(sub="alice")}) as alice_tab2,
        connect(server, "notes", auth={"token": token(sub="bob")}) as bob,
        connect(server, "notes") as anonymous,
    ):
        for client in (alice_tab1, alice_tab2, bob, anonymous):
            client.listen()
        private = alice_tab1.ok("create", {"text": "diary", "private": True, "owner": "alice"})
        public = alice_tab1.ok("create", {"text": "hello all", "owner": "alice"})
        assert alice_tab2.next_synced() == ("create", private)
        assert alice_tab2.next_synced() == ("create", public)
        # Notifications to one socket arrive in order: the public one coming
        # first proves the private one was never sent to them.
        assert bob.next_synced() == ("create", public)
        assert anonymous.next_synced() == ("create", public)


def test_updates_and_deletes_of_a_private_model_stay_private(server: str) -> None:
    with (
        connect(server, "notes", auth={"token": token(sub="carol")}) as carol,
        connect(server, "notes", auth={"token": token(sub="carol")}) as carol_phone,
        connect(server, "notes", auth={"token": token(sub="dave")}) as dave,
    ):
        for client in (carol, carol_phone, dave):
            client.listen("shared")
        note = carol.ok("create", {"text": "v1", "private": True, "owner": "carol"})
        patched = carol.ok("patch", {"id": note["id"], "text": "v2"})
        deleted = carol.ok("delete", {"id": note["id"]})
        end = carol.ok("create", {"text": "public end"})
        assert [carol_phone.next_synced() for _ in range(4)] == [
            ("create", note),
            ("patch", patched),
            ("delete", deleted),
            ("create", end),
        ]
        assert dave.next_synced() == ("create", end)


def test_with_private_models_a_token_needs_a_subject(server: str) -> None:
    # Without "sub" a token could never own anything; refusing it says so at once.
    nobody = jwt.encode({"exp": int(time.time()) + 60, "role": "reader"}, SECRET)
    assert reason(server, "notes", auth={"token": nobody}) == "Token lacks the 'sub' claim"
