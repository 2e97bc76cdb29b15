"""Round trips and fan-out over real WebSockets: backboneio against a bare server.

Each measurement runs the same client load against the baseline server
(bench/baseline_server.py) and against ``backboneio serve`` with a memory
backend, one after the other in the same run, and reports the ratio.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import socketio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import ServerProcess  # noqa: E402

SETTINGS = 'PLUGINS = []\nBACKENDS = {"messages": {"store": "memory"}}\n'


def _connect(url: str) -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.connect(url, namespaces=["/messages"], transports=["websocket"], wait_timeout=10)
    return client


def _round_trip_worker(url: str, clients: int, calls: int, method: str, out: Any) -> None:
    socks = [_connect(url) for _ in range(clients)]
    barrier = threading.Barrier(clients)

    def run(sock: socketio.Client) -> None:
        barrier.wait()
        for n in range(calls):
            req = {"method": method, "model": {"text": f"m{n}"} if method == "create" else {}}
            error, _ = sock.call("sync", req, namespace="/messages", timeout=30)
            assert error is None, error

    threads = [threading.Thread(target=run, args=(s,)) for s in socks]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(time.perf_counter() - start)
    for s in socks:
        s.disconnect()


def round_trips(
    url: str, *, processes: int = 2, clients: int = 4, calls: int = 250, method: str = "create"
) -> float:
    """Syncs per second answered, with ``processes`` x ``clients`` concurrent clients."""
    out: mp.Queue[float] = mp.Queue()
    workers = [
        mp.Process(target=_round_trip_worker, args=(url, clients, calls, method, out))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    seconds = max(out.get(timeout=300) for _ in workers)
    for w in workers:
        w.join()
    return processes * clients * calls / seconds


def fan_out(url: str, *, listeners: int = 40, writes: int = 100) -> float:
    """Notifications delivered per second: one writer, ``listeners`` listening clients."""
    received: queue.Queue[float] = queue.Queue()
    socks = []
    for _ in range(listeners):
        sock = _connect(url)
        sock.on("synced", lambda *a: received.put(time.perf_counter()), namespace="/messages")
        sock.call("listen", namespace="/messages", timeout=10)
        socks.append(sock)
    writer = _connect(url)
    start = time.perf_counter()
    for n in range(writes):
        writer.call(
            "sync", {"method": "create", "model": {"n": n}}, namespace="/messages", timeout=30
        )
    last = start
    for _ in range(listeners * writes):
        last = max(last, received.get(timeout=60))
    for sock in [*socks, writer]:
        sock.disconnect()
    return listeners * writes / (last - start)


def measure(quick: bool = False) -> list[dict[str, Any]]:
    scale = 5 if quick else 1
    baseline = ServerProcess(script=str(Path(__file__).with_name("baseline_server.py")))
    ours = ServerProcess(SETTINGS)
    rows = []
    for name, run in [
        (
            "sync round trips/s (create, 8 clients)",
            lambda url: round_trips(url, calls=250 // scale),
        ),
        (
            "sync round trips/s (read list, 8 clients)",
            lambda url: round_trips(url, calls=250 // scale, method="read"),
        ),
        ("notifications delivered/s (40 listeners)", lambda url: fan_out(url, writes=100 // scale)),
    ]:
        values = []
        for server in (baseline, ours):
            with server as srv:
                if "read list" in name:  # a list worth reading: 100 models
                    seed = _connect(srv.url)
                    for n in range(100):
                        seed.call(
                            "sync",
                            {"method": "create", "model": {"n": n, "text": "x" * 40}},
                            namespace="/messages",
                        )
                    seed.disconnect()
                values.append(run(srv.url))
        base, value = values
        rows.append({"measure": name, "baseline": base, "backboneio": value, "ratio": value / base})
    return rows
