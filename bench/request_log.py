"""What the request log costs a ``backboneio serve`` process, per create, end to end.

    python bench/request_log.py [--rounds 5] [--clients 16] [--duration 3]
                                [--variants warning,info,...] [--sink file|pipe]
                                [--markdown FILE]

Each measurement starts a fresh ``backboneio serve`` (one memory backend, no
plugins) pinned to core 0 and drives it with the Node load generator
(bench/js/load.js, scenario ``roundtrip``: N clients in a closed loop of
acked creates, each broadcast to the others) pinned to core 1. The figure is
the server's CPU (utime + stime from /proc/PID/stat over the measured window)
per acked create. Variants differ only by their settings' last lines;
rounds are interleaved, the order rotated each round, and the table gives
medians with the CPU the rest of the machine used meanwhile.

``--sink`` says where the server's stdout and stderr go: a file (as
bench/run.py does), or a pipe that this script drains (as under systemd,
Docker or a terminal). Nothing is asserted: this prints numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from run import node_modules, run_load
from servers import BACKBONEIO_SETTINGS, SERVER_CORE, RunningServer, ServerSpec

# The request log as it was before requestlog.Writer (2026-12-04): every line a
# record through a logging.StreamHandler. The settings module is loaded before
# `serve` configures logging, so it can wrap configure().
STDLIB_HANDLER = """
import logging, sys
import backboneio.requestlog as _requestlog
_configure = _requestlog.configure
def _stdlib_configure(level="INFO", fmt="text", stream=None):
    _configure(level, fmt, stream)
    _requestlog._writer = None
    handler = logging.StreamHandler(stream or sys.stderr)
    json = fmt == "json"
    handler.setFormatter(
        _requestlog.JSONFormatter() if json else logging.Formatter(_requestlog.TEXT_FORMAT)
    )
    logging.root.handlers[:] = [handler]
_requestlog.configure = _stdlib_configure
"""

# --in-situ: the time spent logging, measured inside the server (perf_counter;
# no green thread switch happens inside these calls), printed at exit.
IN_SITU = """
import atexit, sys, time
import backboneio.hub as _hub, backboneio.requestlog as _rl
_spent = {"synced": [0.0, 0], "batches": [0.0, 0]}
def _timed(key, fn, count=lambda *a: 1):
    def timed(*args):
        n = count(*args)
        began = time.perf_counter()
        try:
            return fn(*args)
        finally:
            _spent[key][0] += time.perf_counter() - began
            _spent[key][1] += n
    return timed
_hub.log_sync = _timed("synced", _hub.log_sync)
_rl.Writer._write_queued = _timed("batches", _rl.Writer._write_queued, lambda w: len(w.queue))
def _report():
    calls, lines = _spent["synced"][1], _spent["batches"][1]
    sys.stdout.write(
        f"IN-SITU synced_us={_spent['synced'][0] / max(calls, 1) * 1e6:.2f} calls={calls} "
        f"batch_us_per_line={_spent['batches'][0] / max(lines, 1) * 1e6:.2f} lines={lines}\\n"
    )
    sys.stdout.flush()
