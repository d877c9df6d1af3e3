"""Evaluation stage (numba backend): the compiled functions every program runs in.

``run_batch`` fills ``out[i]`` for the record whose 16 host-order 32-bit words
are ``words[i]``: it walks the decision DAG (:mod:`.decisions`, flattened into
arrays by the evaluator) to a leaf, which is either the return value or a
place to resume with registers, and then interprets the decoded program
(:mod:`.decode`) from there. Kernel semantics (net/core/filter.c
``bpf_convert_filter``, kernel/bpf/core.c ``___bpf_prog_run``): A and X are
32-bit unsigned (held in uint64 variables, every result masked back to 32
bits), shifts by X use ``X & 31``, division by X == 0 makes the program
return 0.

Two functions on purpose: a call from one numba function to another that
passes arrays costs atomic reference-count updates (~20 ns), more than most
programs, so ``run_batch`` walks the DAG for CHUNK records in one tight loop
and calls ``interpret`` once per chunk for the records that need it.
``cache=True``: a new process loads both from numba's disk cache and compiles
nothing; ``nogil=True``: threads run batches in parallel.

Flattened DAG: node ``c`` reads ``words[n_word[c]] & n_mask[c]``, finds the
last key at or below it in ``n_key[n_off[c]:n_off[c+1]]`` (or, below DENSE,
looks it up in ``dense[n_dense[c]:]``) and moves to ``n_kid`` of it: a node
(>= 0) or a leaf ``-kid-1``. Leaf ``l``: ``l_pc[l] < 0`` means return
``l_val[l, 0]``; otherwise resume at ``l_pc[l]`` with the 18 registers A, X,
M[0..15] = ``l_val[l, r]``, ANDed with ``words[l_word[l, r]]`` when that is >= 0.
"""
from __future__ import annotations

import numpy as np

from .decode import (OP_ALU_K, OP_ALU_X, OP_DISPATCH, OP_JA, OP_JEQ_K, OP_JEQ_X, OP_JGE_K,
                     OP_JGE_X, OP_JGT_K, OP_JGT_X, OP_JSET_K, OP_LD_IMM, OP_LD_JEQ, OP_LD_JGE,
                     OP_LD_JGT, OP_LD_JSET, OP_LD_MEM, OP_LD_W, OP_LDX_IMM, OP_LDX_MEM, OP_NEG,
                     OP_RET_A, OP_RET_K, OP_ST, OP_STX, OP_TAX, OP_TXA)

try:
    import numba
    IMPORT_ERROR: str | None = None
except Exception as exc:  # noqa: BLE001 - any import failure means: unavailable
    numba = None
    IMPORT_ERROR = f"numba cannot be imported: {type(exc).__name__}: {exc}"

DENSE = 1024             # a node with a dense table looks values below this up directly
SCAN = 8                 # a node with this few parts is scanned, not searched
CHUNK = 1024             # records walked through the DAG before the interpreter runs

_M32 = np.uint64(0xFFFFFFFF)
_ZERO = np.uint64(0)
_31 = np.uint64(31)


def run_batch(ins, kk, d_off, d_key, d_pc, root, n_word, n_mask, n_off, n_dense, n_key, n_kid,
              dense, l_pc, l_val, l_word, n_mem, words, out):
    """out[i] = the program's return value for words[i] (the 16 host-order words of record i)."""
    M = np.zeros(16, dtype=np.uint64)
    dense_top = np.uint64(DENSE)
    n = words.shape[0]
    waiting = np.empty((min(CHUNK, n), 2), dtype=np.int64)  # (record, leaf) left to interpret
    for start in range(0, n, CHUNK):
        n_waiting = 0
        for i in range(start, min(start + CHUNK, n)):  # first the DAG alone: a tight loop
            code = root                                # >= 0: a node; < 0: leaf -code-1
            while code >= 0:                           # to the last part starting at or below v
                v = np.uint64(words[i, n_word[code]]) & n_mask[code]
                if n_dense[code] >= 0 and v < dense_top:
                    code = dense[n_dense[code] + np.int64(v)]
                    continue
                lo = n_off[code]
                hi = n_off[code + 1]
                if hi - lo <= SCAN:                    # a few parts: scan down from the top
                    hi -= 1
                    while n_key[hi] > v:
                        hi -= 1
                    code = n_kid[hi]
                    continue
                while hi - lo > 1:
                    mid = (lo + hi) >> 1
                    if n_key[mid] <= v:
                        lo = mid
                    else:
                        hi = mid
                code = n_kid[lo]
            leaf = -code - 1
            if l_pc[leaf] < 0:
                out[i] = l_val[leaf, 0]
            else:
                waiting[n_waiting, 0] = i
                waiting[n_waiting, 1] = leaf
                n_waiting += 1
        if n_waiting:                                  # then the interpreter, where needed
            interpret(ins, kk, d_off, d_key, d_pc, l_pc, l_val, l_word, n_mem, words, out,
                      waiting, n_waiting, M)


