"""Analysis stage (numba backend): the program as a decision DAG over record words.

A path-splitting walk runs the program with the record unknown. A register
(A, X, a scratch cell) holds either a u32 constant or a *symbol* ``(w, m)``:
"host word ``w`` of the record, ANDed with ``m``". Each :class:`Node` has one
*current* symbol and splits its 2**32 values into intervals at exactly the
constants the program compares it with; every interval leads to

- ``("ret", value)``: the return value, the same for every record there;
- ``("node", id)``: another node, on the next symbol a jump compares;
- ``("resume", pc, A, X, M)``: where the walk stopped following (an add on a
  symbol, a budget ran out...): the interpreter resumes at ``pc`` with these
  registers, symbols taken from the record.

A record thus costs a few binary searches (``arch``, then ``nr``, then maybe
an argument) and, rarely, some interpretation. The walk is exact: a set of
values is split only where a comparison splits it, a node's values are what
the record holds (``words[w] & m``), and anything else stops the walk.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import values
from .decode import (JUMPS, K_JUMPS, OP_ALU_K, OP_ALU_X, OP_JA, OP_LD_IMM, OP_LD_MEM, OP_LD_W,
                     OP_LDX_IMM, OP_LDX_MEM, OP_NEG, OP_RET_A, OP_RET_K, OP_ST, OP_STX, OP_TAX,
                     OP_TXA)

U32 = values.U32
AND = 5                 # index of "and" in decode.ALU_NAMES

#: caps that keep compile time bounded on any program; hitting one only costs speed
WALK_BUDGET = 1 << 18   # instructions stepped by all walks of one program together
MAX_NODES = 4096
SPLIT_VALUES = 64       # a set this small is walked value by value when a value is needed


@dataclass
class Node:
    """Split ``words[word] & mask`` into ``parts``: sorted ``(lo, hi, child)`` covering 0..2**32-1."""

    word: int
    mask: int
    parts: list = field(default_factory=list)


@dataclass
class Decisions:
    root: tuple                 # the child every record starts at
    nodes: list[Node]


def _alu(i: int, a: int, b: int) -> int | None:
    """``a op b`` for ALU_NAMES[i], mod 2**32; None for a division by zero (returns 0)."""
    if i == 3:
        return None if b == 0 else a // b
    if i in (6, 7):
        return (a << (b & 31) if i == 6 else a >> (b & 31)) & U32
    return _ALU_PY[i](a, b) & U32


_ALU_PY = (int.__add__, int.__sub__, int.__mul__, None, int.__or__, int.__and__, None, None,
           int.__xor__)


class _Walk:
    def __init__(self, ins: np.ndarray, kk: np.ndarray):
        self.op = ins[:, 0].tolist()
        self.a, self.b, self.k = ins[:, 1].tolist(), ins[:, 2].tolist(), kk.tolist()
        self.budget = WALK_BUDGET
        self.nodes: list[Node] = []
        self.ids: dict[tuple, int] = {}
        self.todo: list[tuple[int, tuple]] = []

    def node(self, pc: int, sym: tuple, A, X, M) -> tuple | None:
        """A child node splitting ``sym`` from ``pc`` on (made once per state); None if too many."""
        key = (pc, sym, A, X, M)
        if key not in self.ids:
            if len(self.nodes) >= MAX_NODES:
                return None
            self.ids[key] = len(self.nodes)
            self.nodes.append(Node(*sym))
            self.todo.append((len(self.nodes) - 1, key))
        return ("node", self.ids[key])

    def split(self, pc: int, cur: tuple | None, A, X, M) -> list:
        """Walk from ``pc`` with ``cur`` unknown: the partition of its values into children."""
        leaves: list[tuple[list, tuple]] = []
        stack = [(pc, values.FULL, A, X, M)]
        op_of, a_of, b_of, k_of = self.op, self.a, self.b, self.k
        while stack:
            pc, s, A, X, M = stack.pop()
            while True:
                self.budget -= 1
                op, t, k = op_of[pc], a_of[pc], k_of[pc]
                a = A if type(A) is int else None
                x = X if type(X) is int else None
                need = None                 # the symbols whose values the walk lacks here
                if self.budget < 0:
                    need = ()
                elif op == OP_RET_K:
                    leaves.append((s, ("ret", k)))
                    break
                elif op == OP_JA or (op in JUMPS and t == b_of[pc]):
                    pc = t
                    continue
                elif op in JUMPS:
                    c = k if op in K_JUMPS else x
                    if a is not None and c is not None:
                        pc = t if values.branch(JUMPS[op], True, False, c, [(a, a)])[0] else b_of[pc]
                        continue
                    syms = {A} if a is None else set()
                    if c is None:
                        syms.add(X)
                    if syms == {cur}:
                        try:
                            jt, jf = values.branch(JUMPS[op], a is None, c is None,
                                                   a if c is None else c, s)
                        except values.TooMany:
                            need = (cur,)
                        else:
                            if jt:
                                stack.append(self._narrow(t, jt, cur, A, X, M))
                            if not jf:
                                break
                            pc, s, A, X, M = self._narrow(b_of[pc], jf, cur, A, X, M)
                            continue
                    elif len(syms) == 1:
                        child = self.node(pc, syms.pop(), A, X, M)
                        if child is not None:
                            leaves.append((s, child))
                            break
                        need = ()
                    else:
                        need = tuple(syms)
                elif op == OP_LD_W:
                    A = (t, U32)
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
                    need = (A,)
                else:                           # neg and the ALU operations
                    alu = op - (OP_ALU_X if op >= OP_ALU_X else OP_ALU_K)
                    c = x if op >= OP_ALU_X else k
                    if a is not None and c is not None:
                        A = (-a & U32) if op == OP_NEG else _alu(alu, a, c)
                        if A is None:           # division by X == 0: the program returns 0
                            leaves.append((s, ("ret", 0)))
                            break
                    elif op != OP_NEG and alu == AND and a is None and c is not None:
                        mask = A[1] & c         # words[w] & m & c: still a symbol
                        A = (A[0], mask) if mask else 0
                    else:
                        need = tuple({A if a is None else cur, X if c is None else cur})
                if need is None:
                    pc += 1
                    continue
                if need == (cur,) and cur is not None and values.size(s) <= SPLIT_VALUES:
                    stack.extend(self._narrow(pc, [(v, v)], cur, A, X, M)
                                 for lo, hi in s for v in range(lo, hi + 1))
                else:
                    leaves.append((s, ("resume", pc, A, X, M)))
                break
        return values.partition([(lo, hi, leaf) for s, leaf in leaves for lo, hi in s])

    @staticmethod
    def _narrow(pc: int, s: list, cur, A, X, M) -> tuple:
        """A state; when ``s`` is one value, registers holding ``cur`` become that constant."""
        v = values.singleton(s)
        if v is not None:
            A, X = (v if A == cur else A), (v if X == cur else X)
            M = tuple(v if m == cur else m for m in M)
        return pc, s, A, X, M


def build(ins: np.ndarray, kk: np.ndarray) -> Decisions:
    """The decision DAG of a decoded program (see the module docstring)."""
    walk = _Walk(ins, kk)
    (_, _, root), = walk.split(0, None, 0, 0, (0,) * 16)   # nothing unknown yet: one piece
    while walk.todo:
        index, (pc, sym, A, X, M) = walk.todo.pop()
        walk.nodes[index].parts = walk.split(pc, sym, A, X, M)
    return Decisions(root, walk.nodes)
