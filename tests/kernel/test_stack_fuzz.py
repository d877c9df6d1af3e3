"""Random stacks against the kernel: install/ENOMEM at the budget boundary, combined verdict, matching filter.

Expected values: bpfjit.stack's budget rule, the reference interpreter's
per-filter values and bpfjit.seccomp.actions' precedence and outcome; the
kernel must agree on every stack. ``-m slow`` runs a long run
(``BPFJIT_STACK_SECONDS``, default 1200 s) and prints the figures.
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


def test_small_stack_run_agrees_with_the_kernel():
    report = stacks.run(seed=0, max_stacks=120)
    print("\n" + report.format())
    assert not report.differences, report.differences[:3]
    assert report.installs["ENOMEM"] >= 5 and report.installs["accepted"] >= 60
    assert report.verdicts >= 150 and report.matching_filter_checked >= 3


@pytest.mark.slow
def test_long_stack_run():
    seconds = float(os.environ.get("BPFJIT_STACK_SECONDS", "1200"))
    report = stacks.run(seed=int(os.environ.get("BPFJIT_STACK_SEED", "1")), seconds=seconds)
    print("\n" + report.format())
    assert not report.differences, report.differences[:3]
