"""The long run (slow, not in CI): >= 10 M verdicts and >= 1 M accept/reject decisions against Linux.

Run it with ``python -m pytest -m slow tests/fuzz/test_long_run.py -s``. Phase 1
compares the JIT backends (and the kernel on a sample of each program's
records) with the reference interpreter on every 32-bit value; phase 2 asks
seccomp(2) about programs of every kind and compares with bpfjit.check.
Targets: ``BPFJIT_LONG_VERDICTS`` (10,000,000) and ``BPFJIT_LONG_DECISIONS``
(1,000,000); ``BPFJIT_LONG_SEED`` picks the first seed (each chunk of the run
uses the next one).
"""
from __future__ import annotations

import os
import time

import pytest

from bpfjit import backends
from bpfjit.testing import fuzz

from .test_smoke import explain

VERDICTS = int(os.environ.get("BPFJIT_LONG_VERDICTS", "10000000"))
DECISIONS = int(os.environ.get("BPFJIT_LONG_DECISIONS", "1000000"))
SEED = int(os.environ.get("BPFJIT_LONG_SEED", "1000"))
CHUNK_SECONDS = float(os.environ.get("BPFJIT_LONG_CHUNK", "300"))


def _chunks(tmp_path, name: str, done, **kw):
    """fuzz.run in CHUNK_SECONDS pieces (new seed each) until ``done(totals)``; the totals."""
    totals = {"programs": 0, "verdicts": 0, "kernel_verdicts": 0, "accept_decisions": 0,
              "kernel_accept_decisions": 0, "records": 0, "seconds": 0.0}
    failures = []
    seed = SEED
    while not done(totals):
        report = fuzz.run(seconds=CHUNK_SECONDS, seed=seed, out_dir=tmp_path / f"{name}-{seed}",
                          **kw)
        print(f"\n[{name} seed {seed}]\n" + report.format(), flush=True)
        for key in totals:
            totals[key] += report.elapsed if key == "seconds" else getattr(report, key)
        unexplained = [d for d in report.disagreements if not _jit_refusal(d)]
        totals["jit_refusals"] = totals.get("jit_refusals", 0) + \
            len(report.disagreements) - len(unexplained)
        if unexplained:
            failures.append(explain(report))
        seed += 1
    return totals, failures


def _jit_refusal(d) -> bool:
    """The known divergence (README, check.py): the kernel's BPF JIT refuses a valid program."""
    return d.oracle == "kernel" and d.kind == "accepts-invalid" and \
        str(d.expected.get("errno")) in ("524", "ENOTSUPP")


@pytest.mark.slow
def test_long_run(tmp_path):
    from bpfjit.backends.kernel import kernel_unavailable_reason
    kernel = kernel_unavailable_reason() is None
    jits = [b for b in ("llvm", "numba") if backends.available()[b] is None]
    start = time.monotonic()
    verdicts, bad1 = _chunks(
        tmp_path, "verdicts", lambda t: t["verdicts"] >= VERDICTS, candidates=jits,
        inputs_per_program=1024, kernel_records=128, use_kernel="auto")
    decisions, bad2 = _chunks(
        tmp_path, "accept", lambda t: t["kernel_accept_decisions"] >= DECISIONS or not kernel,
        candidates=[], inputs_per_program=1, kernel_records=0, use_kernel=kernel)
    print(f"\nlong run: {time.monotonic() - start:.0f} s; verdicts {verdicts}; "
          f"accept/reject {decisions}")
    assert not bad1 and not bad2, "\n\n".join(bad1 + bad2)
    assert verdicts["verdicts"] >= VERDICTS
    if kernel:
        assert decisions["kernel_accept_decisions"] + verdicts["kernel_accept_decisions"] \
            >= DECISIONS
