"""Analysis stage (numba backend): sets of 32-bit values, split exactly as a jump splits them.

A set is a sorted list of disjoint inclusive ``(lo, hi)`` intervals. The
decision walk (:mod:`.decisions`) and jump-run dispatch (:mod:`.decode`) keep,
for a value they do not know, the set of values that reach an instruction, and
split it at each ``jeq/jgt/jge/jset`` that compares it.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right

U32 = 0xFFFFFFFF
FULL = [(0, U32)]

#: a jset may split a set into at most this many intervals (more raises TooMany)
JSET_PIECES = 256


class TooMany(Exception):
    """A split would produce more than JSET_PIECES intervals."""


def restrict(s: list, a: int, b: int) -> tuple[list, list]:
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


def jset_split(s: list, c: int, limit: int | None = None) -> tuple[list, list]:
    """({v in s: v & c}, {v in s: not v & c}); TooMany past ``limit`` intervals."""
    limit = JSET_PIECES if limit is None else limit
    true, false = [], []

    def piece(lo: int, hi: int) -> None:
        while True:
            top = (lo ^ hi).bit_length()          # bits below this vary inside [lo, hi]
            if lo == hi or not c & ((1 << top) - 1):
                (true if lo & c else false).append((lo, hi))
                if len(true) + len(false) > limit:
                    raise TooMany
                return
            mid = hi >> (top - 1) << (top - 1)    # the first value with bit top-1 set
            piece(lo, mid - 1)
            lo = mid

    for lo, hi in s:
        piece(lo, hi)
    return true, false


def size(s: list) -> int:
    return sum(hi - lo + 1 for lo, hi in s)


def singleton(s: list) -> int | None:
    return s[0][0] if len(s) == 1 and s[0][0] == s[0][1] else None


def branch(kind: str, sym_a: bool, sym_b: bool, c: int, s: list) -> tuple[list, list]:
    """Split the set ``s`` of an unknown value v by ``A <kind> operand`` (kind: jeq, jgt,
    jge, jset): A is v if sym_a else c; the operand is v if sym_b else c.

    Returns (values that jump to jt, values that jump to jf).
    """
    if kind == "jeq":
        return (s, []) if sym_a and sym_b else restrict(s, c, c)
    if kind == "jgt":
        if sym_a and sym_b:
            return [], s
        return restrict(s, c + 1, U32) if sym_a else restrict(s, 0, c - 1)
    if kind == "jge":
        if sym_a and sym_b:
            return s, []
        return restrict(s, c, U32) if sym_a else restrict(s, 0, c)
    if sym_a and sym_b:                   # jset: v & v != 0
        return restrict(s, 1, U32)
    return jset_split(s, c)


def partition(pieces: list) -> list:
    """Sort ``(lo, hi, what)`` pieces that cover 0..2**32-1 and merge equal neighbours."""
    pieces.sort(key=lambda p: p[0])
    merged: list = []
    expect = 0
    for lo, hi, what in pieces:
        if lo != expect:       # the walks split whole spaces; anything else is a bug there
            raise AssertionError(f"value partition broken at {expect:#x}")
        expect = hi + 1
        if merged and merged[-1][2] == what:
            merged[-1] = (merged[-1][0], hi, what)
        else:
            merged.append((lo, hi, what))
    if expect != U32 + 1:
        raise AssertionError("value partition does not reach 0xffffffff")
    return merged
