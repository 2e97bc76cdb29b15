"""Where the memory of an idle WebSocket connection goes, in backboneio and the bare server.

    python bench/idle_memory.py [--connections 1000] [--servers backboneio,bare]
                                [--rounds 2] [--frames 1] [--top 25]

For each server, twice per round: a fresh process pinned to core 0 with the
probe of bench/memprobe/ loaded (a ``sitecustomize`` module: SIGUSR1 dumps
the process's RSS, its gc-tracked objects by type and its greenlets by where
they wait), then the Node load generator (bench/js/load.js, scenario
``idle``: socket.io-client over WebSocket, offering permessage-deflate,
``listen`` then nothing) opens ``--connections`` connections from core 1.
A dump is taken before the first connection and another once all are held.

* ``rss``: tracemalloc off, the RSS growth per held connection (as the C1000
  scenario of bench/run.py measures it).
* ``traced``: tracemalloc on from the first line (so it sees everything); the
  growth of traced memory per connection, by package and by line. RSS growth
  minus traced growth (in the ``rss`` run) is what tracemalloc cannot see:
  the allocator's free space and rounding, and any C allocation not made
  through Python's allocators.

Nothing is asserted: this prints numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from run import node_modules
from servers import JS, LOAD_CORE, SERVERS, RunningServer, ServerSpec

PROBE = Path(__file__).resolve().parent / "memprobe"


def buffers(read: int, write: int, name: str) -> ServerSpec:
    """backboneio with each connection's HTTP read and write buffers at these sizes."""
    patch = (
        "import backboneio.runner as _runner\n"
        f"_runner._Protocol.rbufsize, _runner._Protocol.wbufsize = {read}, {write}\n"
    )
    base = SERVERS["backboneio"]
    return ServerSpec(**{**base.__dict__, "name": name, "settings": base.settings + patch})


# An experiment, not a proposal for backboneio's code: engine.io's ping cycle
# as a hub timer (eventlet.spawn_after: no green thread runs until it fires)
# instead of a green thread sleeping ping_interval, to measure what a change
# to python-engineio would save per idle connection.
PING_TIMER = """
import time as _time
import eventlet as _eventlet
import engineio.socket as _eio_socket
from engineio import packet as _packet
def _schedule_ping(self):
    if self.last_ping:
        self.last_ping = None
        def ping():
            if not self.closing and not self.closed:
                self.last_ping = _time.time()
                self.send(_packet.Packet(_packet.PING))
        _eventlet.spawn_after(self.server.ping_interval, ping)
_eio_socket.Socket.schedule_ping = _schedule_ping
"""


def spec(name: str) -> ServerSpec:
    """A server of bench/servers.py; ``backboneio-buffers-<bytes>`` (both buffers at that
    size); ``backboneio-eventlet-buffers`` (eventlet's: 8 KiB read, 16 KiB write, as
    backboneio had before 2026-12-04); ``backboneio-ping-timer`` (see PING_TIMER)."""
    if name.startswith("backboneio-buffers-"):
        size = int(name.rsplit("-", 1)[1])
        return buffers(size, size, name)
    if name == "backboneio-eventlet-buffers":
        return buffers(-1, 16 << 10, name)
    if name == "backboneio-ping-timer":
        base = SERVERS["backboneio"]
        return ServerSpec(**{**base.__dict__, "name": name, "settings": base.settings + PING_TIMER})
    return SERVERS[name]


def wait_for(path: Path, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {path.name} within {timeout}s")
        time.sleep(0.05)
    return json.loads(path.read_text())


def measure(
    spec: ServerSpec, connections: int, trace: bool, frames: int, concurrency: int = 200
) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="backboneio-memprobe-"))
    env = {"PYTHONPATH": str(PROBE), "BENCH_MEMPROBE": str(out), "BENCH_MEMPROBE_TRIM": "1"}
    if trace:
        env |= {"BENCH_MEMPROBE_TRACE": "1", "BENCH_MEMPROBE_FRAMES": str(frames)}
    probed = ServerSpec(**{**spec.__dict__, "env": {**spec.env, **env}})
    with RunningServer(probed) as server:
        time.sleep(0.5)
        os.kill(server.pid, signal.SIGUSR1)
        before = wait_for(out / "info1.json")
        job = {
            "scenario": "idle",
            "url": server.url,
            "protocol": spec.protocol,
            "serverPid": server.pid,
            "clkTck": os.sysconf("SC_CLK_TCK"),
            "connections": connections,
            "concurrency": concurrency,
            "hold": 30 if trace else 4,
            "timeout": 240,
        }
        command = servers.pinned(
            LOAD_CORE, [servers.node_binary(), str(JS / "load.js"), json.dumps(job)]
        )
        load = subprocess.Popen(
            command, cwd=JS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert load.stderr is not None and load.stdout is not None
        for line in load.stderr:
            if line.strip() == "measuring":
                break
        time.sleep(1.0)  # the last listens are answered
        os.kill(server.pid, signal.SIGUSR1)
        after = wait_for(out / "info2.json", timeout=120)
        load.kill()
        load.wait()
    result: dict[str, Any] = {"before": before, "after": after, "dir": str(out)}
    # held = the connections that the server has: one engine.io Socket each
    held = after["types"].get("engineio.socket.Socket", 0) - before["types"].get(
        "engineio.socket.Socket", 0
    )
    result["held"] = held
    result["rss_kib_per_connection"] = (after["rss_kib"] - before["rss_kib"]) / max(held, 1)
    # Both dumps trim: the "before" RSS is then the trimmed one too.
    result["rss_trimmed_kib_per_connection"] = (
        after["rss_trimmed_kib"] - before["rss_trimmed_kib"]
    ) / max(held, 1)
    result["mappings_kib_per_connection"] = {
        kind: (after["mappings"].get(kind, 0) - before["mappings"].get(kind, 0)) / max(held, 1)
        for kind in after["mappings"]
    }
    if trace:
        result["traced_kib_per_connection"] = (
            (after["traced"] - before["traced"]) / 1024 / max(held, 1)
        )
        result["tracemalloc_overhead_kib_per_connection"] = (
            (after["tracemalloc_overhead"] - before["tracemalloc_overhead"]) / 1024 / max(held, 1)
        )
    return result


def area(filename: str) -> str:
    """The package (or stdlib module) an allocation's line belongs to."""
    parts = Path(filename).parts
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1 :]
        return rest[0].removesuffix(".py") if rest else filename
    if "backboneio" in parts:
        return "backboneio"
    if filename.startswith("<"):
        return filename
    return "stdlib " + Path(filename).stem


