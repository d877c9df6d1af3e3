"""backend="kernel": the running kernel evaluates programs; it must reproduce every expected value.

Expected values come from libseccomp's regression vectors and from the
reference interpreter (bpfjit_reference), never from the kernel backend.
"""
from __future__ import annotations

import random
import time
from collections import defaultdict

import numpy as np
import pytest

import bpfjit
from bpfjit import opcodes as op
from bpfjit.backends import kernel as kb
from bpfjit.errors import BackendUnavailable
from bpfjit.program import Instruction, Program
from bpfjit.seccomp.records import SECCOMP_DATA
from bpfjit.testing import inputs_for, realistic_program, valid_program
from corpora import VECTORS, real_filter_arch, real_filters, vector_cases

pytestmark = pytest.mark.kernel

HOST_FAMILY = ("x86_64", "x86", "x32")
ALLOW = 0x7FFF0000


def I(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> Instruction:  # noqa: E743
    return Instruction(code, jt, jf, k)


def _records(cases: list[dict]) -> np.ndarray:
    recs = np.zeros(len(cases), dtype=SECCOMP_DATA)
    recs["nr"] = [c["nr"] for c in cases]
    recs["arch"] = [c["arch"] for c in cases]
    recs["instruction_pointer"] = [c["ip"] for c in cases]
    recs["args"] = [c["args"] for c in cases]
    return recs


def _reference(prog: Program, arch: str, recs: np.ndarray) -> np.ndarray:
    return bpfjit.compile(prog, backend="reference", arch=arch).evaluate_batch(recs)


def test_every_little_endian_x86_vector():
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for case in vector_cases():
        if case["arch_name"] in HOST_FAMILY:
            assert case["endian"] == "little"
            groups[(case["filter"], case["arch_name"])].append(case)
    total, start = 0, time.perf_counter()
    for (name, arch), cases in sorted(groups.items()):
        prog = bpfjit.load(VECTORS / "filters" / name, format="raw", endian="little")
        got = bpfjit.compile(prog, backend="kernel", arch=arch).evaluate_batch(_records(cases))
        expect = np.array([c["expect"] for c in cases], dtype=np.uint32)
        bad = np.nonzero(got != expect)[0]
        assert not len(bad), (f"{name} ({arch}): {cases[bad[0]]['case_id']} gave "
                              f"{got[bad[0]]:#010x}, expected {expect[bad[0]]:#010x}")
        total += len(cases)
    elapsed = time.perf_counter() - start
    print(f"\nkernel backend: {total} vectors, {len(groups)} (filter, arch) pairs in "
          f"{elapsed:.2f} s")
    assert total == 3473 + 4085 + 96


HOST_FILTERS = [p for p in real_filters() if real_filter_arch(p) in HOST_FAMILY]


@pytest.mark.parametrize("path", HOST_FILTERS, ids=[p.stem for p in HOST_FILTERS])
def test_real_filter_agrees_with_the_reference(path):
    arch = real_filter_arch(path)
    prog = bpfjit.load(path)
    recs = inputs_for(prog, random.Random(path.name), 1500, layout=arch)
    got = bpfjit.compile(prog, backend="kernel", arch=arch).evaluate_batch(recs)
    expect = _reference(prog, arch, recs)
    bad = np.nonzero(got != expect)[0]
    assert not len(bad), (f"record {bad[0]}: {recs[bad[0]]} kernel {got[bad[0]]:#010x} "
                          f"reference {expect[bad[0]]:#010x}")
    assert len(set(expect.tolist())) >= 2          # the inputs reach more than one return


def test_real_filters_cover_the_x86_64_corpus():
    names = {p.name for p in HOST_FILTERS}
    assert len([n for n in names if ".x86_64." in n]) >= 30


@pytest.mark.parametrize("kind", ["valid", "realistic"])
def test_generated_programs_agree_with_the_reference(kind):
    rng = random.Random(f"kernel-{kind}")
    n_programs, n_inputs, start = 0, 0, time.perf_counter()
    for _ in range(300 if kind == "valid" else 100):
        arch = rng.choice(HOST_FAMILY)
        prog = valid_program(rng) if kind == "valid" else realistic_program(rng, arch=arch)
        recs = inputs_for(prog, rng, 40, layout=arch)
        got = bpfjit.compile(prog, backend="kernel", arch=arch).evaluate_batch(recs)
        expect = _reference(prog, arch, recs)
        bad = np.nonzero(got != expect)[0]
        assert not len(bad), (prog.instructions, recs[bad[0]], hex(got[bad[0]]),
                              hex(expect[bad[0]]))
        n_programs += 1
        n_inputs += len(recs)
    elapsed = time.perf_counter() - start
    print(f"\nkernel backend, {kind}: {n_programs} programs, {n_inputs} inputs in {elapsed:.2f} s "
          f"(with the reference and the generators)")


def test_ret_a_all_32_bits():
    # A = args[0] low word, returned as is: three passes of 11 bits
    prog = Program([I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 16), I(op.BPF_RET | op.BPF_A)])
    values = [0, 1, 0x7FF, 0x800, 0x3FFFFF, 0x400000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
              0xDEADBEEF, 0x00050001, ALLOW]
    recs = np.zeros(len(values), dtype=SECCOMP_DATA)
    recs["args"][:, 0] = values
    recs["args"][:, 0] |= np.uint64(0xABCD << 32)    # the high word must not leak in
    got = bpfjit.compile(prog, backend="kernel", arch="x86_64").evaluate_batch(recs)
    assert got.tolist() == values