def interpret(ins, kk, d_off, d_key, d_pc, l_pc, l_val, l_word, n_mem, words, out, waiting,
              n_waiting, M):
    """For each (record i, leaf) of waiting[:n_waiting]: resume at the leaf, out[i] = result.

    A function of its own, called once per CHUNK records, so that the DAG loop above
    stays small enough for the compiler to keep tight."""
    for j in range(n_waiting):                     # then the interpreter, where needed
        i = waiting[j, 0]
        leaf = waiting[j, 1]
        pc = l_pc[leaf]
        A = l_val[leaf, 0]
        if l_word[leaf, 0] >= 0:
            A &= np.uint64(words[i, l_word[leaf, 0]])
        X = l_val[leaf, 1]
        if l_word[leaf, 1] >= 0:
            X &= np.uint64(words[i, l_word[leaf, 1]])
        for m in range(n_mem):                     # 0 when the program never reads M
            M[m] = l_val[leaf, m + 2]
            if l_word[leaf, m + 2] >= 0:
                M[m] &= np.uint64(words[i, l_word[leaf, m + 2]])
        while True:
            op = ins[pc, 0]
            if op == OP_JEQ_K:
                pc = ins[pc, 1] if A == kk[pc] else ins[pc, 2]
            elif op == OP_LD_JEQ:
                A = np.uint64(words[i, ins[pc, 3]])
                pc = ins[pc, 1] if A == kk[pc] else ins[pc, 2]
            elif op == OP_LD_W:
                A = np.uint64(words[i, ins[pc, 1]])
                pc += 1
            elif op == OP_RET_K:
                A = kk[pc]
                break
            elif op == OP_DISPATCH:                # the last key at or below A
                d = ins[pc, 1]
                lo = d_off[d]
                hi = d_off[d + 1]
                while hi - lo > 1:
                    mid = (lo + hi) >> 1
                    if d_key[mid] <= A:
                        lo = mid
                    else:
                        hi = mid
                pc = d_pc[lo]
            elif op == OP_LD_JGT:
                A = np.uint64(words[i, ins[pc, 3]])
                pc = ins[pc, 1] if A > kk[pc] else ins[pc, 2]
            elif op == OP_LD_JGE:
                A = np.uint64(words[i, ins[pc, 3]])
                pc = ins[pc, 1] if A >= kk[pc] else ins[pc, 2]
            elif op == OP_LD_JSET:
                A = np.uint64(words[i, ins[pc, 3]])
                pc = ins[pc, 1] if (A & kk[pc]) != _ZERO else ins[pc, 2]
            elif op == OP_JGE_K:
                pc = ins[pc, 1] if A >= kk[pc] else ins[pc, 2]
            elif op == OP_JGT_K:
                pc = ins[pc, 1] if A > kk[pc] else ins[pc, 2]
            elif op == OP_JSET_K:
                pc = ins[pc, 1] if (A & kk[pc]) != _ZERO else ins[pc, 2]
            elif op == OP_JA:
                pc = ins[pc, 1]
            elif op == OP_RET_A:
                break
            elif op >= OP_ALU_K:
                if op >= OP_ALU_X:
                    b = X
                    f = op - OP_ALU_X
                else:
                    b = kk[pc]
                    f = op - OP_ALU_K
                if f == 0:
                    A = (A + b) & _M32
                elif f == 1:
                    A = (A - b) & _M32
                elif f == 2:
                    A = (A * b) & _M32
                elif f == 3:
                    if b == _ZERO:           # bpf_convert_filter: "if (X == 0) return 0"
                        A = _ZERO
                        break
                    A = A // b
                elif f == 4:
                    A = A | b
                elif f == 5:
                    A = A & b
                elif f == 6:
                    A = (A << (b & _31)) & _M32
                elif f == 7:
                    A = A >> (b & _31)
                else:
                    A = A ^ b
                pc += 1
            elif op == OP_LD_IMM:
                A = kk[pc]
                pc += 1
            elif op == OP_LDX_IMM:
                X = kk[pc]
                pc += 1
            elif op == OP_LD_MEM:
                A = M[ins[pc, 1]]
                pc += 1
            elif op == OP_LDX_MEM:
                X = M[ins[pc, 1]]
                pc += 1
            elif op == OP_ST:
                M[ins[pc, 1]] = A
                pc += 1
            elif op == OP_STX:
                M[ins[pc, 1]] = X
                pc += 1
            elif op == OP_TAX:
                X = A
                pc += 1
            elif op == OP_TXA:
                A = X
                pc += 1
            elif op == OP_NEG:
                A = (_ZERO - A) & _M32
                pc += 1
            elif op == OP_JEQ_X:
                pc = ins[pc, 1] if A == X else ins[pc, 2]
            elif op == OP_JGT_X:
                pc = ins[pc, 1] if A > X else ins[pc, 2]
            elif op == OP_JGE_X:
                pc = ins[pc, 1] if A >= X else ins[pc, 2]
            else:   # OP_JSET_X
                pc = ins[pc, 1] if (A & X) != _ZERO else ins[pc, 2]
        out[i] = A



if numba is not None:
    interpret = numba.njit(cache=True, nogil=True)(interpret)
    run_batch = numba.njit(cache=True, nogil=True)(run_batch)
