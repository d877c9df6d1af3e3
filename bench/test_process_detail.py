"""Batch detail (bench stage): ``evaluate_batch(detail=True)`` against the plain batch.

The detail (winning value, applied action, matching filter, logged) is computed
from the compiled per-filter results with whole-array numpy. The goal (issue 8):
on Docker's default filter the detail batch stays within 2x of the plain
batch's time. ``extra_info["ratio"]`` is the median over PAIRS back-to-back
(plain pass, detail pass) of their time ratio (on a shared machine the load
changes from second to second; a pair sees the same load), with the best-of
times alongside; a two-filter stack is measured too.
Run: ``python3 -m pytest bench/test_process_detail.py --benchmark-only -s``.
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

import bpfjit
from bpfjit import workloads
from bpfjit.batch_detail import empty_detail
from bpfjit.process import Environment, process_outcome

N = 2_000_000
ROUNDS = 7
PAIRS = 9


def _best(fn) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.parametrize("filters", [1, 2], ids=["docker default", "docker default twice"])
@pytest.mark.parametrize("mix", ["realistic", "uniform_nr"])
def test_detail_vs_plain_batch(benchmark, filters, mix):
    programs, arch = workloads.corpus_filter("docker-default.x86_64")
    f = bpfjit.compile(programs[0], backend="llvm", arch=arch, flags="LOG")
    subject = f if filters == 1 else bpfjit.Stack([f, f], flags=["LOG", 0])
    recs = workloads.mix(mix, N, seed=1, arch=arch)
    out = np.empty(N, dtype=np.uint32)
    out_detail = empty_detail(N)            # both forms fill preallocated arrays
    env = Environment()
    d = subject.evaluate_batch(recs[:2000], detail=True, env=env)      # a real check first
    for i in range(0, 2000, 97):
        values = [x.evaluate(int(recs["nr"][i]), [int(a) for a in recs["args"][i]],
                             int(recs["arch"][i]), int(recs["instruction_pointer"][i]))
                  for x in ([f] if filters == 1 else [f, f])]
        o = process_outcome(values, [2] * len(values) if filters == 1 else [2, 0],
                            int(recs["nr"][i]), int(recs["arch"][i]), env)
        assert bool(d.logged[i]) == o.logged
    plain = _best(lambda: subject.evaluate_batch(recs, out))
    detail = _best(lambda: subject.evaluate_batch(recs, out_detail, detail=True, env=env))
    fresh = _best(lambda: subject.evaluate_batch(recs, detail=True, env=env))
    ratios = []
    for _ in range(PAIRS):
        t0 = time.perf_counter()
        subject.evaluate_batch(recs, out)
        t1 = time.perf_counter()
        subject.evaluate_batch(recs, out_detail, detail=True, env=env)
        ratios.append((time.perf_counter() - t1) / (t1 - t0))
    paired = statistics.median(ratios)
    benchmark.group = "process detail"
    benchmark.pedantic(subject.evaluate_batch, args=(recs,), kwargs={"detail": True, "env": env},
                       rounds=3, iterations=1)
    benchmark.extra_info.update({
        "records": N, "plain_ns_per_record": plain / N * 1e9,
        "detail_ns_per_record": detail / N * 1e9, "ratio": paired,
        "ratio_of_best": detail / plain, "fresh_arrays_ns_per_record": fresh / N * 1e9})
    print(f"\n{mix}, {filters} filter(s): plain {plain / N * 1e9:.2f} ns/record, detail "
          f"{detail / N * 1e9:.2f} ns/record (best of {ROUNDS}); paired median ratio "
          f"{paired:.2f}, ratio of bests {detail / plain:.2f}; with new output arrays "
          f"{fresh / N * 1e9:.2f} ns/record")
