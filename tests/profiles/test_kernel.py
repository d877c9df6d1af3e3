"""Profiles compiled here, evaluated by the running kernel (backend="kernel") on the host's ABIs.

The kernel's verdict on each record must equal the llvm backend's verdict on
the corpus filter the runtime built (tests/corpus/real). Default run: 10,000
records per ABI for Docker's profile, 2,000 for the others; ``-m slow``:
100,000 per ABI for every profile.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

import bpfjit
from bpfjit import backends
from bpfjit.profiles import compile_profile, libseccomp
from bpfjit.testing import inputs_for
from corpora import REAL_FILTERS, TESTS

PROFILES = TESTS / "corpus" / "real" / "profiles"
HOST_ABIS = ("x86_64", "x86", "x32")

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not libseccomp.available(), reason="libseccomp2 is not installed"),
              pytest.mark.skipif(backends.available().get("llvm") is not None,
                                 reason="llvm backend unavailable")]


@pytest.fixture(scope="module", autouse=True)
def kernel_available() -> None:
    from bpfjit.backends.kernel import kernel_unavailable_reason
    reason = kernel_unavailable_reason()
    if reason is not None:
        pytest.skip(f"the kernel oracle is unavailable: {reason}")


# (corpus filter, profile, caps preset, thread, ABIs); runc-1.1.5 is compiled with runtime="runc"
CASES = [
    ("runc-1.1.5.docker-default.x86_64", "docker-default.profile.json", "docker", None, HOST_ABIS),
    ("docker-default.x86_64", "docker-default.profile.json", "docker", None, HOST_ABIS),
    ("docker-default-2021.x86_64", "docker-default-2021.profile.json", "docker", None, HOST_ABIS),
    ("podman-default.x86_64", "podman-default.profile.json", "podman", None, HOST_ABIS),
    ("lxc-5.0.2.common-seccomp.x86_64", "lxc-common.profile.seccomp", None, None, HOST_ABIS),
    ("firecracker-vmm.x86_64", "firecracker.x86_64.profile.json", None, "vmm", ("x86_64",)),
    ("firecracker-api.x86_64", "firecracker.x86_64.profile.json", None, "api", ("x86_64",)),
]
IDS = [f"the kernel runs {c[1]}{'#' + c[3] if c[3] else ''} as {c[0]} does" for c in CASES]


def kernel_vs_corpus(case, n: int, seed: int) -> int:
    name, profile, caps, thread, abis = case
    compiled = compile_profile(PROFILES / profile, arch="x86_64", caps=caps, kernel="6.1",
                               thread=thread, runtime="runc" if name.startswith("runc") else "crun")
    expected = bpfjit.load(REAL_FILTERS / f"{name}.bpf")
    rng = random.Random(seed)
    total = 0
    for abi in abis:
        records = inputs_for(compiled.program, rng, n, layout=abi)
        got = np.zeros(n, np.uint32)
        want = np.zeros(n, np.uint32)
        bpfjit.compile(compiled.program, backend="kernel", arch=abi).evaluate_batch(records, got)
        bpfjit.compile(expected, backend="llvm", arch=abi).evaluate_batch(records, want)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{abi}: {bad.size} of {n} differ; first {records[bad[0]]}: "
                               f"kernel {got[bad[0]]:#x}, corpus {want[bad[0]]:#x}")
        total += n
    return total


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_kernel_agrees_with_the_runtime_filter(case):
    kernel_vs_corpus(case, 10_000 if case[0] == "docker-default.x86_64" else 2_000, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_kernel_agrees_on_100k_records_per_abi(case):
    print(case[0], kernel_vs_corpus(case, 100_000, seed=11))
