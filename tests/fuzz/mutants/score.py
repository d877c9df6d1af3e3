"""Mutation score: the fraction of the suite's mutants the fuzzer kills within a CPU-time budget, per seed.

    python -m tests.fuzz.mutants.score [--seconds 30] [--seeds 1,2,3,4,5] [--json out.json]
                                       [--mutants a,b,...]

Each mutant of :mod:`tests.fuzz.mutants.evaluator` is fuzzed **alone**, as a
user would fuzz their own evaluator: one ``fuzz.run`` per (seed, mutant),
stack mutants in a stack run, stopped at the first disagreement or after
``--seconds`` of **CPU time of the fuzzing process** (``time.process_time``:
generation, the reference, the candidate; a loaded, shared machine slows the
wall clock but not this budget). A mutant is killed when the fuzzer reports
a disagreement for it within the budget; its time to kill is the CPU time
(and the number of programs or stacks drawn) until then. The unmutated
evaluator is the control: it is fuzzed for the same budget per seed (single
programs and stacks) and must agree everywhere. Wall time and the load
average are reported beside the CPU time. Prints one line per seed, and a
Markdown table with ``--markdown``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from bpfjit.testing import candidates, fuzz

from .evaluator import HELD_OUT, HELD_OUT_STACK, MUTANTS, STACK_MUTANTS, candidate


def _fuzz_alone(name: str | None, seed: int, seconds: float, stack: bool):
    label = name or ("stack" if stack else "correct")
    cand = candidates.from_object(candidate(label if stack and name is None else name), label,
                                  stack=stack)
    report = fuzz.run([cand], cpu_seconds=seconds, seed=seed, use_kernel=False, stack=stack,
                      shrink=False, max_shrinks_per_candidate=1, max_disagreements=1)
    return label, report


def kill(name: str, seed: int, seconds: float) -> dict:
    """Fuzz one mutant alone: killed?, CPU and wall seconds and programs until the kill."""
    stack = name in STACK_MUTANTS
    _, report = _fuzz_alone(name, seed, seconds, stack)
    first = report.first_found.get(name)
    if first is not None and first[2] > seconds:     # found by the program that crossed it
        first = None
    return {"mutant": name, "killed": first is not None,
            "programs": first[0] if first else report.programs,
            "wall": round(first[1] if first else report.elapsed, 3),
            "cpu": round(first[2] if first else report.cpu_elapsed, 3)}


def score(seed: int, seconds: float, *, names: list[str] | None = None) -> dict:
    names = names or list(MUTANTS) + list(STACK_MUTANTS)
    start, load0 = time.monotonic(), os.getloadavg()[0]
    cpu0 = time.process_time()
    rows = [kill(n, seed, seconds) for n in names]
    control = {}
    for stack in (False, True):
        label, report = _fuzz_alone(None, seed, seconds, stack)
        control[label] = {"ok": report.ok, "programs": report.programs,
                          "cpu": round(report.cpu_elapsed, 1)}
    times = [r["cpu"] for r in rows if r["killed"]]
    killed = [r["mutant"] for r in rows if r["killed"]]
    return {"seed": seed, "mutants": len(rows), "killed": killed,
            "survivors": [r["mutant"] for r in rows if not r["killed"]],
            "held_out": sorted(set(names) & (set(HELD_OUT) | set(HELD_OUT_STACK))),
            "held_out_killed": sorted(set(killed) & (set(HELD_OUT) | set(HELD_OUT_STACK))),
            "cpu_to_kill_median": round(statistics.median(times), 3) if times else None,
            "cpu_to_kill_max": round(max(times), 3) if times else None,
            "slowest": max(rows, key=lambda r: r["cpu"] if r["killed"] else -1)["mutant"],
            "control_ok": all(c["ok"] for c in control.values()), "control": control,
            "rows": rows, "cpu_seconds": round(time.process_time() - cpu0, 1),
            "wall_seconds": round(time.monotonic() - start, 1),
            "load": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def line(row: dict) -> str:
    return (f"seed {row['seed']}: {len(row['killed'])}/{row['mutants']} killed "
            f"({100 * len(row['killed']) / row['mutants']:.1f} %; held out "
            f"{len(row['held_out_killed'])}/{len(row['held_out'])}), CPU s to kill median "
            f"{row['cpu_to_kill_median']} max {row['cpu_to_kill_max']} ({row['slowest']}); "
            f"control {'ok' if row['control_ok'] else 'DISAGREES'}; run {row['cpu_seconds']} s "
            f"CPU / {row['wall_seconds']} s wall, load {row['load'][0]}-{row['load'][1]}; "
            f"survivors: {', '.join(row['survivors']) or 'none'}")


def markdown(rows: list[dict], seconds: float) -> str:
    out = [f"| seed | killed / mutants | held out killed | CPU s to kill: median | max (mutant) "
           f"| survivors | run: CPU s / wall s (load) |",
           "| ---: | ---: | ---: | ---: | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {r['seed']} | {len(r['killed'])}/{r['mutants']} | "
                   f"{len(r['held_out_killed'])}/{len(r['held_out'])} | "
                   f"{r['cpu_to_kill_median']} | {r['cpu_to_kill_max']} ({r['slowest']}) | "
                   f"{', '.join(r['survivors']) or 'none'} | {r['cpu_seconds']} / "
                   f"{r['wall_seconds']} ({r['load'][0]}-{r['load'][1]}) |")
    out.append(f"\nBudget: {seconds:g} CPU seconds per mutant, each fuzzed alone; control "
               f"(unmutated evaluator, programs and stacks, {seconds:g} CPU s each): "
               + ", ".join("ok" if r["control_ok"] else f"seed {r['seed']} DISAGREES"
                           for r in rows))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="CPU seconds per mutant")
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--mutants", default=None, help="comma-separated names (default: all)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    names = args.mutants.split(",") if args.mutants else None
    unknown = sorted(set(names or ()) - set(MUTANTS) - set(STACK_MUTANTS))
    if unknown:
        ap.error(f"unknown mutants: {', '.join(unknown)}")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        row = score(seed, args.seconds, names=names)
        rows.append(row)
        print(line(row), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=2)
    if args.markdown:
        print(markdown(rows, args.seconds))
    return 0 if all(not r["survivors"] and r["control_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
