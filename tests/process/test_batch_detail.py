"""Batch detail (Filter/Stack.evaluate_batch(detail=True)) agrees with the per-call model record
by record, whose decisions tests/kernel/test_process_kernel.py checks against the kernel."""
from __future__ import annotations

import random

import numpy as np
import pytest

import bpfjit
from bpfjit.process import Environment, process_outcome

ACTIONS = [0x80000000, 0x00000000, 0x00030000, 0x00050000, 0x7FC00000, 0x7FF00000, 0x7FFC0000,
           0x7FFF0000, 0x00010000, 0x7FFE0000, 0x80050000, 0x40000000]


def random_filter(rng: random.Random) -> bpfjit.Program:
    """Returns depend on nr (three values) so one batch exercises every combination."""
    vals = [rng.choice(ACTIONS) | (rng.randrange(0, 70000) & 0xFFFF) for _ in range(3)]
    return bpfjit.load(f"ld [0]\njeq #1, +0, +1\nret #{vals[0]}\njeq #2, +0, +1\n"
                       f"ret #{vals[1]}\nret #{vals[2]}\n")


def records() -> np.ndarray:
    recs = np.zeros(8, dtype=bpfjit.SECCOMP_DATA)
    recs["nr"] = [1, 2, 3, 335, 336, 1, 2, 335]
    recs["arch"] = [0xC000003E] * 5 + [0x40000003] * 3
    return recs


ENVS = [Environment(), Environment(actions_logged=frozenset({"errno", "trap"})),
        Environment(tracer=True), Environment(kernel=(4, 19)), Environment(kernel=(4, 13)),
        Environment(kernel=(6, 12))]


@pytest.mark.parametrize("env", ENVS, ids=["6.18 defaults", "actions_logged errno trap",
                                           "tracer attached", "4.19", "4.13", "6.12"])
def test_detail_matches_the_per_call_model(env):
    rng = random.Random(14)
    recs = records()
    for _ in range(60):
        n = rng.randint(1, 4)
        progs = [random_filter(rng) for _ in range(n)]
        flags = [rng.choice([0, 2, 8, 10]) for _ in range(n)]
        stack = bpfjit.Stack(progs, backend="reference", arch="x86_64", flags=flags)
        d = stack.evaluate_batch(recs, detail=True, env=env)
        for i, rec in enumerate(recs):
            values = [f.evaluate(int(rec["nr"]), arch=int(rec["arch"])) for f in stack.filters]
            o = process_outcome(values, stack.flags, int(rec["nr"]), int(rec["arch"]), env)
            want_match = -1 if o.matching_filter is None else o.matching_filter
            assert int(d.matching_filter[i]) == want_match
            assert bool(d.logged[i]) == o.logged, (values, flags, o)
            if not o.bypass:
                assert int(d.retval[i]) == o.retval
            assert bpfjit.Action(int(d.action[i])).name == o.acts_as
        if n == 1:
            f = bpfjit.compile(progs[0], backend="reference", arch="x86_64", flags=flags[0])
            one = f.evaluate_batch(recs, detail=True, env=env)
            for name in ("retval", "action", "matching_filter", "logged"):
                assert np.array_equal(getattr(one, name), getattr(d, name)), name


def test_bypass_is_keyed_on_the_records_arch_value_not_the_layout():
    kill = bpfjit.load("ret #0x80000000\n")
    for arch in ("x32", "x86_64"):
        f = bpfjit.compile(kill, backend="reference", arch=arch)
        assert f.outcome(335).kind == "bypass" and f.process(336).bypass
        assert bpfjit.Stack([kill, kill], backend="reference", arch=arch).outcome(335).kind == \
            "bypass"
    x86 = bpfjit.compile(kill, backend="reference", arch="x86")
    assert x86.outcome(335).kind == "kill_process"                # AUDIT_ARCH_I386 record
    assert x86.outcome(335, arch=0xC000003E).kind == "bypass"
    assert x86.process(335, arch=0xC000003E).bypass
    d = x86.evaluate_batch(records(), detail=True)
    assert d.matching_filter.tolist() == [0, 0, 0, -1, -1, 0, 0, 0]
    assert d.logged.tolist() == [True] * 3 + [False] * 2 + [True] * 3


def test_detail_of_a_program_returning_a_register_value():
    """``ret a`` gets the bypass as a prologue; its ALLOW data is dropped as the kernel does."""
    prog = bpfjit.load("ld [nr]\nadd #0x50000\njeq #0x50002, allow\nret a\n"
                       "allow: ld #0x7fff0009\nret a\n")
    f = bpfjit.compile(prog, backend="reference", arch="x86_64", flags="LOG")
    recs = records()
    d = f.evaluate_batch(recs, detail=True)
    for i, rec in enumerate(recs):
        o = f.process(int(rec["nr"]), arch=int(rec["arch"]))
        assert int(d.matching_filter[i]) == (-1 if o.matching_filter is None else 0)
        assert bool(d.logged[i]) == o.logged
        assert int(d.retval[i]) == (0x7FFF0000 if o.bypass else o.retval)
    assert d.retval[1] == 0x7FFF0000 and d.matching_filter[3] == -1 and d.retval[0] == 0x50001
