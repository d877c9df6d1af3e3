"""Analysis stage: recognise syscall dispatch — chains and trees of comparisons on one loaded word.

libseccomp and hand-written filters test the syscall number with a run of
``jeq #k, jt, jf`` where every mismatch lands on the next ``jeq``; libseccomp's
optimised output (and Firecracker, Chromium...) first narrows the number with a
binary tree of ``jgt``/``jge`` and ends in short ``jeq`` runs::

    ld  [0]
    jgt #86, upper, 0            <- head
    jeq #0,  ret_allow, 0
    jeq #1,  ret_allow, 0
    jeq #2,  args_check_2, 0
    ...                          -> the first instruction that is not a comparison of A with a constant

None of ``jeq``/``jgt``/``jge #k`` (nor ``ja``) changes A, so from the head the
whole region is one multi-way branch on A. Following every path with the set
of values still possible (an interval minus the ``jeq`` constants already
refused) gives, for each value of A, the instruction where control leaves the
region: single values (``cases``) and intervals. When every interval leads to
the same place that is the ``default``; otherwise ``ranges`` lists the intervals
(sorted, each with its target) and a backend searches them. Lowered as a
``switch``, the region becomes a jump table or a binary search.

A node of the region that is also entered from outside it heads its own,
smaller region, so every entry point keeps its exact meaning.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .. import opcodes as op
from ..program import Instruction
from .budget import Budget, BudgetExceeded
from .cfg import successors

JEQ_K = op.BPF_JMP | op.BPF_JEQ | op.BPF_K
JGT_K = op.BPF_JMP | op.BPF_JGT | op.BPF_K
JGE_K = op.BPF_JMP | op.BPF_JGE | op.BPF_K
JA = op.BPF_JMP | op.BPF_JA
COMPARISONS = frozenset((JEQ_K, JGT_K, JGE_K))
U32 = 0xFFFFFFFF

#: regions with fewer single-value cases than this are left as compare-and-branch
MIN_CASES = 4
#: at most this many cases per program instruction over all regions (sub-regions repeat cases)
MAX_CASES_PER_INSN = 8
#: give up on a region whose paths split into more pieces than this per instruction
MAX_PIECES_PER_INSN = 4
#: work units (:mod:`.budget`) for all regions of a program: a path step costs one unit plus
#: one per 16 refused values it carries; regions not explored when it runs out stay
#: compare-and-branch (a cubic shape — many heads into a long chain whose nodes both lead on
#: into it — would otherwise take minutes)
DISPATCH_BUDGET = 100_000


@dataclass(frozen=True)
class Dispatch:
    """A multi-way branch on A entered at ``head``.

    ``cases``: (value, target) sorted by value. Every other value goes to
    ``default``, or (when ``default`` is None) to the target of the interval
    of ``ranges`` (lo, hi, target) that holds it. ``members``: the
    instructions inside the region.
    """

    head: int
    cases: tuple[tuple[int, int], ...]
    default: int | None
    ranges: tuple[tuple[int, int, int], ...]
    members: tuple[int, ...]

    def target(self, a: int) -> int:
        """The instruction a run entering at ``head`` with ``A == a`` reaches when it leaves."""
        for k, target in self.cases:
            if k == a:
                return target
        if self.default is not None:
            return self.default
        for lo, hi, target in self.ranges:
            if lo <= a <= hi:
                return target
        raise AssertionError(f"value {a:#x} is in no range of the dispatch at {self.head}")

    def targets(self) -> tuple[int, ...]:
        """Every instruction the region can leave to, without repeats."""
        found = [t for _, t in self.cases]
        found += [self.default] if self.default is not None else [t for _, _, t in self.ranges]
        return tuple(dict.fromkeys(found))


def is_node(insn: Instruction) -> bool:
    """A ``jeq/jgt/jge #k`` that really branches, or a ``ja``: it leaves A alone."""
    code = insn.code
    return code == JA or (code in COMPARISONS and insn.jt != insn.jf)


def _predecessors(program: Sequence[Instruction]) -> list[list[int]]:
    """Instruction-level predecessors, counting only instructions reachable from 0."""
    n = len(program)
    preds: list[list[int]] = [[] for _ in range(n)]
    live = [False] * n
    live[0] = True
    for pc, insn in enumerate(program):
        if not live[pc]:
            continue
        for s in successors(pc, insn):
            preds[s].append(pc)
            live[s] = True
    return preds


class _TooBig(Exception):
    pass


