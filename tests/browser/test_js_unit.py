"""Runs the node tests of backbone.io.js (tests/js/*.test.js) as part of pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.browser import JS_DIR


def test_the_node_tests_of_the_client_pass(node_modules: Path, node: str) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        [node, "--test"],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = [line for line in done.stdout.splitlines() if line.startswith("# ")]
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-4000:]
    assert "# fail 0" in summary
    assert any(line.startswith("# pass ") and line != "# pass 0" for line in summary)
