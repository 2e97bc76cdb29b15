"""Skips for missing servers and browsers: backboneio.testing.requires, re-exported."""

from __future__ import annotations

from backboneio.testing.requires import REQUIRE_ALL, binary, missing

__all__ = ["REQUIRE_ALL", "binary", "missing"]
