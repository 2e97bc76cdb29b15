"""A real ``backboneio serve`` process on a free loopback port, for tests.

::

    from backboneio.testing.server import ServerProcess

    with ServerProcess({"BACKENDS": {"notes": {}}}) as server:
        ...  # talk to server.url with backboneio.testing.client.BackendClient

The server runs with this interpreter (``python -m backboneio serve``), so it
finds the plugins installed in this environment, and it is stopped (SIGTERM,
then SIGKILL) when the ``with`` block ends. Nothing here needs the ``test``
extra; only the client does.
"""

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: What ``backboneio serve`` prints once it accepts connections.
READY_LINE = "backboneio serving on"

SettingsLike = Mapping[str, Any] | str | None


def free_port() -> int:
    """A TCP port nobody listens on at the moment (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def settings_source(settings: SettingsLike) -> str | None:
    """The text of a settings module: ``settings`` itself if it is text, else
    one ``NAME = repr(value)`` line per item of a dict (values must be Python
    literals: strings, numbers, booleans, None, lists, tuples, dicts)."""
    if settings is None:
        return None
    if isinstance(settings, str):
        return textwrap.dedent(settings)
    lines = []
    for name, value in settings.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise ValueError(f"setting name {name!r} is not a Python identifier")
        lines.append(f"{name} = {value!r}")
    return "\n".join(lines) + "\n"


class ServerProcess:
    """``with ServerProcess(settings) as srv: srv.url`` -- a real server.

    ``settings`` is a dict of settings, the text of a settings module, or None
    for no settings module. The module is written to a temporary directory
    that is the server's working directory and on its ``PYTHONPATH``, ahead of
    the ``pythonpath`` folders given here and any inherited ``PYTHONPATH``, so
    the settings may name middleware defined in the settings text itself
    (``__name__ + ".my_middleware"``) or in a module of those folders.

    ``args`` are extra ``serve`` arguments, ``env`` extra environment
    variables. ``script`` runs a program of your own instead of ``backboneio
    serve``: it is given the port as its only argument and must print
    :data:`READY_LINE` once it serves.
    """

    def __init__(
        self,
        settings: SettingsLike = None,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        startup_timeout: float = 20.0,
        script: str | None = None,
        pythonpath: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        self.settings = settings_source(settings)
        self.args = tuple(args)
        self.env = dict(env or {})
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.script = script
        self.pythonpath = [str(path) for path in pythonpath]
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._dir = tempfile.TemporaryDirectory(prefix="backboneio-test-")
        self.module = f"settings_{uuid.uuid4().hex[:8]}"
        if self.settings is not None:
            Path(self._dir.name, f"{self.module}.py").write_text(self.settings)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def directory(self) -> Path:
        """The server's working directory (where its settings module is)."""
        return Path(self._dir.name)

    def command(self) -> list[str]:
        if self.script is not None:  # a program of its own, given the port
            return [sys.executable, self.script, str(self.port)]
        cmd = [sys.executable, "-m", "backboneio", "serve"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        if self.settings is not None:
            cmd += ["--settings", self.module]
        return cmd + list(self.args)

    def start(self) -> ServerProcess:
        """Start the server and wait until it serves; RuntimeError (with its output) if not."""
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(
            [self._dir.name, *self.pythonpath, env.get("PYTHONPATH", "")]
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
                if READY_LINE in line:
                    ready.set()

        threading.Thread(target=pump, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("backboneio server did not start:\n" + self.log)
        return self

    def stop(self) -> int | None:
        """Stop the server (if running); its exit code."""
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

    def wait_for_output(self, text: str, timeout: float = 10.0) -> str:
        """The first line of the server's output containing ``text``, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.output):
                if text in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"the server never printed {text!r}:\n{self.log}")
            time.sleep(0.05)

    @property
    def log(self) -> str:
        """Everything the server printed (stdout and stderr) so far."""
        return "".join(self.output)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        # The settings directory stays until garbage collection, so the same
        # ServerProcess can be entered again.
        self.stop()
