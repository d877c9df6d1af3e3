"""The exact semantics (bpfjit.analysis.semantics) against the running kernel, on generated programs.

A sample of the seeded programs of tests/analysis/test_semantics.py: every
input's region result must be what the kernel's filter returns.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

import bpfjit
from bpfjit.analysis.semantics import analyse
from bpfjit.seccomp import layouts, records
from bpfjit.testing import inputs_for, realistic_program, valid_program

pytestmark = pytest.mark.kernel

# nr 335/336 never reach seccomp on x86_64; the kernel backend substitutes them (see its docstring)
BYPASS = np.array([335, 336], dtype=np.int32)


def test_semantics_equal_the_kernel_on_generated_programs():
    rng = random.Random(20261205)
    lay = layouts.layout("x86_64")
    compared = programs = 0
    for n in range(40):
        prog = valid_program(rng) if n % 2 else realistic_program(rng, arch="x86_64")
        recs = inputs_for(prog, rng, 250, layout=lay)
        recs = recs[~np.isin(recs["nr"], BYPASS)]
        try:
            kernel = bpfjit.compile(prog, backend="kernel", arch=lay)
        except bpfjit.BackendUnavailable as exc:      # e.g. the rewrite would exceed 4096
            print(f"skipped one program: {exc}")
            continue
        want = kernel.evaluate_batch(recs)
        got, count = analyse(bpfjit.check(prog), lay).evaluate_words(records.words(recs, lay))
        bad = np.nonzero((count != 1) | (got != want))[0]
        assert not len(bad), (f"record {bad[0]}: analysis {int(got[bad[0]]):#x}, kernel "
                              f"{int(want[bad[0]]):#x}\n{prog.disassemble()}\n{recs[bad[0]]}")
        compared += len(recs)
        programs += 1
    print(f"{programs} programs, {compared} records")
    assert programs >= 30 and compared >= 7000
