"""Analysis stage: the per-(arch, nr) constant-verdict table.

The kernel caches, per architecture, a bitmap of syscall numbers for which a
filter *always* allows (kernel/seccomp.c ``seccomp_cache_prepare_bitmap``,
``seccomp_is_const_allow``): it emulates the filter with ``nr`` and ``arch``
known and every other field unknown. This module does the same for every
action: for each ``arch`` value the program compares against (and the layout's
own) and each ``nr`` in a few windows around the numbers the program tests, it
runs the program abstractly with ``nr`` and ``arch`` known and the instruction
pointer and arguments unknown. When every path the program may take returns
the same 32-bit value, that value is the verdict for (arch, nr) whatever the
other fields hold; a backend answers such records from the table and runs the
program only for the rest.

The interpretation is vectorised over all the window's ``nr`` values at once:
a set of ``nr`` values is a Python int bitmask, and an abstract value is
unknown (``None``), a u32 constant, ``NR`` (the loaded ``nr`` word itself) or a
numpy vector of one u32 per ``nr``. Jumps split the set; paths that reach the
same instruction with the same abstract registers merge. Everything
over-approximates the paths the program can take, so a determined verdict is
exact; tests check every entry of every real filter against the reference.

The work is bounded (:mod:`.budget`): each step costs a unit, a step on a
vector ``1 + words // VECTOR_UNIT``; an arch that spends ``STEP_BUDGET`` (or
the table ``TOTAL_BUDGET``) is abandoned, and its records run the program.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .. import opcodes as op
from ..program import Instruction
from ..seccomp.layouts import ARCH_OFFSET, NR_OFFSET, SECCOMP_DATA_SIZE, Layout
from .budget import Budget, BudgetExceeded
from .cfg import leaders
from .conditions import concrete_alu

U32 = 0xFFFFFFFF

#: nr windows: a window spans at most this many numbers
MAX_WINDOW = 4096
#: tested numbers closer than this share a window
CLUSTER_GAP = 256
#: tested numbers below this (ordinary syscall numbers) share one window starting at 0
LOW_NUMBERS = 1024
#: numbers past the largest tested one that a window still covers
WINDOW_MARGIN = 64
#: at most this many windows per arch and arch values per table
MAX_WINDOWS = 8
MAX_ARCHES = 8
#: at most this many table entries in all
MAX_ENTRIES = 1 << 16
#: give up on an arch after it spent this many work units (:mod:`.budget`: an abstract
#: step is one unit, a step on a vector over the windows more)
STEP_BUDGET = 150_000
#: and on the whole table once all arches together spent this many
TOTAL_BUDGET = 400_000
#: a vector operation over the windows costs 1 + (nr words under analysis) // VECTOR_UNIT units
VECTOR_UNIT = 256

LD_ABS = op.BPF_LD | op.BPF_W | op.BPF_ABS
JEQ_K = op.BPF_JMP | op.BPF_JEQ | op.BPF_K
JGT_K = op.BPF_JMP | op.BPF_JGT | op.BPF_K
JGE_K = op.BPF_JMP | op.BPF_JGE | op.BPF_K


class _Nr:
    """The abstract value 'the ``nr`` word that ``ld [0]`` loaded'."""

    def __repr__(self) -> str:
        return "NR"


NR = _Nr()


@dataclass(frozen=True)
class Window:
    """Verdicts for ``nr`` words ``base .. base + len(verdicts) - 1`` of one ``arch`` value.

    ``known[i]`` says whether ``verdicts[i]`` is determined; ``base`` is the
    u32 form of ``nr`` (``ld [0]`` sees a signed nr as its two's complement).
    """

    arch: int
    base: int
    verdicts: np.ndarray
    known: np.ndarray

    @property
    def size(self) -> int:
        return len(self.verdicts)

    def lookup(self, nr_word: int) -> int | None:
        i = (nr_word - self.base) & U32
        if i < self.size and self.known[i]:
            return int(self.verdicts[i])
        return None


@dataclass(frozen=True)
class VerdictTable:
    """Windows of constant verdicts; ``lookup(arch, nr)`` is the verdict or None."""

    windows: tuple[Window, ...] = ()
    steps: int = 0                                   # work units spent (:mod:`.budget`)
    abandoned: tuple[int, ...] = field(default=())   # arch values whose analysis hit the budget

    def lookup(self, arch: int, nr: int) -> int | None:
        word = nr & U32
        for w in self.windows:
            if w.arch == arch:
                found = w.lookup(word)
                if found is not None:
                    return found
        return None

    @property
    def entries(self) -> int:
        return sum(w.size for w in self.windows)

    @property
    def known(self) -> int:
        return sum(int(w.known.sum()) for w in self.windows)

    def sentinel(self) -> int:
        """A u32 that no determined verdict equals (marks 'run the program' in a flat table)."""
        used = set()
        for w in self.windows:
            used.update(np.unique(w.verdicts[w.known]).tolist())
        value = U32
        while value in used:
            value -= 1
        return value

    def flat(self) -> tuple[np.ndarray, int]:
        """All windows one after the other as one uint32 array, unknown entries = sentinel."""
        mark = self.sentinel()
        parts = [np.where(w.known, w.verdicts, np.uint32(mark)).astype(np.uint32)
                 for w in self.windows]
        values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)
        return values, mark


# --- which numbers and arches the program tests -------------------------------------------

def tested_constants(program: Sequence[Instruction]) -> tuple[set[int], set[int]]:
    """(nr constants, arch constants) that ``jeq/jgt/jge #k`` compare a loaded nr / arch with.

    A forward data-flow over the (acyclic) program tracks whether A holds the
    word from ``ld [0]`` or ``ld [4]`` on every path into each instruction.
    """
    n = len(program)
    unset = object()
    source: list[object] = [unset] * n
    source[0] = None
    nr_k: set[int] = set()
    arch_k: set[int] = set()

    def flow(pc: int, value: object) -> None:
        if pc < n:
            old = source[pc]
            source[pc] = value if old is unset or old == value else None

    for pc, insn in enumerate(program):
        a = source[pc]
        if a is unset:
            continue
        code = insn.code
        if code == LD_ABS:
            a = "nr" if insn.k == NR_OFFSET else "arch" if insn.k == ARCH_OFFSET else None
            flow(pc + 1, a)
        elif code in op.CONDITIONAL_JUMPS:
            if code in (JEQ_K, JGT_K, JGE_K):
                if a == "nr":
                    nr_k.add(insn.k)
                elif a == "arch":
                    arch_k.add(insn.k)
            flow(pc + 1 + insn.jt, a)
            flow(pc + 1 + insn.jf, a)
        elif code == op.BPF_JMP | op.BPF_JA:
            flow(pc + 1 + insn.k, a)
        elif code in (op.BPF_RET | op.BPF_K, op.BPF_RET | op.BPF_A):
            pass
        elif _writes_a(code):
            flow(pc + 1, None)
        else:
            flow(pc + 1, a)
    return nr_k, arch_k


def _writes_a(code: int) -> bool:
    cls = op.bpf_class(code)
    return cls == op.BPF_LD or cls == op.BPF_ALU or code == op.BPF_MISC | op.BPF_TXA


def windows_for(numbers: set[int]) -> list[tuple[int, int]]:
    """(base, size) windows covering clusters of tested nr words, largest clusters first.

    Numbers below ``LOW_NUMBERS`` share one window that starts at 0 (syscall
    numbers are small, and a filter that tests only ``jge #400`` still decides
    every number below it); other numbers closer than ``CLUSTER_GAP`` share a
    window. A window starts at a multiple of ``WINDOW_MARGIN`` and runs
    ``WINDOW_MARGIN`` or more past its largest number (so numbers just above the
    highest syscall tested are covered too), never overlapping the next one.
    """
    groups: list[list[int]] = []
    for k in sorted(numbers):
        if not groups and k < LOW_NUMBERS:
            groups.append([0, k] if k else [0])
        elif (groups and (k - groups[-1][-1] <= CLUSTER_GAP or k < LOW_NUMBERS)
                and k - groups[-1][0] < MAX_WINDOW - 2 * WINDOW_MARGIN):
            groups[-1].append(k)
        else:
            groups.append([k])
    spans: list[tuple[int, int, int]] = []
    floor = 0
    for g in groups:
        lo = max(floor, g[0] - g[0] % WINDOW_MARGIN)
        hi = g[-1] + 1 + WINDOW_MARGIN
        hi = min(U32 + 1, hi + (-hi) % WINDOW_MARGIN, lo + MAX_WINDOW)
        spans.append((len(g), lo, hi - lo))
        floor = hi
    spans.sort(key=lambda s: -s[0])
    return [(lo, size) for _, lo, size in spans[:MAX_WINDOWS]]


# --- the abstract interpreter ---------------------------------------------------------------

class _Space:
    """The nr words under analysis (the windows, concatenated) and masks over them."""

    def __init__(self, spans: list[tuple[int, int]]):
        self.spans = spans
        self.n = sum(size for _, size in spans)
        self.full = (1 << self.n) - 1
        self.words = np.concatenate([np.arange(b, b + s, dtype=np.uint64) for b, s in spans]
                                    ).astype(np.uint32) if spans else np.zeros(0, np.uint32)
        self._starts = []
        pos = 0
        for base, size in spans:
            self._starts.append(pos)
            pos += size
        self._cache: dict[tuple[int, int], int] = {}

    def to_mask(self, flags: np.ndarray) -> int:
        return int.from_bytes(np.packbits(flags, bitorder="little").tobytes(), "little")

    def to_flags(self, mask: int) -> np.ndarray:
        raw = np.frombuffer(mask.to_bytes((self.n + 7) // 8, "little"), dtype=np.uint8)
        return np.unpackbits(raw, bitorder="little", count=self.n).astype(bool)

    def nr_test(self, jop: int, k: int) -> int:
        """Mask of positions whose nr word satisfies ``word <jop> k``."""
        key = (jop, k)
        found = self._cache.get(key)
        if found is not None:
            return found
        mask = 0
        if jop == op.BPF_JSET:
            mask = self.to_mask((self.words & np.uint32(k)) != 0)
        else:
            for start, (base, size) in zip(self._starts, self.spans):
                if jop == op.BPF_JEQ:
                    lo, hi = k - base, k - base + 1
                elif jop == op.BPF_JGT:
                    lo, hi = k + 1 - base, size
                else:  # JGE
                    lo, hi = k - base, size
                lo, hi = max(lo, 0), min(hi, size)
                if lo < hi:
                    mask |= ((1 << (hi - lo)) - 1) << (start + lo)
        self._cache[key] = mask
        return mask


def _vec(value, space: _Space):
    if value is NR:
        return space.words
    return value


def _vector_alu(aop: int, a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.uint32)
    b = np.asarray(b, dtype=np.uint32)
    with np.errstate(all="ignore"):
        if aop == op.BPF_ADD:
            r = a + b
        elif aop == op.BPF_SUB:
            r = a - b
        elif aop == op.BPF_MUL:
            r = a * b
        elif aop == op.BPF_DIV:
            r = a // np.where(b == 0, np.uint32(1), b)   # zero divisors were split off
        elif aop == op.BPF_OR:
            r = a | b
        elif aop == op.BPF_AND:
            r = a & b
        elif aop == op.BPF_LSH:
            r = a << (b & np.uint32(31))
        elif aop == op.BPF_RSH:
            r = a >> (b & np.uint32(31))
        elif aop == op.BPF_XOR:
            r = a ^ b
        else:
            raise AssertionError(f"ALU op {aop:#x} is not a seccomp operation")
    return np.ascontiguousarray(np.broadcast_to(r, np.broadcast(a, b).shape), dtype=np.uint32)


def _alu(aop: int, a, b, space: _Space):
    """Abstract ``a <aop> b`` (division by zero already split off by the caller)."""
    if a is None or b is None:
        known = b if a is None else a
        if isinstance(known, int) and known == 0 and aop in (op.BPF_AND, op.BPF_MUL):
            return 0
        return None
    if isinstance(a, int) and isinstance(b, int):
        return concrete_alu(aop, a, b)   # b != 0: division by zero ended the path above
    return _vector_alu(aop, _vec(a, space), _vec(b, space))


def _test(jop: int, a, b) -> bool:
    if jop == op.BPF_JEQ:
        return a == b
    if jop == op.BPF_JGT:
        return a > b
    if jop == op.BPF_JGE:
        return a >= b
    return (a & b) != 0


def _split(jop: int, a, b, mask: int, space: _Space) -> tuple[int, int] | None:
    """(true mask, false mask) for the jump ``a <jop> b`` over ``mask``; None if undecidable."""
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return (mask, 0) if _test(jop, a, b) else (0, mask)
    if a is NR and isinstance(b, int):
        t = space.nr_test(jop, b)
    else:
        va, vb = _vec(a, space), _vec(b, space)
        va = np.asarray(va, dtype=np.uint32)
        vb = np.asarray(vb, dtype=np.uint32)
        if jop == op.BPF_JEQ:
            flags = va == vb
        elif jop == op.BPF_JGT:
            flags = va > vb
        elif jop == op.BPF_JGE:
            flags = va >= vb
        else:
            flags = (va & vb) != 0
        t = space.to_mask(np.broadcast_to(flags, (space.n,)))
    return mask & t, mask & ~t


def _key(value) -> object:
    """What identifies an abstract value when merging states (vectors by identity)."""
    if value is None or value.__class__ is int:
        return value
    return (0, id(value))


class _Results:
    """The values ``ret`` instructions return, per nr word.

    Constants are kept as masks per value (cheap: one big-int OR per ``ret #k``);
    vectors (``ret a`` with A depending on nr) as two arrays, the value seen and
    whether one or several were seen, so a ``ret a`` costs one pass over the
    words however many distinct values A holds.
    """

    def __init__(self, space: _Space):
        self.space = space
        self.by_value: dict[int, int] = {}
        self.unknown = 0
        self.vec_value = np.zeros(space.n, dtype=np.uint32)
        self.vec_state = np.zeros(space.n, dtype=np.uint8)     # 0 none, 1 one value, 2 several

    def add(self, value, mask: int) -> None:
        if not mask:
            return
        if value is None:
            self.unknown |= mask
        elif isinstance(value, int):
            self.by_value[value] = self.by_value.get(value, 0) | mask
        else:
            vec = np.broadcast_to(np.asarray(_vec(value, self.space), dtype=np.uint32),
                                  (self.space.n,))
            flags = self.space.to_flags(mask)
            fresh = flags & (self.vec_state == 0)
            clash = flags & (self.vec_state == 1) & (self.vec_value != vec)
            self.vec_value[fresh] = vec[fresh]
            self.vec_state[fresh] = 1
            self.vec_state[clash] = 2

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        once = twice = 0
        for m in self.by_value.values():
            twice |= once & m
            once |= m
        determined = once & ~twice & ~self.unknown
        verdicts = np.zeros(self.space.n, dtype=np.uint32)
        for v, m in self.by_value.items():
            hit = m & determined
            if hit:
                verdicts[self.space.to_flags(hit)] = v
        known = self.space.to_flags(determined)
        if self.vec_state.any():
            by_const = self.space.to_flags(once)
            undetermined = self.space.to_flags(twice | self.unknown) | (self.vec_state == 2)
            one_vec = self.vec_state == 1
            clash = one_vec & by_const & (verdicts != self.vec_value)
            only_vec = one_vec & ~by_const
            verdicts[only_vec] = self.vec_value[only_vec]
            known = (known | only_vec) & ~undetermined & ~clash
        return verdicts, known


def interpret(program: Sequence[Instruction], arch: int, space: _Space,
              budget: "Budget | int" = STEP_BUDGET, starts: "set[int] | None" = None
              ) -> tuple[np.ndarray, np.ndarray, int]:
    """(verdicts, known, units spent) for every nr word of ``space`` under ``arch``.

    ``budget``: a :class:`~.budget.Budget` (or its size in units); raises
    :class:`~.budget.BudgetExceeded` when it runs out. ``starts``: the
    program's block leaders (computed if not given).
    """
    if not isinstance(budget, Budget):
        budget = Budget(budget, "verdict table")
    before = budget.spent
    vector_cost = 1 + space.n // VECTOR_UNIT
    program = tuple(program)
    if starts is None:
        starts = set(leaders(program))
    results = _Results(space)
    pending: dict[int, dict[object, list]] = {}
    heap: list[int] = []
    spend = budget.spend

    def push(pc: int, mask: int, a, x, mem: tuple[tuple, tuple]) -> None:
        """Queue a state; ``mem`` is (the 16 cell values, their merge keys)."""
        if not mask:
            return
        key = (_key(a), _key(x), mem[1])
        slot = pending.get(pc)
        if slot is None:
            slot = pending[pc] = {}
            heapq.heappush(heap, pc)
        entry = slot.get(key)
        if entry is None:
            slot[key] = [mask, a, x, mem]
        else:
            entry[0] |= mask

    push(0, space.full, 0, 0, ((None,) * op.BPF_MEMWORDS, (None,) * op.BPF_MEMWORDS))
    while heap:
        start = heapq.heappop(heap)
        for mask, a, x, mem in pending.pop(start).values():
            pc = start
            while True:
                spend(1)
                insn = program[pc]
                code, k = insn.code, insn.k
                cls = op.bpf_class(code)
                if cls == op.BPF_RET:
                    value = k if code == op.BPF_RET | op.BPF_K else a
                    if value is not None and value.__class__ is not int:
                        spend(vector_cost)
                    results.add(value, mask)
                    break
                if cls == op.BPF_JMP:
                    if code == op.BPF_JMP | op.BPF_JA:
                        push(pc + 1 + k, mask, a, x, mem)
                        break
                    jop = op.bpf_op(code)
                    b = x if op.bpf_src(code) == op.BPF_X else k
                    tt, ff = pc + 1 + insn.jt, pc + 1 + insn.jf
                    if (a is not None and a.__class__ is not int) or (
                            b is not None and b.__class__ is not int):
                        spend(vector_cost)
                    split = _split(jop, a, b, mask, space)
                    if tt == ff:
                        push(tt, mask, a, x, mem)
                    elif split is None:
                        if jop == op.BPF_JEQ and a is None and isinstance(b, int):
                            push(tt, mask, b, x, mem)            # on the true edge A == k
                        elif jop == op.BPF_JEQ and b is None and isinstance(a, int):
                            push(tt, mask, a, a, mem)            # jeq x: X == A
                        else:
                            push(tt, mask, a, x, mem)
                        push(ff, mask, a, x, mem)
                    else:
                        t_mask, f_mask = split
                        a_true = b if (jop == op.BPF_JEQ and isinstance(b, int)) else a
                        push(tt, t_mask, a_true, x, mem)
                        push(ff, f_mask, a, x, mem)
                    break
                if code == LD_ABS:
                    a = NR if k == NR_OFFSET else arch if k == ARCH_OFFSET else None
                elif code in (op.BPF_LD | op.BPF_W | op.BPF_LEN,):
                    a = SECCOMP_DATA_SIZE
                elif code == op.BPF_LDX | op.BPF_W | op.BPF_LEN:
                    x = SECCOMP_DATA_SIZE
                elif code == op.BPF_LD | op.BPF_IMM:
                    a = k
                elif code == op.BPF_LDX | op.BPF_IMM:
                    x = k
                elif code == op.BPF_LD | op.BPF_MEM:
                    a = mem[0][k]
                elif code == op.BPF_LDX | op.BPF_MEM:
                    x = mem[0][k]
                elif code in (op.BPF_ST, op.BPF_STX):
                    v = a if code == op.BPF_ST else x
                    vals, keys = mem
                    mem = (vals[:k] + (v,) + vals[k + 1:], keys[:k] + (_key(v),) + keys[k + 1:])
                elif code == op.BPF_MISC | op.BPF_TAX:
                    x = a
                elif code == op.BPF_MISC | op.BPF_TXA:
                    a = x
                elif code == op.BPF_ALU | op.BPF_NEG:
                    if a is not None and a.__class__ is not int:
                        spend(vector_cost)
                    a = _alu(op.BPF_SUB, 0, a, space)
                elif cls == op.BPF_ALU:
                    aop = op.bpf_op(code)
                    b = x if op.bpf_src(code) == op.BPF_X else k
                    if aop == op.BPF_DIV and op.bpf_src(code) == op.BPF_X:
                        zero = _split(op.BPF_JEQ, x, 0, mask, space)
                        if zero is None:                     # X unknown: may be 0
                            results.add(0, mask)
                        else:
                            results.add(0, zero[0])
                            mask = zero[1]
                            if not mask:
                                break
                    if (a is not None and a.__class__ is not int) or (
                            b is not None and b.__class__ is not int):
                        spend(vector_cost)
                    a = _alu(aop, a, b, space)
                else:
                    raise AssertionError(f"instruction {pc}: {op.code_name(code)} is not a "
                                         f"seccomp instruction (was the program checked?)")
                pc += 1
                if pc in starts:
                    push(pc, mask, a, x, mem)
                    break
    spend(vector_cost * (1 + len(results.by_value) // 8))
    verdicts, known = results.table()
    return verdicts, known, budget.spent - before


def build(program: Sequence[Instruction], layout: Layout, *, budget: int = STEP_BUDGET,
          total: int = TOTAL_BUDGET) -> VerdictTable:
    """The constant-verdict table of a checked program for ``layout``.

    Each arch value may spend ``budget`` work units, all of them together
    ``total``; an arch that runs out is ``abandoned`` (it gets no windows,
    and the backend runs the program for its records).
    """
    nr_k, arch_k = tested_constants(program)
    spans = windows_for(nr_k)
    arches = [layout.audit_arch] + sorted(arch_k - {layout.audit_arch})
    arches = arches[:MAX_ARCHES]
    if not spans:
        return VerdictTable()
    per_arch = sum(size for _, size in spans)
    arches = arches[:max(1, MAX_ENTRIES // per_arch)]
    space = _Space(spans)
    starts = set(leaders(program))
    windows: list[Window] = []
    left = total
    abandoned = []
    for arch in arches:
        allowed = Budget(min(budget, left), "verdict table")
        try:
            verdicts, known, _ = interpret(program, arch, space, allowed, starts)
        except BudgetExceeded:
            abandoned.append(arch)
            continue
        finally:
            left -= allowed.spent
        pos = 0
        for base, size in spans:
            kn = known[pos:pos + size]
            if kn.any():
                windows.append(Window(arch, base, verdicts[pos:pos + size].copy(), kn.copy()))
            pos += size
    return VerdictTable(tuple(windows), total - left, tuple(abandoned))
