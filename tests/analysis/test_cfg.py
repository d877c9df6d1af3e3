"""bpfjit.analysis.cfg: blocks, edges and reachability, checked against hand-worked programs and traces."""
from __future__ import annotations

import random

import pytest

import bpfjit_reference as ref
from bpfjit import opcodes as op
from bpfjit.analysis import cfg
from bpfjit.program import Instruction, Program
from bpfjit.testing.inputs import inputs_for
from bpfjit.testing.programs import valid_program

LD = op.BPF_LD | op.BPF_W | op.BPF_ABS
JEQ = op.BPF_JMP | op.BPF_JEQ | op.BPF_K
JA = op.BPF_JMP | op.BPF_JA
RET = op.BPF_RET | op.BPF_K
ADD = op.BPF_ALU | op.BPF_ADD | op.BPF_K


def I(code, k=0, jt=0, jf=0):  # noqa: E743 - reads like BPF_STMT/BPF_JUMP
    return Instruction(code, jt, jf, k)


PROGRAM = Program([
    I(LD, 0),              # 0  block 0
    I(JEQ, 1, 0, 2),       # 1  -> 2 / 4
    I(ADD, 1),             # 2  block 2
    I(JA, 1),              # 3  -> 5
    I(RET, 1),             # 4  block 4
    I(JEQ, 9, 1, 1),       # 5  block 5: jt == jf -> 7 only
    I(RET, 2),             # 6  block 6: unreachable
    I(RET, 3),             # 7  block 7
])


def test_successors():
    assert cfg.successors(1, PROGRAM[1]) == (2, 4)
    assert cfg.successors(3, PROGRAM[3]) == (5,)
    assert cfg.successors(4, PROGRAM[4]) == ()
    assert cfg.successors(5, PROGRAM[5]) == (7,)
    assert cfg.successors(2, PROGRAM[2]) == (3,)


def test_blocks_and_edges():
    g = cfg.build(PROGRAM)
    assert cfg.leaders(PROGRAM) == [0, 2, 4, 5, 6, 7]
    assert {s: (b.end, b.successors) for s, b in g.blocks.items()} == {
        0: (1, (2, 4)), 2: (3, (5,)), 4: (4, ()), 5: (5, (7,)), 6: (6, ()), 7: (7, ())}
    assert g.reachable == frozenset({0, 2, 4, 5, 7})
    assert [b.start for b in g.order()] == [0, 2, 4, 5, 7]
    assert g.predecessors[5] == (2,)
    assert g.predecessors[7] == (5,)
    assert g.block_of(3).start == 2
    assert len(g.blocks[2]) == 2
    assert cfg.reachable_instructions(PROGRAM) == frozenset({0, 1, 2, 3, 4, 5, 7})


def test_fallthrough_into_a_jump_target_splits_the_block():
    prog = Program([I(JEQ, 1, 1, 0), I(ADD, 1), I(RET, 0)])
    g = cfg.build(prog)
    assert sorted(g.blocks) == [0, 1, 2]
    assert g.blocks[1].successors == (2,)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="empty"):
        cfg.build(Program([]))
    with pytest.raises(ValueError, match="instruction 0: jump to 5"):
        cfg.build(Program([I(JA, 4), I(RET, 0)]))


def test_traces_only_visit_reachable_instructions_and_follow_edges():
    rng = random.Random(3)
    for _ in range(150):
        prog = valid_program(rng, max_len=40)
        g = cfg.build(prog)
        live = cfg.reachable_instructions(prog)
        insns = [tuple(i) for i in prog]
        for rec in inputs_for(prog, rng, 8).tolist():
            steps: list[int] = []
            image = ref.seccomp_data_image(rec[0], rec[1], rec[2], [int(a) for a in rec[3]], "little")
            ref.run(insns, image, on_step=lambda pc, *rest: steps.append(pc))
            assert set(steps) <= live
            for a, b in zip(steps, steps[1:]):
                assert b in cfg.successors(a, prog[a])
                if b != a + 1 or cfg.ends_block(prog[a]):
                    assert b in g.blocks            # control transfers land on block starts