atexit.register(_report)
"""

# name -> the settings' extra lines
VARIANTS: dict[str, str] = {
    "warning": 'LOG_LEVEL = "WARNING"\n',
    "info": 'LOG_LEVEL = "INFO"\n',
    "info-stdlib": 'LOG_LEVEL = "INFO"\n' + STDLIB_HANDLER,
    "info-json": 'LOG_LEVEL = "INFO"\nLOG_FORMAT = "json"\n',
    "info-json-stdlib": 'LOG_LEVEL = "INFO"\nLOG_FORMAT = "json"\n' + STDLIB_HANDLER,
}


class PipedServer(RunningServer):
    """A RunningServer whose output goes to a pipe, drained by a thread of ours."""

    def start(self, timeout: float = 30.0) -> PipedServer:
        module = "bench_settings"
        Path(self._dir.name, f"{module}.py").write_text(self.spec.settings)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join([self._dir.name, env.get("PYTHONPATH", "")])
        command = servers.pinned(SERVER_CORE, self.spec.command(self.port, module))
        self.proc = subprocess.Popen(
            command,
            cwd=self._dir.name,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines = 0
        out = self.proc.stdout
        assert out is not None

        def drain() -> None:
            for _ in out:
                self.lines += 1

        threading.Thread(target=drain, daemon=True).start()
        self._wait_listening(timeout)
        return self

    def _wait_listening(self, timeout: float) -> None:
        import socket

        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited at start-up")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.spec.name} did not listen within {timeout}s")


def measure(spec: ServerSpec, sink: str, clients: int, timing: dict[str, float]) -> dict[str, Any]:
    server_class = PipedServer if sink == "pipe" else RunningServer
    server = server_class(spec)
    with server:
        time.sleep(0.3)
        result = run_load(server, "roundtrip", {"clients": clients}, timing=timing)
        server.stop()  # its exit prints the in-situ figures, if asked for
        if sink == "file":
            for line in server.log.splitlines():
                if line.startswith("IN-SITU "):
                    result["inSitu"] = dict(
                        (k, float(v)) for k, v in (f.split("=") for f in line.split()[1:])
                    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--variants", default="warning,info,info-stdlib", help=", ".join(VARIANTS))
    parser.add_argument("--sink", choices=("file", "pipe"), default="file")
    parser.add_argument("--settings", default="", help="extra settings lines for every variant")
    parser.add_argument(
        "--in-situ",
        action="store_true",
        help="also time the logging inside the server (file sink only; adds its own overhead)",
    )
    parser.add_argument("--markdown", help="also write the table to FILE")
    args = parser.parse_args(argv)
    node_modules()
    servers.raise_open_file_limit()
    names = args.variants.split(",")
    specs = [
        ServerSpec(
            name,
            "backbone",
            "backboneio",
            settings=BACKBONEIO_SETTINGS
            + args.settings.replace("\\n", "\n")
            + VARIANTS[name]
            + (IN_SITU if args.in_situ else ""),
        )
        for name in names
    ]
    timing = {"warmup": args.warmup, "duration": args.duration}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(args.rounds):
        order = specs[r % len(specs) :] + specs[: r % len(specs)]
        for spec in order:
            result = measure(spec, args.sink, args.clients, timing)
            rows[spec.name].append(result)
            if "error" in result:
                print(f"round {r + 1} {spec.name}: {result['error'][:300]}", flush=True)
                continue
            print(
                f"round {r + 1} {spec.name:12} {result['serverCpuUsPerOp']:7.1f} µs/create "
                f"{result['opsPerSec']:8.0f} ops/s  other {result['cpu']['otherPct']:.0f}%  "
                f"load {result['cpu']['loadPct']:.0f}%"
                + (
                    f"  in situ: synced {result['inSitu']['synced_us']:.1f} µs, "
                    f"batch {result['inSitu']['batch_us_per_line']:.1f} µs per line"
                    if "inSitu" in result
                    else ""
                ),
                flush=True,
            )
    table = report(rows, args)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


QUIET_PCT = 25.0  # a round is quiet when the rest of the machine used less than this


def report(rows: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    names = list(rows)
    rounds = list(zip(*rows.values(), strict=True))

    def ok(round_: tuple[dict[str, Any], ...]) -> bool:
        return all("error" not in r for r in round_)

    def quiet(round_: tuple[dict[str, Any], ...]) -> bool:
        return ok(round_) and all(r["cpu"]["otherPct"] < QUIET_PCT for r in round_)

    out = [
        f"A{args.clients}, {args.rounds} interleaved rounds ({sum(map(quiet, rounds))} quiet: "
        f"the rest of the machine below {QUIET_PCT:.0f} % of a core in every window), "
        f"output to a {args.sink}, {args.duration:g} s windows; medians over rounds",
        "",
        "| variant | µs per create, all rounds | / first, all | µs per create, quiet rounds "
        "| / first, quiet | ops/s, quiet | other CPU % per round |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, name in enumerate(names):
        cells = [name]
        for pick in (ok, quiet):
            chosen = [r for r in rounds if pick(r)]
            if not chosen:
                cells += ["-", "-"]
                continue
            cells.append(f"{statistics.median(r[i]['serverCpuUsPerOp'] for r in chosen):.0f}")
            ratio = statistics.median(
                r[i]["serverCpuUsPerOp"] / r[0]["serverCpuUsPerOp"] for r in chosen
            )
            cells.append(f"{ratio:.3f}")
        chosen = [r for r in rounds if quiet(r)]
        cells.append(
            f"{statistics.median(r[i]['opsPerSec'] for r in chosen):,.0f}" if chosen else "-"
        )
        cells.append(
            ", ".join(
                f"{r[i]['cpu']['otherPct']:.0f}" if "error" not in r[i] else "failed"
                for r in rounds
            )
        )
        situ = [r[i]["inSitu"] for r in rounds if "inSitu" in r[i]]
        if situ:
            per_sync = statistics.median(x["synced_us"] for x in situ)
            per_line = statistics.median(x["batch_us_per_line"] for x in situ)
            cells.append(f"{per_sync:.1f} + {per_line:.1f}")
        out.append("| " + " | ".join(cells) + " |")
    if any("inSitu" in r for results in rows.values() for r in results):
        out[2] += " in situ µs per sync: synced() + batch writing |"
        out[3] += "---|"
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
