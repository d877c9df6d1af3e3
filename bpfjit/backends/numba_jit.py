"""Backend stage (numba): one generic cached interpreter, plus precomputed verdicts per arch and nr.

An independent implementation of seccomp's classic BPF, written from the
kernel semantics (net/core/filter.c ``bpf_convert_filter``, kernel/bpf/core.c
``___bpf_prog_run``): A and X are 32-bit unsigned, ALU results are taken mod
2**32, shifts by X use ``X & 31``, division by X == 0 makes the program return
0, ``ld len`` loads 64. One ``@njit(cache=True, nogil=True)`` interpreter runs
every program, so a new process loads it from numba's disk cache and compiles
nothing.

Three things make it fast without compiling per program:

1. *Pre-decoding*: each instruction becomes a small opcode index with
   absolute jump targets; ``ld [k]`` becomes the index of the host-order
   32-bit word of the record it reads (on a layout whose byte order is not
   the host's, the two halves of each 64-bit field trade places).
2. *Verdict tables*: for the layout's AUDIT_ARCH (and every AUDIT_ARCH value
   the program compares with), a path-splitting walk over sets of ``nr``
   values (``nr`` symbolic, ``arch`` constant, nothing else known) splits the
   32-bit ``nr`` space into intervals. For each interval it records either the
   return value (it cannot depend on arguments or the instruction pointer)
   or where to resume the interpreter and with which A, X and M (each a
   constant or "the record's nr"). A record then costs one binary search.
3. *Dispatch*: a run of ``jeq/jgt/jge/jset #k`` on A (libseccomp's linear
   ``jeq`` chains, its binary trees) becomes one binary search over A.

The walks are exact: a set of ``nr`` values is split only where a comparison
splits it, and anything the walk cannot follow becomes a resume point.
"""
from __future__ import annotations

import sys
import threading
from bisect import bisect_left, bisect_right

import numpy as np

from .. import opcodes as bpf
from ..check import CheckedProgram
from ..errors import BackendUnavailable
from ..seccomp.layouts import LAYOUTS, Layout

try:
    import numba
    _IMPORT_ERROR: str | None = None
except Exception as exc:  # noqa: BLE001 - any import failure means: unavailable
    numba = None
    _IMPORT_ERROR = f"numba cannot be imported: {type(exc).__name__}: {exc}"

U32 = 0xFFFFFFFF
SECCOMP_DATA_SIZE = 64   # what ``ld len`` / ``ldx len`` load under seccomp

# --- decoded opcodes (most frequent first: the interpreter tests them in this order) ---
(OP_JEQ_K, OP_LD_W, OP_RET_K, OP_DISPATCH, OP_JGE_K, OP_JGT_K, OP_JSET_K, OP_JA, OP_RET_A,
 OP_LD_IMM, OP_LDX_IMM, OP_LD_MEM, OP_LDX_MEM, OP_ST, OP_STX, OP_TAX, OP_TXA, OP_NEG,
 OP_JEQ_X, OP_JGT_X, OP_JGE_X, OP_JSET_X) = range(22)
ALU_NAMES = ("ADD", "SUB", "MUL", "DIV", "OR", "AND", "LSH", "RSH", "XOR")
OP_ALU_K = 32            # OP_ALU_K + i: A = A op k,  i indexing ALU_NAMES
OP_ALU_X = 48            # OP_ALU_X + i: A = A op X
_ALU_BY_OP = {bpf.BPF_ADD: 0, bpf.BPF_SUB: 1, bpf.BPF_MUL: 2, bpf.BPF_DIV: 3, bpf.BPF_OR: 4,
              bpf.BPF_AND: 5, bpf.BPF_LSH: 6, bpf.BPF_RSH: 7, bpf.BPF_XOR: 8}
_JUMPS = {bpf.BPF_JEQ: (OP_JEQ_K, OP_JEQ_X), bpf.BPF_JGT: (OP_JGT_K, OP_JGT_X),
          bpf.BPF_JGE: (OP_JGE_K, OP_JGE_X), bpf.BPF_JSET: (OP_JSET_K, OP_JSET_X)}
