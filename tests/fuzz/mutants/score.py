"""Mutation score: the fraction of the suite's mutants the fuzzer kills within a time budget, per seed.

    python -m tests.fuzz.mutants.score [--seconds 30] [--seeds 1,2,3,4,5] [--json out.json]

All mutants of :mod:`tests.fuzz.mutants.evaluator` run as candidates in one
fuzz run per seed (single-program mutants, then the stack mutants in a stack
run), each run ``--seconds`` long, with the unmutated evaluator as a control
that must agree everywhere. A mutant is killed when the fuzzer reports a
disagreement for it. Prints one line per seed and the survivors.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from bpfjit.testing import candidates, fuzz

from .evaluator import MUTANTS, STACK_MUTANTS, candidate


def _killed(report) -> set[str]:
    return set(report.raw_by_candidate)


def score(seed: int, seconds: float, *, stack_seconds: float | None = None) -> dict:
    names = list(MUTANTS)
    cands = [candidates.from_object(candidate(m), m) for m in names + [None]]
    start = time.monotonic()
    single = fuzz.run(cands, seconds=seconds, seed=seed, use_kernel=False, shrink=False,
                      max_shrinks_per_candidate=0)
    cands = [candidates.from_object(candidate(m), m, stack=True)
             for m in list(STACK_MUTANTS) + ["stack"]]
    stacked = fuzz.run(cands, seconds=stack_seconds or seconds, seed=seed, use_kernel=False,
                       stack=True, shrink=False, max_shrinks_per_candidate=0)
    killed = (_killed(single) | _killed(stacked))
    all_names = names + list(STACK_MUTANTS)
    return {"seed": seed, "mutants": len(all_names),
            "killed": sorted(n for n in all_names if n in killed),
            "survivors": sorted(n for n in all_names if n not in killed),
            "control_ok": "correct" not in killed and "stack" not in killed,
            "programs": single.programs, "stacks": stacked.programs,
            "seconds": round(time.monotonic() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        row = score(seed, args.seconds)
        rows.append(row)
        print(f"seed {seed}: {len(row['killed'])}/{row['mutants']} killed "
              f"({100 * len(row['killed']) / row['mutants']:.1f} %), control "
              f"{'ok' if row['control_ok'] else 'DISAGREES'}, {row['programs']} programs, "
              f"{row['stacks']} stacks; survivors: {', '.join(row['survivors']) or 'none'}",
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0 if all(not r["survivors"] and r["control_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
