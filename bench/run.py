"""backboneio next to its peers over real WebSockets, in interleaved rounds.

    python bench/run.py [--rounds 3] [--servers backboneio,bare,feathers]
                        [--scenarios A1,A16,A64,B1000,C1000,C10000,R1000]
                        [--tiny] [--json FILE] [--markdown FILE] [--profile] [--stores]

Each round starts every server afresh for every scenario, pinned to core 0,
and drives it with the Node load generator (bench/js/load.js: socket.io-client
over WebSocket, offering permessage-deflate as browsers do) pinned to core 1.
Rounds are interleaved (every server once per scenario per round, the order
rotated each round) and ratios are the median of the per-round ratios, so a
slow minute of the machine weighs on both sides of a ratio alike. The CPU
that other processes used during each measurement, and the load generator's
own CPU, are recorded so a noisy or load-bound round is visible.

No timing is asserted anywhere: this prints and writes numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from servers import JS, LOAD_CORE, ROOT, SERVERS, RunningServer, ServerSpec

LOAD_SATURATED_PCT = 90.0

# name -> (load.js scenario, its parameters)
SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "A1": ("roundtrip", {"clients": 1}),
    "A16": ("roundtrip", {"clients": 16}),
    "A64": ("roundtrip", {"clients": 64}),
    "B1000": ("fanout", {"listeners": 1000}),
    "C1000": ("idle", {"connections": 1000}),
    "C10000": ("idle", {"connections": 10000}),
    "R1000": ("resume", {"missed": 1000}),
}
TINY: dict[str, tuple[str, dict[str, Any]]] = {
    "A1": ("roundtrip", {"clients": 1}),
    "A4": ("roundtrip", {"clients": 4}),
    "B50": ("fanout", {"listeners": 50}),
    "C100": ("idle", {"connections": 100, "hold": 0.5}),
    "R50": ("resume", {"missed": 50}),
}
DEFAULT_SERVERS = ["backboneio", "bare", "feathers", "socketio-node"]


# ---------------------------------------------------------------- npm


def node_modules() -> Path:
    """bench/js/node_modules at the versions of package-lock.json, installed with npm."""
    installed = JS / "node_modules" / ".package-lock.json"
    lock = JS / "package-lock.json"
    if installed.is_file() and (
        not lock.is_file() or installed.stat().st_mtime >= lock.stat().st_mtime
    ):
        return JS / "node_modules"
    npm = _which("npm")
    command = [npm, "ci" if lock.is_file() else "install", "--no-audit", "--no-fund"]
    done = subprocess.run(command, cwd=JS, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} in {JS} failed:\n{done.stdout}\n{done.stderr}")
    return JS / "node_modules"


def _which(name: str) -> str:
    import shutil

    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed: apt-get install nodejs npm")
    return found


# ---------------------------------------------------------------- one measurement


def run_load(
    server: RunningServer,
    scenario: str,
    params: dict[str, Any],
    *,
    timing: dict[str, float],
    on_measuring: Callable[[], None] | None = None,
) -> dict[str, Any]:
    job = {
        "scenario": scenario,
        "url": server.url,
        "protocol": server.spec.protocol,
        "serverPid": server.pid,
        "clkTck": os.sysconf("SC_CLK_TCK"),
        **timing,
        **params,
    }
    timeout = 240 if scenario == "idle" else 120
    job["timeout"] = timeout
    command = servers.pinned(
        LOAD_CORE, [servers.node_binary(), str(JS / "load.js"), json.dumps(job)]
    )
    proc = subprocess.Popen(
        command, cwd=JS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    stderr = []
    if on_measuring is not None:
        for line in proc.stderr:
            stderr.append(line)
            if line.strip() == "measuring":
                on_measuring()
                break
    try:
        out, err = proc.communicate(timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    stderr.append(err)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        return {
            "error": f"load generator printed no result (exit {proc.returncode}): "
            + "".join(stderr)[-2000:]
        }
    return json.loads(lines[-1])


def measure_once(
    spec: ServerSpec, name: str, scenario: str, params: dict[str, Any], timing: dict[str, float]
) -> dict[str, Any]:
    if scenario == "resume" and spec.protocol != "backbone":
        return {"skipped": "no resume in this protocol"}
    with RunningServer(spec) as server:
        time.sleep(0.3)  # start-up work settles before anything is measured
        result = run_load(server, scenario, params, timing=timing)
        if "error" in result:
            result["serverLog"] = server.log[-1500:]
        return result


def run_rounds(
    specs: list[ServerSpec],
    scenarios: dict[str, tuple[str, dict[str, Any]]],
    rounds: int,
    timing: dict[str, float],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for r in range(rounds):
        for name, (scenario, params) in scenarios.items():
            # rotate the order each round so no server always runs first
            order = specs[r % len(specs) :] + specs[: r % len(specs)]
            for spec in order:
                started = time.monotonic()
                try:
                    result = measure_once(spec, name, scenario, params, timing)
                except RuntimeError as exc:
                    result = {"error": str(exc)}
                records.append(
                    {"round": r + 1, "scenario": name, "server": spec.name, "result": result}
                )
                log(
                    f"round {r + 1} {name:7} {spec.name:20} {summary(name, result)}"
                    f"  ({time.monotonic() - started:.1f}s)"
                )
    return records


# ---------------------------------------------------------------- reading results


def kind(name: str) -> str:
    return {"A": "roundtrip", "B": "fanout", "C": "idle", "R": "resume"}[name[0]]


def headline(name: str, result: dict[str, Any]) -> float | None:
    """The number a ratio is taken of: higher is better for A and B."""
    if "error" in result or "skipped" in result:
        return None
    k = kind(name)
    if k == "roundtrip":
        return result["opsPerSec"]
    if k == "fanout":
        return result["deliveriesPerSec"]
    if k == "idle":
        return result["kibPerConnection"]
    return result.get("resumeMs") if result.get("supported") else None


def summary(name: str, result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR " + result["error"].splitlines()[0][:150]
    if "skipped" in result:
        return "skipped: " + result["skipped"]
    k = kind(name)
    cpu = result.get("cpu", {})
    noise = f"other {cpu.get('otherPct', 0):.0f}% load {cpu.get('loadPct', 0):.0f}%"
    if k == "roundtrip":
        return (
            f"{result['opsPerSec']:,.0f} ops/s "
            f"p50 {result['p50ms']:.1f} p99 {result['p99ms']:.1f} ms "
            f"notified/op {result['notifiedPerOp'] or 0:.1f} {noise}"
        )
    if k == "fanout":
        return (
            f"{result['deliveriesPerSec']:,.0f} deliveries/s p50 {result['p50ms']:.1f} ms {noise}"
        )
    if k == "idle":
        per = result["kibPerConnection"]
        return (
            f"held {result['held']:,}/{result['connections']:,} "
            f"{per if per is None else round(per, 1)} KiB/conn "
            f"{result['connectsPerSec']:,.0f} conn/s"
        )
    if not result.get("supported"):
        return "resume not supported (listen ack has no positions)"
    return (
        f"resume {result['resumeMs']:.0f} ms for {result['replayed']} replayed "
        f"(recovered {result['recovered']}, in order {result['inOrder']}); refetch "
        f"{result['refetchMs']:.0f} ms"
    )


def by(records: list[dict[str, Any]], scenario: str, server: str) -> list[dict[str, Any]]:
    return [r["result"] for r in records if r["scenario"] == scenario and r["server"] == server]


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio_of_rounds(records: list[dict[str, Any]], scenario: str, a: str, b: str) -> float | None:
    """Median over rounds of value(a) / value(b), each pair from the same round."""
    per_round = []
    rounds = sorted({r["round"] for r in records})
    for n in rounds:
        va = [
            headline(scenario, r["result"])
            for r in records
            if r["round"] == n and r["scenario"] == scenario and r["server"] == a
        ]
        vb = [
            headline(scenario, r["result"])
            for r in records
            if r["round"] == n and r["scenario"] == scenario and r["server"] == b
        ]
        if va and vb and va[0] and vb[0]:
            per_round.append(va[0] / vb[0])
    return median(per_round)


# ---------------------------------------------------------------- markdown


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def latency(rs: list[dict[str, Any]]) -> str:
    p50 = median(r["p50ms"] for r in rs)
    p99 = median(r["p99ms"] for r in rs)
    return f"{fmt(p50, 1)} / {fmt(p99, 1)}"


def machine() -> dict[str, str]:
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    def version(module: str) -> str:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as v

        try:
            return v(module)
        except PackageNotFoundError:
            return "?"

    def npm_version(package: str) -> str:
        try:
            return json.loads((JS / "node_modules" / package / "package.json").read_text())[
                "version"
            ]
        except OSError:
            return "?"

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    node = subprocess.run(
        [servers.node_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    mem_kib = first("/proc/meminfo", "MemTotal").split()[0]
    return {
        "cpu": f"{first('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores",
        "memory": f"{int(mem_kib) / 1024 / 1024:.0f} GiB" if mem_kib.isdigit() else "?",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "python packages": ", ".join(
            f"{p} {version(p)}"
            for p in ("python-socketio", "python-engineio", "eventlet", "simple-websocket")
        ),
        "npm packages": ", ".join(
            f"{p} {npm_version(p)}"
            for p in (
                "socket.io-client",
                "socket.io",
                "@feathersjs/feathers",
                "@feathersjs/socketio",
                "@feathersjs/memory",
            )
        ),
        "commit": commit,
    }


def markdown(
    records: list[dict[str, Any]],
    specs: list[ServerSpec],
    scenarios: dict[str, tuple[str, dict[str, Any]]],
    meta: dict[str, Any],
) -> str:
    names = [s.name for s in specs]
    out: list[str] = []
    add = out.append
    add(
        f"Measured {meta['date']} in {meta['rounds']} interleaved rounds "
        f"({meta['elapsed'] / 60:.1f} minutes; warm-up {meta['timing']['warmup']} s, "
        f"measured window {meta['timing']['duration']} s per scenario and server)."
    )
    add("")
    for key, value in meta["machine"].items():
        add(f"- {key}: {value}")
    add(f"- open-file limit (raised by the harness): {meta['nofile']:,}")
    add("")
    add("Servers:")
    add("")
    for spec in specs:
        add(f"- **{spec.name}**: {spec.description}")
    add("")

    a_names = [n for n in scenarios if kind(n) == "roundtrip"]
    b_names = [n for n in scenarios if kind(n) == "fanout"]
    c_names = [n for n in scenarios if kind(n) == "idle"]
    r_names = [n for n in scenarios if kind(n) == "resume"]

    if a_names or b_names:
        add("### Throughput (medians over rounds)")
        add("")
        head = ["server"]
        for n in a_names:
            head += [f"{n} ops/s", f"{n} p50 / p99 ms"]
        for n in b_names:
            head += [f"{n} deliveries/s", f"{n} p50 / p99 ms"]
        cpu_a = "A16" if "A16" in a_names else (a_names[-1] if a_names else None)
        head += [f"server CPU µs per op ({cpu_a})"] if cpu_a else []
        head += [f"server CPU µs per delivery ({n})" for n in b_names[-1:]]
        head += ["deflate negotiated"]
        add("| " + " | ".join(head) + " |")
        add("|" + "---|" * len(head))
        for name in names:
            row = [name]
            ext = ""
            for n in a_names:
                rs = [r for r in by(records, n, name) if "error" not in r]
                row += [
                    fmt(median(r["opsPerSec"] for r in rs)),
                    latency(rs),
                ]
                ext = ext or next((r["extensions"] for r in rs if r.get("extensions")), "")
            for n in b_names:
                rs = [r for r in by(records, n, name) if "error" not in r]
                row += [
                    fmt(median(r["deliveriesPerSec"] for r in rs)),
                    latency(rs),
                ]
            if cpu_a:
                rs = [r for r in by(records, cpu_a, name) if "error" not in r]
                row.append(fmt(median(r["serverCpuUsPerOp"] for r in rs)))
            for n in b_names[-1:]:
                rs = [r for r in by(records, n, name) if "error" not in r]
                row.append(fmt(median(r["serverCpuUsPerDelivery"] for r in rs), 1))
            row.append("yes" if "deflate" in ext else "no")
            add("| " + " | ".join(row) + " |")
        errors = [r for r in records if "error" in r["result"] and kind(r["scenario"]) != "idle"]
        if errors:
            add("")
            add(f"{len(errors)} measurement(s) failed and are left out of the medians:")
            for r in errors[:6]:
                add(
                    f"- round {r['round']} {r['scenario']} {r['server']}: "
                    f"{r['result']['error'].splitlines()[0][:200]}"
                )
        add("")

    if c_names:
        add("### Idle connections (medians over rounds)")
        add("")
        head = ["server"]
        for n in c_names:
            head += [f"{n} held", f"{n} KiB per connection", f"{n} connects/s"]
        add("| " + " | ".join(head) + " |")
        add("|" + "---|" * len(head))
        for name in names:
            row = [name]
            for n in c_names:
                rs = [r for r in by(records, n, name) if "error" not in r]
                held = median(r["held"] for r in rs)
                total = SCENARIOS.get(n, TINY.get(n, ("", {})))[1].get("connections")
                cell = fmt(held)
                if held is not None and total and held < total:
                    failures = median(r["failures"] for r in rs)
                    first = next((r["firstError"] for r in rs if r.get("firstError")), "")
                    cell = f"**{fmt(held)} of {total:,}** "
                    cell += f"(gave up after {fmt(failures)} failed: {first})"
                row += [
                    cell,
                    fmt(median(r["kibPerConnection"] for r in rs), 1),
                    fmt(median(r["connectsPerSec"] for r in rs)),
                ]
            add("| " + " | ".join(row) + " |")
        add("")

    ours = [n for n in names if n.startswith("backboneio")]
    peers = [n for n in names if not n.startswith("backboneio")]
    if ours and peers:
        add("### Ratios: median of the per-round ratios")
        add("")
        cols = [n for n in a_names + b_names]
        head = [
            "backboneio / peer",
            *[f"{n} {'ops/s' if kind(n) == 'roundtrip' else 'deliveries/s'}" for n in cols],
        ]
        head += [f"{n} KiB per idle connection" for n in c_names[-1:]]
        head += [f"{n} connections held" for n in c_names[-1:]]
        add("| " + " | ".join(head) + " |")
        add("|" + "---|" * len(head))
        for mine in ours:
            for peer in peers:
                row = [f"{mine} / {peer}"]
                row += [fmt(ratio_of_rounds(records, n, mine, peer), 2) for n in cols]
                for n in c_names[-1:]:
                    mk = median(
                        r["kibPerConnection"] for r in by(records, n, mine) if "error" not in r
                    )
                    pk = median(
                        r["kibPerConnection"] for r in by(records, n, peer) if "error" not in r
                    )
                    row.append(f"{fmt(mk)} vs {fmt(pk)}")
                for n in c_names[-1:]:
                    mh = median(r["held"] for r in by(records, n, mine) if "error" not in r)
                    ph = median(r["held"] for r in by(records, n, peer) if "error" not in r)
                    row.append(f"{fmt(mh)} vs {fmt(ph)}")
                add("| " + " | ".join(row) + " |")
        add("")

    if "backboneio" in names and "backboneio-log-off" in names:
        add("### The change log: log on / log off (median of per-round ratios)")
        add("")
        cols = a_names + b_names
        add("| " + " | ".join(["", *cols]) + " |")
        add("|" + "---|" * (len(cols) + 1))
        add(
            "| "
            + " | ".join(
                [
                    "backboneio / backboneio-log-off",
                    *[
                        fmt(ratio_of_rounds(records, n, "backboneio", "backboneio-log-off"), 3)
                        for n in cols
                    ],
                ]
            )
            + " |"
        )
        add("")

    if r_names:
        add("### Resume after missed notifications (medians over rounds)")
        add("")
        add(
            "| server | missed | replayed | in order | recovered | resume ms (listen to ack) "
            "| reconnect + resume ms | refetch of the collection ms |"
        )
        add("|---|---|---|---|---|---|---|---|")
        for name in names:
            for n in r_names:
                rs = [r for r in by(records, n, name) if "error" not in r and "skipped" not in r]
                if not rs:
                    continue
                if not all(r.get("supported") for r in rs):
                    add(
                        f"| {name} | {SCENARIOS.get(n, TINY.get(n))[1]['missed']} | not supported "
                        "(no positions in the listen ack) | | | | | |"
                    )
                    continue
                add(
                    "| "
                    + " | ".join(
                        [
                            name,
                            fmt(rs[0]["missed"]),
                            fmt(median(r["replayed"] for r in rs)),
                            "yes" if all(r["inOrder"] for r in rs) else "**no**",
                            "yes" if all(r["recovered"] for r in rs) else "**no**",
                            fmt(median(r["resumeMs"] for r in rs), 1),
                            fmt(median(r["reconnectAndResumeMs"] for r in rs), 1),
                            fmt(median(r["refetchMs"] for r in rs), 1),
                        ]
                    )
                    + " |"
                )
        add("")

    add("### Noise and load-generator check")
    add("")
    add(
        "CPU % of one core during each measured window, per round: other = everything on the "
        "machine but the server and the load generator (from /proc/stat, softirq left out); "
        f"load = the load generator. A load above {LOAD_SATURATED_PCT:.0f}% means the load "
        "generator, not the server, may have set the pace."
    )
    add("")
    add("| scenario | server | other CPU % | load generator CPU % |")
    add("|---|---|---|---|")
    flagged = []
    for n in scenarios:
        if kind(n) in ("idle", "resume"):
            continue
        for name in names:
            rs = by(records, n, name)
            other = ", ".join(fmt(r.get("cpu", {}).get("otherPct")) for r in rs)
            load = ", ".join(fmt(r.get("cpu", {}).get("loadPct")) for r in rs)
            add(f"| {n} | {name} | {other} | {load} |")
            for i, r in enumerate(rs):
                if r.get("cpu", {}).get("loadPct", 0) > LOAD_SATURATED_PCT:
                    flagged.append(f"round {i + 1} {n} {name} ({r['cpu']['loadPct']:.0f}%)")
    add("")
    add(
        "Load generator above "
        + f"{LOAD_SATURATED_PCT:.0f}%: "
        + (", ".join(flagged) if flagged else "none")
        + "."
    )
    add("")
    return "\n".join(out)


# ---------------------------------------------------------------- main

DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- bench/run.py: tables from here -->"
END = "<!-- bench/run.py: tables to here -->"


def update_docs(text: str) -> None:
    """Replace what lies between the markers of docs/benchmarks.md with ``text``."""
    doc = DOCS.read_text()
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{DOCS} has no {BEGIN!r} ... {END!r} markers")
    DOCS.write_text(doc[: start + len(BEGIN)] + "\n\n" + text.strip() + "\n\n" + doc[end:])


def change_log_off_setting() -> str | None:
    """The settings line that turns the change log off, if the core declares one."""
    from backboneio.settings import CORE_SETTINGS

    names = {s.name: s for s in CORE_SETTINGS}
    if "CHANGE_LOG" in names:
        return "CHANGE_LOG = None"
    if "CHANGE_LOG_ENABLED" in names:
        return "CHANGE_LOG_ENABLED = False"
    # Without a switch, keeping no entries is the nearest: every write still
    # gets its position from the log, but nothing is retained for resuming.
    if "CHANGE_LOG_MAX_ENTRIES" in names:
        return "CHANGE_LOG_MAX_ENTRIES = 0"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", help="comma-separated; default: all")
    parser.add_argument("--scenarios", help="comma-separated; default: all")
    parser.add_argument(
        "--tiny", action="store_true", help="seconds-long smoke run: small scenarios, 1 round"
    )
    parser.add_argument("--warmup", type=float, help="seconds before each measured window")
    parser.add_argument("--duration", type=float, help="seconds measured per scenario and server")
    parser.add_argument("--json", help="write the raw results to this file")
    parser.add_argument("--markdown", help="write the markdown tables to this file")
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help=f"put the tables into {DOCS.relative_to(ROOT)} between its bench markers",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile bare and backboneio under A16 and B1000 with py-spy",
    )
    parser.add_argument(
        "--stores", action="store_true", help="also run the store benchmark (bench/stores.py)"
    )
    args = parser.parse_args(argv)
    if args.profile:
        import profile_servers

        profile_servers._pyspy()  # before the rounds, not after ten minutes of them

    node_modules()
    nofile = servers.raise_open_file_limit()
    off = change_log_off_setting()
    if off is not None:
        servers.add_log_off_variant(off)
    default = DEFAULT_SERVERS + (["backboneio-log-off"] if off is not None else [])
    wanted = args.servers.split(",") if args.servers else default
    unknown = [w for w in wanted if w not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s) {unknown}; known: {', '.join(SERVERS)}")
    specs = [SERVERS[w] for w in wanted]
    table = TINY if args.tiny else SCENARIOS
    if args.scenarios:
        picked = args.scenarios.split(",")
        missing = [p for p in picked if p not in {**SCENARIOS, **TINY}]
        if missing:
            parser.error(f"unknown scenario(s) {missing}")
        table = {p: {**SCENARIOS, **TINY}[p] for p in picked}
    rounds = 1 if args.tiny else args.rounds
    timing = {"warmup": 0.3, "duration": 0.7} if args.tiny else {"warmup": 1.0, "duration": 3.0}
    if args.warmup is not None:
        timing["warmup"] = args.warmup
    if args.duration is not None:
        timing["duration"] = args.duration

    def log(line: str) -> None:
        print(line, flush=True)

    started = time.monotonic()
    records = run_rounds(specs, table, rounds, timing, log)
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": rounds,
        "timing": timing,
        "elapsed": time.monotonic() - started,
        "machine": machine(),
        "nofile": nofile,
    }
    text = markdown(records, specs, table, meta)
    results: dict[str, Any] = {"meta": meta, "records": records}
    if args.profile:
        import profile_servers

        results["profile"] = profile_servers.profile_all(timing, log)
        text += "\n" + profile_servers.markdown(results["profile"])
    if args.stores:
        import stores

        results["stores"] = stores.measure(args.tiny)
        text += "\n" + stores.markdown(results["stores"])
    print()
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.update_docs:
        update_docs(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
