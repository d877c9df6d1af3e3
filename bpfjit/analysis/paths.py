"""Analysis stage: which jump edges some input can take (value ranges of the seccomp_data words).

The program is run abstractly with every ``seccomp_data`` word unknown. A state
keeps, for each of the 16 words, the values it may still hold on this path —
an interval ``lo..hi`` minus a set of refused values — and what A, X and the
scratch words hold (a constant, "the word at offset k" or unknown).
Comparisons of a word with a constant narrow it on each edge; an edge whose
narrowed range is empty is never taken by any input.

Everything over-approximates: ALU results, ``jset`` and comparisons of two
unknowns keep both edges, and when too many states meet at one instruction
they are joined (interval hull, common refusals). So an edge or instruction
reported *infeasible* is never taken by any input — the claim the lint rules
make — while a feasible one may still be dead for reasons not modelled.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Sequence

from .. import opcodes as op
from ..program import Instruction
from ..seccomp.layouts import SECCOMP_DATA_SIZE
from .conditions import concrete_alu, test as decide    # one concrete jump test for all

U32 = 0xFFFFFFFF
WORDS = SECCOMP_DATA_SIZE // 4
#: states kept apart at one instruction before they are joined into one
MAX_STATES_PER_PC = 24
#: abstract steps before the analysis gives up (then nothing is claimed infeasible)
STEP_BUDGET = 400_000

LD_ABS = op.BPF_LD | op.BPF_W | op.BPF_ABS
JA = op.BPF_JMP | op.BPF_JA

# A value held in A, X or a scratch word: None (unknown), ("k", c) or ("w", offset).
Value = "tuple[str, int] | None"
# A word's range: (lo, hi, refused) with refused a frozenset of values inside lo..hi.
Range = tuple[int, int, frozenset]
FULL: Range = (0, U32, frozenset())


class BudgetExceeded(Exception):
    """The analysis took more than its step budget."""


def _norm(lo: int, hi: int, refused: frozenset) -> Range | None:
    """The range with refusals at its ends trimmed; None when no value is left."""
    while lo <= hi and lo in refused:
        lo += 1
    while hi >= lo and hi in refused:
        hi -= 1
    if lo > hi:
        return None
    if refused and (refused_in := frozenset(r for r in refused if lo < r < hi)) != refused:
        refused = refused_in
    if hi - lo + 1 <= len(refused):
        return None
    return lo, hi, refused


def narrow(jop: int, k: int, rng: Range) -> tuple[Range | None, Range | None]:
    """(range on the true edge, range on the false edge) of ``word <jop> k``; None = no value."""
    lo, hi, refused = rng
    if jop == op.BPF_JEQ:
        true = (k, k, frozenset()) if lo <= k <= hi and k not in refused else None
        false = _norm(lo, hi, refused | {k}) if lo <= k <= hi else rng
        return true, false
    if jop in (op.BPF_JGT, op.BPF_JGE):
        first = k + 1 if jop == op.BPF_JGT else k          # the smallest value that jumps
        true = _norm(max(lo, first), hi, refused) if first <= hi else None
        false = _norm(lo, min(hi, first - 1), refused) if lo < first else None
        return true, false
    # BPF_JSET: decided only for a single value
    if lo == hi:
        return (rng, None) if lo & k else (None, rng)
    return (rng if k else None), rng


def _alu(aop: int, a: int, b: int) -> int | None:
    """Known operands: the kernel's result; None when the path ends (division by zero)."""
    if aop == op.BPF_DIV and b == 0:
        return None
    return concrete_alu(aop, a, b)


@dataclass
class Feasibility:
    """Result of :func:`analyse`.

    ``reached``: instructions some input executes (as far as the analysis can
    tell); ``edges[pc]``: for a conditional jump, the set of its feasible
    successors; ``ranges[pc]``: per word offset, the join of the ranges the word
    may hold on arrival at ``pc``; ``complete``: False if the budget ran out (then
    every CFG edge counts as feasible).
    """

    reached: set[int]
    edges: dict[int, set[int]]
    ranges: dict[int, dict[int, Range]]
    held: dict[int, object] = None        # pc -> what A holds on every state reaching pc
    complete: bool = True

    def word_in_a(self, pc: int) -> int | None:
        """The seccomp_data offset A holds whenever ``pc`` runs (None: not one loaded word)."""
        value = (self.held or {}).get(pc)
        return value[1] if value is not None and value[0] == "w" else None

    def infeasible_edges(self, program: Sequence[Instruction]) -> list[tuple[int, int]]:
        """(jump index, target) pairs of reached jumps whose edge to target no input takes."""
        out = []
        for pc in sorted(self.reached):
            insn = program[pc]
            if insn.code in op.CONDITIONAL_JUMPS:
                for t in dict.fromkeys((pc + 1 + insn.jt, pc + 1 + insn.jf)):
                    if t not in self.edges.get(pc, ()):
                        out.append((pc, t))
        return out

    def possible(self, pc: int, offset: int) -> Range:
        """The values word ``offset`` may hold when instruction ``pc`` runs (FULL if unknown)."""
        return self.ranges.get(pc, {}).get(offset, FULL)


def _join_range(a: Range | None, b: Range | None) -> Range | None:
    if a is None or b is None:
        return None            # None in a state's word table means "unconstrained"
    lo, hi = min(a[0], b[0]), max(a[1], b[1])
    refused = frozenset(r for r in (a[2] & b[2]))
    return _norm(lo, hi, refused) or (lo, hi, frozenset())