def test_arch_and_instruction_pointer_are_substituted():
    # returns ERRNO(1) for a given (arch, ip) pair, ALLOW otherwise; ret a echoes ip.hi
    prog = Program([
        I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 4), I(op.BPF_JMP | op.BPF_JEQ, 0x40000003, 0, 4),
        I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 8), I(op.BPF_JMP | op.BPF_JEQ, 0xCAFEF00D, 0, 2),
        I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 12), I(op.BPF_RET | op.BPF_A),
        I(op.BPF_RET | op.BPF_K, ALLOW),
    ])
    recs = np.zeros(5, dtype=SECCOMP_DATA)
    recs["arch"] = [0x40000003, 0x40000003, 0xC000003E, 0x40000003, 0]
    recs["instruction_pointer"] = [0x12345678CAFEF00D, 0xCAFEF00D, 0x12345678CAFEF00D,
                                   0xCAFEF00E, 0xFFFFFFFFFFFFFFFF]
    got = bpfjit.compile(prog, backend="kernel", arch="x86").evaluate_batch(recs)
    assert got.tolist() == [0x12345678, 0, ALLOW, ALLOW, ALLOW]
    assert got.tolist() == _reference(prog, "x86", recs).tolist()


def test_div_x_by_zero_is_the_kernels_kill():
    # the kernel itself returns 0 (KILL_THREAD) from a division by zero; the backend observes
    # the kill and carries on with the next input, whatever comes before and after
    div_x = I(op.BPF_ALU | op.BPF_DIV | op.BPF_X)
    prog = Program(
        [I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 16), I(op.BPF_MISC | op.BPF_TAX),
         I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 24),
         I(op.BPF_JMP | op.BPF_JGT, 1000, 0, 250), I(op.BPF_ST, 0)]      # M[0] = args[1].lo
        + [div_x] * 249
        + [I(op.BPF_JMP | op.BPF_JSET, 1, 0, 1), I(op.BPF_RET | op.BPF_A),
           I(op.BPF_LD | op.BPF_IMM, 7),
           I(op.BPF_RET | op.BPF_A)])
    prog.check()
    recs = np.zeros(9, dtype=SECCOMP_DATA)
    recs["args"][:, 0] = [0, 1, 2, 0, 3, 1, 0, 0, 5]           # X
    recs["args"][:, 1] = [5000, 5000, 5000, 10, 10, 0xFFFFFFFF, 5000, 5000, 1 << 20]
    got = bpfjit.compile(prog, backend="kernel", arch="x86_64").evaluate_batch(recs)
    assert got.tolist() == _reference(prog, "x86_64", recs).tolist()
    assert got[0] == got[6] == got[7] == 0 and got[3] == 7       # X == 0: killed, returns 0


def test_div_x_with_all_16_scratch_cells():
    # once refused ("needs one cell to test X == 0"): every valid program is evaluated
    prog = Program([I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 16), I(op.BPF_MISC | op.BPF_TAX)]
                   + [I(op.BPF_ST, c) for c in range(16)]
                   + [I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 24),
                      I(op.BPF_ALU | op.BPF_DIV | op.BPF_X),
                      I(op.BPF_ALU | op.BPF_ADD | op.BPF_K, 0x00050000),
                      I(op.BPF_JMP | op.BPF_JGE, 0x00050003, 0, 1),
                      I(op.BPF_RET | op.BPF_K, 0x7FFF0000), I(op.BPF_RET | op.BPF_A)])
    prog.check()
    recs = np.zeros(7, dtype=SECCOMP_DATA)
    recs["args"][:, 0] = [0, 1, 3, 0, 0xFFFFFFFF, 2, 0]
    recs["args"][:, 1] = [9, 1, 9, 0, 0xFFFFFFFF, 5, 1]
    got = bpfjit.compile(prog, backend="kernel", arch="x86_64").evaluate_batch(recs)
    assert got.tolist() == _reference(prog, "x86_64", recs).tolist()
    assert got.tolist() == [0, 0x00050001, 0x7FFF0000, 0, 0x00050001, 0x00050002, 0]


