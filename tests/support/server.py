"""This repository's ServerProcess: backboneio.testing's, with ``tests/`` on the server's path.

The shipped helper lives in ``backboneio.testing.server``; the repository's own
tests also let settings name modules under ``tests/`` (``apps.middleware``...).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backboneio.testing import server as _shipped
from backboneio.testing.server import READY_LINE, free_port, settings_source

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["READY_LINE", "ROOT", "ServerProcess", "free_port", "settings_source"]


class ServerProcess(_shipped.ServerProcess):
    __doc__ = _shipped.ServerProcess.__doc__

    def __init__(
        self,
        settings: Any = None,
        *,
        pythonpath: Sequence[str | os.PathLike[str]] = (),
        **options: Any,
    ) -> None:
        super().__init__(settings, pythonpath=[*pythonpath, ROOT / "tests"], **options)
