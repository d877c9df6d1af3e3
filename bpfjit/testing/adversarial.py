"""Testing: seeded generators of adversarial programs — shapes built to make the analyses explode.

A valid seccomp filter may come from anyone, so what the llvm backend does
before it generates code (:mod:`bpfjit.analysis`, the lowering) must stay
cheap for every program the kernel accepts (at most 4096 instructions), not
only for the filters compilers emit. Each shape here aims at one way an
analysis can blow up; every program is valid by construction:

- ``vector_ret_a``: A holds a function of ``nr`` (a vector over the verdict
  table's windows) and reaches ``ret a`` thousands of times, behind tests the
  analysis cannot decide (issue 14's first reproducer);
- ``chain_many_heads``: a long chain of ``jgt/jge/jeq #k`` whose nodes both lead
  on into it, entered from many heads (``jset; ja`` pairs) — every head is a
  dispatch region (the second reproducer);
- ``deep_tree``: a binary tree of tests on ``nr``, ``arch`` and argument words,
  laid out with ``ja`` so it can be as deep as the length allows;
- ``scratch_heavy``: undecidable splits that store different values (constants,
  functions of ``nr``) into the 16 scratch cells and merge again, so the
  abstract states at a merge point do not collapse;
- ``big_dispatch``: thousands of ``jeq #k`` on ``nr`` with distinct k, re-entered
  from outside at many places (every entry repeats the cases after it);
- ``many_arches``: the arch values the table analyses most, each with wide
  ``nr`` windows;
- ``vector_diamonds``: A a function of ``nr``, then hundreds of diamonds
  (an undecidable test on X, a different ALU step on each side, a merge), some
  tests on A itself splitting the vector, ``ret a`` along the way: the number
  of distinct A vectors doubles at every diamond unless the analysis joins;
- ``nr_search_tree``: a balanced binary search (``jge``/``jgt``) over up to a
  few thousand distinct ``nr`` values in clusters, ``jeq`` leaves (long jumps
  through ``ja`` trampolines) — libseccomp's tree, scaled up;
- ``phi_storm``: hundreds of far jumps into a few merge points, each edge
  with its own A and scratch cells (the largest SSA form: 18 phis per merge
  with an incoming per edge);
- ``maximal_random``: instruction by instruction under the kernel's rules
  (as :func:`bpfjit.testing.valid_program`), exactly the length asked;
- ``combined``: 2-4 of the shapes above behind heads that test the arch and
  ``nr`` bits, so several analyses meet their budgets in one program.

Every shape fills the length it is given exactly (a straight-line prefix of
scratch stores takes up what the shape leaves), so 4096-instruction programs
of every shape are drawn; :func:`adversarial_program` draws the length
itself (4096 most often, otherwise spread log-uniformly from 16, so budgets run
out at every size) when it is not given. ``python -m
bpfjit.testing.adversarial`` compiles them with the llvm backend for a given
time (:mod:`.adversarial_run`) and reports the slowest compile in CPU and wall
seconds (issue 14: every valid program compiles in <= 2 s).
"""
from __future__ import annotations

import math
import random
from typing import Callable

from .. import opcodes as op
from ..program import Instruction, Program
from ..seccomp import actions as act
from .programs import _J, _MemScan, _assemble, _ret, _valid_insn, random_action

MAX_LEN = 4096
LD_ABS = op.BPF_LD | op.BPF_W | op.BPF_ABS
LD_IMM, LD_MEM, LDX_MEM = op.BPF_LD | op.BPF_IMM, op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM
ST, STX = op.BPF_ST, op.BPF_STX
TAX, TXA = op.BPF_MISC | op.BPF_TAX, op.BPF_MISC | op.BPF_TXA
JA = op.BPF_JMP | op.BPF_JA
RET_K, RET_A = op.BPF_RET | op.BPF_K, op.BPF_RET | op.BPF_A
ALLOW = act.SECCOMP_RET_ALLOW
ARG_WORDS = tuple(range(16, 64, 4))
#: ALU operations that keep a vector a vector (no division: a constant divisor must be non-zero)
VECTOR_ALU = (op.BPF_ADD, op.BPF_SUB, op.BPF_XOR, op.BPF_OR, op.BPF_MUL, op.BPF_AND)
AUDIT_ARCHES = (0xC000003E, 0x40000003, 0xC00000B7, 0x40000028, 0xC0000015, 0x80000016,
                0xC00000F3, 0x8000000F, 0xC0000008, 0x40000008)


