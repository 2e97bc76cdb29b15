"""Real python-socketio clients: backboneio.testing.client, re-exported for this repository."""

from __future__ import annotations

from backboneio.testing.client import TIMEOUT, BackendClient, refusal, require_client_extra

__all__ = ["TIMEOUT", "BackendClient", "refusal", "require_client_extra"]
