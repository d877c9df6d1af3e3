"""Issue 14.2: a native entry point kept after its Filter is gone still has its code mapped.

``g = f.evaluator.evaluate_nr; del f``, then 200 other filters push it out of
the in-memory cache (128 entries), ``gc.collect()``, ``g(59)``: this used to
SIGSEGV. Run in a subprocess so a crash is a failed test, not a dead runner;
the expected values come from the reference interpreter.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("llvmlite")

SCRIPT = textwrap.dedent(r"""
    import gc, struct, sys
    import bpfjit
    from bpfjit import opcodes as op
    from bpfjit.program import Instruction, Program
    LD = op.BPF_LD | op.BPF_W | op.BPF_ABS
    JEQ = op.BPF_JMP | op.BPF_JEQ | op.BPF_K
    RET = op.BPF_RET | op.BPF_K

    def prog(nr, value):
        return Program([Instruction(LD, 0, 0, 0), Instruction(JEQ, 0, 1, nr),
                        Instruction(RET, 0, 0, value), Instruction(RET, 0, 0, 0x7FFF0000)])

    kept = prog(59, 0x00050001)
    f = bpfjit.compile(kept, backend="llvm", arch="x86_64")
    g = f.evaluator.evaluate_nr
    h = f.evaluator.evaluate_packed
    del f
    for i in range(200):
        bpfjit.compile(prog(1000 + i, 0x00050000 + i), backend="llvm", arch="x86_64")
    gc.collect()
    record = struct.pack("<IIQ6Q", 59, 0xC000003E, 0, *([0] * 6))
    ref = bpfjit.compile(kept, backend="reference", arch="x86_64")
    print(g(59), g(60), h(record), ref.evaluate(59), ref.evaluate(60))
""")


def test_kept_entry_points_survive_their_filter(tmp_path):
    env = dict(os.environ, BPFJIT_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    g59, g60, h59, ref59, ref60 = map(int, proc.stdout.split())
    assert (g59, g60, h59) == (ref59, ref60, ref59) == (0x00050001, 0x7FFF0000, 0x00050001)