def _i(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> Instruction:
    return Instruction(code, jt, jf, k)


def _jmp(jop: int, src: int = op.BPF_K) -> int:
    return op.BPF_JMP | jop | src


def _alu(aop: int, src: int = op.BPF_K) -> int:
    return op.BPF_ALU | aop | src


def _window_tests(rng: random.Random, windows: int, per_window: int,
                  cap: int) -> list[Instruction]:
    """At most ``cap`` ``jeq #k`` (not taken either way) on nr, in clusters the verdict table
    makes windows of."""
    out: list[Instruction] = []
    for w in range(windows):
        base = rng.randrange(0x1000, 0x7FFF0000) if w else 0
        for j in range(per_window):
            out.append(_i(_jmp(op.BPF_JEQ), base + j * rng.randint(1, 250), 0, 0))
    return out[:max(0, cap)]


def vector_ret_a(rng: random.Random, length: int = MAX_LEN) -> Program:
    body = [_i(LD_ABS, rng.choice(ARG_WORDS)), _i(TAX), _i(LD_ABS, 0)]
    body += _window_tests(rng, rng.randint(1, 8), rng.randint(2, 16), (length - 7) // 2)
    for _ in range(rng.randint(1, 3)):
        body.append(_i(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 0xFFFF)))
    jop = rng.choice((op.BPF_JSET, op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE))
    src = op.BPF_X if rng.random() < 0.8 else op.BPF_K
    while len(body) + 3 <= length:
        body.append(_i(_jmp(jop, src), rng.getrandbits(32) if src == op.BPF_K else 0, 0, 1))
        body.append(_i(RET_A))
    body.append(_i(RET_K, ALLOW))
    return Program(body, source="adversarial:vector_ret_a")


def chain_many_heads(rng: random.Random, length: int = MAX_LEN) -> Program:
    heads = rng.randint(1, (length - 3) // 4)
    chain = length - 3 - 2 * heads
    body = [_i(LD_ABS, 0)]
    start = 1 + 2 * heads
    for h in range(heads):
        pc = len(body)
        body.append(_i(_jmp(op.BPF_JSET), 1 << rng.randrange(32), 0, 1))
        target = start + rng.randrange(chain)
        body.append(_i(JA, target - (pc + 2)))
    ks = rng.sample(range(0, 1 << 20, rng.randint(1, 64)), chain)
    if rng.random() < 0.5:
        ks.sort(reverse=rng.random() < 0.5)
    ops = [rng.choice((op.BPF_JGT, op.BPF_JGE, op.BPF_JEQ))] if rng.random() < 0.7 else \
        [op.BPF_JGT, op.BPF_JGE, op.BPF_JEQ]
    for j, k in enumerate(ks):
        room = chain - 1 - j                       # instructions of the chain after this one
        jt = min(room + 1, rng.choice((1, 1, 2, 3)))
        jf = 0 if jt else 1
        body.append(_i(_jmp(rng.choice(ops)), k, jt, jf))
    body.append(_i(RET_K, random_action(rng)))
    body.append(_i(RET_K, ALLOW))
    return Program(body, source="adversarial:chain_many_heads")


def deep_tree(rng: random.Random, length: int = MAX_LEN) -> Program:
    """Nodes ``jxx #k, 0, 1; ja L; ja R``: any depth, whatever the distance to the subtrees.

    ``skew``: how often a node puts all the rest in its left subtree (1: a path
    as deep as the program is long); ``alu``: how often A (a function of nr,
    or another word) changes before a test, so the tests split vectors.
    """
    nodes = max(1, (length - 2) // 4)
    skew, alu = rng.choice((0.0, 0.5, 0.9, 1.0)), rng.choice((0.0, 0.0, 0.3))
    while True:
        body = _tree(rng, nodes, skew, alu)
        if len(body) <= length:
            return Program(body, source="adversarial:deep_tree")
        nodes = nodes * length // len(body) - 1


def _tree(rng: random.Random, nodes: int, skew: float, alu: float) -> list[Instruction]:
    body: list[Instruction] = [_i(LD_ABS, 0)]

    def tree(count: int) -> None:
        if count <= 0:
            body.append(_i(RET_A) if rng.random() < 0.2 else _i(RET_K, random_action(rng)))
            return
        if rng.random() < 0.15:
            body.append(_i(LD_ABS, rng.choice((0, 4) + ARG_WORDS)))
        if rng.random() < alu:
            body.append(_i(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 0xFFFF)))
        jop = rng.choice((op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE, op.BPF_JSET))
        k = rng.choice((rng.randrange(512), rng.getrandbits(32)))
        node = len(body)
        body.append(_i(_jmp(jop), k, 0, 1))
        body.append(_i(JA))                    # to the left subtree, patched below
        body.append(_i(JA))                    # to the right subtree
        left = count - 1 if rng.random() < skew else rng.randint(0, count - 1)
        start_left = len(body)
        tree(left)
        start_right = len(body)
        tree(count - 1 - left)
        body[node + 1] = _i(JA, start_left - (node + 2))
        body[node + 2] = _i(JA, start_right - (node + 3))

    import sys
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 3 * nodes + 100))
    try:
        tree(nodes)
    finally:
        sys.setrecursionlimit(old)
    return body


