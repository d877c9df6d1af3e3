"""Profiles compiled here vs the filters their runtimes really produced (tests/corpus/real).

The expected programs were made by libseccomp 2.5.4 the way dockerd+runc,
Podman, Firecracker's seccompiler and LXC make them (provenance in
tests/corpus/real/README.md; the LXC one was dumped from a running
container). Two checks: the exported program is the same instruction for
instruction, and, independently of the bytes, both give the same verdict on
records biased to the programs' constants (llvm backend). The default run
uses 20,000 records per arch; ``-m slow`` runs 200,000 per arch.
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

pytestmark = pytest.mark.skipif(not libseccomp.available(), reason="libseccomp2 is not installed")

# (corpus filter, profile file, target arch, caps preset, optimize, firecracker thread)
CASES = [
    ("docker-default.x86_64", "docker-default.profile.json", "x86_64", "docker", 1, None),
    ("docker-default.x86_64.opt", "docker-default.profile.json", "x86_64", "docker", 2, None),
    ("docker-default.aarch64", "docker-default.profile.json", "aarch64", "docker", 1, None),
    ("docker-default.s390x", "docker-default.profile.json", "s390x", "docker", 1, None),
    ("docker-default.riscv64", "docker-default.profile.json", "riscv64", "docker", 1, None),
    ("docker-default.ppc64le.opt", "docker-default.profile.json", "ppc64le", "docker", 2, None),
    ("docker-default-2021.x86_64", "docker-default-2021.profile.json", "x86_64", "docker", 1,
     None),
    ("podman-default.x86_64", "podman-default.profile.json", "x86_64", "podman", 1, None),
    ("podman-default.aarch64.opt", "podman-default.profile.json", "aarch64", "podman", 2, None),
    ("firecracker-vmm.x86_64", "firecracker.x86_64.profile.json", "x86_64", None, 1, "vmm"),
    ("firecracker-vmm.x86_64.opt", "firecracker.x86_64.profile.json", "x86_64", None, 2, "vmm"),
    ("firecracker-api.x86_64", "firecracker.x86_64.profile.json", "x86_64", None, 1, "api"),
    ("firecracker-api.x86_64.opt", "firecracker.x86_64.profile.json", "x86_64", None, 2, "api"),
    ("firecracker-api.aarch64", "firecracker.aarch64.profile.json", "aarch64", None, 1, "api"),
    ("firecracker-vcpu.aarch64", "firecracker.aarch64.profile.json", "aarch64", None, 1, "vcpu"),
    ("firecracker-vcpu.aarch64.opt", "firecracker.aarch64.profile.json", "aarch64", None, 2,
     "vcpu"),
    ("firecracker-vmm.aarch64.opt", "firecracker.aarch64.profile.json", "aarch64", None, 2, "vmm"),
    ("lxc-5.0.2.common-seccomp.x86_64", "lxc-common.profile.seccomp", "x86_64", None, 1, None),
]
IDS = [f"{c[0]} is rebuilt from {c[1]}" for c in CASES]

#: the ABIs a filter for each target serves (its archMap sub-architectures)
ABIS = {"x86_64": ("x86_64", "x86", "x32"), "aarch64": ("aarch64", "arm"),
        "s390x": ("s390x", "s390"), "riscv64": ("riscv64",), "ppc64le": ("ppc64le",)}


def build(case):
    _, profile, arch, caps, optimize, thread = case
    return compile_profile(PROFILES / profile, arch=arch, caps=caps, kernel="6.1",
                           optimize=optimize, thread=thread)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_program_is_the_one_the_runtime_built(case):
    compiled = build(case)
    expected = bpfjit.load(REAL_FILTERS / f"{case[0]}.bpf")
    assert list(compiled.program) == list(expected)


def compare_verdicts(case, n: int, seed: int = 0) -> dict[str, int]:
    """Verdicts of the rebuilt and the corpus program on n records per ABI; returns counts."""
    compiled = build(case)
    expected = bpfjit.load(REAL_FILTERS / f"{case[0]}.bpf")
    rng = random.Random(seed)
    counts = {}
    for abi in ABIS[case[2]]:
        records = inputs_for(expected, rng, n, layout=abi)
        theirs = bpfjit.compile(expected, backend="llvm", arch=abi)
        got = np.zeros(n, np.uint32)
        want = np.zeros(n, np.uint32)
        bpfjit.compile(compiled.program, backend="llvm", arch=abi).evaluate_batch(records, got)
        theirs.evaluate_batch(records, want)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{abi}: {bad.size} of {n} records differ; first "
                               f"{records[bad[0]]}: {got[bad[0]]:#x} != {want[bad[0]]:#x}")
        counts[abi] = n
    return counts


needs_llvm = pytest.mark.skipif(backends.available().get("llvm") is not None,
                                reason="llvm backend unavailable")


@needs_llvm
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_verdicts_agree_with_the_runtime_filter(case):
    compare_verdicts(case, 20_000)


@needs_llvm
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_verdicts_agree_on_200k_records_per_abi(case):
    counts = compare_verdicts(case, 200_000, seed=7)
    print(case[0], counts)


@needs_llvm
def test_runc_differs_only_by_its_enosys_prologue():
    """runc 1.1.5 really loaded our program behind its patchbpf prologue (14 instructions).

    Every verdict that differs is a call the prologue answers ERRNO(ENOSYS)
    because its number is above the newest syscall libseccomp 2.5.4 knows
    for that ABI (456 futex_requeue on x86_64 and x86, 0x40000223 pwritev2 for x32
    numbers),
    where the profile's default would say ERRNO(EPERM).
    """
    runc = bpfjit.load(REAL_FILTERS / "runc-1.1.5.docker-default.x86_64.bpf")
    ours = build(CASES[0]).program
    assert list(runc[14:]) == list(ours)
    as_runc = compile_profile(PROFILES / "docker-default.profile.json", arch="x86_64",
                              kernel="6.1", runtime="runc").program
    assert list(as_runc) == list(runc)
    rng = random.Random(5)
    for abi in ("x86_64", "x86", "x32"):
        records = inputs_for(runc, rng, 20_000, layout=abi)
        got = np.zeros(len(records), np.uint32)
        want = np.zeros(len(records), np.uint32)
        bpfjit.compile(ours, backend="llvm", arch=abi).evaluate_batch(records, got)
        bpfjit.compile(runc, backend="llvm", arch=abi).evaluate_batch(records, want)
        differ = got != want
        nr = records["nr"].astype(np.uint32)
        x32_nr = nr & 0x40000000 != 0
        beyond = ((records["arch"] == bpfjit.layout("x86").audit_arch) & (nr > 456)) | (
            (records["arch"] == bpfjit.layout("x86_64").audit_arch)
            & np.where(x32_nr, nr > 0x40000223, nr > 456))
        assert differ.any()
        assert (differ == (beyond & (got == 0x00050001))).all(), abi
        assert (want[differ] == 0x00050026).all()
