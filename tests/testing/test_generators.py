"""The seeded generators of bpfjit.testing: reproducible, and each kind is what it claims.

Valid programs must pass the checker, near-valid ones must fail it at the
rule (and instruction) they name; what a realistic program *does* is checked
with the reference interpreter, never with bpfjit's own backends.
"""
from __future__ import annotations

import itertools
import random
from collections import Counter

import numpy as np
import pytest

import bpfjit_reference as ref
from bpfjit import opcodes as op
from bpfjit.check import check, is_valid
from bpfjit.errors import InvalidProgram
from bpfjit.program import Instruction, Program
from bpfjit.seccomp import layouts
from bpfjit.seccomp.records import SECCOMP_DATA, words
from bpfjit.testing import (BREAKAGES, constants, garbage_program, inputs_for, near_valid_case,
                            near_valid_program, program_stream, realistic_program, valid_program)
from bpfjit.testing import programs as gen

ALLOW = 0x7FFF0000


def _run(program: Program, rec, byteorder: str = "little") -> int:
    args = [int(a) for a in rec["args"]]
    return ref.run_seccomp([tuple(i) for i in program], int(rec["nr"]), int(rec["arch"]),
                           int(rec["instruction_pointer"]), args, byteorder)


# --- determinism ----------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda r: valid_program(r).to_bytes(),
    lambda r: realistic_program(r, arch="x86_64").to_bytes(),
    lambda r: realistic_program(r, arch="s390x").to_bytes(),
    lambda r: near_valid_program(r)[0].to_bytes(),
    lambda r: near_valid_program(r)[1],
    garbage_program,
], ids=["valid", "realistic", "realistic-s390x", "near_valid", "near_valid-rule", "garbage"])
def test_same_seed_same_programs(make):
    a = [make(random.Random(seed)) for seed in range(30)]
    b = [make(random.Random(seed)) for seed in range(30)]
    assert a == b
    assert len(set(map(repr, a))) > 1          # and the seed matters


def test_program_stream_is_reproducible_and_mixed():
    a = list(itertools.islice(program_stream(7), 400))
    b = list(itertools.islice(program_stream(7), 400))
    c = list(itertools.islice(program_stream(8), 400))
    assert a == b
    assert a != c
    assert {kind for kind, _ in a} == {"valid", "realistic", "near_valid", "garbage", "probe"}
    assert all(isinstance(data, bytes) and len(data) % 8 == 0 for _, data in a)


def test_program_stream_kinds_filter_and_bad_kinds():
    kinds = {k for k, _ in itertools.islice(program_stream(1, kinds=("garbage",)), 50)}
    assert kinds == {"garbage"}
    with pytest.raises(ValueError, match="kinds"):
        next(program_stream(1, kinds=("valid", "bogus")))
    with pytest.raises(ValueError, match="kinds"):
        next(program_stream(1, kinds=()))


def test_inputs_for_is_reproducible():
    prog = realistic_program(random.Random(3))
    a = inputs_for(prog, random.Random(5), 200)
    b = inputs_for(prog, random.Random(5), 200)
    assert a.dtype == SECCOMP_DATA and len(a) == 200
    assert a.tobytes() == b.tobytes()
    assert inputs_for(prog, random.Random(6), 200).tobytes() != a.tobytes()


# --- valid programs -------------------------------------------------------------------

def test_valid_programs_all_pass_check_and_cover_every_seccomp_code():
    rng = random.Random(2024)
    seen: Counter[int] = Counter()
    for _ in range(2000):
        prog = valid_program(rng)
        check(prog)                              # raises if the generator broke a rule
        seen.update(i.code for i in prog)
    missing = sorted(op.code_name(c) for c in op.SECCOMP_CODES - set(seen))
    assert not missing, f"never generated: {missing}"
    assert set(seen) <= op.SECCOMP_CODES


