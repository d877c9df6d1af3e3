"""bpfjit.analysis.verdicts: the constant-verdict table is exact.

For every real filter and every table entry, the reference interpreter on
records with that (arch, nr) and random instruction pointers and arguments
returns the table's value; records outside the table still evaluate right
through the LLVM backend. Hand-made programs pin down what may and may not be
determined.
"""
from __future__ import annotations

import os
import random

import numpy as np
import pytest

import bpfjit
import bpfjit_reference as ref
from bpfjit import opcodes as op
from bpfjit.analysis import verdicts
from bpfjit.program import Instruction, Program
from bpfjit.seccomp import layouts
from corpora import real_filter_arch, real_filters

ENTRY_SAMPLES = int(os.environ.get("BPFJIT_VERDICT_SAMPLES", "1"))

LD = op.BPF_LD | op.BPF_W | op.BPF_ABS
JEQ = op.BPF_JMP | op.BPF_JEQ | op.BPF_K
JGE = op.BPF_JMP | op.BPF_JGE | op.BPF_K
JSET = op.BPF_JMP | op.BPF_JSET | op.BPF_K
RET = op.BPF_RET | op.BPF_K
RET_A = op.BPF_RET | op.BPF_A
X86_64 = layouts.layout("x86_64")
ALLOW, KILL, ERRNO = 0x7FFF0000, 0x80000000, 0x50001


def I(code, k=0, jt=0, jf=0):  # noqa: E743
    return Instruction(code, jt, jf, k)


def random_args(rng: random.Random) -> list[int]:
    return [rng.choice((0, 1, rng.getrandbits(64), rng.getrandbits(32), (1 << 64) - 1))
            for _ in range(6)]


def signed(word: int) -> int:
    return word - (1 << 32) if word >= 1 << 31 else word


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BPFJIT_CACHE_DIR", str(tmp_path_factory.mktemp("bpfjit-cache")))
        yield


@pytest.mark.parametrize("path", real_filters(), ids=lambda p: p.stem)
def test_every_table_entry_matches_the_reference(path):
    program = bpfjit.load(path)
    lay = layouts.layout(real_filter_arch(path))
    table = verdicts.build(bpfjit.check(program), lay)
    assert table.windows and not table.abandoned
    assert any(w.arch == lay.audit_arch for w in table.windows)
    insns = [tuple(i) for i in program]
    rng = random.Random(path.name)
    checked = 0
    for w in table.windows:
        for i in np.nonzero(w.known)[0].tolist():
            nr = signed((w.base + i) & 0xFFFFFFFF)
            for _ in range(ENTRY_SAMPLES):
                got = ref.run_seccomp(insns, nr, w.arch, rng.getrandbits(64), random_args(rng),
                                      lay.byteorder)
                assert got == int(w.verdicts[i]), (path.stem, hex(w.arch), nr)
                checked += 1
            assert table.lookup(w.arch, nr) == int(w.verdicts[i])
    assert checked == table.known * ENTRY_SAMPLES > 0


@pytest.mark.parametrize("path", real_filters(), ids=lambda p: p.stem)
def test_records_outside_the_table_evaluate_right(path):
    program = bpfjit.load(path)
    arch = real_filter_arch(path)
    lay = layouts.layout(arch)
    table = verdicts.build(bpfjit.check(program), lay)
    rng = random.Random(path.name)
    rows = []
    for w in table.windows:                                  # undetermined entries
        for i in np.nonzero(~w.known)[0].tolist()[:50]:
            rows.append((signed((w.base + i) & 0xFFFFFFFF), w.arch))
        rows.append((signed((w.base + w.size) & 0xFFFFFFFF), w.arch))   # just past a window
        rows.append((signed((w.base - 1) & 0xFFFFFFFF), w.arch))
    for _ in range(100):                                     # arches and numbers it never tests
        rows.append((signed(rng.getrandbits(32)), rng.choice((lay.audit_arch, rng.getrandbits(32)))))
    recs = np.zeros(len(rows), dtype=bpfjit.SECCOMP_DATA)
    recs["nr"] = [r[0] for r in rows]
    recs["arch"] = [r[1] for r in rows]
    recs["instruction_pointer"] = [rng.getrandbits(64) for _ in rows]
    recs["args"] = [random_args(rng) for _ in rows]
    insns = [tuple(i) for i in program]
    want = [ref.run_seccomp(insns, int(r["nr"]), int(r["arch"]), int(r["instruction_pointer"]),
                            r["args"].tolist(), lay.byteorder) for r in recs]
    got = bpfjit.compile(program, backend="llvm", arch=arch).evaluate_batch(recs)
    assert got.tolist() == want


