"""Store throughput: filled in once the store plugins land."""

from __future__ import annotations

from typing import Any


def measure(quick: bool = False) -> list[dict[str, Any]]:
    return [{"store": "memory"}]
