"""Where the Python servers' CPU goes, sampled with py-spy under A16 and B1000.

py-spy attaches to the pinned server once the load generator has started its
measured window and samples it for that window; idle samples (the hub waiting
in epoll) are not recorded, so percentages are of the time the server was on
the CPU. The raw collapsed stacks go to a temporary directory (or --keep DIR);
the markdown has only the tables of top frames.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from servers import SERVERS, RunningServer

PROFILED = [
    ("bare", "A16", "roundtrip", {"clients": 16}),
    ("backboneio", "A16", "roundtrip", {"clients": 16}),
    ("bare", "B1000", "fanout", {"listeners": 1000}),
    ("backboneio", "B1000", "fanout", {"listeners": 1000}),
]
RATE = 250
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

# Where a sample's frames say the time went, checked from the leaf outwards
# (the first area found wins), so each sample counts once.
AREAS: list[tuple[str, Callable[[str, str], bool]]] = [
    ("JSON encode/decode (json)", lambda f, p: p.startswith("json/")),
    ("uuid", lambda f, p: p.startswith("uuid")),
    ("pluggy hook calls", lambda f, p: p.startswith("pluggy/")),
    ("backboneio", lambda f, p: "backboneio/" in p),
    ("socketio (packets, rooms, emit)", lambda f, p: p.startswith("socketio/")),
    ("engineio (packets, queues, sockets)", lambda f, p: p.startswith("engineio/")),
    ("eventlet websocket frames", lambda f, p: p == "eventlet/websocket.py"),
    ("eventlet green sockets and hub", lambda f, p: p.startswith("eventlet/")),
    ("other", lambda f, p: True),
]


def _pyspy() -> str:
    # Beside this interpreter first: a virtual environment not on PATH has it there.
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for raw in stack.split(";"):
            m = FRAME.match(raw)
            frames.append((m["func"], m["file"]) if m else (raw, ""))
        stacks.append((frames, int(count)))
    return stacks


def area_of(frames: list[tuple[str, str]]) -> str:
    # A standard-library leaf (collections, socket.py) is charged to the
    # nearest caller in a known area: that is the code that asked for it.
    for func, file in reversed(frames):
        area = next(a for a, test in AREAS if test(func, file))
        if area != "other":
            return area
    return "other"


def summarise(stacks: list[tuple[list[tuple[str, str]], int]]) -> dict[str, Any]:
    total = sum(c for _, c in stacks) or 1
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    for frames, count in stacks:
        func, file = frames[-1]
        leaf[f"{func} ({file})"] += count
        for name in {f"{f} ({p})" for f, p in frames}:
            inclusive[name] += count
        areas[area_of(frames)] += count
    pct = lambda n: 100 * n / total  # noqa: E731
    return {
        "samples": total,
        "self": [(name, pct(n)) for name, n in leaf.most_common(12)],
        "inclusive": [(name, pct(n)) for name, n in inclusive.most_common(40)],
        "areas": [(name, pct(n)) for name, n in areas.most_common()],
    }


def profile_one(
    server_name: str, scenario: str, params: dict[str, Any], timing: dict[str, float], out_dir: Path
) -> dict[str, Any]:
    import run

    raw = out_dir / f"{server_name}-{scenario}.txt"
    spec = SERVERS[server_name]
    spy: list[subprocess.Popen[bytes]] = []
    with RunningServer(spec) as server:

        def attach() -> None:
            spy.append(
                subprocess.Popen(
                    [
                        _pyspy(),
                        "record",
                        "--pid",
                        str(server.pid),
                        "--rate",
                        str(RATE),
                        "--format",
                        "raw",
                        "--duration",
                        str(max(1, int(timing["duration"]))),
                        "-o",
                        str(raw),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

        result = run.run_load(server, kind_of(scenario), params, timing=timing, on_measuring=attach)
        for proc in spy:
            proc.wait(60)
    if not raw.is_file():
        return {"error": "py-spy wrote nothing (is ptrace allowed?)", "load": result}
    return {**summarise(parse(raw)), "load": result}


def kind_of(scenario: str) -> str:
    return {"A": "roundtrip", "B": "fanout"}[scenario[0]]


def profile_all(
    timing: dict[str, float], log: Callable[[str], None], keep: str | None = None
) -> dict[str, Any]:
    timing = {**timing, "duration": max(timing["duration"], 6.0)}
    out_dir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="backboneio-profile-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    profiles = {}
    for server_name, scenario, _, params in PROFILED:
        key = f"{server_name} {scenario}"
        profiles[key] = profile_one(server_name, scenario, params, timing, out_dir)
        log(f"profiled {key}: {profiles[key].get('samples', 0)} samples in {out_dir}")
    return profiles


def markdown(profiles: dict[str, Any]) -> str:
    out = ["### Profiles (py-spy, % of on-CPU samples of the server)", ""]
    keys = [k for k in profiles if "error" not in profiles[k]]
    area_names = [a for a, _ in AREAS]
    out.append(
        "Where the time goes, each sample counted once by the innermost frame of a known area:"
    )
    out.append("")
    out.append("| area | " + " | ".join(keys) + " |")
    out.append("|---|" + "---|" * len(keys))
    for area in area_names:
        cells = [f"{dict(profiles[k]['areas']).get(area, 0):.1f}" for k in keys]
        out.append(f"| {area} | " + " | ".join(cells) + " |")
    out.append("| samples | " + " | ".join(str(profiles[k]["samples"]) for k in keys) + " |")
    out.append("")
    for k in keys:
        out.append(f"Top self frames, {k}:")
        out.append("")
        out.append("| frame | % |")
        out.append("|---|---|")
        for name, pct in profiles[k]["self"][:10]:
            out.append(f"| `{name}` | {pct:.1f} |")
        out.append("")
    for k in profiles:
        if "error" in profiles[k]:
            out.append(f"{k}: {profiles[k]['error']}")
    return "\n".join(out)
