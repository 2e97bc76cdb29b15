"""A memory probe for bench/idle_memory.py, loaded by any Python process that has
this folder on PYTHONPATH and BENCH_MEMPROBE set (to a folder for its dumps).

Each SIGUSR1 writes ``info<N>.json`` (RSS, gc-tracked objects by type,
greenlets by where they wait; with BENCH_MEMPROBE_TRIM=1 also the RSS after
glibc's ``malloc_trim(0)``, which gives back the heap's free pages) and,
with BENCH_MEMPROBE_TRACE=1 (tracemalloc started here, before anything else
is imported), ``snap<N>.pickle``.
"""

import os

_OUT = os.environ.get("BENCH_MEMPROBE")

if _OUT:
    import collections
    import ctypes
    import gc
    import json
    import signal
    import sys
    import tracemalloc

    _TRACE = os.environ.get("BENCH_MEMPROBE_TRACE") == "1"
    _TRIM = os.environ.get("BENCH_MEMPROBE_TRIM") == "1"
    if _TRACE:
        tracemalloc.start(int(os.environ.get("BENCH_MEMPROBE_FRAMES", "1")))
    _count = [0]

    def _rss_kib() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def _mappings() -> dict[str, int]:
        """Resident KiB by kind of mapping: the malloc heap, other anonymous
        memory (pymalloc arenas, mmap'd blocks such as frame stacks), files."""
        kib: collections.Counter[str] = collections.Counter()
        kind = "?"
        with open("/proc/self/smaps") as smaps:
            for line in smaps:
                head = line.split()
                if "-" in head[0] and len(head) >= 5 and ":" in head[3]:
                    path = head[5] if len(head) > 5 else ""
                    kind = path if path.startswith("[") else "anonymous" if not path else "files"
                    kib[kind + " mappings"] += 1
                elif head[0] == "Rss:":
                    kib[kind] += int(head[1])
        return dict(kib)

    def _greenlets() -> dict[str, int]:
        found: collections.Counter[str] = collections.Counter()
        try:
            import greenlet
        except ImportError:
            return {}
        for obj in gc.get_objects():
            if isinstance(obj, greenlet.greenlet) and not obj.dead:
                frame, where = obj.gr_frame, []
                while frame is not None and len(where) < 3:
                    code = frame.f_code
                    where.append(f"{code.co_name} ({os.path.basename(code.co_filename)})")
                    frame = frame.f_back
                found[" < ".join(where) or "(running or not started)"] += 1
        return dict(found)

    def _dump(signum: int, frame: object) -> None:
        _count[0] += 1
        n = _count[0]
        gc.collect()
        types = collections.Counter(
            f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects()
        )
        info = {"rss_kib": _rss_kib(), "types": dict(types), "greenlets": _greenlets()}
        info["mappings"] = _mappings()
        if _TRIM:
            # Free memory inside the heap back to the system: what is left is in use.
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            info["rss_trimmed_kib"] = _rss_kib()
        if _TRACE:
            tracemalloc.take_snapshot().dump(os.path.join(_OUT, f"snap{n}.pickle"))
            info["traced"] = tracemalloc.get_traced_memory()[0]
            info["tracemalloc_overhead"] = tracemalloc.get_tracemalloc_memory()
        path = os.path.join(_OUT, f"info{n}.json")
        with open(path + ".tmp", "w") as out:
            json.dump(info, out)
        os.replace(path + ".tmp", path)
        sys.stderr.flush()

    signal.signal(signal.SIGUSR1, _dump)
