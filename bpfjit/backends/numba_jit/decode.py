"""Decoding stage (numba backend): instructions to small opcode rows, plus dispatch and fusion.

``decode`` turns each instruction into ``(opcode, a, b)`` with absolute jump
targets (``a`` = jt target, ``b`` = jf target) or, for ``ld [k]``, the index of
the host-order 32-bit word of the record it reads: on a layout whose byte
order is not the host's, the two halves of each 64-bit field trade places.
``ld len`` / ``ldx len`` become ``ld #64`` / ``ldx #64`` (seccomp_check_filter
rewrites them so).

``runnable`` then adds, for the interpreter only (same meaning, fewer steps):

- *dispatch*: a run of ``jeq/jgt/jge/jset #k`` (and ``ja``) on A — libseccomp's
  linear ``jeq`` chains, its binary trees — becomes one binary search over A;
- *fusion*: ``ld [k]`` followed by ``j* #k`` becomes one step.
"""
from __future__ import annotations

import sys

import numpy as np

from ... import opcodes as bpf
from ...check import CheckedProgram
from ...seccomp.layouts import Layout
from . import values

SECCOMP_DATA_SIZE = 64   # what ``ld len`` / ``ldx len`` load under seccomp

# opcodes, most frequent first: the interpreter tests them in about this order
(OP_JEQ_K, OP_LD_W, OP_RET_K, OP_DISPATCH, OP_JGE_K, OP_JGT_K, OP_JSET_K, OP_JA, OP_RET_A,
 OP_LD_IMM, OP_LDX_IMM, OP_LD_MEM, OP_LDX_MEM, OP_ST, OP_STX, OP_TAX, OP_TXA, OP_NEG,
 OP_JEQ_X, OP_JGT_X, OP_JGE_X, OP_JSET_X) = range(22)
#: ``ld [k]`` fused with the ``j* #k`` after it: A = word row[3], then that jump
OP_LD_JEQ, OP_LD_JGT, OP_LD_JGE, OP_LD_JSET = range(24, 28)
ALU_NAMES = ("add", "sub", "mul", "div", "or", "and", "lsh", "rsh", "xor")
OP_ALU_K = 32            # OP_ALU_K + i: A = A op k,  i indexing ALU_NAMES
OP_ALU_X = 48            # OP_ALU_X + i: A = A op X

K_JUMPS = {OP_JEQ_K: "jeq", OP_JGT_K: "jgt", OP_JGE_K: "jge", OP_JSET_K: "jset"}
X_JUMPS = {OP_JEQ_X: "jeq", OP_JGT_X: "jgt", OP_JGE_X: "jge", OP_JSET_X: "jset"}
JUMPS = K_JUMPS | X_JUMPS
_FUSED = dict(zip(K_JUMPS, (OP_LD_JEQ, OP_LD_JGT, OP_LD_JGE, OP_LD_JSET)))

_ALU_BY_OP = {bpf.BPF_ADD: 0, bpf.BPF_SUB: 1, bpf.BPF_MUL: 2, bpf.BPF_DIV: 3, bpf.BPF_OR: 4,
              bpf.BPF_AND: 5, bpf.BPF_LSH: 6, bpf.BPF_RSH: 7, bpf.BPF_XOR: 8}
_JUMP_BY_OP = {bpf.BPF_JEQ: (OP_JEQ_K, OP_JEQ_X), bpf.BPF_JGT: (OP_JGT_K, OP_JGT_X),
               bpf.BPF_JGE: (OP_JGE_K, OP_JGE_X), bpf.BPF_JSET: (OP_JSET_K, OP_JSET_X)}
_PLAIN = {bpf.BPF_RET | bpf.BPF_K: OP_RET_K, bpf.BPF_RET | bpf.BPF_A: OP_RET_A,
          bpf.BPF_LD | bpf.BPF_IMM: OP_LD_IMM, bpf.BPF_LDX | bpf.BPF_IMM: OP_LDX_IMM,
          bpf.BPF_LD | bpf.BPF_MEM: OP_LD_MEM, bpf.BPF_LDX | bpf.BPF_MEM: OP_LDX_MEM,
          bpf.BPF_ST: OP_ST, bpf.BPF_STX: OP_STX, bpf.BPF_MISC | bpf.BPF_TAX: OP_TAX,
          bpf.BPF_MISC | bpf.BPF_TXA: OP_TXA, bpf.BPF_ALU | bpf.BPF_NEG: OP_NEG}

#: steps of all dispatch walks of one program together (past it: no more dispatch)
DISPATCH_BUDGET = 1 << 16


def host_word(k: int, layout: Layout) -> int:
    """Index of the host-order 32-bit word of a record that ``ld [k]`` reads on ``layout``."""
    word = k >> 2
    return word ^ 1 if word >= 2 and layout.byteorder != sys.byteorder else word


