"""backboneio-timestamps, installed through its entry point, on a real server."""

from __future__ import annotations

from datetime import datetime

import pytest


@pytest.fixture
def backboneio_settings():
    return {"TIMESTAMPS_BACKENDS": ["stamped"], "BACKENDS": {"stamped": {}, "plain": {}}}


def test_create_and_patch_are_stamped(backboneio_client):
    client = backboneio_client("stamped")
    created = client.ok("create", {"text": "hi"})
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None
    assert created["updated_at"] == created["created_at"]
    patched = client.ok("patch", {"id": created["id"], "text": "hello"})
    assert patched["created_at"] == created["created_at"]
    assert patched["updated_at"] >= created["updated_at"]


def test_other_backends_are_left_alone(backboneio_client):
    created = backboneio_client("plain").ok("create", {"text": "hi"})
    assert set(created) == {"id", "text"}
