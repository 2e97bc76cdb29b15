"""The servers the benchmark compares, each started as a fresh, pinned process.

Every server listens on 127.0.0.1 at a free port and runs on core 0
(``taskset -c 0``); the load generator runs on core 1. A server is ready when
its port accepts a connection.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
JS = BENCH / "js"
SERVER_CORE = "0"
LOAD_CORE = "1"


@dataclass(frozen=True)
class ServerSpec:
    """How to start one kind of server, and which client protocol it speaks."""

    name: str
    protocol: str  # "backbone" (Backbone.IO's wire) or "feathers"
    kind: str  # "backboneio", "python" (a script) or "node" (a script)
    settings: str = ""  # for kind "backboneio": the settings module's text
    script: str = ""
    description: str = ""
    resumes: bool = False  # serves listen(channel, {since}) (the change log)
    env: dict[str, str] = field(default_factory=dict)

    def command(self, port: int, settings_module: str | None) -> list[str]:
        if self.kind == "backboneio":
            assert settings_module is not None
            return [
                sys.executable,
                "-m",
                "backboneio",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--settings",
                settings_module,
            ]
        if self.kind == "python":
            return [sys.executable, str(BENCH / self.script), str(port)]
        return [node_binary(), str(JS / self.script), str(port)]


BACKBONEIO_SETTINGS = 'PLUGINS = []\nBACKENDS = {"messages": {"store": "memory"}}\n'

SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec(
            "backboneio",
            "backbone",
            "backboneio",
            settings=BACKBONEIO_SETTINGS,
            description="`backboneio serve`, one memory backend, no plugins, default settings",
        ),
        ServerSpec(
            "bare",
            "backbone",
            "python",
            script="bare_server.py",
            description="bare python-socketio 5 on eventlet (bench/bare_server.py): no deflate, "
            "TCP_NODELAY, pool of 20,000, backlog 4,096; the wire's minimum",
        ),
        ServerSpec(
            "feathers",
            "feathers",
            "node",
            script="feathers_server.js",
            description="Feathers 5 with @feathersjs/socketio and a memory service; creates "
            "published to every other connection (bench/js/feathers_server.js)",
        ),
        ServerSpec(
            "socketio-node",
            "backbone",
            "node",
            script="socketio_server.js",
            description="Node socket.io 4 speaking Backbone.IO's wire with the bare server's "
            "least work (bench/js/socketio_server.js)",
        ),
    )
}


def add_log_off_variant(setting_line: str) -> None:
    """Register "backboneio, log off": the same server with the change log switched off."""
    SERVERS["backboneio-log-off"] = ServerSpec(
        "backboneio-log-off",
        "backbone",
        "backboneio",
        settings=BACKBONEIO_SETTINGS + setting_line + "\n",
        description=f"as backboneio, with `{setting_line}`",
    )


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed: apt-get install nodejs npm")
    return node


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to the hard limit; children inherit it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pinned(core: str, command: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    if taskset is None:
        raise SystemExit("taskset is not installed: apt-get install util-linux")
    return [taskset, "-c", core, *command]


class RunningServer:
    """One fresh server process: ``with RunningServer(spec) as srv: srv.url, srv.pid``."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="backboneio-bench-")
        self.log_path = Path(self._dir.name, "server.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> RunningServer:
        module = None
        if self.spec.kind == "backboneio":
            module = "bench_settings"
            Path(self._dir.name, f"{module}.py").write_text(self.spec.settings)
        env = {**os.environ, **self.spec.env, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join([self._dir.name, env.get("PYTHONPATH", "")])
        env["NODE_PATH"] = str(JS / "node_modules")
        command = pinned(SERVER_CORE, self.spec.command(self.port, module))
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=self._dir.name,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited at start-up:\n{self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.spec.name} did not listen within {timeout}s:\n{self.log}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                # nothing is measured at shutdown: do not wait out a slow drain
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        self._dir.cleanup()


def interleaved(
    names: list[str],
    rounds: int,
    measure: Callable[[str], dict[str, Any]],
    headline: str,
) -> dict[str, list[dict[str, Any]]]:
    """``measure(name)`` for every name, ``rounds`` times, the order rotated each
    round so no variant always runs first (or last, on a warmer machine)."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            result = measure(name)
            results[name].append(result)
            shown = result.get(headline, result.get("error", "?"))
            print(f"round {round_ + 1} {name}: {shown}", flush=True)
    return results
