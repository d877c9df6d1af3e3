"""bpfjit.analysis.paths: what it calls infeasible is never executed.

The reference interpreter runs real filters and generated programs on inputs
biased to their constants; every instruction it executes must be in
``reached`` and every jump edge it takes in ``edges``. Small programs pin down
what the analysis proves.
"""
from __future__ import annotations

import random

import pytest

import bpfjit_reference as ref
from bpfjit import opcodes as op
from bpfjit.analysis import paths
from bpfjit.check import is_valid
from bpfjit.formats import load
from bpfjit.seccomp import layouts, records
from bpfjit.testing.inputs import inputs_for
from bpfjit.testing.programs import realistic_program, valid_program
from corpora import real_filter_arch, real_filters


def assert_sound(program, layout, n: int, seed: int) -> None:
    """Every pc and jump edge the reference takes on n biased inputs is feasible."""
    feas = paths.analyse(program)
    insns = [tuple(i) for i in program]
    recs = inputs_for(program, random.Random(seed), n, layout=layout)
    for r in recs:
        trail: list[int] = []
        ref.run(insns, records.image(r, layout), byteorder=layout.byteorder,
                on_step=lambda pc, *rest: trail.append(pc))
        for pc, nxt in zip(trail, trail[1:] + [None]):
            assert pc in feas.reached, f"instruction {pc} ran but was called unreachable"
            if insns[pc][0] in op.CONDITIONAL_JUMPS:
                assert nxt in feas.edges[pc], f"edge {pc}->{nxt} was taken but called infeasible"


@pytest.mark.parametrize("path", real_filters(), ids=lambda p: p.name)
def test_real_filters_never_execute_what_is_called_infeasible(path):
    lay = layouts.layout(real_filter_arch(path))
    assert_sound(load(str(path)), lay, 300, seed=len(path.name))


def test_generated_programs_never_execute_what_is_called_infeasible():
    rng = random.Random(10)
    lay = layouts.layout("x86_64")
    done = 0
    while done < 150:
        prog = valid_program(rng) if done % 2 else realistic_program(rng)
        if not is_valid(prog):
            continue
        assert_sound(prog, lay, 40, seed=done)
        done += 1


def test_a_second_identical_comparison_has_a_dead_branch():
    prog = load("""
        ld [nr]
        jeq #2, a, +0
        jeq #2, b, +0
        ret #0x7fff0000
    a:  ret #0x00050001
    b:  ret #0
    """, format="asm")
    feas = paths.analyse(prog)
    assert feas.edges[2] == {3}           # jeq #2 at 2 never jumps to b
    assert 5 not in feas.reached
    assert feas.word_in_a(2) == 0


def test_ranges_narrow_on_both_edges_of_jgt_and_jge():
    prog = load("""
        ld [nr]
        jgt #10, big, +0
        jge #11, dead, +0
        ret #1
    big: jge #11, +0, dead
        ret #2
    dead: ret #3
    """, format="asm")
    feas = paths.analyse(prog)
    assert 6 not in feas.reached
    assert feas.possible(3, 0)[:2] == (0, 10)


def test_unknown_values_keep_both_edges():
    # A is computed (and #1); nothing can be decided about it
    prog = load("""
        ld [args[0].lo]
        and #1
        jeq #5, x, +0
        ret #1
    x:  ret #2
    """, format="asm")
    assert paths.analyse(prog).edges[2] == {3, 4}


@pytest.mark.slow
def test_many_generated_programs_never_execute_what_is_called_infeasible():
    rng = random.Random(2026)
    lay = layouts.layout("x86_64")
    done = 0
    while done < 2000:
        prog = valid_program(rng) if done % 2 else realistic_program(rng)
        if not is_valid(prog):
            continue
        assert_sound(prog, lay, 100, seed=done)
        done += 1
