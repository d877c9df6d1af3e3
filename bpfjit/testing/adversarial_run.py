"""Testing: the long adversarial compile run — CPU and wall time of every llvm compile, the slowest kept.

``python -m bpfjit.testing.adversarial --minutes 30 --keep DIR`` draws
programs from :mod:`.adversarial` and compiles each with a fresh llvm backend
(memory-only cache: every compile is cold), in this process, timing it three
ways: wall time, the compiling thread's CPU time (``CLOCK_THREAD_CPUTIME_ID``)
and the process's CPU time (LLVM may start threads of its own). On a shared
machine the wall time mostly measures waiting; the CPU time is what issue 14's
"every valid program compiles in <= 2 s" is about. Each compiled filter is
compared with the reference interpreter on records biased to its constants.

``--keep DIR`` keeps the slowest programs (by CPU time) as ``DIR/NNNNNN-shape.bpf``
(little-endian ``struct sock_filter`` bytes) beside a ``.json`` with their
row; ``--replay DIR`` re-times every ``.bpf`` in ``DIR`` (best and median of
``--rounds``), so a slow program from one run can be measured again, profiled,
or turned into a test.
"""
from __future__ import annotations

import gc
import heapq
import json
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

from .adversarial import adversarial_program


def _load_now() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:                        # pragma: no cover - no load average on this OS
        return float("nan")


def warm_up(lay) -> None:
    """Import llvmlite and initialise LLVM once, so the first timed compile is like the others."""
    from ..check import check
    from ..program import Instruction, Program
    time_compile(check(Program([Instruction(0x06, 0, 0, 0x7FFF0000)])), lay)


