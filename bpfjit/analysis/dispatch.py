"""Analysis stage: recognise syscall dispatch — chains of ``jeq #k`` testing one loaded word.

libseccomp and hand-written filters test the syscall number with a run of
``jeq #k, jt, jf`` where every mismatch (``jf``) lands on the next ``jeq``::

    ld  [0]
    jeq #0,  ret_allow, 0        <- head
    jeq #1,  ret_allow, 0
    jeq #2,  args_check_2, 0
    ...                          -> default: the first non-``jeq`` on the mismatch path

``jeq`` does not change A, so from the head the whole run is one multi-way
branch on A: the first case whose ``k`` equals A wins (a repeated ``k`` later in
the run can never be taken from the head). A backend lowers it to a ``switch``
(a jump table or a binary search) instead of a linear scan.

Every member that is also entered from elsewhere (not just from the mismatch
edge of the member before it) is the head of its own, shorter chain, so each
entry point keeps its exact meaning.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .. import opcodes as op
from ..program import Instruction
from .cfg import successors

JEQ_K = op.BPF_JMP | op.BPF_JEQ | op.BPF_K

#: chains shorter than this are left as compare-and-branch
MIN_CASES = 4
#: at most this many cases per program instruction over all chains (suffix chains repeat cases)
MAX_CASES_PER_INSN = 8


@dataclass(frozen=True)
class Chain:
    """A multi-way branch on A: ``cases`` (k, target) in first-match order, else ``default``."""

    head: int
    cases: tuple[tuple[int, int], ...]
    default: int
    members: tuple[int, ...]

    def target(self, a: int) -> int:
        """The instruction a run entering at ``head`` with ``A == a`` reaches after the chain."""
        for k, target in self.cases:
            if k == a:
                return target
        return self.default


def is_link(insn: Instruction) -> bool:
    """A ``jeq #k`` that really branches (``jt != jf``)."""
    return insn.code == JEQ_K and insn.jt != insn.jf


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


def _is_continuation(program: Sequence[Instruction], pred: int, pc: int) -> bool:
    """True when ``pred`` reaches ``pc`` only as the mismatch edge of a chain link."""
    insn = program[pred]
    return is_link(insn) and pred + 1 + insn.jf == pc and pred + 1 + insn.jt != pc


def _walk(program: Sequence[Instruction], head: int) -> Chain:
    cases: list[tuple[int, int]] = []
    seen: set[int] = set()
    members: list[int] = []
    pc = head
    while is_link(program[pc]):
        insn = program[pc]
        members.append(pc)
        if insn.k not in seen:
            seen.add(insn.k)
            cases.append((insn.k, pc + 1 + insn.jt))
        pc = pc + 1 + insn.jf
    return Chain(head, tuple(cases), pc, tuple(members))


def find_chains(program: Sequence[Instruction], *, min_cases: int = MIN_CASES) -> dict[int, Chain]:
    """Head instruction -> Chain, for every reachable dispatch chain worth a ``switch``.

    Heads are taken in program order until the total number of cases would
    exceed ``MAX_CASES_PER_INSN * len(program)``; later chains stay linear.
    """
    preds = _predecessors(program)
    budget = MAX_CASES_PER_INSN * len(program)
    found: dict[int, Chain] = {}
    for pc, insn in enumerate(program):
        if not is_link(insn):
            continue
        entries = preds[pc] if pc else [-1]          # instruction 0 is entered by the kernel
        if not entries or all(p >= 0 and _is_continuation(program, p, pc) for p in entries):
            continue
        chain = _walk(program, pc)
        if len(chain.cases) < min_cases:
            continue
        budget -= len(chain.cases)
        if budget < 0:
            break
        found[pc] = chain
    return found