def test_valid_programs_cover_operand_forms():
    rng = random.Random(99)
    progs = [valid_program(rng) for _ in range(2000)]
    insns = [i for p in progs for i in p]
    offsets = {i.k for i in insns if i.code == op.BPF_LD | op.BPF_W | op.BPF_ABS}
    assert offsets == set(range(0, 64, 4))                           # every aligned ld [k]
    jumps_k = [i for i in insns if i.code in op.CONDITIONAL_JUMPS and op.bpf_src(i.code) == 0]
    assert any(i.k & 0x80000000 for i in jumps_k)                    # k with bit 31 set
    assert any(i.code == op.BPF_JMP | op.BPF_JSET and i.jt == 0 and i.jf for i in jumps_k)
    x_values = {i.k for i in insns if i.code == op.BPF_LDX | op.BPF_IMM}
    assert {0, 32, 33, 0xFFFFFFFF} <= x_values                       # div x by 0, big shifts
    ret_k = {i.k & 0xFFFF0000 for i in insns if i.code == op.BPF_RET | op.BPF_K}
    assert {0x80000000, 0, 0x30000, 0x50000, 0x7FC00000, 0x7FF00000, 0x7FFC0000,
            ALLOW} <= ret_k
    assert any(i.code == op.BPF_RET | op.BPF_A for i in insns)
    assert any(i.code == op.BPF_JMP | op.BPF_JA and i.k > 0 for i in insns)
    # a return that is not last: the scratch state after it carries on (and stays valid)
    assert any(p[i].is_return for p in progs for i in range(len(p) - 1))


def test_valid_program_max_len():
    rng = random.Random(0)
    assert {len(valid_program(rng, max_len=3)) for _ in range(200)} == {1, 2, 3}
    with pytest.raises(ValueError, match="max_len"):
        valid_program(rng, max_len=0)


# --- realistic programs ---------------------------------------------------------------

@pytest.mark.parametrize("arch", sorted(layouts.LAYOUTS))
def test_realistic_programs_pass_check(arch):
    rng = random.Random(arch)
    for _ in range(40):
        check(realistic_program(rng, arch=arch))


def test_realistic_shapes():
    rng = random.Random(11)
    progs = [realistic_program(rng) for _ in range(300)]
    arch_check = sum(p[0] == Instruction(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, 4) and
                     p[1].code == op.BPF_JMP | op.BPF_JEQ and p[1].k == 0xC000003E
                     for p in progs)
    assert arch_check > 200
    codes = Counter(i.code for p in progs for i in p)
    assert codes[op.BPF_JMP | op.BPF_JGE] and codes[op.BPF_JMP | op.BPF_JGT]   # binary trees
    assert codes[op.BPF_ST] and codes[op.BPF_LD | op.BPF_MEM]                  # scratch memory
    assert codes[op.BPF_RET | op.BPF_A] and codes[op.BPF_JMP | op.BPF_JSET]
    assert any(i.k == 0x3FFFFFFF and i.code == op.BPF_JMP | op.BPF_JGT for p in progs for i in p)
    args_hi = {i.k for p in progs for i in p
               if i.code == op.BPF_LD | op.BPF_W | op.BPF_ABS and i.k >= 16 and i.k % 8 == 4}
    assert args_hi                                                             # upper halves
    rets = {i.k & 0xFFFF0000 for p in progs for i in p if i.code == op.BPF_RET | op.BPF_K}
    assert rets - {0x80000000, 0, 0x30000, 0x50000, 0x7FC00000, 0x7FF00000, 0x7FFC0000, ALLOW}
    assert any(len(p) > 256 for p in progs)                                   # long jumps