def scratch_heavy(rng: random.Random, length: int = MAX_LEN) -> Program:
    """Segments ``jset; <A = one value>; ja +n; <A = another>; st M[i]``, then uses of the cells."""
    body = [_i(LD_ABS, rng.choice(ARG_WORDS)), _i(TAX)]
    if rng.random() < 0.5:                        # wide nr windows: every mask is large
        body += [_i(LD_ABS, 0)] + _window_tests(rng, 8, 2, (length - 20) // 4)
    skip = rng.choice((0.0, 0.5, 1.0))
    written: list[int] = []
    while len(body) + 16 < length:
        cell = rng.randrange(16)
        choices = [[_i(LD_IMM, rng.getrandbits(32))],
                   [_i(LD_ABS, 0), _i(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 1 << 16))],
                   [_i(LD_ABS, rng.choice((0, 4) + ARG_WORDS))]]
        if written:
            choices.append([_i(LD_MEM, rng.choice(written)),
                            _i(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 255))])
        first, second = rng.choice(choices), rng.choice(choices)
        src = op.BPF_X if rng.random() < 0.5 else op.BPF_K
        if rng.random() < skip:                   # ``jset; <A = value>; st``: keep or replace
            body.append(_i(_jmp(op.BPF_JSET, src), rng.getrandbits(32), 0, len(first)))
            body += first
        else:
            body.append(_i(_jmp(op.BPF_JSET, src), rng.getrandbits(32), 0, len(first) + 1))
            body += first
            body.append(_i(JA, len(second)))
            body += second
        body.append(_i(ST, cell))
        written.append(cell)
        if rng.random() < 0.1 and len(written) > 1:
            body += [_i(LDX_MEM, rng.choice(written)), _i(LD_MEM, rng.choice(written)),
                     _i(_alu(rng.choice(VECTOR_ALU), op.BPF_X)), _i(_jmp(op.BPF_JGT), 100, 0, 1),
                     _i(RET_A)]
    if written:
        body += [_i(LD_MEM, rng.choice(written)), _i(LDX_MEM, rng.choice(written)),
                 _i(_alu(op.BPF_ADD, op.BPF_X))]
    body.append(_i(RET_A))
    return Program(body, source="adversarial:scratch_heavy")


