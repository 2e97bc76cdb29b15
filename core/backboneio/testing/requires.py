"""Skips for missing programs that say what to install.

::

    from backboneio.testing.requires import binary

    redis = binary("redis-server", "apt-get install redis-server")

Where ``BACKBONEIO_REQUIRE_ALL=1`` is set (as in CI), a missing dependency
fails the test instead, so nothing is ever skipped silently there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REQUIRE_ALL = os.environ.get("BACKBONEIO_REQUIRE_ALL") == "1"


def missing(what: str, install: str) -> None:
    """Skip the test (or fail it under BACKBONEIO_REQUIRE_ALL=1): ``what`` is not available."""
    message = f"{what} is not available; install it with: {install}"
    if REQUIRE_ALL:
        pytest.fail(message + " (BACKBONEIO_REQUIRE_ALL=1 forbids skipping)", pytrace=False)
    pytest.skip(message)


def binary(name: str, install: str, *, search: tuple[str, ...] = ()) -> str:
    """Path of executable ``name`` (also looked for in ``search`` dirs), or skip/fail."""
    found = shutil.which(name)
    if found:
        return found
    for folder in search:
        for candidate in sorted(Path("/").glob(folder.lstrip("/"))):
            path = candidate / name
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    missing(f"the {name} program", install)
    raise AssertionError("unreachable")
