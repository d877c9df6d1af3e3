"""bpfjit.check, table-driven: each row a program, the instruction the kernel stops at, and its rule.

Expectations are worked out by hand from net/core/filter.c (bpf_check_basics_ok,
bpf_check_classic, check_load_and_stores) and kernel/seccomp.c
(seccomp_check_filter), run in that order; tests/kernel/test_checker_parity.py
confirms the accept/reject side against the running kernel.
"""
from __future__ import annotations

import pytest

from bpfjit import opcodes as op
from bpfjit.check import CheckedProgram, check, is_valid
from bpfjit.errors import InvalidProgram
from bpfjit.program import Instruction, Program

ALLOW = 0x7FFF0000
from expect import (ALU, JA, JEQ, JGE, JGT, JSET, LD_ABS, LD_IMM, LD_MEM, LDX_IMM, LDX_MEM,  # noqa: F401
                    RET_A, RET_K, ST, STX)
ANC = op.SKF_AD_OFF

BASICS, CLASSIC, MEM, SECCOMP = ("bpf_check_basics_ok", "bpf_check_classic",
                                 "check_load_and_stores", "seccomp_check_filter")


def I(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> Instruction:  # noqa: E743
    return Instruction(code, jt, jf, k)


R = I(RET_K, ALLOW)

# (description, instructions, expected index (None: accepted or whole-program), expected rule)
REFUSED = [
    ("empty", [], None, BASICS),
    ("4097 instructions", [I(LD_IMM)] * 4096 + [R], None, BASICS),
    ("65535 instructions", [I(LD_IMM)] * 65534 + [R], None, BASICS),
    # bpf_check_classic: the per-instruction loop
    ("unknown code 0x99", [I(LD_IMM), I(0x99), R], 1, CLASSIC),
    ("code above 0xff", [I(0x106, ALLOW)], 0, CLASSIC),
    ("ret x is not a code", [I(op.BPF_RET | op.BPF_X)], 0, CLASSIC),
    ("neg x is not a code", [I(ALU | op.BPF_NEG | op.BPF_X), R], 0, CLASSIC),
    ("ja x is not a code", [I(JA | op.BPF_X), R], 0, CLASSIC),
    ("ldx [k] is not a code", [I(op.BPF_LDX | op.BPF_W | op.BPF_ABS, 0), R], 0, CLASSIC),
    ("st with mode bits", [I(ST | op.BPF_MEM), R], 0, CLASSIC),
    ("div #0", [I(ALU | op.BPF_DIV | op.BPF_K, 0), R], 0, CLASSIC),
    ("mod #0", [I(LD_IMM), I(ALU | op.BPF_MOD | op.BPF_K, 0), R], 1, CLASSIC),
    ("lsh #32", [I(ALU | op.BPF_LSH | op.BPF_K, 32), R], 0, CLASSIC),
    ("rsh #0xffffffff", [I(ALU | op.BPF_RSH | op.BPF_K, 0xFFFFFFFF), R], 0, CLASSIC),
    ("ld M[16]", [I(LD_MEM, 16), R], 0, CLASSIC),
    ("ldx M[17]", [I(LDX_MEM, 17), R], 0, CLASSIC),
    ("st M[16]", [I(ST, 16), R], 0, CLASSIC),
    ("stx M[0x80000000]", [I(STX, 0x80000000), R], 0, CLASSIC),
    ("ja one past the end", [I(JA, 2), I(LD_IMM), R], 0, CLASSIC),
    ("ja 0xffffffff", [I(JA, 0xFFFFFFFF), R], 0, CLASSIC),
    ("ja as the last instruction", [I(LD_IMM), I(JA, 0)], 1, CLASSIC),
    ("jt one past the end", [I(JEQ, 0, 2, 0), I(LD_IMM), R], 0, CLASSIC),
    ("jf one past the end", [I(LD_IMM), I(JSET | op.BPF_X, 0, 0, 1), R], 1, CLASSIC),
    ("jt=255 from near the end", [I(JGE, 1, 255, 0)] + [R] * 255, 0, CLASSIC),
    ("unknown ancillary ld [SKF_AD_OFF+64]", [I(LD_ABS, ANC + 64), R], 0, CLASSIC),
    ("unknown ancillary ldh [SKF_AD_OFF+2]", [I(op.BPF_LD | op.BPF_H | op.BPF_ABS, ANC + 2), R],
     0, CLASSIC),
    ("unknown ancillary ld [0xffffffff]", [I(LD_ABS, 0xFFFFFFFF), R], 0, CLASSIC),
    # the loop runs to the end before "last must be a return", then check_load_and_stores
    ("last is a load", [I(LD_ABS, 0)], 0, CLASSIC),
    ("last is ld M[0] never written", [R, I(LD_MEM, 0)], 1, CLASSIC),
    ("loop error after a scratch error", [I(LD_MEM, 0), I(0xFFFF), R], 1, CLASSIC),
    ("loop error after a seccomp error", [I(LD_ABS, 1), I(ALU | op.BPF_DIV | op.BPF_K), R],
     1, CLASSIC),
    # check_load_and_stores
    ("ld M[0] never written", [I(LD_MEM, 0), R], 0, MEM),
    ("ldx M[15] never written", [I(ST, 14), I(LDX_MEM, 15), R], 1, MEM),
    ("ret #0; ld M[0]; ret a", [I(RET_K, 0), I(LD_MEM, 0), I(RET_A)], 1, MEM),
    ("written on the jt branch only",
     [I(LD_ABS, 0), I(JEQ, 1, 0, 1), I(ST, 2), I(LD_MEM, 2), I(RET_A)], 3, MEM),
    ("written on the fallthrough before a ret, read after it",
     [I(LD_ABS, 0), I(JEQ, 1, 0, 2), I(ST, 0), I(RET_K, 0), I(LD_MEM, 0), I(RET_A)], 4, MEM),
    ("a ja skips the write", [I(JA, 1), I(ST, 3), I(LD_MEM, 3), I(RET_A)], 2, MEM),
    ("second read of two, other cell", [I(ST, 1), I(LD_MEM, 1), I(LDX_MEM, 2), R], 2, MEM),
    ("scratch error before a seccomp error", [I(LD_ABS, 2), I(LD_MEM, 5), R], 1, MEM),
    # seccomp_check_filter
    ("ld [1] unaligned", [I(LD_ABS, 1), R], 0, SECCOMP),
    ("ld [62]", [I(LD_IMM), I(LD_ABS, 62), R], 1, SECCOMP),
    ("ld [64]", [I(LD_ABS, 64), R], 0, SECCOMP),
    ("ld [known ancillary: protocol]", [I(LD_ABS, ANC), R], 0, SECCOMP),
    ("ld [known ancillary: vlan_tpid]", [I(LD_ABS, ANC + 60), R], 0, SECCOMP),
    ("ldh [0]", [I(op.BPF_LD | op.BPF_H | op.BPF_ABS, 0), R], 0, SECCOMP),
    ("ldb [known ancillary]", [I(op.BPF_LD | op.BPF_B | op.BPF_ABS, ANC + 4), R], 0, SECCOMP),
    ("ld [x+4]", [I(op.BPF_LD | op.BPF_W | op.BPF_IND, 4), R], 0, SECCOMP),
    ("ldh [x+0]", [I(op.BPF_LD | op.BPF_H | op.BPF_IND), R], 0, SECCOMP),
    ("ldx msh", [I(op.BPF_LDX | op.BPF_B | op.BPF_MSH, 14), R], 0, SECCOMP),
    ("mod #3", [I(ALU | op.BPF_MOD | op.BPF_K, 3), R], 0, SECCOMP),
    ("mod x", [I(LD_IMM), I(ALU | op.BPF_MOD | op.BPF_X), R], 1, SECCOMP),
    ("first of two seccomp errors", [I(LD_ABS, 0), I(LD_ABS, 5), I(LD_ABS, 64), R], 1, SECCOMP),
]

ACCEPTED = [
    ("one ret", [R]),
    ("ret a", [I(RET_A)]),
    ("4096 instructions", [I(LD_IMM)] * 4095 + [R]),
    ("every aligned ld [k]", [I(LD_ABS, 4 * i) for i in range(16)] + [R]),
    ("ld len, ldx len", [I(op.BPF_LD | op.BPF_W | op.BPF_LEN), I(op.BPF_LDX | op.BPF_W | op.BPF_LEN),
                         R]),
    ("div x, lsh x, rsh x", [I(ALU | op.BPF_DIV | op.BPF_X), I(ALU | op.BPF_LSH | op.BPF_X),
                             I(ALU | op.BPF_RSH | op.BPF_X), R]),
    ("lsh #31, div #0xffffffff", [I(ALU | op.BPF_LSH | op.BPF_K, 31),
                                  I(ALU | op.BPF_DIV | op.BPF_K, 0xFFFFFFFF), R]),
    ("neg, tax, txa", [I(ALU | op.BPF_NEG), I(op.BPF_MISC | op.BPF_TAX),
                       I(op.BPF_MISC | op.BPF_TXA), R]),
    ("jumps landing on the last instruction", [I(JA, 2), I(JEQ, 0, 1, 0), I(LD_IMM), R]),
    ("jt=255 landing on the last", [I(JGT, 1, 255, 0)] + [R] * 256),
    ("jset #k bit 31", [I(JSET, 0x80000000, 0, 1), I(RET_K, 0), R]),
    ("M[15] written then read", [I(ST, 15), I(LDX_MEM, 15), R]),
    ("state after ret carries (st; ret; ld)", [I(ST, 0), I(RET_K, 0), I(LD_MEM, 0), I(RET_A)]),
    ("written on both branches",
     [I(LD_ABS, 0), I(JEQ, 1, 0, 2), I(ST, 2), I(JA, 1), I(STX, 2), I(LDX_MEM, 2), R]),
    ("a ja over a write, written before",
     [I(ST, 1), I(JA, 1), I(STX, 2), I(LD_MEM, 1), I(RET_A)]),
    ("unreachable code after ret", [R, I(LD_ABS, 0), I(ALU | op.BPF_DIV | op.BPF_X), R]),
]


@pytest.mark.parametrize("what,insns,index,rule", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused(what, insns, index, rule):
    prog = Program(insns)
    with pytest.raises(InvalidProgram) as info:
        check(prog)
    err = info.value
    assert (err.index, err.rule) == (index, rule), str(err)
    assert err.errno == "EINVAL"
    assert rule in str(err)
    if index is not None:
        assert f"instruction {index}" in str(err)
    assert not is_valid(prog)


@pytest.mark.parametrize("what,insns", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted(what, insns):
    prog = Program(insns, source="table")
    checked = check(prog)
    assert isinstance(checked, CheckedProgram)
    assert checked == prog and checked.source == "table"
    assert is_valid(prog)
    assert check(checked) is checked and prog.check() == checked


def test_only_check_makes_a_checked_program():
    with pytest.raises(TypeError, match="CheckedProgram"):
        CheckedProgram(Program([R]))
    with pytest.raises(TypeError, match="bpfjit.Program"):
        check([tuple(R)])


def test_big_endian_programs_are_checked_on_their_fields():
    prog = Program.from_bytes(Program([I(LD_ABS, 1), R]).to_bytes("big"), endian="big")
    with pytest.raises(InvalidProgram) as info:
        check(prog)
    assert (info.value.index, info.value.rule) == (0, SECCOMP)
