"""bpfjit.analysis.dispatch: chains and trees of comparisons, by hand and against reference traces."""
from __future__ import annotations

import random

import pytest

import bpfjit
import bpfjit_reference as ref
from bpfjit import opcodes as op
from bpfjit.analysis import dispatch
from bpfjit.program import Instruction, Program
from bpfjit.seccomp import layouts
from bpfjit.testing.programs import realistic_program, valid_program
from corpora import real_filter_arch, real_filters

LD = op.BPF_LD | op.BPF_W | op.BPF_ABS
JEQ = op.BPF_JMP | op.BPF_JEQ | op.BPF_K
JGT = op.BPF_JMP | op.BPF_JGT | op.BPF_K
JGE = op.BPF_JMP | op.BPF_JGE | op.BPF_K
JSET = op.BPF_JMP | op.BPF_JSET | op.BPF_K
JA = op.BPF_JMP | op.BPF_JA
RET = op.BPF_RET | op.BPF_K
U32 = 0xFFFFFFFF


def I(code, k=0, jt=0, jf=0):  # noqa: E743
    return Instruction(code, jt, jf, k)


def test_a_libseccomp_style_chain():
    prog = Program([
        I(LD, 0),
        I(JEQ, 0, 6, 0),         # 1: nr 0 -> 8
        I(JEQ, 1, 5, 0),         # 2: nr 1 -> 8
        I(JEQ, 2, 0, 2),         # 3: nr 2 -> 4 (an argument check), else -> 6
        I(LD, 16),               # 4
        I(RET, 7),               # 5
        I(JEQ, 1, 3, 0),         # 6: repeated k: never taken from the head
        I(JEQ, 3, 2, 0),         # 7: nr 3 -> 10, else -> 8 (the default)
        I(RET, 0x50001),         # 8
        I(RET, 0),               # 9: unreachable
        I(RET, 0x7FFF0000),      # 10
    ])
    regions = dispatch.find_dispatches(prog)
    assert list(regions) == [1]
    d = regions[1]
    assert d.members == (1, 2, 3, 6, 7)
    assert d.cases == ((0, 8), (1, 8), (2, 4), (3, 10))
    assert d.default == 8 and d.ranges == ()
    assert d.target(1) == 8 and d.target(2) == 4 and d.target(99) == 8
    assert d.targets() == (8, 4, 10)


def test_a_tree_with_different_places_for_ranges():
    prog = Program([
        I(LD, 0),
        I(JGT, 100, 5, 0),       # 1: > 100 -> 7
        I(JEQ, 1, 8, 0),         # 2: 1 -> 11
        I(JEQ, 2, 7, 0),         # 3
        I(JEQ, 3, 6, 0),         # 4
        I(JEQ, 4, 5, 0),         # 5
        I(JA, 3),                # 6: other values <= 100 -> 10
        I(JGE, 1000, 1, 0),      # 7: >= 1000 -> 9
        I(JEQ, 101, 2, 1),       # 8: 101 -> 11, else -> 10
        I(RET, 0x50001),         # 9: >= 1000
        I(RET, 0),               # 10
        I(RET, 0x7FFF0000),      # 11
    ])
    d = dispatch.find_dispatches(prog)[1]
    assert d.cases == ((1, 11), (2, 11), (3, 11), (4, 11), (101, 11))
    assert d.default is None
    assert d.ranges == ((0, 999, 10), (1000, U32, 9))
    assert [d.target(v) for v in (0, 1, 5, 100, 101, 102, 999, 1000, U32)] == \
        [10, 11, 10, 10, 11, 10, 10, 9, 9]
    assert set(d.members) == {1, 2, 3, 4, 5, 6, 7, 8}


