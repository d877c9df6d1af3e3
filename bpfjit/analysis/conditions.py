"""Analysis: symbolic 32-bit values and the exact sets of words a condition admits.

The vocabulary of :mod:`.semantics`. A *symbolic value* (``Expr``) is what A,
X or a scratch cell holds on a path: a Python ``int`` (a known u32), a
:class:`Word` (the input word ``ld [4*i]`` loaded) or an :class:`Op` tree over
them (ALU on loaded words, X arithmetic). :func:`fold` simplifies exactly
(``x & 0 = 0``, constants folded).

A :class:`WordSet` is the set of u32 values one input word may hold on a path,
in a form that reads as conditions: fixed bits (``w & m == v``, from ``jeq``,
``and``+``jeq``, ``jset`` false), a range (``jgt``/``jge``), excluded masked
patterns (``w & m != v``, ``jset`` true) and excluded points (the false edges
of a ``jeq`` chain). Every set operation is exact; :meth:`WordSet.find` is a
complete search (depth-first over the bits, pruned by the range and the fixed
bits), so an empty set is always recognised.

:func:`atom` turns a jump ``a <op> b`` into such a constraint on one word when
it is one ("masked equality, ranges, jeq chains"); anything else (a comparison
of two words, of ``args[0] + 1``...) stays an *opaque* condition that
:mod:`.solver` decides.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import opcodes as op

U32 = 0xFFFFFFFF
WORDS = 16
#: search nodes before WordSet.find gives up (answers None, "unknown")
FIND_BUDGET = 50_000


@dataclass(frozen=True)
class Word:
    """The input word at byte offset ``4 * index`` of struct seccomp_data."""

    index: int

    def __repr__(self) -> str:
        return f"W{self.index}"


@dataclass(frozen=True)
class Op:
    """``a <aop> b`` as the kernel computes it (32-bit, shifts by ``b & 31``); ``NEG`` has b = 0."""

    aop: int
    a: object
    b: object


ALU_SYMBOLS = {op.BPF_ADD: "+", op.BPF_SUB: "-", op.BPF_MUL: "*", op.BPF_DIV: "/",
               op.BPF_OR: "|", op.BPF_AND: "&", op.BPF_LSH: "<<", op.BPF_RSH: ">>",
               op.BPF_XOR: "^", op.BPF_NEG: "neg"}
JUMP_SYMBOLS = {op.BPF_JEQ: ("==", "!="), op.BPF_JGT: (">", "<="), op.BPF_JGE: (">=", "<"),
                op.BPF_JSET: ("&", "&")}


def concrete_alu(aop: int, a: int, b: int) -> int:
    """The kernel's 32-bit ALU on known values (division by zero handled by the caller)."""
    if aop == op.BPF_ADD:
        return (a + b) & U32
    if aop == op.BPF_SUB:
        return (a - b) & U32
    if aop == op.BPF_MUL:
        return (a * b) & U32
    if aop == op.BPF_DIV:
        return a // b if b else 0
    if aop == op.BPF_OR:
        return a | b
    if aop == op.BPF_AND:
        return a & b
    if aop == op.BPF_LSH:
        return (a << (b & 31)) & U32
    if aop == op.BPF_RSH:
        return a >> (b & 31)
    if aop == op.BPF_XOR:
        return a ^ b
    if aop == op.BPF_NEG:
        return (-a) & U32
    raise AssertionError(f"ALU op {aop:#x} is not a seccomp operation")


def fold(aop: int, a, b):
    """``Op(aop, a, b)`` simplified exactly."""
    if isinstance(a, int) and isinstance(b, int):
        return concrete_alu(aop, a, b)
    if isinstance(b, int):
        if b == 0 and aop in (op.BPF_ADD, op.BPF_SUB, op.BPF_OR, op.BPF_XOR, op.BPF_LSH,
                              op.BPF_RSH):
            return a
        if (b == 0 and aop in (op.BPF_AND, op.BPF_MUL)) or (b == U32 and aop == op.BPF_OR):
            return 0 if b == 0 else U32
        if (b == U32 and aop == op.BPF_AND) or (b == 1 and aop in (op.BPF_MUL, op.BPF_DIV)):
            return a
        if aop == op.BPF_AND and isinstance(a, Op) and a.aop == op.BPF_AND \
                and isinstance(a.b, int):
            return fold(op.BPF_AND, a.a, a.b & b)
    if isinstance(a, int) and a == 0 and aop in (op.BPF_AND, op.BPF_MUL, op.BPF_LSH,
                                                   op.BPF_RSH, op.BPF_DIV):
        return 0
    return Op(aop, a, b)