def test_realistic_program_dispatches_as_built():
    """Far jumps (jxx; ja; ja) keep every syscall going to its own block."""
    rng = random.Random(5)
    lay = layouts.layout("x86_64")
    nrs = list(range(300))
    for shape in ("chain", "tree"):
        b = gen._Builder(rng, lay)
        default = b.label("default")
        b.emit(gen._J(gen.LD_ABS, 0))
        getattr(b, shape)(nrs, default)
        # every block returns ERRNO(nr): rewrite the tails the builder made
        tails, n = [], 0
        for item in b.tails:
            if isinstance(item, str) and item.startswith("sys"):
                tails += [item, gen._J(gen.RET_K, 0x50000 | n)]
                n += 1
        items = b.items + tails + [default, gen._J(gen.RET_K, ALLOW)]
        prog = Program(gen._assemble(items))
        check(prog)
        assert any(i.code == gen.JA for i in prog)
        order = [int(i.k) for i in prog if i.code == gen.JEQ]       # nr of each block, in order
        assert sorted(order) == nrs
        for block, nr in enumerate(order):
            got = ref.run_seccomp([tuple(i) for i in prog], nr, 0, 0, [0] * 6, "little")
            assert got == 0x50000 | block, (shape, nr)
        assert ref.run_seccomp([tuple(i) for i in prog], 300, 0, 0, [0] * 6, "little") == ALLOW


# --- near-valid programs ----------------------------------------------------------------

def test_near_valid_programs_fail_at_the_named_rule():
    rng = random.Random(31337)
    hits: Counter[str] = Counter()
    for _ in range(3000):
        case = near_valid_case(rng)
        with pytest.raises(InvalidProgram) as info:
            check(case.program)
        assert info.value.rule == case.rule, (case.breakage, str(info.value))
        assert info.value.index == case.index, (case.breakage, str(info.value))
        hits[case.breakage] += 1
    assert set(hits) == set(BREAKAGES)


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_breakage(breakage):
    rng = random.Random(breakage)
    for _ in range(60):
        case = near_valid_case(rng, breakage)
        assert case.breakage == breakage and case.rule == BREAKAGES[breakage]
        with pytest.raises(InvalidProgram) as info:
            check(case.program)
        assert info.value.rule == case.rule
        if case.index is not None:
            # exactly one instruction differs from a program the checker accepts
            insns = list(case.program)
            if breakage == "last_not_ret":
                insns[case.index] = Instruction(op.BPF_RET | op.BPF_K, 0, 0, ALLOW)
            elif breakage == "scratch_read_after_ret":
                insns[case.index] = Instruction(op.BPF_LD | op.BPF_IMM)
            else:
                insns[case.index] = Instruction(op.BPF_LD | op.BPF_IMM, 0, 0, 1)
            assert is_valid(Program(insns)), (breakage, case.program.instructions)


def test_near_valid_program_returns_rule_names():
    rng = random.Random(4)
    rules = {near_valid_program(rng)[1] for _ in range(400)}
    assert rules == {"bpf_check_basics_ok", "bpf_check_classic", "check_load_and_stores",
                     "seccomp_check_filter"}
    with pytest.raises(ValueError, match="unknown breakage"):
        near_valid_case(rng, "nope")


def test_scratch_read_after_ret_is_the_kernel_quirk():
    rng = random.Random(8)
    case = near_valid_case(rng, "scratch_read_after_ret")
    assert case.program[case.index - 1].is_return
    assert case.program[case.index].code in (op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM)


# --- garbage ------------------------------------------------------------------------------

def test_garbage_programs():
    rng = random.Random(12)
    blobs = [garbage_program(rng) for _ in range(1000)]
    assert all(len(b) % 8 == 0 and len(b) <= 64 * 8 for b in blobs)
    assert any(len(b) == 0 for b in blobs)
    progs = [Program.from_bytes(b) for b in blobs]
    plausible = sum(bool(len(p)) and all(i.code in op.CLASSIC_CODES for i in p) for p in progs)
    assert 200 < plausible < 1000
    assert any(is_valid(p) for p in progs) and not all(is_valid(p) for p in progs)
    assert all(len(garbage_program(rng, max_len=2)) <= 16 for _ in range(100))


# --- inputs -------------------------------------------------------------------------------