def time_compile(checked, lay) -> tuple[object, dict]:
    """(evaluator, {wall_s, thread_cpu_s, cpu_s, rss_mb}) of one cold llvm compile in this thread."""
    from ..backends.llvm import LlvmBackend
    from ..backends.llvm.cache import CodeCache
    gc.collect()
    w0, t0, c0 = time.perf_counter(), time.thread_time(), time.process_time()
    evaluator = LlvmBackend(cache=CodeCache(None)).compile(checked, lay)
    w1, t1, c1 = time.perf_counter(), time.thread_time(), time.process_time()
    return evaluator, {"wall_s": round(w1 - w0, 4), "thread_cpu_s": round(t1 - t0, 4),
                       "cpu_s": round(c1 - c0, 4),
                       "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


class _Keeper:
    """The ``count`` slowest programs by CPU time, as files in ``directory``."""

    def __init__(self, directory: Path | None, count: int):
        self.directory, self.count = directory, count
        self.heap: list[tuple[float, int, str]] = []
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def offer(self, row: dict, program_bytes: bytes) -> None:
        if self.directory is None or self.count <= 0:
            return
        entry = (row["cpu_s"], row["index"], f"{row['index']:06d}-{row['shape']}")
        if len(self.heap) >= self.count:
            if entry <= self.heap[0]:
                return
            _, _, gone = heapq.heappushpop(self.heap, entry)
            for suffix in (".bpf", ".json"):
                (self.directory / (gone + suffix)).unlink(missing_ok=True)
        else:
            heapq.heappush(self.heap, entry)
        (self.directory / (entry[2] + ".bpf")).write_bytes(program_bytes)
        (self.directory / (entry[2] + ".json")).write_text(json.dumps(row, indent=1))


def run(seconds: float, seed: int = 0, *, programs: int | None = None, check_inputs: int = 4,
        keep: "str | Path | None" = None, keep_count: int = 20, shapes=None,
        report: Callable[[dict], None] | None = None) -> dict:
    """Compile adversarial programs with llvm (no cache) for ``seconds`` (or ``programs`` of them).

    Returns ``programs``, ``slowest_cpu`` / ``slowest_wall`` (rows: shape,
    index, instructions, ``cpu_s``, ``thread_cpu_s``, ``wall_s``, the
    backend's split), ``slowest_cpu_s`` / ``slowest_s`` (wall), ``top`` (the
    ten slowest rows by CPU), ``per_shape`` (count, max and mean CPU, max
    wall), ``load`` (1-minute load average: min, mean, max over the run),
    ``cpu_total_s``, and ``mismatches`` (empty when every filter agreed with
    the reference interpreter).
    """
    import numpy as np

    from ..backends.reference import ReferenceBackend
    from ..check import check
    from ..seccomp.layouts import layout
    from .inputs import inputs_for

    lay = layout("x86_64")
    reference = ReferenceBackend()
    rng = random.Random(seed)
    keeper = _Keeper(Path(keep) if keep else None, keep_count)
    rows_top: list[tuple[float, int, dict]] = []
    per_shape: dict[str, dict] = {}
    stats: dict = {"seed": seed, "programs": 0, "slowest_cpu_s": 0.0, "slowest_cpu": None,
                   "slowest_s": 0.0, "slowest_wall": None, "mismatches": []}
    warm_up(lay)
    loads = [_load_now()]
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (programs is None or stats["programs"] < programs):
        index = stats["programs"]
        shape, program = adversarial_program(rng, rng.choice(shapes) if shapes else None)
        checked = check(program)
        evaluator, timing = time_compile(checked, lay)
        stats["programs"] += 1
        row = {"shape": shape, "index": index, "insns": len(program), **timing,
               **{k: evaluator.info.get(k) for k in ("analysis_ms", "lower_ms", "optimize_ms",
                                                     "codegen_ms", "codegen", "switches",
                                                     "table_abandoned")},
               "source": program.source}
        if index % 20 == 0:
            loads.append(_load_now())
        row["load"] = loads[-1]
        s = per_shape.setdefault(shape, {"count": 0, "cpu_max_s": 0.0, "cpu_sum_s": 0.0,
                                         "wall_max_s": 0.0, "slowest_index": None})
        s["count"] += 1
        s["cpu_sum_s"] += row["cpu_s"]
        s["wall_max_s"] = max(s["wall_max_s"], row["wall_s"])
        if row["cpu_s"] >= s["cpu_max_s"]:
            s["cpu_max_s"], s["slowest_index"] = row["cpu_s"], index
        if row["cpu_s"] > stats["slowest_cpu_s"]:
            stats["slowest_cpu_s"], stats["slowest_cpu"] = row["cpu_s"], row
        if row["wall_s"] > stats["slowest_s"]:
            stats["slowest_s"], stats["slowest_wall"] = row["wall_s"], row
        heapq.heappush(rows_top, (row["cpu_s"], index, row))
        if len(rows_top) > 10:
            heapq.heappop(rows_top)
        raw = program.to_bytes("little")
        keeper.offer(row, raw)
        records = inputs_for(program, rng, check_inputs, layout=lay)
        got = np.zeros(len(records), dtype=np.uint32)
        evaluator.evaluate_batch(records, got)
        want = np.zeros(len(records), dtype=np.uint32)
        reference.compile(checked, lay).evaluate_batch(records, want)
        if not np.array_equal(got, want):
            stats["mismatches"].append({"shape": shape, "index": index, "program": raw.hex()})
        del evaluator
        if report is not None:
            report(row)
    loads.append(_load_now())
    for s in per_shape.values():
        s["cpu_mean_s"] = round(s.pop("cpu_sum_s") / s["count"], 4)
    stats.update(per_shape=per_shape,
                 top=[r for _, _, r in sorted(rows_top, key=lambda t: (-t[0], t[1]))],
                 load={"min": min(loads), "mean": round(statistics.fmean(loads), 2),
                       "max": max(loads)},
                 cpu_total_s=round(time.process_time() - start_cpu, 1),
                 wall_total_s=round(time.perf_counter() - start_wall, 1))
    if keeper.directory is not None:
        (keeper.directory / "summary.json").write_text(json.dumps(stats, indent=1))
    return stats


def replay(directory: "str | Path", rounds: int = 3, check_inputs: int = 16,
           report: Callable[[dict], None] | None = None) -> list[dict]:
    """Re-time every ``*.bpf`` in ``directory``: best and median CPU and wall over ``rounds``.

    Rows sorted slowest first (best CPU); ``shape`` from the ``.json`` beside the
    program when there is one; ``exact``: the compiled filter agreed with the
    reference interpreter on ``check_inputs`` records.
    """
    import numpy as np

    from ..backends.reference import ReferenceBackend
    from ..check import check
    from ..program import Program
    from ..seccomp.layouts import layout
    from .inputs import inputs_for

    lay = layout("x86_64")
    warm_up(lay)
    rows = []
    for path in sorted(Path(directory).glob("*.bpf")):
        program = Program.from_bytes(path.read_bytes(), "little")
        checked = check(program)
        side = path.with_suffix(".json")
        before = json.loads(side.read_text()) if side.exists() else {}
        timings = []
        for _ in range(rounds):
            evaluator, timing = time_compile(checked, lay)
            timings.append(timing)
        records = inputs_for(program, random.Random(path.name), check_inputs, layout=lay)
        got = np.zeros(len(records), dtype=np.uint32)
        want = np.zeros(len(records), dtype=np.uint32)
        evaluator.evaluate_batch(records, got)
        ReferenceBackend().compile(checked, lay).evaluate_batch(records, want)
        cpu = sorted(t["cpu_s"] for t in timings)
        wall = sorted(t["wall_s"] for t in timings)
        row = {"file": path.name, "shape": before.get("shape", "?"), "insns": len(program),
               "cpu_best_s": cpu[0], "cpu_median_s": statistics.median(cpu),
               "wall_best_s": wall[0], "wall_median_s": statistics.median(wall),
               "run_cpu_s": before.get("cpu_s"), "run_wall_s": before.get("wall_s"),
               "load": round(_load_now(), 2), "exact": bool(np.array_equal(got, want)),
               **{k: evaluator.info.get(k) for k in ("analysis_ms", "lower_ms", "optimize_ms",
                                                     "codegen_ms", "codegen")}}
        rows.append(row)
        if report is not None:
            report(row)
    rows.sort(key=lambda r: -r["cpu_best_s"])
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bpfjit.testing.adversarial",
        description="compile adversarial programs with llvm for a while (cold, in process); "
                    "report CPU and wall time per compile, keep the slowest")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", action="append", help="draw only these shapes (repeatable)")
    parser.add_argument("--keep", metavar="DIR", help="keep the slowest programs (by CPU) here")
    parser.add_argument("--keep-count", type=int, default=20)
    parser.add_argument("--replay", metavar="DIR", help="re-time the programs kept in DIR")
    parser.add_argument("--rounds", type=int, default=3, help="compiles per program (--replay)")
    parser.add_argument("--json", help="write the summary here")
    parser.add_argument("--quiet", action="store_true", help="no row per program on stderr")
    args = parser.parse_args(argv)

    def report(row):
        if not args.quiet:
            print(json.dumps(row), file=sys.stderr, flush=True)

    if args.replay:
        rows = replay(args.replay, args.rounds, report=report)
        text = json.dumps(rows, indent=1)
        bad = [r for r in rows if not r["exact"]]
    else:
        if args.shape:
            from .adversarial import SHAPES
            unknown = [s for s in args.shape if s not in SHAPES]
            if unknown:
                parser.error(f"unknown shape(s) {', '.join(unknown)}; one of {', '.join(SHAPES)}")
        stats = run(args.minutes * 60, args.seed, keep=args.keep, keep_count=args.keep_count,
                    shapes=args.shape, report=report)
        text = json.dumps(stats, indent=1)
        bad = stats["mismatches"]
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
