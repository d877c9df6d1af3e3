"""Shared test vocabulary (importable as `expect`): short opcode names and array comparison."""
from __future__ import annotations

import numpy as np

from bpfjit import opcodes as op

LD_ABS, LD_IMM, LDX_IMM = op.BPF_LD | op.BPF_W | op.BPF_ABS, op.BPF_LD | op.BPF_IMM, \
    op.BPF_LDX | op.BPF_IMM
LD_MEM, LDX_MEM, ST, STX = op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM, op.BPF_ST, op.BPF_STX
RET_K, RET_A, JA = op.BPF_RET | op.BPF_K, op.BPF_RET | op.BPF_A, op.BPF_JMP | op.BPF_JA
JEQ, JGT, JGE, JSET = (op.BPF_JMP | o for o in (op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE, op.BPF_JSET))
ALU = op.BPF_ALU


def assert_same(got: np.ndarray, want: np.ndarray, recs: np.ndarray, what: str) -> None:
    """Equal uint32 results, or an error naming the first differing record and both values."""
    bad = np.flatnonzero(got != want)
    if len(bad):
        i = int(bad[0])
        r = recs[i]
        raise AssertionError(
            f"{what}: {len(bad)} of {len(recs)} records differ; first #{i}: nr={int(r['nr'])} "
            f"arch={int(r['arch']):#x} ip={int(r['instruction_pointer']):#x} "
            f"args={[hex(int(a)) for a in r['args']]}: got {int(got[i]):#010x}, "
            f"reference {int(want[i]):#010x}")
