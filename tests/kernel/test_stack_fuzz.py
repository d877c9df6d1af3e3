"""Random stacks against the kernel: install/ENOMEM at the budget boundary, combined verdict, matching filter.

Expected values: bpfjit.install's install rules (flags, listeners, the
budget), the reference interpreter's per-filter values and bpfjit.process'
precedence and outcome; the kernel must agree on every stack. ``-m slow``
runs the long run (``BPFJIT_STACKS`` stacks, default 100,000) and prints the
figures.
"""
from __future__ import annotations

import errno
import os

import pytest

from bpfjit.stack import path_length
from bpfjit.testing import stacks

pytestmark = pytest.mark.kernel


def test_predictions_of_what_the_designated_call_shows():
    pid = os.getpid()
    assert stacks.predicted_observation([0x00050007, 0x7FFF0000], pid) == ("returned", -7)
    assert stacks.predicted_observation([0x00050001, 0x00050002], pid) == ("returned", -2)
    assert stacks.predicted_observation([0x7FFF0000, 0x7FFC0000], pid) == ("returned", pid)
    assert stacks.predicted_observation([0x7FF00000], pid) == ("returned", -errno.ENOSYS)
    assert stacks.predicted_observation([0x00050001, 0], pid) == ("killed_thread", 0)
    assert stacks.predicted_observation([0x80000000, 0], pid) == ("died", 31)
    assert stacks.predicted_observation([0x00030000], pid) == ("died", 31)       # TRAP
    assert stacks.predicted_observation([0x12340000], pid) == ("died", 31)       # unknown


def test_boundary_stacks_straddle_the_budget():
    import random
    rng = random.Random(3)
    seen = set()
    for _ in range(200):
        progs, shape = stacks.random_stack(rng, 0x7F0012345678)
        assert 1 <= len(progs) <= 8
        if shape == "boundary":
            seen.add(path_length(progs) - 32768)
    assert seen == set(range(-3, 4))


def test_flag_rules_the_prediction_applies():
    from bpfjit import Program
    from bpfjit.process import Environment
    body = [stacks.guard(Program([(0x06, 0, 0, 0x7FFF0000)]), 0x7F0012345678)] * 3
    env = Environment(threads=2)
    assert stacks.predicted_stack_installs(body, [0, 0, 0], env) == (0, 3)
    assert stacks.predicted_stack_installs(body, [0, 1 << 6, 0], env) == (errno.EINVAL, 1)
    assert stacks.predicted_stack_installs(body, [8, 2, 8], env) == (errno.EBUSY, 2)
    assert stacks.predicted_stack_installs(body, [9, 0, 0], env) == (errno.EINVAL, 0)
    assert stacks.predicted_stack_installs(body, [25, 32, 0], env) == (errno.EINVAL, 1)


def test_random_flags_reach_every_refusal_and_quiet_ones_never_refuse():
    import random
    rng = random.Random(5)
    drawn = [stacks.random_flags(rng, 8) for _ in range(300)]
    bits = {b for row in drawn for b in row}
    assert 0 in bits and any(b >> 6 for b in bits) and any(b & 8 for b in bits)
    assert sum(any(row) for row in drawn) > 250
    quiet = [stacks.random_flags(rng, 8, quiet=True) for _ in range(300)]
    assert all(sum(1 for b in row if b & 8) <= 1 for row in quiet)
    assert all(not b & ~(1 | 2 | 4 | 8) and not (b & 1 and b & 8) for row in quiet for b in row)


def test_small_stack_run_agrees_with_the_kernel():
    report = stacks.run(seed=0, max_stacks=150)
    print("\n" + report.format())
    assert not report.differences, report.differences[:3]
    assert report.installs["ENOMEM"] >= 5 and report.installs["accepted"] >= 60
    assert report.installs["EINVAL"] >= 3 and report.installs["EBUSY"] >= 1
    assert report.flagged >= 60 and sum(report.near_budget.values()) >= 20
    assert report.verdicts >= 150 and report.matching_filter_checked >= 3


@pytest.mark.slow
def test_long_stack_run():
    """The long run: ``BPFJIT_STACKS`` stacks (default 100,000) in chunks of 5,000, each from
    the next seed after ``BPFJIT_STACK_SEED`` (default 1); prints each chunk and the total."""
    total, chunk = int(os.environ.get("BPFJIT_STACKS", "100000")), 5000
    seed = int(os.environ.get("BPFJIT_STACK_SEED", "1"))
    report = stacks.StackReport()
    while report.stacks < total:
        part = stacks.run(seed=seed, max_stacks=min(chunk, total - report.stacks))
        print(f"\n[seed {seed}] {part.format()}", flush=True)
        for d in part.differences[:5]:
            print(f"  difference: {d}", flush=True)
        for stack, index, hexprog in part.jit_refusals:
            print(f"  ENOTSUPP: seed {seed} stack {stack} filter {index}: {hexprog[:64]}... "
                  f"({len(hexprog) // 16} instructions)", flush=True)
        report.add(part)
        seed += 1
    print("\n[total] " + report.format())
    assert not report.differences, report.differences[:3]
