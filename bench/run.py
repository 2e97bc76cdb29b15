"""Runs the benchmarks and prints a table of ratios; `--quick` for a short run.

python bench/run.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import protocol
import stores


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    print(f"\n{title}")
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(_fmt(r[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    return str(value)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--only", choices=("protocol", "stores"))
    args = parser.parse_args()
    results = {}
    if args.only in (None, "protocol"):
        results["protocol"] = protocol.measure(args.quick)
        print_table(
            "Protocol (baseline: bare python-socketio on eventlet)",
            results["protocol"],
            ["measure", "baseline", "backboneio", "ratio"],
        )
    if args.only in (None, "stores"):
        results["stores"] = stores.measure(args.quick)
        print_table(
            "Stores (ratio: to the memory store in the same run)",
            results["stores"],
            list(results["stores"][0]),
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
