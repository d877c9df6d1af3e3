"""Conformance: every backend returns what the reference interpreter returns, all 32 bits.

One suite, parametrised over every backend in ``bpfjit.backends.REGISTRY``
except ``kernel`` (it has its own tests); a backend that is not available here
(e.g. ``numba_jit`` not written yet) is skipped with the reason. Expected values
come from ``bpfjit_reference`` (and, for the libseccomp vectors, from
libseccomp's own expectations), never from the code under test.

- every libseccomp vector (all 23 arches, both byte orders), batch and single calls;
- every real filter on ``BPFJIT_CONFORMANCE_RECORDS`` mixed records (default
  2,000 to keep CI short; the full run uses 100,000: see the report);
- random valid programs that together use every seccomp opcode, on little- and
  big-endian layouts.
"""
from __future__ import annotations

import os
import random
import zlib
from collections import defaultdict

import numpy as np
import pytest

import bpfjit
import bpfjit_reference as ref
from bpfjit import backends, opcodes as op
from bpfjit.program import Instruction, Program
from bpfjit.seccomp import layouts, syscalls
from bpfjit.testing.inputs import inputs_for
from bpfjit.testing.programs import realistic_program, valid_program
from corpora import VECTORS, real_filter_arch, real_filters
from expect import assert_same

RECORDS = int(os.environ.get("BPFJIT_CONFORMANCE_RECORDS", "2000"))
#: the reference backend is the oracle's own adapter: a smaller sample proves the plumbing
REFERENCE_RECORDS = min(RECORDS, 300)
RANDOM_PROGRAMS = int(os.environ.get("BPFJIT_CONFORMANCE_PROGRAMS", "160"))

BACKENDS = [name for name in backends.REGISTRY if name != "kernel"]


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BPFJIT_CACHE_DIR", str(tmp_path_factory.mktemp("bpfjit-cache")))
        yield


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    reason = backends.available()[request.param]
    if reason is not None:
        pytest.skip(f"backend {request.param!r} unavailable: {reason}")
    return request.param


def reference_values(program: Program, recs: np.ndarray, layout: layouts.Layout) -> np.ndarray:
    insns = [tuple(i) for i in program]
    out = np.empty(len(recs), dtype=np.uint32)
    cols = zip(recs["nr"].tolist(), recs["arch"].tolist(), recs["instruction_pointer"].tolist(),
               recs["args"].tolist())
    for i, (nr, arch, ip, args) in enumerate(cols):
        out[i] = ref.run_seccomp(insns, nr, arch, ip, args, layout.byteorder)
    return out


# --- libseccomp vectors ---------------------------------------------------------------------