_SIMPLE = {bpf.BPF_RET | bpf.BPF_K: OP_RET_K, bpf.BPF_RET | bpf.BPF_A: OP_RET_A,
           bpf.BPF_LD | bpf.BPF_IMM: OP_LD_IMM, bpf.BPF_LDX | bpf.BPF_IMM: OP_LDX_IMM,
           bpf.BPF_LD | bpf.BPF_MEM: OP_LD_MEM, bpf.BPF_LDX | bpf.BPF_MEM: OP_LDX_MEM,
           bpf.BPF_ST: OP_ST, bpf.BPF_STX: OP_STX, bpf.BPF_MISC | bpf.BPF_TAX: OP_TAX,
           bpf.BPF_MISC | bpf.BPF_TXA: OP_TXA, bpf.BPF_ALU | bpf.BPF_NEG: OP_NEG,
           bpf.BPF_JMP | bpf.BPF_JA: OP_JA}
_K_JUMPS = (OP_JEQ_K, OP_JGT_K, OP_JGE_K, OP_JSET_K)

#: caps that keep compile time bounded on adversarial programs (exceeding them only costs speed)
WALK_BUDGET = 1 << 17          # instructions stepped by the verdict walk, per arch
JSET_PIECES = 256              # intervals a jset may split a set of values into
SPLIT_VALUES = 64              # a set this small is walked value by value when it must be
MAX_ARCHES = 8
DENSE = 1024                   # nr below this finds its interval by direct lookup, not search
DISPATCH_BUDGET = 1 << 16      # steps of all dispatch walks together


# ---------------------------------------------------------------- decoding