def test_more_distinct_return_constants_than_errno_can_number():
    # 2046 ERRNO constants, ALLOW and ~0, 4096 instructions: two groups of return ids
    many = [I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 16)]
    for v in range(2046):
        many += [I(op.BPF_JMP | op.BPF_JEQ, v, 0, 1), I(op.BPF_RET | op.BPF_K, 0x00050000 + v)]
    many += [I(op.BPF_JMP | op.BPF_JGT, 5000, 0, 1), I(op.BPF_RET | op.BPF_K, 0xFFFFFFFF),
             I(op.BPF_RET | op.BPF_K, 0x7FFF0000)]
    prog = Program(many)
    prog.check()
    recs = np.zeros(12, dtype=SECCOMP_DATA)
    recs["args"][:, 0] = [0, 1, 2045, 2046, 2047, 1998, 1999, 4500, 0xFFFFFFFF, 1024, 1500, 7]
    f = bpfjit.compile(prog, backend="kernel", arch="x86_64")
    assert len(prog) == 4096 and f.evaluator._rw.groups == 2
    got = f.evaluate_batch(recs)
    assert got.tolist() == _reference(prog, "x86_64", recs).tolist()
    assert got[2] == 0x00050000 + 2045 and got[3] == got[7] == 0x7FFF0000
    assert got[8] == 0xFFFFFFFF


def test_syscalls_that_bypass_seccomp_are_still_evaluated():
    # nr 335 (uretprobe) and 336 (uprobe) never reach seccomp on x86_64 >= 6.11
    prog = Program([
        I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0), I(op.BPF_JMP | op.BPF_JEQ, 335, 0, 1),
        I(op.BPF_RET | op.BPF_K, 0x00050007), I(op.BPF_JMP | op.BPF_JEQ, 336, 0, 1),
        I(op.BPF_RET | op.BPF_A), I(op.BPF_RET | op.BPF_K, ALLOW),
    ])
    recs = np.zeros(4, dtype=SECCOMP_DATA)
    recs["nr"] = [335, 336, 39, -1]
    got = bpfjit.compile(prog, backend="kernel", arch="x86_64").evaluate_batch(recs)
    assert got.tolist() == [0x00050007, 336, ALLOW, ALLOW]


def test_every_kind_of_return_value():
    values = [0, 0x80000000, 0x00030005, 0x00050000, 0x0005FFFF, 0x7FC00000, 0x7FF01234,
              0x7FFC0000, ALLOW, 0x7FFF0001, 0x00010000, 0xFFFFFFFF, 0x12345678]
    insns = [I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0)]
    for i, v in enumerate(values):
        insns += [I(op.BPF_JMP | op.BPF_JEQ, i, 0, 1), I(op.BPF_RET | op.BPF_K, v)]
    insns.append(I(op.BPF_RET | op.BPF_K, 0x00050063))
    recs = np.zeros(len(values) + 1, dtype=SECCOMP_DATA)
    recs["nr"] = list(range(len(values))) + [1000]
    got = bpfjit.compile(Program(insns), backend="kernel", arch="x86_64").evaluate_batch(recs)
    assert got.tolist() == values + [0x00050063]


def test_filter_evaluate_and_stack_with_the_kernel_backend():
    prog = realistic_program(random.Random(77))
    f = bpfjit.compile(prog, backend="kernel", arch="x86_64")
    r = bpfjit.compile(prog, backend="reference", arch="x86_64")
    for nr in (0, 1, 2, 59, 231, 0x40000000, -1):
        assert f.evaluate(nr, (1, 2, 3)) == r.evaluate(nr, (1, 2, 3))
    progs = [realistic_program(random.Random(s)) for s in (1, 2, 3)]
    recs = inputs_for(progs[0], random.Random(4), 500)
    ks = bpfjit.Stack(progs, backend="kernel", arch="x86_64").evaluate_batch(recs)
    rs = bpfjit.Stack(progs, backend="reference", arch="x86_64").evaluate_batch(recs)
    assert ks.tolist() == rs.tolist()