def _join(states: list[tuple]) -> tuple:
    """One state over-approximating all of ``states``."""
    a0, x0, mem0, words0 = states[0]
    a = a0 if all(s[0] == a0 for s in states) else None
    x = x0 if all(s[1] == x0 for s in states) else None
    mem = tuple(m if all(s[2][i] == m for s in states) else None for i, m in enumerate(mem0))
    words = list(words0)
    for s in states[1:]:
        words = [_join_range(w, v) for w, v in zip(words, s[3])]
    return a, x, mem, tuple(words)


def analyse(program: Sequence[Instruction], *, budget: int = STEP_BUDGET) -> Feasibility:
    """Feasible edges and reached instructions of a checked program."""
    program = tuple(program)
    n = len(program)
    try:
        return _run(program, n, budget)
    except BudgetExceeded:
        reached: set[int] = set()
        edges: dict[int, set[int]] = {}
        todo = [0]
        while todo:
            pc = todo.pop()
            if pc in reached:
                continue
            reached.add(pc)
            insn = program[pc]
            if insn.code in op.CONDITIONAL_JUMPS:
                edges[pc] = {pc + 1 + insn.jt, pc + 1 + insn.jf}
                todo.extend(edges[pc])
            elif insn.code == JA:
                todo.append(pc + 1 + insn.k)
            elif op.bpf_class(insn.code) != op.BPF_RET:
                todo.append(pc + 1)
        return Feasibility(reached, edges, {}, {}, complete=False)


def _run(program: tuple, n: int, budget: int) -> Feasibility:
    reached: set[int] = set()
    edges: dict[int, set[int]] = {}
    ranges: dict[int, dict[int, Range]] = {}
    held: dict[int, object] = {}
    pending: dict[int, dict[tuple, None]] = {}
    heap: list[int] = []
    steps = 0

    def push(pc: int, state: tuple) -> None:
        slot = pending.get(pc)
        if slot is None:
            slot = pending[pc] = {}
            heapq.heappush(heap, pc)
        slot[state] = None

    push(0, (("k", 0), ("k", 0), (None,) * op.BPF_MEMWORDS, (None,) * WORDS))
    while heap:
        pc = heapq.heappop(heap)
        states = list(pending.pop(pc))
        if len(states) > MAX_STATES_PER_PC:
            states = [_join(states)]
        for state in states:
            a, x, mem, words = state
            if pc in reached:
                if held.get(pc) != a:
                    held[pc] = None
            else:
                held[pc] = a
            reached.add(pc)
            seen = ranges.setdefault(pc, {})
            for off, w in enumerate(words):
                w = w or FULL
                prev = seen.get(off * 4)
                seen[off * 4] = w if prev is None else (_join_range(prev, w) or FULL)
            steps += 1
            if steps > budget:
                raise BudgetExceeded
            insn = program[pc]
            code, k = insn.code, insn.k
            cls = op.bpf_class(code)
            if cls == op.BPF_RET:
                continue
            if code == JA:
                push(pc + 1 + k, state)
                continue
            if cls == op.BPF_JMP:
                jop = op.bpf_op(code)
                b = x if op.bpf_src(code) == op.BPF_X else ("k", k)
                tt, ff = pc + 1 + insn.jt, pc + 1 + insn.jf
                feas = edges.setdefault(pc, set())
                if tt == ff:
                    feas.add(tt)
                    push(tt, state)
                    continue
                if a is not None and b is not None and a[0] == "k" and b[0] == "k":
                    target = tt if decide(jop, a[1], b[1]) else ff
                    feas.add(target)
                    push(target, state)
                    continue
                if a is not None and a[0] == "w" and b is not None and b[0] == "k":
                    off = a[1] // 4
                    true, false = narrow(jop, b[1], words[off] or FULL)
                    if true is not None:
                        feas.add(tt)
                        push(tt, (a, x, mem, words[:off] + (true,) + words[off + 1:]))
                    if false is not None:
                        feas.add(ff)
                        push(ff, (a, x, mem, words[:off] + (false,) + words[off + 1:]))
                    continue
                feas.update((tt, ff))
                push(tt, state)
                push(ff, state)
                continue
            # straight-line instruction
            if code == LD_ABS:
                a = ("w", k)
            elif code == op.BPF_LD | op.BPF_W | op.BPF_LEN:
                a = ("k", SECCOMP_DATA_SIZE)
            elif code == op.BPF_LDX | op.BPF_W | op.BPF_LEN:
                x = ("k", SECCOMP_DATA_SIZE)
            elif code == op.BPF_LD | op.BPF_IMM:
                a = ("k", k)
            elif code == op.BPF_LDX | op.BPF_IMM:
                x = ("k", k)
            elif code == op.BPF_LD | op.BPF_MEM:
                a = mem[k]
            elif code == op.BPF_LDX | op.BPF_MEM:
                x = mem[k]
            elif code == op.BPF_ST:
                mem = mem[:k] + (a,) + mem[k + 1:]
            elif code == op.BPF_STX:
                mem = mem[:k] + (x,) + mem[k + 1:]
            elif code == op.BPF_MISC | op.BPF_TAX:
                x = a
            elif code == op.BPF_MISC | op.BPF_TXA:
                a = x
            elif code == op.BPF_ALU | op.BPF_NEG:
                a = ("k", (-a[1]) & U32) if a is not None and a[0] == "k" else None
            elif cls == op.BPF_ALU:
                b = x if op.bpf_src(code) == op.BPF_X else ("k", k)
                if a is not None and b is not None and a[0] == "k" and b[0] == "k":
                    value = _alu(op.bpf_op(code), a[1], b[1])
                    a = None if value is None else ("k", value)
                else:
                    a = None
            if pc + 1 < n:
                push(pc + 1, (a, x, mem, words))
    return Feasibility(reached, edges, ranges, held)