def decode(program: CheckedProgram, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """``ins`` (n, 3) int64 = (opcode, jt target or word/cell index, jf target); ``kk`` (n,) uint64."""
    n = len(program)
    ins = np.zeros((n, 3), dtype=np.int64)
    kk = np.zeros(n, dtype=np.uint64)
    swap = layout.byteorder != sys.byteorder
    for pc, (code, jt, jf, k) in enumerate(program):
        cls, op_bits = code & 0x07, code & 0xF0
        if code == bpf.BPF_LD | bpf.BPF_W | bpf.BPF_ABS:
            word = k >> 2
            row = (OP_LD_W, word ^ 1 if swap and word >= 2 else word, 0)
        elif code == bpf.BPF_LD | bpf.BPF_W | bpf.BPF_LEN:
            row, k = (OP_LD_IMM, 0, 0), SECCOMP_DATA_SIZE
        elif code == bpf.BPF_LDX | bpf.BPF_W | bpf.BPF_LEN:
            row, k = (OP_LDX_IMM, 0, 0), SECCOMP_DATA_SIZE
        elif code == bpf.BPF_JMP | bpf.BPF_JA:
            row = (OP_JA, pc + 1 + k, 0)
        elif cls == bpf.BPF_JMP:
            row = (_JUMPS[op_bits][code & bpf.BPF_X != 0], pc + 1 + jt, pc + 1 + jf)
        elif cls == bpf.BPF_ALU and code in _SIMPLE:
            row = (OP_NEG, 0, 0)
        elif cls == bpf.BPF_ALU:
            base = OP_ALU_X if code & bpf.BPF_X else OP_ALU_K
            row = (base + _ALU_BY_OP[op_bits], 0, 0)
        elif code in (bpf.BPF_LD | bpf.BPF_MEM, bpf.BPF_LDX | bpf.BPF_MEM, bpf.BPF_ST, bpf.BPF_STX):
            row = (_SIMPLE[code], k, 0)
        else:   # ret k / ret a / ld #k / ldx #k / tax / txa (the checker allowed nothing else)
            row = (_SIMPLE[code], 0, 0)
        ins[pc] = row
        kk[pc] = k
    return ins, kk


# ---------------------------------------------------------------- sets of 32-bit values
# A set is a sorted list of disjoint inclusive (lo, hi) intervals.

def _restrict(s: list, a: int, b: int) -> tuple[list, list]:
    """(s ∩ [a, b], s − [a, b])."""
    if a > b:
        return [], s
    i = bisect_left(s, a, key=lambda t: t[1])      # first interval ending at or after a
    j = bisect_right(s, b, key=lambda t: t[0])     # first interval starting after b
    if i >= j:
        return [], s
    inside = [(max(lo, a), min(hi, b)) for lo, hi in s[i:j]]
    outside = s[:i]
    if s[i][0] < a:
        outside.append((s[i][0], a - 1))
    if s[j - 1][1] > b:
        outside.append((b + 1, s[j - 1][1]))
    return inside, outside + s[j:]


class _TooMany(Exception):
    pass


def _jset_split(s: list, c: int) -> tuple[list, list]:
    """({v in s: v & c}, {v in s: not v & c}); _TooMany past JSET_PIECES intervals."""
    true, false = [], []

    def piece(lo: int, hi: int) -> None:
        while True:
            if lo == hi or not c & ((1 << (lo ^ hi).bit_length()) - 1):
                (true if lo & c else false).append((lo, hi))
                if len(true) + len(false) > JSET_PIECES:
                    raise _TooMany
                return
            mid = hi >> ((lo ^ hi).bit_length() - 1) << ((lo ^ hi).bit_length() - 1)
            piece(lo, mid - 1)
            lo = mid

    for lo, hi in s:
        piece(lo, hi)
    return true, false


def _size(s: list) -> int:
    return sum(hi - lo + 1 for lo, hi in s)


def _branch(op: int, sym_a: bool, sym_b: bool, c: int, s: list) -> tuple[list, list]:
    """Split the set ``s`` of a symbolic value v by a jump: A is v if sym_a else c, the
    operand is v if sym_b else c. Returns (values jumping to jt, values jumping to jf)."""
    full = (s, [])
    if op in (OP_JEQ_K, OP_JEQ_X):
        return full if sym_a and sym_b else _restrict(s, c, c)
    if op in (OP_JGT_K, OP_JGT_X):      # A > operand
        if sym_a and sym_b:
            return [], s
        return _restrict(s, c + 1, U32) if sym_a else _restrict(s, 0, c - 1)
    if op in (OP_JGE_K, OP_JGE_X):      # A >= operand
        if sym_a and sym_b:
            return full
        return _restrict(s, c, U32) if sym_a else _restrict(s, 0, c)
    if sym_a and sym_b:                 # jset: v & v != 0
        return _restrict(s, 1, U32)
    return _jset_split(s, c)


# ---------------------------------------------------------------- verdict walk

NR = -1   # a register or cell holding the record's nr (anything else is a u32 constant)


def _alu(i: int, a: int, b: int) -> int | None:
    """A op b for ALU_NAMES[i], mod 2**32; None for a division by zero (the program returns 0)."""
    if i == 3:
        return None if b == 0 else a // b
    if i in (6, 7):
        return (a << (b & 31) if i == 6 else a >> (b & 31)) & U32
    return _ALU_PY[i](a, b) & U32


_ALU_PY = (int.__add__, int.__sub__, int.__mul__, None, int.__or__, int.__and__, None, None,
           int.__xor__)


def verdict_walk(ins: np.ndarray, kk: np.ndarray, arch: int) -> list[tuple[int, int, tuple]]:
    """Partition nr (as the u32 ``ld [0]`` sees) for records with this ``arch`` value.

    Returns sorted, merged ``(lo, hi, leaf)`` covering 0..2**32-1 where ``leaf``
    is ``("ret", value)`` or ``("resume", pc, A, X, M)`` (values or NR).
    """
    code = ins[:, 0].tolist()
    t_of, f_of, k_of = ins[:, 1].tolist(), ins[:, 2].tolist(), kk.tolist()
    leaves: list[tuple[list, tuple]] = []
    stack = [(0, [(0, U32)], 0, 0, (0,) * 16)]
    steps = 0
    while stack:
        pc, s, A, X, M = stack.pop()
        while True:
            steps += 1
            op, t, k = code[pc], t_of[pc], k_of[pc]
            single = s[0][0] if len(s) == 1 and s[0][0] == s[0][1] else None
            a = single if A == NR else A
            x = single if X == NR else X
            need = None          # a value the walk must know but does not
            if steps > WALK_BUDGET:
                need = "budget"
            elif op == OP_RET_K:
                leaves.append((s, ("ret", k)))
                break
            elif op == OP_JA:
                pc = t
                continue
            elif op in _K_JUMPS or op in (OP_JEQ_X, OP_JGT_X, OP_JGE_X, OP_JSET_X):
                b = k if op in _K_JUMPS else x
                if t == f_of[pc]:
                    pc = t
                    continue
                if a is not None and b is not None:
                    jt, jf = _branch(op, True, False, b, [(a, a)])
                    pc = t if jt else f_of[pc]
                    continue
                try:
                    jt, jf = _branch(op, a is None, b is None, a if b is None else b, s)
                except _TooMany:
                    need = "jset"
                else:
                    if jt:
                        stack.append((t, jt, A, X, M))
                    if not jf:
                        break
                    pc, s = f_of[pc], jf
                    continue
            elif op == OP_LD_W:
                if t > 1:
                    need = "data"
                else:
                    A = NR if t == 0 else arch
            elif op == OP_LD_IMM:
                A = k
            elif op == OP_LDX_IMM:
                X = k
            elif op == OP_LD_MEM:
                A = M[t]
            elif op == OP_LDX_MEM:
                X = M[t]
            elif op == OP_ST:
                M = M[:t] + (A,) + M[t + 1:]
            elif op == OP_STX:
                M = M[:t] + (X,) + M[t + 1:]
            elif op == OP_TAX:
                X = A
            elif op == OP_TXA:
                A = X
            elif op == OP_RET_A:
                if a is not None:
                    leaves.append((s, ("ret", a)))
                    break
                need = "nr"
            else:                               # NEG and the ALU operations
                b = x if op >= OP_ALU_X else k
                if a is None or b is None:
                    need = "nr"
                elif op == OP_NEG:
                    A = -a & U32
                else:
                    A = _alu(op - (OP_ALU_X if op >= OP_ALU_X else OP_ALU_K), a, b)
                    if A is None:
                        leaves.append((s, ("ret", 0)))
                        break
            if need is None:
                pc += 1
                continue
            if need in ("nr", "jset") and _size(s) <= SPLIT_VALUES:   # walk value by value
                stack.extend((pc, [(v, v)], A, X, M) for lo, hi in s for v in range(lo, hi + 1))
            else:
                leaves.append((s, ("resume", pc, A, X, M)))
            break
    return _merge([(lo, hi, leaf) for s, leaf in leaves for lo, hi in s])


def _merge(pieces: list) -> list:
    pieces.sort(key=lambda p: p[0])
    merged: list = []
    expect = 0
    for lo, hi, leaf in pieces:
        if lo != expect:   # the walk partitions the whole space; anything else is a bug here
            raise AssertionError(f"numba backend: value partition broken at {expect:#x}")
        expect = hi + 1
        if merged and merged[-1][2] == leaf:
            merged[-1] = (merged[-1][0], hi, leaf)
        else:
            merged.append((lo, hi, leaf))
    if expect != U32 + 1:
        raise AssertionError("numba backend: value partition does not reach 0xffffffff")
    return merged


def dispatch_walk(ins: np.ndarray, kk: np.ndarray, root: int, budget: list) -> list | None:
    """Partition A at a run of ``j* #k`` / ``ja`` starting at ``root``: sorted ``(lo, hi, pc)``
    where ``pc`` is the first other instruction reached; None when it is not worth it."""
    leaves = []
    stack = [(root, [(0, U32)])]
    while stack:
        pc, s = stack.pop()
        while True:
            budget[0] -= 1
            op = int(ins[pc, 0])
            if budget[0] < 0:
                return None
            if op == OP_JA:
                pc = int(ins[pc, 1])
                continue
            if op not in _K_JUMPS:
                leaves.append((s, pc))
                break
            if ins[pc, 1] == ins[pc, 2]:
                pc = int(ins[pc, 1])
                continue
            try:
                jt, jf = _branch(op, True, False, int(kk[pc]), s)
            except _TooMany:
                return None
            if jt:
                stack.append((int(ins[pc, 1]), jt))
            if not jf:
                break
            pc, s = int(ins[pc, 2]), jf
    merged = _merge([(lo, hi, leaf) for s, leaf in leaves for lo, hi in s])
    return merged if len(merged) >= 3 else None


def dispatch_roots(ins: np.ndarray) -> list[int]:
    """``j* #k`` instructions some predecessor of which is not a ``j* #k`` (or pc 0)."""
    n = len(ins)
    entered_otherwise = [False] * n
    entered_otherwise[0] = True
    for pc in range(n):
        op, t, f = (int(v) for v in ins[pc])
        if op in _K_JUMPS or op in (OP_JEQ_X, OP_JGT_X, OP_JGE_X, OP_JSET_X):
            if op not in _K_JUMPS:
                entered_otherwise[t] = entered_otherwise[f] = True
        elif op == OP_JA:
            entered_otherwise[t] = True
        elif op not in (OP_RET_K, OP_RET_A) and pc + 1 < n:
            entered_otherwise[pc + 1] = True
    return [pc for pc in range(n) if entered_otherwise[pc] and int(ins[pc, 0]) in _K_JUMPS]


def arch_candidates(ins: np.ndarray, kk: np.ndarray, layout: Layout) -> list[int]:
    """The layout's AUDIT_ARCH, then the known AUDIT_ARCH values ``jeq #k`` compares ``ld [4]`` with.

    (A straight-line guess at what A holds; it only decides which tables to build.)
    """
    known = {lay.audit_arch for lay in LAYOUTS.values()}
    found = [layout.audit_arch]
    a_is_arch = False
    for op, t, k in zip(ins[:, 0].tolist(), ins[:, 1].tolist(), kk.tolist()):
        if op == OP_JEQ_K and a_is_arch and k in known and k not in found:
            found.append(k)
        elif op not in _K_JUMPS and op not in (OP_JA, OP_RET_K, OP_ST, OP_STX, OP_LDX_IMM,
                                                OP_LDX_MEM, OP_TAX):
            a_is_arch = op == OP_LD_W and t == 1
    return found[:MAX_ARCHES]


# ---------------------------------------------------------------- the compiled interpreter
# One function on purpose: a call from one numba function to another that passes
# arrays costs atomic reference-count updates (~20 ns), more than most programs.

_M32 = np.uint64(U32)
_ZERO = np.uint64(0)
_31 = np.uint64(31)


def _run_batch(ins, kk, d_off, d_key, d_pc, v_arch, v_dense, v_off, v_key, v_leaf, l_pc, l_reg,
               l_nr, n_mem, words, out):
    """out[i] = the program's return value for words[i] (the 16 host-order words of record i).

    A and X hold u32 values in uint64 variables; every result is masked back to 32 bits.
    """
    M = np.zeros(16, dtype=np.uint64)
    n_arch = v_arch.shape[0]
    dense = np.uint64(v_dense.shape[1])
    for i in range(words.shape[0]):
        nr = np.uint64(words[i, 0])
        arch = np.uint64(words[i, 1])
        pc = 0
        A = _ZERO
        X = _ZERO
        for j in range(n_arch):                   # the verdict table of this arch, if any
            if v_arch[j] == arch:
                if nr < dense:
                    leaf = v_dense[j, np.int64(nr)]
                else:                             # the last interval starting at or below nr
                    lo = v_off[j]
                    hi = v_off[j + 1]
                    while hi - lo > 1:
                        mid = (lo + hi) >> 1
                        if v_key[mid] <= nr:
                            lo = mid
                        else:
                            hi = mid
                    leaf = v_leaf[lo]
                pc = l_pc[leaf]
                if pc < 0:
                    out[i] = l_reg[leaf, 0]
                else:
                    A = nr if l_nr[leaf, 0] else l_reg[leaf, 0]
                    X = nr if l_nr[leaf, 1] else l_reg[leaf, 1]
                    for m in range(n_mem):     # 0 when the program never reads M
                        M[m] = nr if l_nr[leaf, m + 2] else l_reg[leaf, m + 2]
                break
        if pc < 0:
            continue
        while True:
            op = ins[pc, 0]
            if op == OP_JEQ_K:
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
    _run_batch = numba.njit(cache=True, nogil=True)(_run_batch)


# ---------------------------------------------------------------- backend

class NumbaEvaluator:
    """A program pre-decoded into arrays for :func:`_run_batch`."""

    releases_gil = True

    def __init__(self, program: CheckedProgram, layout: Layout):
        ins, kk = decode(program, layout)
        leaf_index: dict[tuple, int] = {}
        l_pc, l_reg, l_nr = [], [], []
        v_arch, v_off, v_key, v_leaf, v_dense = [], [0], [], [], []
        self.tables: dict[int, list[tuple[int, int, tuple]]] = {}
        self._py: dict[int, tuple[list[int], list[tuple]]] = {}
        for arch in arch_candidates(ins, kk, layout):
            parts = verdict_walk(ins, kk, arch)
            self.tables[arch] = parts
            self._py[arch] = ([lo for lo, _, _ in parts], [leaf for _, _, leaf in parts])
            for lo, _, leaf in parts:
                if leaf not in leaf_index:
                    leaf_index[leaf] = len(l_pc)
                    regs = (leaf[1],) + (0,) * 17 if leaf[0] == "ret" else leaf[2:4] + leaf[4]
                    l_pc.append(-1 if leaf[0] == "ret" else leaf[1])
                    l_reg.append([0 if r == NR else r for r in regs])
                    l_nr.append([r == NR for r in regs])
                v_key.append(lo)
                v_leaf.append(leaf_index[leaf])
            v_arch.append(arch)
            v_off.append(len(v_key))
            first = np.searchsorted(self._py[arch][0], np.arange(DENSE), side="right") - 1
            v_dense.append(np.array(v_leaf[v_off[-2]:], np.int64)[first])
        d_off, d_key, d_pc = [0], [], []
        budget = [DISPATCH_BUDGET]
        ins_run = ins.copy()
        for root in dispatch_roots(ins):
            parts = dispatch_walk(ins, kk, root, budget)
            if parts is not None:
                ins_run[root] = (OP_DISPATCH, len(d_off) - 1, 0)
                d_key.extend(lo for lo, _, _ in parts)
                d_pc.extend(pc for _, _, pc in parts)
                d_off.append(len(d_key))
        self.dispatches = len(d_off) - 1
        u64, i64 = np.uint64, np.int64
        reads_mem = bool(np.isin(ins[:, 0], (OP_LD_MEM, OP_LDX_MEM)).any())
        self._args = (ins_run, kk, np.array(d_off, i64), np.array(d_key, u64),
                      np.array(d_pc, i64), np.array(v_arch, u64),
                      np.array(v_dense, i64).reshape(-1, DENSE), np.array(v_off, i64),
                      np.array(v_key, u64), np.array(v_leaf, i64), np.array(l_pc, i64),
                      np.array(l_reg, u64).reshape(-1, 18), np.array(l_nr, np.uint8).reshape(-1, 18),
                      16 if reads_mem else 0)
        self._local = threading.local()

    def evaluate_batch(self, records: np.ndarray, out: np.ndarray) -> None:
        _run_batch(*self._args, records.view(np.uint32).reshape(len(records), 16), out)

    def evaluate_one(self, nr: int, arch: int, instruction_pointer: int, args) -> int:
        table = self._py.get(arch)
        if table is not None:
            starts, leaves = table
            leaf = leaves[bisect_right(starts, nr & U32) - 1]
            if leaf[0] == "ret":
                return leaf[1]
        try:
            words, wide, out = self._local.buffers
        except AttributeError:
            words = np.zeros((1, 16), dtype=np.uint32)     # one record, as the host lays it out
            self._local.buffers = words, words.view(np.uint64), np.zeros(1, dtype=np.uint32)
            words, wide, out = self._local.buffers
        words[0, 0] = nr & U32
        words[0, 1] = arch
        wide[0, 1] = instruction_pointer
        wide[0, 2:] = args
        _run_batch(*self._args, words, out)
        return int(out[0])

    def describe(self) -> dict[str, str]:
        lines = []
        for arch, parts in self.tables.items():
            rets = sum(1 for p in parts if p[2][0] == "ret")
            resumes = sorted({p[2][1] for p in parts if p[2][0] == "resume"})
            lines.append(f"arch {arch:#010x}: {len(parts)} nr intervals, {rets} with a fixed "
                         f"return value, the rest resume at {resumes[:20]}"
                         f"{' ...' if len(resumes) > 20 else ''}")
        lines.append(f"{self.dispatches} jump runs dispatched by binary search")
        return {"verdicts": "\n".join(lines)}


class NumbaBackend:
    name = "numba"

    @staticmethod
    def unavailable_reason() -> str | None:
        return _IMPORT_ERROR

    def compile(self, program: CheckedProgram, layout: Layout) -> NumbaEvaluator:
        if _IMPORT_ERROR is not None:
            raise BackendUnavailable(_IMPORT_ERROR)
        if not isinstance(program, CheckedProgram):
            raise TypeError(f"the numba backend compiles a CheckedProgram (see bpfjit.check), "
                            f"not {type(program).__name__}")
        return NumbaEvaluator(program, layout)


BACKEND = NumbaBackend()
