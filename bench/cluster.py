"""Fan-out with 1, 2 and 3 ``backboneio serve`` processes on one Redis.

    python bench/cluster.py [--rounds 3] [--listeners 1000] [--duration 5]
                            [--json FILE] [--markdown FILE]

One writer (on the first process) and ``--listeners`` listeners spread evenly
over the processes, driven by the Node load generator (bench/js/load.js,
scenario ``fanout``) on core 1. Every server process *and* redis-server run
on core 0: the server side gets one core however many processes it has, so
on this two-core machine the figure to read is not deliveries per second
(bounded by that core) but the CPU each delivery costs, in total and per
process, which says what more processes would buy on more cores. Variants:

* ``1-memory``: the default single server, no Redis.
* ``1-log``, ``2-log``, ``3-log``: the change log on Redis Streams.
* ``2-pubsub``: ``REDIS_CHANGE_LOG = False`` (python-socketio's
  Redis manager, no log): the cost of the log next to pub/sub alone.

Each measurement starts a fresh redis-server and fresh server processes;
rounds are interleaved, the order rotated each round, and figures are
medians over rounds. Nothing is asserted: this prints and writes numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from run import node_modules, run_load
from servers import SERVER_CORE, RunningServer, ServerSpec

VARIANTS: dict[str, tuple[int, str, str]] = {
    # name -> (processes, what they share, description)
    "1-memory": (1, "", "1 process, memory log"),
    "1-log": (1, "log", "1 process, Redis log"),
    "2-log": (2, "log", "2 processes, Redis log"),
    "3-log": (3, "log", "3 processes, Redis log"),
    "2-pubsub": (2, "pubsub", "2 processes, pub/sub"),
}


def settings(kind: str, redis_url: str) -> str:
    text = 'BACKENDS = {"messages": {"store": "memory"}}\n'
    if not kind:
        return "PLUGINS = []\n" + text
    text = 'PLUGINS = ["redis"]\n' + text
    text += f"REDIS_MANAGER_URL = {redis_url!r}\nREDIS_MANAGER_CHANNEL = 'bench'\n"
    if kind == "pubsub":
        text += "REDIS_CHANGE_LOG = False\n"
    return text


class Redis:
    """A throw-away redis-server pinned to the servers' core."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed: apt-get install redis-server")
        self.port = servers.free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="backboneio-bench-redis-")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", self._dir.name]
        self.proc = subprocess.Popen(
            servers.pinned(SERVER_CORE, command), stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._dir.cleanup()


def measure(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    processes, kind, _ = VARIANTS[variant]
    redis = Redis() if kind else None
    started: list[RunningServer] = []
    try:
        text = settings(kind, redis.url if redis else "")
        spec = ServerSpec(variant, "backbone", "backboneio", settings=text)
        for _ in range(processes):
            started.append(RunningServer(spec).start())
        time.sleep(0.5)
        params = {
            "urls": [s.url for s in started],
            "serverPids": [s.pid for s in started],
            "listeners": args.listeners,
        }
        timing = {"warmup": args.warmup, "duration": args.duration}
        result = run_load(started[0], "fanout", params, timing=timing)
        if redis is not None:
            result["redisCpuSeconds"] = _cpu_seconds(redis.proc.pid)
        return result
    finally:
        for server in started:
            server.stop()
        if redis is not None:
            redis.close()


def _cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (Redis's for the whole measurement, warm-up included)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def table(results: dict[str, list[dict[str, Any]]], rounds: int) -> str:
    base = "1-memory"
    rows = [
        "| variant | deliveries/s | server CPU µs per delivery | per process (% of server CPU) "
        "| p50 ms | load generator CPU % | other CPU % | / 1 process, memory log |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base_rate = [r.get("deliveriesPerSec", 0.0) for r in results.get(base, [])]
    for variant, runs in results.items():
        good = [r for r in runs if "error" not in r]
        if not good:
            rows.append(f"| {VARIANTS[variant][2]} | error: {runs[0]['error'][:80]} | | | | | | |")
            continue
        rate = statistics.median(r["deliveriesPerSec"] for r in good)
        us = statistics.median(r["serverCpuUsPerDelivery"] for r in good)
        shares = []
        for r in good:
            each = r["cpu"]["perServerCpuSeconds"]
            total = sum(each) or 1.0
            shares.append([100 * t / total for t in each])
        share = " / ".join(
            f"{statistics.median(s[i] for s in shares):.0f}" for i in range(len(shares[0]))
        )
        p50 = statistics.median(r["p50ms"] for r in good)
        load = statistics.median(r["cpu"]["loadPct"] for r in good)
        other = statistics.median(r["cpu"]["otherPct"] for r in good)
        ratios = [
            r["deliveriesPerSec"] / b
            for r, b in zip(runs, base_rate, strict=False)
            if b and "error" not in r
        ]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else ""
        rows.append(
            f"| {VARIANTS[variant][2]} | {rate:,.0f} | {us:.1f} | {share} | {p50:.1f} | {load:.0f} "
            f"| {other:.0f} | {ratio} |"
        )
    return "\n".join(rows) + f"\n\n(median of {rounds} interleaved rounds)\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument(
        "--variants", help=f"comma-separated, of {', '.join(VARIANTS)}; default: all"
    )
    parser.add_argument("--json", help="write the raw results to this file")
    parser.add_argument("--markdown", help="write the table to this file")
    args = parser.parse_args(argv)
    node_modules()
    servers.raise_open_file_limit()
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    results = servers.interleaved(
        names, args.rounds, lambda name: measure(name, args), "deliveriesPerSec"
    )
    text = table(results, args.rounds)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
