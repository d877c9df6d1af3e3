"""The llvm backend against the running kernel, directly, on generated programs (issue: native backends).

Every generated valid and realistic program is compiled by both backends and
evaluated on inputs biased to its constants; the 32-bit values must be equal.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

import bpfjit
from bpfjit import backends
from bpfjit.testing import inputs_for, realistic_program, valid_program

pytestmark = pytest.mark.kernel

# nr 335/336 never reach seccomp on x86_64; the kernel backend substitutes them (see its docstring)
BYPASS = np.array([335, 336], dtype=np.int32)


@pytest.mark.parametrize("kind", ["valid", "realistic"])
def test_llvm_equals_the_kernel_on_generated_programs(kind):
    if backends.available()["llvm"] is not None:
        pytest.skip(f"llvm backend unavailable: {backends.available()['llvm']}")
    rng = random.Random(20261122 + len(kind))
    make = valid_program if kind == "valid" else realistic_program
    compared = 0
    for _ in range(60):
        prog = make(rng)
        records = inputs_for(prog, rng, 200, layout="x86_64")
        records = records[~np.isin(records["nr"], BYPASS)]
        try:
            kernel = bpfjit.compile(prog, backend="kernel", arch="x86_64")
        except bpfjit.BackendUnavailable as exc:     # e.g. the rewrite would exceed 4096
            print(f"skipped one program: {exc}")
            continue
        llvm = bpfjit.compile(prog, backend="llvm", arch="x86_64")
        want = kernel.evaluate_batch(records)
        got = llvm.evaluate_batch(records)
        bad = np.nonzero(want != got)[0]
        assert not len(bad), (f"{kind} program differs at record {bad[0]}: kernel "
                              f"{int(want[bad[0]]):#x}, llvm {int(got[bad[0]]):#x}\n"
                              f"{prog.disassemble()}\n{records[bad[0]]}")
        compared += len(records)
    assert compared > 5000
