"""Analysis stage: the control-flow graph of a classic-BPF program (basic blocks, edges, reachability).

Classic BPF only jumps forward (``pc + 1 + offset``), so the graph is acyclic
and instruction order is a topological order. A block starts at instruction 0,
at every jump target and after every jump or return; it ends at a jump, a
return, or just before the next block's first instruction (a fall-through).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .. import opcodes as op
from ..program import Instruction

JA = op.BPF_JMP | op.BPF_JA
RETURNS = frozenset((op.BPF_RET | op.BPF_K, op.BPF_RET | op.BPF_A))


def successors(pc: int, insn: Instruction) -> tuple[int, ...]:
    """Instructions that may run right after ``insn`` at ``pc`` (none for a return).

    A conditional jump whose ``jt`` equals ``jf`` has one successor.
    """
    code = insn.code
    if code in RETURNS:
        return ()
    if code == JA:
        return (pc + 1 + insn.k,)
    if code in op.CONDITIONAL_JUMPS:
        taken, fallen = pc + 1 + insn.jt, pc + 1 + insn.jf
        return (taken,) if taken == fallen else (taken, fallen)
    return (pc + 1,)


def ends_block(insn: Instruction) -> bool:
    """True for the instructions that end a basic block (jumps and returns)."""
    code = insn.code
    return code in RETURNS or code == JA or code in op.CONDITIONAL_JUMPS


class Block:
    """Instructions ``start .. end`` (inclusive); ``successors`` are block starts."""

    __slots__ = ("start", "end", "successors")

    def __init__(self, start: int, end: int, successors: tuple[int, ...]):
        self.start = start
        self.end = end
        self.successors = successors

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Block):
            return NotImplemented
        return (self.start, self.end, self.successors) == (other.start, other.end, other.successors)

    def __hash__(self) -> int:
        return hash((self.start, self.end, self.successors))

    def __repr__(self) -> str:
        return f"Block({self.start}..{self.end} -> {self.successors})"

    @property
    def last(self) -> int:
        return self.end

    def __len__(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class Cfg:
    """Blocks in program order, keyed by their first instruction."""

    blocks: dict[int, Block]
    predecessors: dict[int, tuple[int, ...]]
    reachable: frozenset[int]      # starts of blocks reachable from instruction 0

    def block_of(self, pc: int) -> Block:
        """The block containing instruction ``pc``."""
        start = max(s for s in self.blocks if s <= pc)
        return self.blocks[start]

    def order(self) -> list[Block]:
        """Reachable blocks in program order (a topological order: jumps go forward)."""
        return [self.blocks[s] for s in sorted(self.reachable)]


def _edges(program: Sequence[Instruction]) -> list[tuple[int, ...] | None]:
    """Per instruction: its successors if it ends a block (jump/return), else None."""
    ja, rets, conds = JA, RETURNS, op.CONDITIONAL_JUMPS
    out: list[tuple[int, ...] | None] = []
    append = out.append
    for pc, (code, jt, jf, k) in enumerate(program):
        if code in conds:
            taken, fallen = pc + 1 + jt, pc + 1 + jf
            append((taken,) if taken == fallen else (taken, fallen))
        elif code == ja:
            append((pc + 1 + k,))
        elif code in rets:
            append(())
        else:
            append(None)
    return out


def leaders(program: Sequence[Instruction]) -> list[int]:
    """Sorted first instructions of the basic blocks (instruction 0, jump targets, after jumps)."""
    return _leaders(program, _edges(program))


def _leaders(program: Sequence[Instruction], edges: list) -> list[int]:
    n = len(program)
    starts = {0}
    for pc, succ in enumerate(edges):
        if succ is not None:
            starts.update(succ)
            starts.add(pc + 1)
    starts.discard(n)
    return sorted(s for s in starts if s < n)


def build(program: Sequence[Instruction]) -> Cfg:
    """The control-flow graph of a checked program (jump targets must be in range)."""
    n = len(program)
    if n == 0:
        raise ValueError("an empty program has no control-flow graph")
    edges = _edges(program)
    starts = _leaders(program, edges)
    bounds = starts[1:] + [n]
    blocks: dict[int, Block] = {}
    preds: dict[int, list[int]] = {s: [] for s in starts}
    for start, stop in zip(starts, bounds):
        end = stop - 1
        succ = edges[end]
        if succ is None:
            succ = (stop,)
        for s in succ:
            if s >= n:
                raise ValueError(f"instruction {end}: jump to {s}, past the end of the program")
            preds[s].append(start)
        blocks[start] = Block(start, end, succ)
    seen = {0}
    for start in starts:                       # forward edges only: one pass suffices
        if start in seen:
            seen.update(blocks[start].successors)
    return Cfg(blocks, {s: tuple(p) for s, p in preds.items()}, frozenset(seen))


def reachable_instructions(program: Sequence[Instruction]) -> frozenset[int]:
    """Every instruction index that some path from instruction 0 executes."""
    graph = build(program)
    return frozenset(pc for s in graph.reachable for pc in range(s, graph.blocks[s].end + 1))
