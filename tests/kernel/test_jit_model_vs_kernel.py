"""The ENOTSUPP model (check(..., kernel=...)) against the running kernel, and the prepare oracle itself.

The oracle (bpfjit.testing.seccomp_prepare) asks seccomp() with
SECCOMP_FILTER_FLAG_NEW_LISTENER from a worker that already has a listener:
the full prepare (rules, conversion, JIT) runs, and a program it accepts is
refused with EBUSY instead of being attached. Checked here against the
installing oracle (bpfjit.backends.kernel.kernel_accepts_many), then used to
compare the model with the kernel on the pinned cases and on generated
programs. The 1,000,000-program run is the slow test at the end.
"""
from __future__ import annotations

import errno
import itertools
import json
import os
from pathlib import Path

import pytest

from bpfjit.backends.kernel import kernel_accepts_many
from bpfjit.kernelcfg import host_config
from bpfjit.testing import program_stream
from bpfjit.testing.jit_acceptance import ENOTSUPP, Report, compare, mixed_stream
from bpfjit.testing.jit_stress import oscillating_programs
from bpfjit.testing.seccomp_prepare import SeccompPrepare

pytestmark = pytest.mark.kernel

CASES = json.loads((Path(__file__).parent.parent / "kernelcfg" / "jit_cases.json").read_text())
KERNEL = "linux-6.18-x86_64-jit-always-on"


@pytest.fixture(scope="module")
def oracle():
    if not os.uname().release.startswith("6.18"):
        pytest.skip(f"the pinned answers and the named configuration are Linux 6.18's; this is "
                    f"{os.uname().release}")
    with SeccompPrepare() as o:
        yield o


def test_the_prepare_oracle_agrees_with_installing(oracle):
    items = [d for _, d in itertools.islice(program_stream(99), 400)]
    items += [bytes.fromhex(h) for h in CASES["refused"][:10]]
    assert oracle.errnos(items) == kernel_accepts_many(items)


def test_the_prepare_oracle_installs_nothing(oracle):
    items = [d for _, d in itertools.islice(program_stream(5), 3000)]
    got = oracle.errnos(items)
    assert 0 in got and errno.EINVAL in got
    assert oracle.seccomp_filters() == 1
    assert oracle.errnos([b""]) == [errno.EINVAL]


def test_the_pinned_answers_are_this_kernels(oracle):
    refused = [bytes.fromhex(h) for h in CASES["refused"]]
    accepted = [bytes.fromhex(h) for h in CASES["accepted"]]
    assert oracle.errnos(refused) == [ENOTSUPP] * len(refused)
    assert oracle.errnos(accepted) == [0] * len(accepted)


def test_the_host_configuration_is_the_named_one():
    cfg = host_config()
    assert cfg is not None and cfg.bpf_jit_always_on
    named = __import__("bpfjit.kernelcfg", fromlist=["KERNELS"]).KERNELS[KERNEL]
    assert (cfg.bmi2, cfg.rethunk, cfg.sls, cfg.ibt) == (named.bmi2, named.rethunk, named.sls,
                                                       named.ibt)


def test_model_agrees_with_the_kernel_on_generated_programs(oracle):
    """CI-sized: 12,000 mixed programs and 4,000 steps of the oscillating walk."""
    report = Report()
    compare(itertools.islice(mixed_stream(31), 12_000), oracle, KERNEL, report)
    compare(itertools.islice(oscillating_programs(32), 4_000), oracle, KERNEL, report)
    print(f"\n{report.as_dict()}")
    assert report.ok(), (report.false_refusals[:3], report.misses[:3], report.other[:3])
    assert report.kernel_enotsupp >= 5        # the walk reaches refusals


@pytest.mark.slow
def test_model_agrees_with_the_kernel_on_a_million_programs(oracle):
    """``python -m pytest -m slow tests/kernel/test_jit_model_vs_kernel.py -s`` (BPFJIT_JIT_COUNT)."""
    total = int(os.environ.get("BPFJIT_JIT_COUNT", "1000000"))
    report = Report()
    compare(itertools.islice(mixed_stream(2026), total), oracle, KERNEL, report)
    print(f"\n{report.as_dict()}")
    assert report.ok(), (report.false_refusals[:3], report.misses[:3], report.other[:3])
