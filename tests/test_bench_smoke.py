"""The benchmark harness still runs end to end (a tiny run against backboneio only).

Not a benchmark and no timing is asserted: it checks that the Node load
generator installs, talks to a real ``backboneio serve`` over WebSocket, and
that what it counts is consistent with the protocol (each create reaches every
other client, a resume replays exactly what was missed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.requires import binary
from tests.support.server import ROOT


def test_bench_tiny_run_against_backboneio(tmp_path: Path) -> None:
    binary("npm", "apt-get install nodejs npm")
    binary("node", "apt-get install nodejs npm")
    binary("taskset", "apt-get install util-linux")
    out = tmp_path / "bench.json"
    table = tmp_path / "bench.md"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--tiny",
            "--servers",
            "backboneio",
            "--scenarios",
            "A1,A4,B50,C100,R50",
            "--json",
            str(out),
            "--markdown",
            str(table),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["scenario"]: r["result"] for r in json.loads(out.read_text())["records"]}
    errors = {name: r["error"] for name, r in results.items() if "error" in r}
    assert not errors, errors

    assert results["A1"]["ops"] > 0 and results["A1"]["errors"] == 0
    a4 = results["A4"]
    # every acked create was broadcast to the 3 other clients (give or take the
    # creates in flight at either edge of the measured window)
    assert 3 * (a4["ops"] - 8) <= a4["notified"] <= 3 * (a4["ops"] + 8), a4
    assert a4["extensions"] == "", "backboneio negotiated permessage-deflate by default"
    assert results["B50"]["writes"] > 0 and results["B50"]["delivered"] > 0
    assert results["C100"]["held"] == 100, results["C100"]
    resume = results["R50"]
    assert resume["supported"], resume
    assert resume["replayed"] == 50 and resume["inOrder"] and resume["recovered"], resume

    text = table.read_text()
    assert "| backboneio |" in text
    assert "Noise and load-generator check" in text


def test_cluster_bench_tiny_run_delivers_to_listeners_on_every_process(tmp_path: Path) -> None:
    binary("node", "apt-get install nodejs npm")
    binary("taskset", "apt-get install util-linux")
    binary("redis-server", "apt-get install redis-server")
    out = tmp_path / "cluster.json"
    run_bench(
        "cluster.py",
        *("--listeners", "30", "--variants", "1-memory,3-log", "--json", str(out)),
    )
    results = json.loads(out.read_text())
    for name in ("1-memory", "3-log"):
        (run,) = results[name]
        assert "error" not in run, run
        # Every write reached every listener, whichever process it is on.
        assert run["delivered"] > 0
        assert run["writes"] * 30 - run["delivered"] <= 4 * 30 + 30
    assert len(results["3-log"][0]["cpu"]["perServerCpuSeconds"]) == 3
    assert all(t > 0 for t in results["3-log"][0]["cpu"]["perServerCpuSeconds"])


def test_live_bench_tiny_run_counts_the_events_each_write_causes(tmp_path: Path) -> None:
    binary("node", "apt-get install nodejs npm")
    binary("taskset", "apt-get install util-linux")
    out = tmp_path / "live.json"
    run_bench("live.py", *("--variants", "notify-100,shared-100,distinct-100", "--json", str(out)))
    results = json.loads(out.read_text())
    runs = {name: results[name][0] for name in results}
    for run in runs.values():
        assert "error" not in run, run
        assert run["writes"] > 0
    # Every socket hears each write's synced; a shared window adds an enter
    # and (once full) a leave per subscription, a distinct one about 1.
    assert 90 <= runs["notify-100"]["eventsPerWrite"] <= 110
    assert 250 <= runs["shared-100"]["eventsPerWrite"] <= 310
    assert 98 <= runs["distinct-100"]["eventsPerWrite"] <= 110
    assert runs["shared-100"]["subscriptions"] == runs["distinct-100"]["subscriptions"] == 100


def run_bench(script: str, *args: str) -> None:
    """One short round of a bench/ script; it must exit 0."""
    short = ("--rounds", "1", "--warmup", "0.5", "--duration", "1")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *short, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