def test_a_member_entered_from_elsewhere_heads_its_own_region():
    prog = Program([
        I(LD, 0),
        I(JSET, 0x80, 4, 0),     # 1: not a region node: 6 is entered from outside
        I(JEQ, 1, 7, 0),         # 2
        I(JEQ, 2, 6, 0),         # 3
        I(JEQ, 3, 5, 0),         # 4
        I(JEQ, 4, 4, 0),         # 5
        I(JEQ, 101, 3, 0),       # 6
        I(JEQ, 102, 2, 0),       # 7
        I(JEQ, 103, 1, 0),       # 8
        I(RET, 0),               # 9 default
        I(RET, 0x7FFF0000),      # 10
    ])
    regions = dispatch.find_dispatches(prog, min_cases=3)
    assert sorted(regions) == [2, 6]
    assert regions[2].cases[-1] == (103, 10) and regions[2].default == 9
    assert regions[6].cases == ((101, 10), (102, 10), (103, 10))
    assert sorted(dispatch.find_dispatches(prog)) == [2]       # 3 cases < MIN_CASES


def test_impossible_paths_add_no_cases():
    prog = Program([
        I(LD, 0),
        I(JGT, 5, 0, 5),         # 1: <= 5 -> 7
        I(JEQ, 3, 6, 0),         # 2: impossible (A > 5)
        I(JEQ, 7, 5, 0),         # 3
        I(JEQ, 8, 4, 0),         # 4
        I(JEQ, 9, 3, 0),         # 5
        I(JEQ, 7, 3, 2),         # 6: 7 was refused: never true -> 9
        I(JGE, 5, 0, 1),         # 7: 5 -> 8 (5 only, as A <= 5), else 9
        I(RET, 1),               # 8
        I(RET, 2),               # 9
        I(RET, 3),               # 10
    ])
    d = dispatch.find_dispatches(prog)[1]
    assert dict(d.cases) == {5: 8, 7: 9, 8: 9, 9: 9}
    assert d.default == 9 and 10 not in d.targets()     # instruction 10 is never reached
    assert [d.target(v) for v in (3, 4, 6, 10, U32)] == [9, 9, 9, 9, 9]


def test_no_region_when_jt_equals_jf_or_too_short():
    prog = Program([I(LD, 0), I(JEQ, 1, 0, 0), I(JEQ, 2, 1, 0), I(RET, 0), I(RET, 1)])
    assert dispatch.find_dispatches(prog) == {}
    assert not dispatch.is_node(prog[1])


def test_unreachable_nodes_are_not_heads():
    prog = Program([I(RET, 0)] + [I(JEQ, k, 4 - k, 0) for k in range(4)] + [I(RET, 1)])
    assert dispatch.find_dispatches(prog, min_cases=1) == {}


def exits_match_reference(program: Program, byteorder: str, rng: random.Random) -> int:
    """Enter each head with A = every case value, range edges and random values: same exits."""
    insns = [tuple(i) for i in program]
    checked = 0
    for head, d in dispatch.find_dispatches(program).items():
        members = set(d.members)
        values = [k for k, _ in d.cases] + [rng.getrandbits(32) for _ in range(4)]
        values += [v for lo, hi, _ in d.ranges for v in (lo, hi)]
        values += [(k + 1) & U32 for k, _ in d.cases[:20]] + [(k - 1) & U32 for k, _ in d.cases[:20]]
        for value in values:
            # a fresh program: load the value into A, jump to the head, the rest unchanged
            prefix = [(op.BPF_LD | op.BPF_IMM, 0, 0, value), (JA, 0, 0, head)]
            steps: list[int] = []
            ref.run(prefix + insns, bytes(64), byteorder=byteorder,
                    on_step=lambda pc, *rest: steps.append(pc - 2))
            after = next(pc for pc in steps[2:] if pc not in members)
            assert d.target(value) == after, (head, hex(value))
            checked += 1
    return checked


@pytest.mark.parametrize("path", real_filters(), ids=lambda p: p.stem)
def test_exits_match_reference_traces_on_real_filters(path):
    lay = layouts.layout(real_filter_arch(path))
    exits_match_reference(bpfjit.load(path), lay.byteorder, random.Random(1))


def test_exits_match_reference_traces_on_random_programs():
    rng = random.Random(2)
    checked = 0
    for i in range(300):
        prog = realistic_program(rng) if i % 2 else valid_program(rng, max_len=64)
        checked += exits_match_reference(prog, "little", rng)
    assert checked > 500
