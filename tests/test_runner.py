"""eventlet stays inside runner.py, and importing backboneio stays quiet about it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import backboneio

CORE = Path(backboneio.__file__).parent


def test_only_runner_imports_eventlet():
    importers = [
        path.relative_to(CORE).as_posix()
        for path in CORE.rglob("*.py")
        if re.search(r"^\s*(import|from) eventlet", path.read_text(), re.MULTILINE)
    ]
    assert importers == ["runner.py"]


def test_importing_backboneio_raises_no_warning_even_with_warnings_as_errors():
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import backboneio, backboneio.socketio_adapter"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_offload_runs_a_blocking_call_in_a_thread_and_returns_its_result():
    import threading

    main = threading.get_ident()
    assert backboneio.runner.offload(threading.get_ident) != main
    assert backboneio.runner.offload(lambda a, b: a + b, 2, b=3) == 5