# --- what may be determined -----------------------------------------------------------------

def table_for(insns, layout=X86_64) -> verdicts.VerdictTable:
    return verdicts.build(Program(insns), layout)


def test_argument_checks_stay_undetermined():
    t = table_for([I(LD, 4), I(JEQ, X86_64.audit_arch, 0, 5), I(LD, 0),
                   I(JEQ, 2, 0, 2), I(LD, 16), I(RET_A), I(JEQ, 3, 1, 0), I(RET, ALLOW),
                   I(RET, KILL)])
    assert t.lookup(X86_64.audit_arch, 2) is None            # returns args[0].lo
    assert t.lookup(X86_64.audit_arch, 3) == KILL
    assert t.lookup(X86_64.audit_arch, 4) == ALLOW
    assert t.lookup(0x40000003, 3) is None                   # an arch it never names: no window


def test_other_arches_the_program_names_get_windows():
    t = table_for([I(LD, 4), I(JEQ, 0x40000003, 4, 0), I(LD, 0), I(JEQ, 1, 0, 1),
                   I(RET, KILL), I(RET, ALLOW), I(RET, ERRNO)])
    assert t.lookup(0x40000003, 1) == ERRNO == t.lookup(0x40000003, 100)
    assert t.lookup(0x40000003, 500) is None                 # outside the window
    assert t.lookup(X86_64.audit_arch, 1) == KILL
    assert t.lookup(X86_64.audit_arch, 2) == ALLOW


def test_values_computed_from_nr_are_tracked():
    # ret (nr & 0xf) | 0x50000 for nr < 64, ERRNO otherwise; jset splits on bit 2
    t = table_for([I(LD, 0), I(JGE, 64, 5, 0), I(JSET, 4, 0, 3),
                   I(op.BPF_ALU | op.BPF_AND | op.BPF_K, 0xF),
                   I(op.BPF_ALU | op.BPF_OR | op.BPF_K, 0x50000), I(RET_A), I(RET, KILL),
                   I(RET, ERRNO)])
    arch = X86_64.audit_arch
    for nr in range(64):
        assert t.lookup(arch, nr) == ((nr & 0xF) | 0x50000 if nr & 4 else KILL), nr
    assert t.lookup(arch, 64) == ERRNO


def test_division_by_a_register_that_may_be_zero():
    div_x = op.BPF_ALU | op.BPF_DIV | op.BPF_X
    t = table_for([I(LD, 0), I(JEQ, 7, 0, 0), I(op.BPF_MISC | op.BPF_TAX),
                   I(op.BPF_LD | op.BPF_IMM, 100), I(div_x), I(RET_A)])
    arch = X86_64.audit_arch
    assert t.lookup(arch, 0) == 0                             # X == 0: the program returns 0
    assert t.lookup(arch, 7) == 100 // 7
    # the divisor is an argument: it may be 0, so nothing is determined
    t = table_for([I(LD, 0), I(JEQ, 5, 0, 4), I(LD, 16), I(op.BPF_MISC | op.BPF_TAX),
                   I(op.BPF_LD | op.BPF_IMM, 8), I(div_x), I(RET, ALLOW)])
    assert t.lookup(arch, 5) is None
    assert t.lookup(arch, 6) == ALLOW