def evaluate(expr, words) -> int:
    """The value of ``expr`` for one input (``words[i]`` = word i)."""
    if isinstance(expr, int):
        return expr
    if isinstance(expr, Word):
        return int(words[expr.index])
    return concrete_alu(expr.aop, evaluate(expr.a, words), evaluate(expr.b, words))


def evaluate_vec(expr, words: np.ndarray) -> np.ndarray:
    """``expr`` over an (n, 16) uint32 array of inputs, as uint64 holding u32 values."""
    if isinstance(expr, int):
        return np.full(len(words), expr, dtype=np.uint64)
    if isinstance(expr, Word):
        return words[:, expr.index].astype(np.uint64)
    a, b = evaluate_vec(expr.a, words), evaluate_vec(expr.b, words)
    aop, m = expr.aop, np.uint64(U32)
    if aop == op.BPF_ADD:
        return (a + b) & m
    if aop == op.BPF_SUB:
        return (a - b) & m
    if aop == op.BPF_MUL:
        return (a * b) & m
    if aop == op.BPF_DIV:
        return np.where(b == 0, np.uint64(0), a // np.where(b == 0, np.uint64(1), b))
    if aop == op.BPF_OR:
        return a | b
    if aop == op.BPF_AND:
        return a & b
    if aop == op.BPF_LSH:
        return (a << (b & np.uint64(31))) & m
    if aop == op.BPF_RSH:
        return a >> (b & np.uint64(31))
    if aop == op.BPF_XOR:
        return a ^ b
    if aop == op.BPF_NEG:
        return (np.uint64(1 << 32) - a) & m
    raise AssertionError(f"ALU op {aop:#x}")


def substitute(expr, known: dict[int, int]):
    """``expr`` with the words in ``known`` replaced by their values, folded."""
    if isinstance(expr, int):
        return expr
    if isinstance(expr, Word):
        return known.get(expr.index, expr)
    return fold(expr.aop, substitute(expr.a, known), substitute(expr.b, known))


def words_in(expr) -> set[int]:
    if isinstance(expr, Word):
        return {expr.index}
    if isinstance(expr, Op):
        return words_in(expr.a) | words_in(expr.b)
    return set()


def test(jop: int, a: int, b: int) -> bool:
    if jop == op.BPF_JEQ:
        return a == b
    if jop == op.BPF_JGT:
        return a > b
    if jop == op.BPF_JGE:
        return a >= b
    return (a & b) != 0


def test_vec(jop: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if jop == op.BPF_JEQ:
        return a == b
    if jop == op.BPF_JGT:
        return a > b
    if jop == op.BPF_JGE:
        return a >= b
    return (a & b) != 0


def text(expr, name) -> str:
    """``expr`` in words; ``name(i)`` names word i (``args[0].lo``)."""
    if isinstance(expr, int):
        return num(expr)
    if isinstance(expr, Word):
        return name(expr.index)
    if expr.aop == op.BPF_NEG:
        return f"-({text(expr.a, name)})"
    return f"({text(expr.a, name)} {ALU_SYMBOLS[expr.aop]} {text(expr.b, name)})"


def num(v: int) -> str:
    return str(v) if v < 10 else f"{v:#x}"


# --- one word's exact value set ---------------------------------------------------------------

class WordSet:
    """The u32 values ``w`` with ``w & mask == value``, ``lo <= w <= hi``, ``w & m != v``
    for each ``(m, v)`` in ``nots`` and ``w`` not in ``points``. Immutable."""

    __slots__ = ("mask", "value", "lo", "hi", "nots", "points", "_witness")

    def __init__(self, mask=0, value=0, lo=0, hi=U32, nots=(), points=frozenset(), witness=None):
        self.mask, self.value, self.lo, self.hi = mask, value, lo, hi
        self.nots, self.points, self._witness = nots, points, witness

    def __repr__(self) -> str:
        return f"WordSet({'; '.join(self.describe('w')) or 'any'})"

    @property
    def is_any(self) -> bool:
        return not (self.mask or self.lo or self.hi != U32 or self.nots or self.points)

    @property
    def point(self) -> int | None:
        """The single value this set allows when it is fixed by an equality, else None."""
        return self.value if self.mask == U32 else None

    def contains(self, v: int) -> bool:
        return ((v & self.mask) == self.value and self.lo <= v <= self.hi
                and v not in self.points and all((v & m) != x for m, x in self.nots))

    def contains_vec(self, w: np.ndarray) -> np.ndarray:
        w = w.astype(np.uint64)
        ok = (w & np.uint64(self.mask)) == np.uint64(self.value)
        if self.lo:
            ok &= w >= np.uint64(self.lo)
        if self.hi != U32:
            ok &= w <= np.uint64(self.hi)
        for m, x in self.nots:
            ok &= (w & np.uint64(m)) != np.uint64(x)
        if self.points:
            ok &= ~np.isin(w, np.fromiter(self.points, dtype=np.uint64))
        return ok

    def _with(self, **changes) -> "WordSet | None":
        fields = {s: getattr(self, s) for s in ("mask", "value", "lo", "hi", "nots", "points")}
        fields.update(changes)
        new = WordSet(**fields, witness=self._witness)
        if new.lo > new.hi:
            return None
        if new._witness is not None and new.contains(new._witness):
            return new
        new._witness = None
        found = new.find()
        if found is False:
            return None
        return new

    def refine(self, kind: str, a: int, b: int = 0) -> "WordSet | None":
        """This set and one more constraint; None when the result is empty.

        ``kind``: ``eq`` (w & a == b), ``ne`` (w & a != b), ``ge`` (w >= a), ``le`` (w <= a).
        """
        if kind == "eq":
            if (self.value ^ b) & self.mask & a:
                return None
            if a & ~self.mask == 0:
                return self
            return self._with(mask=self.mask | a, value=self.value | (b & a))
        if kind == "ne":
            if (self.value ^ b) & self.mask & a:
                return self                                  # already differs on a fixed bit
            if a == U32:
                if b in self.points or not (self.lo <= b <= self.hi):
                    return self
                return self._with(points=self.points | {b})
            if (a, b) in self.nots:
                return self
            return self._with(nots=self.nots + ((a, b),))
        if kind == "ge":
            return self if a <= self.lo else self._with(lo=a)
        if kind == "le":
            return self if a >= self.hi else self._with(hi=a)
        raise AssertionError(kind)

    def intersect(self, other: "WordSet") -> "WordSet | None":
        if (self.value ^ other.value) & self.mask & other.mask:
            return None
        return self._with(mask=self.mask | other.mask, value=self.value | other.value,
                          lo=max(self.lo, other.lo), hi=min(self.hi, other.hi),
                          nots=self.nots + tuple(n for n in other.nots if n not in self.nots),
                          points=self.points | other.points)

    def find(self, prefer: int | None = None) -> "int | bool | None":
        """A member (the smallest one), False when empty, None when the search gave up."""
        if prefer is not None and self.contains(prefer):
            return prefer
        if self._witness is not None:
            return self._witness
        mm, mv, lo, hi, nots, points = (self.mask, self.value, self.lo, self.hi, self.nots,
                                        self.points)
        budget = [FIND_BUDGET]

        def rec(bit: int, prefix: int):
            budget[0] -= 1
            if budget[0] < 0:
                raise _GiveUp
            low = (1 << (bit + 1)) - 1
            free = low & ~mm
            mn = prefix | (mv & low)
            if mn > hi or (mn | free) < lo:
                return None
            for m, x in nots:
                if not m & free and (mn & m) == x:
                    return None
            if not free:
                if mn < lo or mn in points:
                    return None
                return mn
            b = free.bit_length() - 1
            base = prefix | (mv & low & ~((1 << (b + 1)) - 1))
            for choice in (0, 1):
                r = rec(b - 1, base | (choice << b))
                if r is not None:
                    return r
            return None

        try:
            found = rec(31, 0)
        except _GiveUp:
            return None
        if found is None:
            return False
        self._witness = found
        return found

    def describe(self, name: str) -> list[str]:
        """The constraints as short conditions on ``name``."""
        out = []
        if self.mask == U32:
            return [f"{name} == {num(self.value)}"]
        if not self.mask and not self.nots and self.hi - self.lo < 8:
            values = [v for v in range(self.lo, self.hi + 1) if v not in self.points]
            if len(values) == 1:
                return [f"{name} == {num(values[0])}"]
            return [f"{name} in {{{', '.join(num(v) for v in values)}}}"]
        if self.mask:
            out.append(f"{name} & {self.mask:#x} == {num(self.value)}")
        if self.lo and self.hi != U32:
            out.append(f"{num(self.lo)} <= {name} <= {num(self.hi)}" if self.lo != self.hi
                       else f"{name} == {num(self.lo)}")
        elif self.lo:
            out.append(f"{name} >= {num(self.lo)}")
        elif self.hi != U32:
            out.append(f"{name} <= {num(self.hi)}")
        for m, x in self.nots:
            out.append(f"{name} & {m:#x} != {num(x)}")
        pts = sorted(p for p in self.points
                     if self.lo <= p <= self.hi and (p & self.mask) == self.value)
        if 0 < len(pts) <= 4:
            out.extend(f"{name} != {num(p)}" for p in pts)
        elif pts:
            out.append(f"{name} not in {{{', '.join(num(p) for p in pts[:3])}, ... "
                       f"({len(pts)} values)}}")
        return out


class _GiveUp(Exception):
    pass


ANY = WordSet()


# --- jumps as constraints ------------------------------------------------------------------

def atom(jop: int, a, b) -> "tuple[int, tuple, tuple] | bool | None":
    """The jump ``a <jop> b`` as (word, constraint if taken, constraint if not), or a bool when
    it is decided, or None when it is not a constraint on one word (an opaque condition).

    A constraint is ``(kind, x[, y])`` for :meth:`WordSet.refine`.
    """
    if isinstance(a, int) and isinstance(b, int):
        return test(jop, a, b)
    if isinstance(a, int) and not isinstance(b, int):
        if jop in (op.BPF_JEQ, op.BPF_JSET):
            a, b = b, a
        elif isinstance(b, Word):                # k > w  <=>  w < k ...
            if jop == op.BPF_JGT:
                return (b.index, ("le", a - 1), ("ge", a)) if a else False
            return (b.index, ("le", a), ("ge", a + 1)) if a != U32 else True
        else:
            return None
    if not isinstance(b, int):
        return None
    word, mask = a, U32
    if isinstance(a, Op) and isinstance(a.b, int) and isinstance(a.a, Word):
        word, k = a.a, a.b
        if a.aop == op.BPF_AND:
            mask = k
        elif jop == op.BPF_JEQ and a.aop == op.BPF_XOR:
            b = b ^ k
        elif jop == op.BPF_JEQ and a.aop == op.BPF_ADD:
            b = (b - k) & U32
        elif jop == op.BPF_JEQ and a.aop == op.BPF_SUB:
            b = (b + k) & U32
        elif jop == op.BPF_JEQ and a.aop == op.BPF_OR:
            if b & k != k:
                return False
            mask, b = U32 & ~k, b & ~k
        elif jop == op.BPF_JSET and a.aop == op.BPF_OR:
            if b & k:
                return True
        else:
            return None
    if not isinstance(word, Word):
        return None
    i = word.index
    if jop == op.BPF_JEQ:
        if b & ~mask:
            return False
        return i, ("eq", mask, b), ("ne", mask, b)
    if jop == op.BPF_JSET:
        m = mask & b
        if not m:
            return False
        return i, ("ne", m, 0), ("eq", m, 0)
    if mask != U32:
        return None                               # ranges of a masked word: opaque
    if jop == op.BPF_JGT:
        return (i, ("ge", b + 1), ("le", b)) if b != U32 else False
    return (i, ("ge", b), ("le", b - 1)) if b else True
