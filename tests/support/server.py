"""Runs a real ``backboneio serve`` process on a free loopback port for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``with ServerProcess(settings_source) as srv: srv.url`` -- a real server.

    ``settings`` is the text of a settings module (written to a temporary
    directory that is on the server's PYTHONPATH along with ``tests/``), or
    None for no settings module. ``args`` are extra ``serve`` arguments.
    """

    def __init__(
        self,
        settings: str | None = None,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        port: int | None = None,
        startup_timeout: float = 20.0,
        script: str | None = None,
    ) -> None:
        self.settings = textwrap.dedent(settings) if settings is not None else None
        self.args = args
        self.env = env or {}
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.script = script
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._dir = tempfile.TemporaryDirectory(prefix="backboneio-test-")
        self.module = f"settings_{uuid.uuid4().hex[:8]}"
        if self.settings is not None:
            Path(self._dir.name, f"{self.module}.py").write_text(self.settings)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.script is not None:  # a program of its own, given the port
            return [sys.executable, self.script, str(self.port)]
        cmd = [
            sys.executable,
            "-m",
            "backboneio",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.settings is not None:
            cmd += ["--settings", self.module]
        return cmd + list(self.args)

    def start(self) -> ServerProcess:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(
            [self._dir.name, str(ROOT / "tests"), env.get("PYTHONPATH", "")]
        )
        env["PYTHONUNBUFFERED"] = "1"
        self.output = []
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self._dir.name,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        ready = threading.Event()

        def pump(proc: subprocess.Popen[str]) -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.output.append(line)
                if "backboneio serving on" in line:
                    ready.set()

        threading.Thread(target=pump, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("backboneio server did not start:\n" + self.log)
        return self

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode
        self.proc = None
        return code

    def restart(self) -> ServerProcess:
        """Stop and start again on the same port (clients should reconnect)."""
        self.stop()
        return self.start()

    @property
    def log(self) -> str:
        return "".join(self.output)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        # The settings directory stays until garbage collection, so the same
        # ServerProcess can be entered again.
        self.stop()