def explore(program: Sequence[Instruction], head: int, max_pieces: int,
            budget: Budget | None = None) -> tuple[list[tuple[int, int, int]], set[int]]:
    """Follow every path from ``head`` with the values A may still hold.

    Returns the pieces (lo, hi, leaving instruction) — single values are
    pieces with ``lo == hi`` — and the region's members. Raises
    :class:`~.budget.BudgetExceeded` when ``budget`` runs out.
    """
    spend = (budget or Budget(DISPATCH_BUDGET, "dispatch")).spend
    pieces: list[tuple[int, int, int]] = []
    members: set[int] = set()
    stack: list[tuple[int, int, int, frozenset[int]]] = [(head, 0, U32, frozenset())]
    while stack:
        pc, lo, hi, refused = stack.pop()
        spend(1 + (len(refused) >> 4))
        if lo == hi and lo in refused:
            continue                                      # no value can take this path
        insn = program[pc]
        if not is_node(insn):
            pieces.append((lo, hi, pc))
            if len(pieces) > max_pieces:
                raise _TooBig
            continue
        members.add(pc)
        code, k = insn.code, insn.k
        if code == JA:
            stack.append((pc + 1 + k, lo, hi, refused))
            continue
        taken, fallen = pc + 1 + insn.jt, pc + 1 + insn.jf
        if code == JEQ_K:
            if not lo <= k <= hi or k in refused:
                stack.append((fallen, lo, hi, refused))   # A cannot equal k here
                continue
            stack.append((taken, k, k, frozenset()))
            if k == lo == hi:
                continue
            if k == lo:
                stack.append((fallen, lo + 1, hi, refused))
            elif k == hi:
                stack.append((fallen, lo, hi - 1, refused))
            else:
                stack.append((fallen, lo, hi, refused | {k}))
            continue
        first = k + 1 if code == JGT_K else k              # the smallest value that jumps
        if first <= hi:
            tlo = max(lo, first)
            stack.append((taken, tlo, hi, frozenset(r for r in refused if r >= tlo)
                          if refused else refused))
        if lo < first:
            fhi = min(hi, first - 1)
            stack.append((fallen, lo, fhi, frozenset(r for r in refused if r <= fhi)
                          if refused else refused))
    return pieces, members


def _dispatch(head: int, pieces: list[tuple[int, int, int]], members: set[int]) -> Dispatch | None:
    cases: dict[int, int] = {}
    spans: list[tuple[int, int, int]] = []
    for lo, hi, target in pieces:
        if lo == hi:
            if cases.get(lo, target) != target:
                return None                               # cannot happen; refuse rather than guess
            cases[lo] = target
        else:
            spans.append((lo, hi, target))
    spans.sort()
    merged: list[list[int]] = []
    for lo, hi, target in spans:
        if merged and merged[-1][2] == target:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi, target])
    targets = {t for _, _, t in merged}
    default = targets.pop() if len(targets) == 1 else None
    ranges = () if default is not None else tuple((lo, hi, t) for lo, hi, t in merged)
    return Dispatch(head, tuple(sorted(cases.items())), default, ranges, tuple(sorted(members)))


def find_dispatches(program: Sequence[Instruction], *, min_cases: int = MIN_CASES,
                    budget: int = DISPATCH_BUDGET) -> dict[int, Dispatch]:
    """Head instruction -> Dispatch, for every reachable region worth a ``switch``.

    A head is a comparison entered from something other than a region node
    (a ``ja`` counts as the nodes that reach it). Heads are taken in program
    order until the total number of cases would exceed
    ``MAX_CASES_PER_INSN * len(program)``, or until ``budget`` work units
    are spent; later regions stay compare-and-branch (each region found is
    exact on its own).
    """
    work = Budget(budget, "dispatch")
    n = len(program)
    preds = _predecessors(program)
    cases_left = MAX_CASES_PER_INSN * n
    max_pieces = MAX_PIECES_PER_INSN * n + 64
    # entered[pc]: some path reaches pc without passing through a comparison node
    # (a ``ja`` passes on what reaches it); jumps go forward, so one pass suffices.
    entered = [False] * n
    entered[0] = True
    for pc in range(1, n):
        for p in preds[pc]:
            insn = program[p]
            if not is_node(insn) or (insn.code == JA and entered[p]):
                entered[pc] = True
                break

    found: dict[int, Dispatch] = {}
    for pc, insn in enumerate(program):
        if insn.code not in COMPARISONS or insn.jt == insn.jf:
            continue
        if not (preds[pc] or pc == 0) or not entered[pc]:
            continue
        try:
            pieces, members = explore(program, pc, max_pieces, work)
        except _TooBig:
            continue
        except BudgetExceeded:
            break
        region = _dispatch(pc, pieces, members)
        if region is None or len(region.cases) < min_cases:
            continue
        cases_left -= len(region.cases) + len(region.ranges)
        if cases_left < 0:
            break
        found[pc] = region
    return found
