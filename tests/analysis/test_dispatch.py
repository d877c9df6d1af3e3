"""bpfjit.analysis.dispatch: jeq chains, checked by hand and against reference traces of real filters."""
from __future__ import annotations

import random

import pytest

import bpfjit
import bpfjit_reference as ref
from bpfjit import opcodes as op
from bpfjit.analysis import dispatch
from bpfjit.program import Instruction, Program
from bpfjit.seccomp import layouts
from corpora import real_filter_arch, real_filters

LD = op.BPF_LD | op.BPF_W | op.BPF_ABS
JEQ = op.BPF_JMP | op.BPF_JEQ | op.BPF_K
JGT = op.BPF_JMP | op.BPF_JGT | op.BPF_K
JA = op.BPF_JMP | op.BPF_JA
RET = op.BPF_RET | op.BPF_K


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
    chains = dispatch.find_chains(prog)
    assert list(chains) == [1]
    c = chains[1]
    assert c.members == (1, 2, 3, 6, 7)
    assert c.cases == ((0, 8), (1, 8), (2, 4), (3, 10))
    assert c.default == 8
    assert c.target(1) == 8 and c.target(2) == 4 and c.target(99) == 8


def test_a_member_entered_from_elsewhere_heads_its_own_chain():
    prog = Program([
        I(LD, 0),
        I(JGT, 100, 4, 0),       # 1: nr > 100 jumps into the middle of the chain (6)
        I(JEQ, 1, 7, 0),         # 2
        I(JEQ, 2, 6, 0),         # 3
        I(JEQ, 3, 5, 0),         # 4
        I(JEQ, 4, 4, 0),         # 5
        I(JEQ, 101, 3, 0),       # 6: also entered from 1
        I(JEQ, 102, 2, 0),       # 7
        I(JEQ, 103, 1, 0),       # 8
        I(RET, 0),               # 9 default
        I(RET, 0x7FFF0000),      # 10
    ])
    chains = dispatch.find_chains(prog)
    assert sorted(chains) == [2]               # the suffix from 6 has only 3 cases (< MIN_CASES)
    assert dispatch.find_chains(prog, min_cases=3).keys() == {2, 6}
    assert chains[2].cases[-1] == (103, 10) and chains[2].default == 9


def test_no_chain_when_jt_equals_jf_or_too_short():
    prog = Program([I(LD, 0), I(JEQ, 1, 0, 0), I(JEQ, 2, 1, 0), I(RET, 0), I(RET, 1)])
    assert dispatch.find_chains(prog) == {}
    assert not dispatch.is_link(prog[1])


def test_unreachable_links_are_not_heads():
    prog = Program([I(RET, 0)] + [I(JEQ, k, 4 - k, 0) for k in range(4)] + [I(RET, 1)])
    assert dispatch.find_chains(prog, min_cases=1) == {}


@pytest.mark.parametrize("path", real_filters(), ids=lambda p: p.stem)
def test_chain_targets_match_reference_traces(path):
    """Enter each chain head with A = every case value and random values; the reference agrees."""
    program = bpfjit.load(path)
    lay = layouts.layout(real_filter_arch(path))
    chains = dispatch.find_chains(program)
    insns = [tuple(i) for i in program]
    rng = random.Random(1)
    for head, chain in chains.items():
        members = set(chain.members)
        values = [k for k, _ in chain.cases] + [rng.getrandbits(32) for _ in range(4)]
        # A fresh program: load the value into A, jump to the head, keep the rest intact.
        for value in values:
            prefix = [(op.BPF_LD | op.BPF_IMM, 0, 0, value), (JA, 0, 0, head)]
            steps: list[int] = []
            ref.run(prefix + insns, bytes(64), byteorder=lay.byteorder,
                    on_step=lambda pc, *rest: steps.append(pc - 2))
            # follow the reference through the chain: mismatch edges stay inside it
            path_ = steps[2:]
            for here, there in zip(path_, path_[1:]):
                if here not in members:
                    after = here
                    break
                if there != here + 1 + program[here].jf:
                    after = there
                    break
            else:
                after = path_[-1]
            assert chain.target(value) == after, (path.stem, head, hex(value))
