"""backend="kernel" evaluates every valid program: a generated sample, each checked against the reference.

The sample mixes the fuzzer's valid and realistic programs with programs
built to hit the cases the backend once refused (``div x`` with all 16
scratch cells in use, divisions by zero in the middle of a batch). The only
program the kernel backend may leave out is one the kernel itself refuses
(ENOTSUPP from its BPF JIT). CI runs a small sample; ``-m slow`` runs
10,000 programs (``BPFJIT_KERNEL_SAMPLE`` to change it) and prints the
figures.
"""
from __future__ import annotations

import os
import random
import time

import numpy as np
import pytest

import bpfjit
from bpfjit import opcodes as op
from bpfjit.backends import kernel as kb
from bpfjit.errors import BackendUnavailable
from bpfjit.program import Instruction, Program
from bpfjit.testing import inputs_for, realistic_program, valid_program

pytestmark = pytest.mark.kernel

HOST_FAMILY = ("x86_64", "x86", "x32")
DIV_X = op.BPF_ALU | op.BPF_DIV | op.BPF_X


def div_x_all_cells_program(rng: random.Random) -> Program:
    """A valid program that fills all 16 scratch cells, then divides by X (often 0) and
    continues, so a division by zero can happen anywhere in the batch."""
    insns = [Instruction(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, rng.choice((16, 24, 0)))]
    insns.append(Instruction(op.BPF_MISC | op.BPF_TAX, 0, 0, 0))
    for cell in rng.sample(range(16), 16):
        insns.append(Instruction(rng.choice((op.BPF_ST, op.BPF_STX)), 0, 0, cell))
    insns.append(Instruction(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, rng.choice((16, 20, 32))))
    body = valid_program(rng, max_len=20).instructions
    insns.append(Instruction(DIV_X, 0, 0, 0))
    insns.append(Instruction(op.BPF_LDX | op.BPF_MEM, 0, 0, rng.randrange(16)))
    insns += body
    return Program(insns)


def _sample(rng: random.Random):
    """(kind, arch, program): what the fuzzer generates, plus the once-refused shapes."""
    kind = rng.choices(("valid", "long", "realistic", "div_x_cells"), (5, 1, 3, 1))[0]
    arch = rng.choice(HOST_FAMILY)
    if kind == "valid":
        return kind, arch, valid_program(rng)
    if kind == "long":
        return kind, arch, valid_program(rng, max_len=400)
    if kind == "realistic":
        return kind, arch, realistic_program(rng, arch=arch)
    return kind, arch, div_x_all_cells_program(rng)


def _run_sample(n: int, seed: str) -> dict:
    rng = random.Random(seed)
    stats = {"programs": 0, "inputs": 0, "kills": 0, "div_x_all_cells": 0, "jit_refused": 0,
             "refused": [], "wrong": []}
    start = time.perf_counter()
    for i in range(n):
        kind, arch, prog = _sample(rng)
        checked = prog.check()
        recs = inputs_for(prog, rng, 16, layout=arch)
        if any(x.code == DIV_X for x in prog):
            recs["args"][::3, 0] = 0              # X is often args[0].lo: zero it in a third
        expect = bpfjit.compile(checked, backend="reference", arch=arch).evaluate_batch(recs)
        try:
            got = bpfjit.compile(checked, backend="kernel", arch=arch).evaluate_batch(recs)
        except BackendUnavailable as exc:
            if "ENOTSUPP" in str(exc) and kb.kernel_accepts(prog) == kb.ENOTSUPP:
                stats["jit_refused"] += 1          # the kernel refuses the program itself
                continue
            stats["refused"].append((i, kind, str(exc)))
            continue
        stats["programs"] += 1
        stats["inputs"] += len(recs)
        cells = {x.k for x in prog if x.code in (op.BPF_ST, op.BPF_STX)}
        if kind == "div_x_cells" or (len(cells) == 16 and any(x.code == DIV_X for x in prog)):
            stats["div_x_all_cells"] += 1
        stats["kills"] += int(np.count_nonzero((got == 0) & (expect == 0)))
        if got.tolist() != expect.tolist():
            stats["wrong"].append((i, kind, prog.instructions))
    stats["seconds"] = time.perf_counter() - start
    return stats


def _check(stats: dict, n: int) -> None:
    print(f"\nkernel backend completeness: {stats['programs']} of {n} programs evaluated "
          f"({stats['inputs']} inputs, {stats['kills']} results 0 incl. div-by-zero kills, "
          f"{stats['div_x_all_cells']} with div x and all 16 cells), "
          f"{len(stats['refused'])} refused, {stats['jit_refused']} refused by the kernel itself "
          f"(ENOTSUPP), {len(stats['wrong'])} wrong, in {stats['seconds']:.0f} s")
    assert not stats["refused"], stats["refused"][:3]
    assert not stats["wrong"], stats["wrong"][:1]
    assert stats["programs"] + stats["jit_refused"] == n


def test_small_sample_every_program_evaluated():
    stats = _run_sample(60, "kernel-completeness-ci")
    _check(stats, 60)
    assert stats["div_x_all_cells"] >= 3 and stats["kills"] > 0


@pytest.mark.slow
def test_ten_thousand_programs_every_program_evaluated():
    n = int(os.environ.get("BPFJIT_KERNEL_SAMPLE", "10000"))
    _check(_run_sample(n, "kernel-completeness-10k"), n)
