"""Cold llvm compile of every real corpus filter, in process, no cache (issue 14: bounded compile time).

Run from the worktree root: ``python3 bench/compile_real.py [--rounds 3] [--json out.json]``.
For each ``tests/corpus/real/filters/*.bpf``: best of ``--rounds`` compiles with a fresh
memory-only :class:`~bpfjit.backends.llvm.LlvmBackend` (no disk cache), whole
``compile`` wall time and CPU time (on a shared machine the CPU time is the steadier
figure), plus the backend's own split (analysis / lower / optimize / codegen, wall).
A measurement, not a test: nothing is asserted about speed.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bpfjit import check, load
from bpfjit.backends.llvm import LlvmBackend
from bpfjit.backends.llvm.cache import CodeCache
from bpfjit.seccomp.layouts import layout
from bpfjit.workloads import _native_arch

ROOT = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "real" / "filters"
SPLIT = ("analysis_ms", "lower_ms", "optimize_ms", "codegen_ms")


def measure(path: Path, rounds: int) -> dict:
    program = check(load(path))
    lay = layout(_native_arch(path.with_suffix(".json")))
    best = None
    for _ in range(rounds):
        backend = LlvmBackend(cache=CodeCache(None))
        t0, c0 = time.perf_counter(), time.process_time()
        ev = backend.compile(program, lay)
        total = (time.perf_counter() - t0) * 1e3
        cpu = (time.process_time() - c0) * 1e3
        if best is None or total < best["total_ms"]:
            best = {"total_ms": round(total, 2), **{k: ev.info.get(k) for k in SPLIT}}
        best["cpu_ms"] = round(min(cpu, best.get("cpu_ms", cpu)), 2)
    return {"filter": path.stem, "insns": len(program), **best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rows = [measure(p, args.rounds) for p in sorted(ROOT.glob("*.bpf"))]
    print(f"{'filter':48} {'insns':>5} {'total':>8} {'cpu':>8} "
          + " ".join(f"{k[:-3]:>9}" for k in SPLIT))
    for r in rows:
        print(f"{r['filter']:48} {r['insns']:5} {r['total_ms']:8.1f} {r['cpu_ms']:8.1f} "
              + " ".join(f"{r[k]:9.1f}" for k in SPLIT))
    print(f"{'sum':48} {'':5} {sum(r['total_ms'] for r in rows):8.1f} "
          f"{sum(r['cpu_ms'] for r in rows):8.1f} "
          + " ".join(f"{sum(r[k] for r in rows):9.1f}" for k in SPLIT))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