def test_scratch_memory_and_unknowns_that_do_not_matter():
    t = table_for([I(LD, 16), I(op.BPF_ALU | op.BPF_AND | op.BPF_K, 0), I(op.BPF_ST, 3),
                   I(LD, 0), I(JEQ, 9, 0, 2), I(op.BPF_LD | op.BPF_MEM, 3), I(RET_A),
                   I(RET, ALLOW)])
    assert t.lookup(X86_64.audit_arch, 9) == 0               # args & 0 is 0 whatever they are
    assert t.lookup(X86_64.audit_arch, 8) == ALLOW


def test_no_numbers_tested_means_no_table():
    assert table_for([I(RET, ALLOW)]).windows == ()
    assert table_for([I(LD, 16), I(JEQ, 1, 0, 1), I(RET, ALLOW), I(RET, KILL)]).windows == ()


def test_budget_exhaustion_gives_up_soundly():
    prog = Program([I(LD, 0), I(JEQ, 1, 0, 1), I(RET, ALLOW), I(RET, KILL)])
    t = verdicts.build(prog, X86_64, budget=1)
    assert t.windows == () and t.abandoned == (X86_64.audit_arch,)


def test_windows_cluster_tested_numbers():
    assert verdicts.windows_for({0, 1, 456}) == [(0, 576)]
    assert verdicts.windows_for({400}) == [(0, 512)]          # small numbers: from 0
    assert verdicts.windows_for({2000, 2100}) == [(1984, 192)]
    spans = verdicts.windows_for({0, 1, 2, 0x40000000, 0x40000005})
    assert spans == [(0, 128), (0x40000000, 128)]
    assert verdicts.windows_for({0xFFFFFFFF}) == [(0xFFFFFFC0, 64)]
    big = verdicts.windows_for(set(range(0, 20000, 100)))
    assert all(size <= verdicts.MAX_WINDOW for _, size in big)
    starts = sorted(big)
    assert all(a + s <= b for (a, s), (b, _) in zip(starts, starts[1:]))   # no overlap


def test_sentinel_and_flat_table():
    t = table_for([I(LD, 0), I(JEQ, 1, 0, 1), I(RET, 0xFFFFFFFF), I(LD, 16), I(RET_A)])
    values, mark = t.flat()
    assert mark != 0xFFFFFFFF and mark not in values[values != mark]
    assert values[1] == 0xFFFFFFFF and values[0] == mark


def test_tested_constants_follow_a_through_jumps():
    prog = Program([I(LD, 4), I(JEQ, 0xC000003E, 0, 3), I(LD, 0), I(JGE, 0x40000000, 1, 0),
                    I(JEQ, 59, 0, 0), I(RET, ALLOW)])
    assert verdicts.tested_constants(prog) == ({0x40000000, 59}, {0xC000003E})


def test_random_programs_tables_are_exact():
    """Random valid and libseccomp-shaped programs: sampled entries agree with the reference."""
    from bpfjit.testing.programs import realistic_program, valid_program
    rng = random.Random(0x7AB1E)
    checked = 0
    for i in range(300):
        arch = ("x86_64", "s390x", "x86", "aarch64")[i % 4]
        lay = layouts.layout(arch)
        prog = realistic_program(rng, arch=arch) if i % 2 else valid_program(rng, max_len=64)
        table = verdicts.build(bpfjit.check(prog), lay)
        insns = [tuple(x) for x in prog]
        for w in table.windows:
            known = np.nonzero(w.known)[0].tolist()
            for j in rng.sample(known, min(len(known), 12)):
                nr = signed((w.base + j) & 0xFFFFFFFF)
                got = ref.run_seccomp(insns, nr, w.arch, rng.getrandbits(64), random_args(rng),
                                      lay.byteorder)
                assert got == int(w.verdicts[j]), (i, arch, hex(w.arch), nr, prog)
                checked += 1
    assert checked > 1000