def decode(program: CheckedProgram, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """``ins`` (n, 3) int64 rows ``(opcode, a, b)`` and ``kk`` (n,) uint64 constants."""
    n = len(program)
    ins = np.zeros((n, 3), dtype=np.int64)
    kk = np.zeros(n, dtype=np.uint64)
    for pc, (code, jt, jf, k) in enumerate(program):
        cls, op_bits = code & 0x07, code & 0xF0
        if code == bpf.BPF_LD | bpf.BPF_W | bpf.BPF_ABS:
            row = (OP_LD_W, host_word(k, layout), 0)
        elif code == bpf.BPF_LD | bpf.BPF_W | bpf.BPF_LEN:
            row, k = (OP_LD_IMM, 0, 0), SECCOMP_DATA_SIZE
        elif code == bpf.BPF_LDX | bpf.BPF_W | bpf.BPF_LEN:
            row, k = (OP_LDX_IMM, 0, 0), SECCOMP_DATA_SIZE
        elif code == bpf.BPF_JMP | bpf.BPF_JA:
            row = (OP_JA, pc + 1 + k, 0)
        elif cls == bpf.BPF_JMP:
            row = (_JUMP_BY_OP[op_bits][code & bpf.BPF_X != 0], pc + 1 + jt, pc + 1 + jf)
        elif cls == bpf.BPF_ALU and code not in _PLAIN:
            row = ((OP_ALU_X if code & bpf.BPF_X else OP_ALU_K) + _ALU_BY_OP[op_bits], 0, 0)
        elif code in (bpf.BPF_LD | bpf.BPF_MEM, bpf.BPF_LDX | bpf.BPF_MEM, bpf.BPF_ST, bpf.BPF_STX):
            row = (_PLAIN[code], k, 0)
        else:   # ret k / ret a / ld #k / ldx #k / tax / txa / neg (the checker allowed no other)
            row = (_PLAIN[code], 0, 0)
        ins[pc] = row
        kk[pc] = k
    return ins, kk


def dispatch_walk(ins: np.ndarray, kk: np.ndarray, root: int, budget: list) -> list | None:
    """Partition A at a run of ``j* #k`` / ``ja`` starting at ``root``: sorted ``(lo, hi, pc)``
    where ``pc`` is the first other instruction reached; None when not worth it (or too big)."""
    leaves = []
    stack = [(root, values.FULL)]
    while stack:
        pc, s = stack.pop()
        while True:
            budget[0] -= 1
            op, t, f = (int(v) for v in ins[pc])
            if budget[0] < 0:
                return None
            if op == OP_JA or (op in K_JUMPS and t == f):
                pc = t
                continue
            if op not in K_JUMPS:
                leaves.append((s, pc))
                break
            try:
                jt, jf = values.branch(K_JUMPS[op], True, False, int(kk[pc]), s)
            except values.TooMany:
                return None
            if jt:
                stack.append((t, jt))
            if not jf:
                break
            pc, s = f, jf
    parts = values.partition([(lo, hi, pc) for s, pc in leaves for lo, hi in s])
    return parts if len(parts) >= 3 else None


def dispatch_roots(ins: np.ndarray) -> list[int]:
    """``j* #k`` instructions some predecessor of which is not a ``j* #k`` (or pc 0)."""
    n = len(ins)
    entered_otherwise = [False] * n
    entered_otherwise[0] = True
    for pc in range(n):
        op, t, f = (int(v) for v in ins[pc])
        if op in X_JUMPS:
            entered_otherwise[t] = entered_otherwise[f] = True
        elif op == OP_JA:
            entered_otherwise[t] = True
        elif op not in K_JUMPS and op not in (OP_RET_K, OP_RET_A) and pc + 1 < n:
            entered_otherwise[pc + 1] = True
    return [pc for pc in range(n) if entered_otherwise[pc] and int(ins[pc, 0]) in K_JUMPS]


def runnable(ins: np.ndarray, kk: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
    """The interpreter's program: ``(ins4, kk, (d_off, d_key, d_pc))`` with dispatch and fusion.

    ``ins4`` rows are ``(opcode, a, b, word)``; a dispatch row's ``a`` indexes the
    tables (keys ``d_key[d_off[a]:d_off[a+1]]``, targets ``d_pc``).
    """
    run = np.zeros((len(ins), 4), dtype=np.int64)
    run[:, :3] = ins
    kk = kk.copy()
    d_off, d_key, d_pc = [0], [], []
    budget = [DISPATCH_BUDGET]
    for root in dispatch_roots(ins):
        parts = dispatch_walk(ins, kk, root, budget)
        if parts is not None:
            run[root] = (OP_DISPATCH, len(d_off) - 1, 0, 0)
            d_key.extend(lo for lo, _, _ in parts)
            d_pc.extend(pc for _, _, pc in parts)
            d_off.append(len(d_key))
    for pc in np.flatnonzero(ins[:-1, 0] == OP_LD_W).tolist():
        after = int(run[pc + 1, 0])
        if after in _FUSED:
            run[pc] = (_FUSED[after], ins[pc + 1, 1], ins[pc + 1, 2], ins[pc, 1])
            kk[pc] = kk[pc + 1]
    tables = (np.array(d_off, np.int64), np.array(d_key, np.uint64), np.array(d_pc, np.int64))
    return run, kk, tables
