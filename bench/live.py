"""Writes per second with 0, 100 and 1,000 live subscriptions, next to plain notifications.

    python bench/live.py [--rounds 3] [--duration 5] [--json FILE] [--markdown FILE]

One ``backboneio serve`` (memory store) pinned to core 0, the Node load
generator (bench/js/load.js, scenario ``live``) on core 1. A writer creates
models, each sorting first in every ``{"$sort": {"n": -1}, "$limit": 10}``
window, so each write moves windows: into every *shared* window (one
evaluation, an ``enter`` and a ``leave`` to every subscription), or into the
one *distinct* window of its owner (``{"owner": ..., ...}``: every window is
evaluated, one changes). Variants:

* ``none``: no one listens or subscribes: what a write costs alone.
* ``notify-100``: 100 sockets listen: plain ``synced`` notifications.
* ``shared-100``, ``distinct-100``: 100 sockets, one subscription each.
* ``shared-1000``, ``distinct-1000``: 100 sockets, ten subscriptions each.

Every connected socket hears a write's ``synced`` notification (protocol.md),
so the subscription variants pay ``notify-100``'s cost too: the cost per
subscription per write is a variant's server CPU per write above
``notify-100``'s, in the same round, divided by its subscriptions. Each measurement is a
fresh server; rounds are interleaved, the order rotated each round; figures
are medians over rounds. Nothing is asserted: this prints and writes numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from run import node_modules, run_load
from servers import RunningServer, ServerSpec

VARIANTS: dict[str, tuple[str, int, int, str]] = {
    # name -> (mode, sockets, subscriptions, description)
    "none": ("none", 0, 0, "no listeners, no subscriptions"),
    "notify-100": ("notify", 100, 0, "100 listeners (plain notifications)"),
    "shared-100": ("shared", 100, 100, "100 subscriptions, one shared query"),
    "distinct-100": ("distinct", 100, 100, "100 subscriptions, 100 distinct queries"),
    "shared-1000": ("shared", 100, 1000, "1,000 subscriptions, one shared query"),
    "distinct-1000": ("distinct", 100, 1000, "1,000 subscriptions, 1,000 distinct queries"),
}
SETTINGS = (
    'PLUGINS = []\nBACKENDS = {"messages": {"store": "memory"}}\n'
    "LOG_LEVEL = 'WARNING'\n"  # a request line per write is not what is measured here
)


def measure(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    mode, sockets, subscriptions, _ = VARIANTS[variant]
    server = RunningServer(ServerSpec(variant, "backbone", "backboneio", settings=SETTINGS))
    server.start()
    try:
        params = {"mode": mode, "sockets": sockets, "subscriptions": subscriptions}
        timing = {"warmup": args.warmup, "duration": args.duration}
        return run_load(server, "live", params, timing=timing)
    finally:
        server.stop()


def _median(runs: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def table(results: dict[str, list[dict[str, Any]]], rounds: int) -> str:
    rows = [
        "| variant | writes/s | events/s | events per write | server CPU µs per write "
        "| µs per subscription per write | p50 ms | load generator CPU % | other CPU % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = [r.get("serverCpuUsPerWrite") for r in results.get("notify-100", [])]
    for variant, runs in results.items():
        good = [r for r in runs if "error" not in r]
        if not good:
            error = runs[0].get("error", "?")[:80] if runs else "not run"
            rows.append(f"| {VARIANTS[variant][3]} | error: {error} | | | | | | | |")
            continue
        subs = VARIANTS[variant][2]
        per_sub = ""
        if subs and base:
            # Per round, against the same round's 100 sockets without subscriptions.
            extra = [
                (r["serverCpuUsPerWrite"] - b) / subs
                for r, b in zip(runs, base, strict=False)
                if "error" not in r and b is not None
            ]
            per_sub = f"{statistics.median(extra):.2f}" if extra else ""
        rows.append(
            f"| {VARIANTS[variant][3]} | {_median(good, 'writesPerSec'):,.0f} "
            f"| {_median(good, 'eventsPerSec'):,.0f} | {_median(good, 'eventsPerWrite'):.1f} "
            f"| {_median(good, 'serverCpuUsPerWrite'):,.0f} | {per_sub} "
            f"| {_median(good, 'p50ms'):.2f} "
            f"| {statistics.median(r['cpu']['loadPct'] for r in good):.0f} "
            f"| {statistics.median(r['cpu']['otherPct'] for r in good):.0f} |"
        )
    return "\n".join(rows) + f"\n\n(median of {rounds} interleaved rounds)\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
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
        names, args.rounds, lambda name: measure(name, args), "writesPerSec"
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