def _vector_groups(cases: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for case in cases:
        groups[(case["filter"], case["arch_name"], case["endian"])].append(case)
    return groups


def test_vectors_cover_every_arch_and_byte_order(vectors):
    groups = _vector_groups(vectors)
    assert {arch for _, arch, _ in groups} == set(layouts.LAYOUTS)
    assert {endian for _, _, endian in groups} == {"little", "big"}


def test_libseccomp_vectors(backend, vectors):
    checked = 0
    for (fname, arch_name, endian), cases in sorted(_vector_groups(vectors).items()):
        program = bpfjit.load(VECTORS / "filters" / fname, endian=endian)
        lay = layouts.layout(arch_name)
        f = bpfjit.compile(program, backend=backend, arch=arch_name)
        recs = np.zeros(len(cases), dtype=bpfjit.SECCOMP_DATA)
        recs["nr"] = [c["nr"] for c in cases]
        recs["arch"] = [c["arch"] for c in cases]
        recs["instruction_pointer"] = [c["ip"] for c in cases]
        recs["args"] = [c["args"] for c in cases]
        expect = np.array([c["expect"] for c in cases], dtype=np.uint32)
        assert_same(reference_values(program, recs, lay), expect, recs,
                    f"reference vs libseccomp on {fname} {arch_name}")
        assert_same(f.evaluate_batch(recs), expect, recs, f"{backend} batch on {fname} {arch_name}")
        for c in cases:
            got = f.evaluate(c["nr"], c["args"], arch=c["arch"], instruction_pointer=c["ip"])
            assert got == c["expect"], (fname, arch_name, c["case_id"], hex(got))
        checked += len(cases)
    assert checked == len(vectors) == 9490


# --- real filters ---------------------------------------------------------------------------

def mixed_records(program: Program, lay: layouts.Layout, n: int, seed: int) -> np.ndarray:
    """Records biased to the program's constants, plus syscall-table and uniform random ones."""
    rng = random.Random(seed)
    gen = np.random.default_rng(seed)
    biased = inputs_for(program, rng, n - 2 * (n // 5), layout=lay)
    table = syscalls.table(lay.syscall_abi) if syscalls.has_table(lay.syscall_abi) else {}
    numbers = np.array(sorted(set(table.values())) or [0], dtype=np.int64) | lay.nr_bit
    known = np.zeros(n // 5, dtype=bpfjit.SECCOMP_DATA)
    known["nr"] = numbers[gen.integers(0, len(numbers), len(known))].astype(np.int32)
    known["arch"] = lay.audit_arch
    known["args"] = gen.integers(0, 1 << 63, (len(known), 6), dtype=np.uint64) >> \
        gen.integers(0, 64, (len(known), 6), dtype=np.uint64)
    uniform = np.zeros(n // 5, dtype=bpfjit.SECCOMP_DATA)
    raw = uniform.view(np.uint8)
    raw[:] = gen.integers(0, 256, raw.shape, dtype=np.uint8)
    uniform["arch"] = np.where(gen.random(len(uniform)) < 0.5, lay.audit_arch, uniform["arch"])
    recs = np.concatenate([biased, known, uniform])
    gen.shuffle(recs)
    return recs


_expected: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}


def real_case(path, n: int):
    key = (path.name, n)
    if key not in _expected:
        program = bpfjit.load(path)
        lay = layouts.layout(real_filter_arch(path))
        recs = mixed_records(program, lay, n, seed=zlib.crc32(path.name.encode()))
        _expected[key] = (recs, reference_values(program, recs, lay))
    return _expected[key]


@pytest.mark.parametrize("path", real_filters(), ids=lambda p: p.stem)
def test_real_filter(backend, path):
    n = REFERENCE_RECORDS if backend == "reference" else RECORDS
    recs, want = real_case(path, RECORDS)
    recs, want = recs[:n], want[:n]
    arch = real_filter_arch(path)
    f = bpfjit.compile(bpfjit.load(path), backend=backend, arch=arch)
    assert_same(f.evaluate_batch(recs), want, recs, f"{backend} on {path.stem}")
    assert_same(f.evaluate_batch(recs, threads=2), want, recs, f"{backend} threads=2 {path.stem}")
    for r, w in zip(recs[:200], want[:200]):
        got = f.evaluate(int(r["nr"]), r["args"].tolist(), arch=int(r["arch"]),
                         instruction_pointer=int(r["instruction_pointer"]))
        assert got == w, (path.stem, r, hex(got), hex(int(w)))


# --- random programs ------------------------------------------------------------------------

def _coverage_programs() -> list[Program]:
    """Small hand-made programs so every seccomp opcode appears at least once, whatever the draw."""
    s = lambda code, k=0: Instruction(code, 0, 0, k)  # noqa: E731
    progs = []
    for aop in (op.BPF_ADD, op.BPF_SUB, op.BPF_MUL, op.BPF_DIV, op.BPF_OR, op.BPF_AND,
                op.BPF_LSH, op.BPF_RSH, op.BPF_XOR):
        k = 7 if aop in (op.BPF_LSH, op.BPF_RSH) else 0x9E3779B9
        progs.append(Program([s(op.BPF_LD | op.BPF_W | op.BPF_ABS, 16),
                              s(op.BPF_LDX | op.BPF_W | op.BPF_LEN),
                              s(op.BPF_ALU | aop | op.BPF_K, k),
                              s(op.BPF_LDX | op.BPF_IMM, 0),
                              s(op.BPF_MISC | op.BPF_TXA),
                              s(op.BPF_LD | op.BPF_W | op.BPF_ABS, 20),
                              s(op.BPF_ALU | aop | op.BPF_X),
                              s(op.BPF_ST, 3), s(op.BPF_LD | op.BPF_W | op.BPF_LEN),
                              s(op.BPF_STX, 4), s(op.BPF_LD | op.BPF_IMM, 1),
                              s(op.BPF_LD | op.BPF_MEM, 3), s(op.BPF_LDX | op.BPF_MEM, 4),
                              s(op.BPF_MISC | op.BPF_TAX), s(op.BPF_ALU | op.BPF_NEG),
                              Instruction(op.BPF_JMP | op.BPF_JSET | op.BPF_X, 0, 1, 0),
                              s(op.BPF_RET | op.BPF_A), s(op.BPF_RET | op.BPF_K, 0x7FFF0000)]))
    for jop in (op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE, op.BPF_JSET):
        for src in (op.BPF_K, op.BPF_X):
            progs.append(Program([s(op.BPF_LD | op.BPF_W | op.BPF_ABS, 24),
                                  s(op.BPF_LDX | op.BPF_IMM, 0x8000),
                                  Instruction(op.BPF_JMP | jop | src, 1, 0, 0x8000),
                                  s(op.BPF_JMP | op.BPF_JA, 1),
                                  s(op.BPF_RET | op.BPF_K, 0x50001),
                                  s(op.BPF_RET | op.BPF_A)]))
    return progs


def random_programs() -> list[tuple[Program, str]]:
    rng = random.Random(0xB9F)
    out = [(p, "x86_64") for p in _coverage_programs()]
    for i in range(RANDOM_PROGRAMS):
        arch = ("x86_64", "s390x", "aarch64", "mips")[i % 4]
        if i % 5 == 4:
            out.append((realistic_program(rng, arch=arch if arch != "mips" else "x86_64"), arch))
        else:
            out.append((valid_program(rng, max_len=64), arch))
    return out


def test_random_programs_use_every_seccomp_opcode():
    used = {insn.code for p, _ in random_programs() for insn in p}
    assert op.SECCOMP_CODES <= used, sorted(op.code_name(c) for c in op.SECCOMP_CODES - used)


def test_random_programs(backend):
    rng = random.Random(7)
    for index, (program, arch) in enumerate(random_programs()):
        lay = layouts.layout(arch)
        recs = inputs_for(program, rng, 48, layout=lay)
        want = reference_values(program, recs, lay)
        f = bpfjit.compile(program, backend=backend, arch=arch)
        assert_same(f.evaluate_batch(recs), want, recs, f"{backend} random program #{index} ({arch}):\n"
                    + "\n".join(map(repr, program)))