def _guarded(action: int) -> bytes:
    """Returns ``action`` for calls from the designated site, ALLOW for the child's others."""
    site = kb.site_address()
    return Program([
        I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 8), I(op.BPF_JMP | op.BPF_JEQ, site & 0xFFFFFFFF, 0, 3),
        I(op.BPF_LD | op.BPF_W | op.BPF_ABS, 12), I(op.BPF_JMP | op.BPF_JEQ, site >> 32, 0, 1),
        I(op.BPF_RET | op.BPF_K, action), I(op.BPF_RET | op.BPF_K, ALLOW),
    ]).to_bytes()


def test_stacked_precedence_in_the_kernel_matches_stack_retval():
    """The kernel's own choice among stacked filters, for every observable pair of actions."""
    import errno
    import os
    from bpfjit.seccomp.actions import stack_retval
    observable = [0x00050001, 0x00050002, 0x00050000, 0x00051388, 0x7FF00005, 0x7FC00000,
                  0x7FFC0000, ALLOW, 0x7FFF0009]
    getppid = 110

    def seen(retval: int) -> int:      # what the call returns when the stack returns retval
        action, data = retval & 0xFFFF0000, retval & 0xFFFF
        if action == 0x00050000:
            return -min(data, 4095)
        if action in (0x7FF00000, 0x7FC00000):  # TRACE / USER_NOTIF with nobody listening
            return -errno.ENOSYS
        return os.getpid()                # LOG / ALLOW: getppid really runs: we are the parent

    for older in observable:
        for newer in observable:
            raw, err = kb.kernel_syscalls([_guarded(older), _guarded(newer)], [getppid])
            assert err == 0
            assert raw[0] == seen(stack_retval([older, newer])), (hex(older), hex(newer))
    with pytest.raises(ValueError, match="harmless"):
        kb.kernel_syscalls([_guarded(ALLOW)], [11])     # munmap: never


def test_what_the_kernel_backend_cannot_do():
    small = Program([I(op.BPF_RET | op.BPF_K, ALLOW)])
    with pytest.raises(BackendUnavailable, match="big-endian"):
        bpfjit.compile(small, backend="kernel", arch="s390x")
    full = Program([I(op.BPF_LD | op.BPF_IMM, 3)] * 4095 + [I(op.BPF_RET | op.BPF_K, ALLOW)])
    assert bpfjit.compile(full, backend="kernel", arch="x86_64").evaluate(0) == ALLOW
    longest = Program([I(op.BPF_LD | op.BPF_IMM, 3)] * 4091 + [I(op.BPF_RET | op.BPF_A)])
    assert bpfjit.compile(longest, backend="kernel", arch="x86_64").evaluate(0) == 3
    too_long = Program([I(op.BPF_LD | op.BPF_IMM, 3)] * 4092 + [I(op.BPF_RET | op.BPF_A)])
    with pytest.raises(BackendUnavailable, match="4096"):
        bpfjit.compile(too_long, backend="kernel", arch="x86_64")
    assert kb.BACKEND.unavailable_reason() is None
    assert bpfjit.backends.available()["kernel"] is None


def test_empty_batch_and_describe():
    f = bpfjit.compile(Program([I(op.BPF_RET | op.BPF_A)]), backend="kernel", arch="x86_64")
    assert len(f.evaluate_batch(np.zeros(0, dtype=SECCOMP_DATA))) == 0
    text = f.evaluator.describe()
    assert "BPF_RET" in text["rewritten"] and int(text["site"], 16) > 0   # 1:1 rewrite, no guard


def test_throughput_is_reported():
    """Not an assertion on time: prints inputs/s and programs/s for the report."""
    prog = bpfjit.load(next(p for p in HOST_FILTERS if p.name.startswith("docker-default.x86_64")))
    f = bpfjit.compile(prog, backend="kernel", arch="x86_64")
    recs = np.zeros(200_000, dtype=SECCOMP_DATA)
    recs["arch"] = 0xC000003E
    recs["nr"] = np.arange(len(recs)) % 450
    start = time.perf_counter()
    out = f.evaluate_batch(recs)
    batch = time.perf_counter() - start
    assert len(set(out.tolist())) >= 2
    rng = random.Random(5)
    progs = [valid_program(rng) for _ in range(300)]
    small = np.zeros(4, dtype=SECCOMP_DATA)
    start = time.perf_counter()
    for p in progs:
        bpfjit.compile(p, backend="kernel", arch="x86_64").evaluate_batch(small)
    per_prog = time.perf_counter() - start
    print(f"\nkernel backend: {len(recs) / batch:,.0f} inputs/s (one filter, one (arch, ip) "
          f"group); {len(progs) / per_prog:,.0f} programs/s (4 inputs each, 1-3 children)")