def traced_breakdown(result: dict[str, Any], top: int) -> tuple[list[Any], list[Any]]:
    snap1 = tracemalloc.Snapshot.load(os.path.join(result["dir"], "snap1.pickle"))
    snap2 = tracemalloc.Snapshot.load(os.path.join(result["dir"], "snap2.pickle"))
    ignore = [
        tracemalloc.Filter(False, str(PROBE / "*")),
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen*"),
    ]
    diff = snap2.filter_traces(ignore).compare_to(snap1.filter_traces(ignore), "lineno")
    held = max(result["held"], 1)
    by_area: Counter[str] = Counter()
    for stat in diff:
        by_area[area(stat.traceback[0].filename)] += stat.size_diff
    areas = [(name, size / 1024 / held) for name, size in by_area.most_common() if size > 0]
    lines = [
        (
            f"{stat.traceback[0].filename.split('site-packages/')[-1]}:{stat.traceback[0].lineno}",
            stat.size_diff / 1024 / held,
            stat.count_diff / held,
        )
        for stat in diff[:top]
    ]
    return areas, lines


def per_connection_types(result: dict[str, Any], top: int) -> list[tuple[str, float]]:
    before, after = Counter(result["before"]["types"]), Counter(result["after"]["types"])
    held = max(result["held"], 1)
    grown = [(name, (after[name] - before[name]) / held) for name in after]
    return sorted((g for g in grown if g[1] >= 0.5), key=lambda g: -g[1])[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--servers", default="backboneio,bare")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc frames per trace")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--concurrency", type=int, default=200, help="connections opened at a time (C1000: 200)"
    )
    parser.add_argument("--modes", default="rss,traced", help="rss, traced or both")
    parser.add_argument("--json", help="write the raw results to FILE")
    args = parser.parse_args(argv)
    node_modules()
    servers.raise_open_file_limit()
    names = args.servers.split(",")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        n: {"rss": [], "traced": []} for n in names
    }
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for mode in args.modes.split(","):
                res = measure(
                    spec(name), args.connections, mode == "traced", args.frames, args.concurrency
                )
                results[name][mode].append(res)
                extra = (
                    f" traced {res['traced_kib_per_connection']:.1f} KiB"
                    if mode == "traced"
                    else ""
                )
                print(
                    f"round {r + 1} {name:12} {mode:6} held {res['held']:5} "
                    f"RSS {res['rss_kib_per_connection']:.1f} KiB/conn "
                    f"(trimmed {res['rss_trimmed_kib_per_connection']:.1f}){extra}",
                    flush=True,
                )
    for name in names:
        if not results[name]["rss"] or not results[name]["traced"]:
            continue
        rss = statistics.median(x["rss_kib_per_connection"] for x in results[name]["rss"])
        breakdowns = [traced_breakdown(x, args.top) for x in results[name]["traced"]]
        traced = statistics.median(sum(kib for _, kib in areas) for areas, _ in breakdowns)
        trimmed = statistics.median(
            x["rss_trimmed_kib_per_connection"] for x in results[name]["rss"]
        )
        print(f"\n## {name}: RSS {rss:.1f} KiB per idle connection (tracemalloc off)")
        print(f"after malloc_trim(0): {trimmed:.1f} KiB")
        grown = results[name]["rss"][-1]["mappings_kib_per_connection"]
        print(
            "resident KiB (mappings: count) per connection by mapping: "
            + ", ".join(
                f"{kind} {kib:.2f}" for kind, kib in sorted(grown.items()) if abs(kib) >= 0.01
            )
        )
        print(f"traced by tracemalloc: {traced:.1f} KiB; not traced: {rss - traced:.1f} KiB\n")
        last = results[name]["traced"][-1]
        areas, lines = breakdowns[-1]
        print("| area | KiB per connection |\n|---|---|")
        for area_name, kib in areas:
            print(f"| {area_name} | {kib:.2f} |")
        print("\n| line | KiB per connection | blocks per connection |\n|---|---|---|")
        for line, kib, count in lines:
            print(f"| `{line}` | {kib:.2f} | {count:.1f} |")
        print("\n| gc-tracked type | objects per connection |\n|---|---|")
        for type_name, n in per_connection_types(last, args.top):
            print(f"| `{type_name}` | {n:.1f} |")
        print("\n| greenlets waiting in | count |\n|---|---|")
        for where, n in sorted(last["after"]["greenlets"].items(), key=lambda kv: -kv[1])[:8]:
            print(f"| `{where}` | {n} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