def big_dispatch(rng: random.Random, length: int = MAX_LEN) -> Program:
    """Runs of ``jeq #k`` (each run ends at a few returns), entered again from outside often."""
    body = [_i(LD_ABS, 0)]
    ks = iter(rng.sample(range(1 << 16), length))
    while len(body) + 40 < length:
        rets = rng.randint(1, 4)
        run = min(rng.randint(8, 200), length - len(body) - rets - 2)
        for j in range(run):
            if rng.random() < 0.05:                       # a jump into the middle of the run
                body.append(_i(_jmp(op.BPF_JSET), 1 << rng.randrange(32), 0, 0))
                continue
            to_rets = run - 1 - j                          # instructions left in the run
            body.append(_i(_jmp(op.BPF_JEQ), next(ks), to_rets + rng.randrange(rets), 0))
        body += [_i(RET_K, random_action(rng)) for _ in range(rets)]
        body.append(_i(LD_ABS, 0))
    body.append(_i(RET_K, ALLOW))
    return Program(body, source="adversarial:big_dispatch")


def many_arches(rng: random.Random, length: int = MAX_LEN) -> Program:
    arches = rng.sample(AUDIT_ARCHES, max(1, min(rng.randint(2, len(AUDIT_ARCHES)),
                                                 (length - 1) // 12)))
    per = (length - 1) // len(arches) - 3
    body: list[Instruction] = []
    for arch in arches:
        body.append(_i(LD_ABS, 4))
        inner = [_i(LD_ABS, 0)]
        inner += _window_tests(rng, rng.randint(1, 8), rng.randint(2, 8), (per - 2) // 2)
        while len(inner) + 5 < per:
            inner += [_i(_jmp(rng.choice((op.BPF_JGT, op.BPF_JSET))), rng.getrandbits(12), 0, 1),
                      _i(RET_K, random_action(rng)),
                      _i(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 9))]
        inner.append(_i(RET_A))
        body.append(_i(_jmp(op.BPF_JEQ), arch, 1, 0))
        body.append(_i(JA, len(inner)))
        body += inner
    body.append(_i(RET_K, random_action(rng)))
    return Program(body, source="adversarial:many_arches")


def maximal_random(rng: random.Random, length: int = MAX_LEN) -> Program:
    """:func:`~bpfjit.testing.valid_program`'s instruction-by-instruction draw, ``length`` long."""
    scan = _MemScan(length)
    body = []
    for pc in range(length):
        memvalid = scan.enter(pc)
        insn = _ret(rng) if pc == length - 1 else _valid_insn(rng, pc, length, memvalid)
        scan.step(pc, insn)
        body.append(Instruction(insn.code, insn.jt, insn.jf, insn.k))
    return Program(body, source="adversarial:maximal_random")


def vector_diamonds(rng: random.Random, length: int = MAX_LEN) -> Program:
    """``jset x, 0, 2; alu; ja +1; alu`` diamonds on a vector A, ``jset #k`` on A, ``ret a``."""
    body = [_i(LD_ABS, rng.choice(ARG_WORDS)), _i(TAX), _i(LD_ABS, 0)]
    body += _window_tests(rng, rng.randint(1, 8), rng.randint(2, 32), (length - 4) // 2)
    split_a, exits = rng.random() * 0.3, rng.random() * 0.2
    while len(body) + 6 <= length:
        r = rng.random()
        if r < split_a:                          # decidable per nr: splits the vector
            body.append(_i(_jmp(rng.choice((op.BPF_JSET, op.BPF_JGT, op.BPF_JEQ))),
                           rng.choice((1 << rng.randrange(12), rng.randrange(1 << 12))), 0, 0))
        elif r < split_a + exits:
            body += [_i(_jmp(op.BPF_JGT, op.BPF_X), 0, 0, 1), _i(RET_A)]
        else:
            first = _i(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 0xFFFF))
            second = _i(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 0xFFFF))
            src = op.BPF_X if rng.random() < 0.8 else op.BPF_K
            body += [_i(_jmp(op.BPF_JSET, src), rng.getrandbits(32) if src == op.BPF_K else 0, 0, 2),
                     first, _i(JA, 1),
                     second]
    body.append(_i(RET_A))
    return Program(body, source="adversarial:vector_diamonds")


def nr_search_tree(rng: random.Random, length: int = MAX_LEN) -> Program:
    """Binary search over sorted ``nr`` values (clusters of them), ``jeq`` at the leaves."""
    count = max(2, length // rng.choice((3, 4, 6)))
    nrs: set[int] = set()
    while len(nrs) < count:
        base = rng.choice((0, rng.randrange(1 << 12), rng.getrandbits(32)))
        step = rng.choice((1, 1, 2, rng.randint(1, 1 << 10)))
        nrs.update((base + j * step) & 0xFFFFFFFF for j in range(rng.randint(1, 400)))
    nrs_sorted = sorted(nrs)[:count]
    items: list = [_J(LD_ABS, 0)]
    actions = [random_action(rng) for _ in range(rng.randint(1, 6))]
    serial = iter(range(1 << 30))

    def tree(lo: int, hi: int) -> None:
        if hi - lo <= rng.choice((1, 2, 3)):
            for nr in nrs_sorted[lo:hi]:
                hit = f"hit{next(serial)}"
                items.extend([_J(_jmp(op.BPF_JEQ), nr, hit, None)])
                leaf = [_J(RET_K, rng.choice(actions))]
                if rng.random() < 0.1:
                    leaf = [_J(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 99)), _J(RET_A)]
                items.append(_J(JA, to=f"skip{hit}"))
                items.append(hit)
                items.extend(leaf)
                items.append(f"skip{hit}")
            items.append(_J(RET_K, rng.choice(actions)))
            return
        mid = (lo + hi) // 2
        right = f"right{next(serial)}"
        if rng.random() < 0.5:
            items.append(_J(_jmp(op.BPF_JGE), nrs_sorted[mid], right, None))
        else:
            items.append(_J(_jmp(op.BPF_JGT), (nrs_sorted[mid] - 1) & 0xFFFFFFFF, right, None))
        tree(lo, mid)
        items.append(right)
        tree(mid, hi)

    while True:
        tree(0, len(nrs_sorted))
        body = [Instruction(i.code, i.jt, i.jf, i.k) for i in _assemble(items)]
        if len(body) <= length:
            return Program(body, source="adversarial:nr_search_tree")
        nrs_sorted = nrs_sorted[:max(1, len(nrs_sorted) * length // len(body) - 2)]
        items = [_J(LD_ABS, 0)]


def phi_storm(rng: random.Random, length: int = MAX_LEN) -> Program:
    """Segments ``alu; st M[c]; jset; ja MERGE_j`` into a few merge points at the end.

    Every edge into a merge point carries its own A and scratch cells, so each
    merge block needs up to 18 phis with hundreds of incomings each: the
    largest IR a 4096-instruction program can lower to.
    """
    merges = max(1, min(rng.randint(1, 8), (length - 8) // 6))
    cells = min(16, length - 7 - 3 * merges)
    body = [_i(LD_ABS, rng.choice(ARG_WORDS)), _i(TAX), _i(LD_ABS, 0)]
    body += [_i(ST, c) for c in range(cells)]
    exits: list[tuple[int, int]] = []
    while len(body) + 4 + 3 * merges + 1 <= length:
        if rng.random() < 0.8:
            body.append(_i(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 0xFFFF)))
        else:
            body.append(_i(LD_ABS, rng.choice((0, 4) + ARG_WORDS)))
        body.append(_i(ST if rng.random() < 0.8 else STX, rng.randrange(cells)))
        src = op.BPF_X if rng.random() < 0.5 else op.BPF_K
        body.append(_i(_jmp(op.BPF_JSET, src), 0 if src == op.BPF_X else 1 << rng.randrange(32),
                       0, 1))
        exits.append((len(body), rng.randrange(merges)))
        body.append(_i(JA))                                  # patched below
    body.append(_i(RET_A))
    starts = []
    for _ in range(merges):
        starts.append(len(body))
        body += [_i(LD_MEM, rng.randrange(cells)), _i(_alu(rng.choice(VECTOR_ALU), op.BPF_X)),
                 _i(RET_A)]
    for pc, j in exits:
        body[pc] = _i(JA, starts[j] - (pc + 1))
    return Program(body, source="adversarial:phi_storm")


def combined(rng: random.Random, length: int = MAX_LEN) -> Program:
    """2-4 other shapes behind ``ld [arch]; jeq`` / ``ld [nr]; jset`` heads, each self-contained."""
    names = rng.sample(sorted(set(SHAPES) - {"combined"}),
                       max(1, min(rng.randint(2, 4), (length - 11) // 40)))
    heads = 2 * len(names) + 2
    share = (length - heads - 1) // len(names)
    parts = [_fill(rng, SHAPES[n](rng, share).instructions, share) for n in names]
    body: list[Instruction] = [_i(LD_ABS, rng.choice((0, 4)))]
    at = heads
    for j, part in enumerate(parts):
        pc = len(body)
        test = (_i(_jmp(op.BPF_JEQ), rng.choice(AUDIT_ARCHES), 0, 1) if body[0].k == 4 else
                _i(_jmp(op.BPF_JSET), 1 << rng.randrange(32), 0, 1))
        body += [test, _i(JA, at - (pc + 2))]
        at += len(part)
    body.append(_i(JA, at - heads))                     # no head matched: the final return
    for part in parts:
        body += part
    body.append(_i(RET_K, random_action(rng)))
    return Program(body, source="adversarial:combined(" + "+".join(names) + ")")


def _fill(rng: random.Random, body, length: int) -> list[Instruction]:
    """``body`` behind a straight-line prefix (loads and scratch stores) making it ``length`` long."""
    body = list(body)
    prefix: list[Instruction] = []
    while len(prefix) + len(body) < length:
        r = rng.random()
        if r < 0.4:
            prefix.append(_i(LD_IMM, rng.getrandbits(32)))
        elif r < 0.6:
            prefix.append(_i(LD_ABS, rng.choice((0, 4) + ARG_WORDS)))
        elif r < 0.8:
            prefix.append(_i(ST, rng.randrange(16)))
        else:
            prefix.append(_i(STX, rng.randrange(16)))
    return prefix + body


def reproducer_vector_ret_a() -> Program:
    """Issue 14's first reproducer (4,095 instructions; 601 s in the verdict table before budgets).

    X = an argument word; A = nr, tested by 128 ``jeq`` in 8 wide windows, plus 1;
    then 1,981 times ``jset x, +0, +1; ret a``.
    """
    body = [_i(LD_ABS, 16), _i(TAX), _i(LD_ABS, 0)]
    body += [_i(_jmp(op.BPF_JEQ), 100000 * (w + 1) + 250 * i) for w in range(8) for i in range(16)]
    body.append(_i(_alu(op.BPF_ADD), 1))
    while len(body) + 3 <= MAX_LEN:
        body += [_i(_jmp(op.BPF_JSET, op.BPF_X), 0, 0, 1), _i(RET_A)]
    body.append(_i(RET_K, ALLOW))
    return Program(body, source="issue 14: vector A through ret a")


def reproducer_scratch_states() -> Program:
    """Distinct scratch states without end (4,096 instructions): ``jset x; ld #c; st M[i]`` ×1,350.

    Every segment may or may not replace A before the store, so the states
    at each store double; with four arch values and 8 nr windows of 4,000
    every step carries a 16,384-bit mask. It spends the verdict table's whole
    budget (four arches abandoned), 1.3 s CPU before :func:`~bpfjit.analysis.budget.gc_paused`
    (the cyclic collector walking the live states), 0.8 s after.
    """
    rng = random.Random(14)
    body = [_i(LD_ABS, 16), _i(TAX), _i(LD_ABS, 4)]
    body += [_i(_jmp(op.BPF_JEQ), a) for a in (0x40000003, 0xC00000B7, 0x40000028)]
    body.append(_i(LD_ABS, 0))
    for w in range(4):
        body += [_i(_jmp(op.BPF_JEQ), 0x10000 * (w + 1)), _i(_jmp(op.BPF_JEQ), 0x10000 * (w + 1) + 4000)]
    i = 0
    while len(body) + 3 < MAX_LEN:
        body += [_i(_jmp(op.BPF_JSET, op.BPF_X), 0, 0, 1), _i(LD_IMM, rng.getrandbits(32)),
                 _i(ST, i % 16)]
        i += 1
    body += [_i(RET_A)] * (MAX_LEN - len(body))
    return Program(body, source="issue 14: distinct scratch states at every store")


def reproducer_chain() -> Program:
    """Issue 14's second reproducer (4,003 instructions; 176 s in ``find_dispatches`` before).

    1,000 ``jset #bit, +0, +1; ja chain[2i]`` pairs into a chain of 2,000
    ``jgt #k, +1, +0`` with distinct, decreasing k.
    """
    heads, chain = 1000, 2000
    body = [_i(LD_ABS, 0)]
    for h in range(heads):
        pc = len(body)
        body += [_i(_jmp(op.BPF_JSET), 1 << (h % 32), 0, 1),
                 _i(JA, 1 + 2 * heads + h * chain // heads - (pc + 2))]
    for j in range(chain):
        body.append(_i(_jmp(op.BPF_JGT), 10 * (chain - j), 1 if j < chain - 2 else 0, 0))
    body += [_i(RET_K, act.SECCOMP_RET_KILL_PROCESS), _i(RET_K, ALLOW)]
    return Program(body, source="issue 14: 1000 heads into a 2000-long jgt chain")


SHAPES: dict[str, Callable[..., Program]] = {
    "vector_ret_a": vector_ret_a, "chain_many_heads": chain_many_heads, "deep_tree": deep_tree,
    "scratch_heavy": scratch_heavy, "big_dispatch": big_dispatch, "many_arches": many_arches,
    "maximal_random": maximal_random, "vector_diamonds": vector_diamonds,
    "nr_search_tree": nr_search_tree, "phi_storm": phi_storm, "combined": combined,
}


def adversarial_program(rng: random.Random, shape: str | None = None,
                        length: int | None = None) -> tuple[str, Program]:
    """(shape name, program of exactly ``length`` instructions): ``shape`` drawn when not given;
    ``length`` drawn when not given: 4096 half the time, else log-uniform in 16..4096."""
    if shape is None:
        shape = rng.choice(sorted(SHAPES))
    if shape not in SHAPES:
        raise ValueError(f"unknown adversarial shape {shape!r} (one of {', '.join(SHAPES)})")
    if length is None:
        r = rng.random()
        length = (MAX_LEN if r < 0.5 else MAX_LEN - rng.randrange(64) if r < 0.6 else
                  int(math.exp(rng.uniform(math.log(16), math.log(MAX_LEN)))))
    if not 16 <= length <= MAX_LEN:
        raise ValueError(f"length must be in 16..{MAX_LEN}, not {length}")
    program = SHAPES[shape](rng, length)
    if len(program) > length:
        raise AssertionError(f"{shape} drew {len(program)} instructions for {length}")
    return shape, Program(_fill(rng, program.instructions, length), source=program.source)


# --- the long run lives in .adversarial_run -------------------------------------------------

def run(seconds: float, seed: int = 0, **options) -> dict:
    """:func:`bpfjit.testing.adversarial_run.run` (compile adversarial programs, time each)."""
    from .adversarial_run import run as _run
    return _run(seconds, seed, **options)


if __name__ == "__main__":
    from .adversarial_run import main
    raise SystemExit(main())