def test_constants():
    prog = Program([
        Instruction(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, 24),
        Instruction(op.BPF_ALU | op.BPF_AND | op.BPF_K, 0, 0, 0xFF00),
        Instruction(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 0, 1, 0x1200),
        Instruction(op.BPF_LDX | op.BPF_IMM, 0, 0, 7),
        Instruction(op.BPF_JMP | op.BPF_JGT | op.BPF_X, 0, 0, 0xDEAD),   # X form: k unused
        Instruction(op.BPF_ALU | op.BPF_NEG, 0, 0, 0xBEEF),              # neg: k unused
        Instruction(op.BPF_RET | op.BPF_K, 0, 0, ALLOW),
    ])
    assert constants(prog) == {0xFF00, 0x1200, 7}


@pytest.mark.parametrize("arch", ["x86_64", "s390x", "x86"])
def test_inputs_are_biased_to_the_words_compared(arch):
    lay = layouts.layout(arch)
    hi = lay.word_offset("args", 2, "hi")
    lo = lay.word_offset("args", 2, "lo")
    prog = Program([
        Instruction(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, 4),
        Instruction(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 1, 0, lay.audit_arch),
        Instruction(op.BPF_RET | op.BPF_K, 0, 0, 0),
        Instruction(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, 0),
        Instruction(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 0, 4, 4242),
        Instruction(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, hi),
        Instruction(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 0, 2, 0x1234),
        Instruction(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, lo),
        Instruction(op.BPF_JMP | op.BPF_JGT | op.BPF_K, 0, 0, 0x80000000),
        Instruction(op.BPF_RET | op.BPF_K, 0, 0, ALLOW),
    ])
    recs = inputs_for(prog, random.Random(1), 4000, layout=arch)
    seen = words(recs, lay)                      # what ld [k] sees, per the layout
    n = len(recs)
    assert (recs["arch"] == lay.audit_arch).sum() > n * 0.25
    assert (recs["arch"] != lay.audit_arch).sum() > n * 0.2
    assert (seen[:, 0] == 4242).sum() > n * 0.1
    assert ((seen[:, 0] == 4241) | (seen[:, 0] == 4243)).sum() > n * 0.1
    assert (seen[:, hi // 4] == 0x1234).sum() > n * 0.1
    assert ((recs["args"][:, 2] >> np.uint64(32)) == 0x1234).sum() > n * 0.1   # really the hi half
    for v in (0x7FFFFFFF, 0x80000000, 0x80000001):
        assert (seen[:, lo // 4] == v).sum() > n * 0.02
    assert (seen[:, lo // 4] == 0xFFFFFFFF).sum() > 0 and (seen[:, lo // 4] == 0).sum() > 0
    # every branch of the program is taken by some input
    results = Counter(_run(prog, r, lay.byteorder) for r in recs[:600])
    assert set(results) == {0, ALLOW}
    assert len(set(recs["instruction_pointer"].tolist())) >= 2


def test_inputs_follow_scratch_and_masks():
    prog = Program([
        Instruction(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, 16),
        Instruction(op.BPF_ST, 0, 0, 3),
        Instruction(op.BPF_LD | op.BPF_IMM, 0, 0, 0),
        Instruction(op.BPF_LD | op.BPF_MEM, 0, 0, 3),
        Instruction(op.BPF_ALU | op.BPF_AND | op.BPF_K, 0, 0, 0xF0),
        Instruction(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 0, 1, 0x50),
        Instruction(op.BPF_RET | op.BPF_K, 0, 0, 1),
        Instruction(op.BPF_RET | op.BPF_K, 0, 0, 2),
    ])
    recs = inputs_for(prog, random.Random(2), 2000)
    lo = (recs["args"][:, 0] & np.uint64(0xFFFFFFFF)).astype(np.int64)
    assert ((lo & 0xF0) == 0x50).sum() > 400
    assert (lo == (0x50 | 0xFFFFFF0F)).sum() > 50         # masked-off bits set too
    with pytest.raises(ValueError, match="non-negative"):
        inputs_for(prog, random.Random(2), -1)
    assert len(inputs_for(prog, random.Random(2), 0)) == 0
