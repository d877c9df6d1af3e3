"""Testing: near-valid programs — a valid program with exactly one kernel rule broken, and the rule named.

:func:`near_valid_program` / :func:`near_valid_case` take a program of
:mod:`bpfjit.testing.programs` (valid or realistic) and break one rule of
the kernel's checker (``BREAKAGES``: breakage -> the kernel function that
refuses it, i.e. ``InvalidProgram.rule``). Split from
:mod:`bpfjit.testing.programs`, which re-exports these names.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .. import opcodes as op
from ..program import Program
from ..seccomp import actions as act
from .programs import (ALU_OPS, JA, JMP_OPS, LD_ABS, LD_IMM, LD_LEN, LD_MEM, LDX_IMM, LDX_LEN,
                       LDX_MEM, NEG, RET_A, RET_K, ST, STX, TAX, TXA, _I, _MemScan,
                       _realistic_insns, _valid_insns, get_layout, random_action, random_k)


# --- near-valid programs: exactly one kernel rule broken --------------------------------

_BY_RULE = {
    "bpf_check_basics_ok": ("length_0", "length_over_4096"),
    "bpf_check_classic": ("unknown_opcode", "div_by_0", "shift_ge_32", "scratch_index_ge_16",
                          "ja_out_of_range", "jt_jf_out_of_range", "last_not_ret",
                          "unknown_ancillary"),
    "check_load_and_stores": ("scratch_read_before_write", "scratch_read_after_ret"),
    "seccomp_check_filter": ("classic_not_seccomp", "ld_unaligned", "ld_past_seccomp_data",
                             "ld_known_ancillary"),
}
#: breakage name -> the kernel function that refuses it (``InvalidProgram.rule``)
BREAKAGES: dict[str, str] = {b: rule for rule, names in _BY_RULE.items() for b in names}

#: codes the classic table has and seccomp refuses (with a k that passes bpf_check_classic)
CLASSIC_NOT_SECCOMP = (
    op.BPF_ALU | op.BPF_MOD | op.BPF_K, op.BPF_ALU | op.BPF_MOD | op.BPF_X,
    op.BPF_LD | op.BPF_H | op.BPF_ABS, op.BPF_LD | op.BPF_B | op.BPF_ABS,
    op.BPF_LD | op.BPF_W | op.BPF_IND, op.BPF_LD | op.BPF_H | op.BPF_IND,
    op.BPF_LD | op.BPF_B | op.BPF_IND, op.BPF_LDX | op.BPF_B | op.BPF_MSH,
)

#: codes that leave jumps and scratch-memory state alone, so replacing one keeps the other rules
_PLAIN = frozenset({LD_ABS, LD_IMM, LDX_IMM, LD_LEN, LDX_LEN, LD_MEM, LDX_MEM, TAX, TXA, NEG}
                   | {op.BPF_ALU | o | s for o in ALU_OPS for s in (op.BPF_K, op.BPF_X)})


@dataclass(frozen=True)
class NearValid:
    program: Program
    rule: str          # the kernel function that refuses it
    breakage: str      # what was broken (a key of BREAKAGES)
    index: int | None  # the instruction broken, None for the length


def _unknown_code(rng: random.Random) -> int:
    while True:
        r = rng.random()
        if r < 0.3:   # the classic-looking ones the kernel does not have: ret x, neg x, jmp x...
            code = rng.choice((op.BPF_RET | op.BPF_X, op.BPF_ALU | op.BPF_NEG | op.BPF_X,
                               op.BPF_JMP | op.BPF_JA | op.BPF_X, op.BPF_ST | op.BPF_MEM,
                               op.BPF_LDX | op.BPF_W | op.BPF_ABS, op.BPF_ALU | 0xB0,
                               op.BPF_JMP | 0x50, op.BPF_LD | 0x18 | op.BPF_ABS))
        elif r < 0.8:
            code = rng.randrange(0x100)
        else:
            code = rng.randrange(0x100, 0x10000)
        if code not in op.CLASSIC_CODES:
            return code


def _plain_base(rng: random.Random) -> tuple[list[_I], list[int]]:
    """A valid program and the positions (never the last) of 'plain' instructions in it."""
    for _ in range(100):
        insns = _valid_insns(rng, rng.choice((8, 24, 48))) if rng.random() < 0.7 \
            else _realistic_insns(rng, get_layout(rng.choice(("x86_64", "aarch64", "x86"))))
        spots = [i for i, ins in enumerate(insns[:-1]) if ins.code in _PLAIN]
        if spots:
            return insns, spots
    return [_I(LD_ABS, 0, 0, 0), _I(RET_K, 0, 0, act.SECCOMP_RET_ALLOW)], [0]


def _memvalid(insns: list[_I]) -> list[int]:
    """The scratch cells the kernel's scan counts as written on entry to each instruction."""
    scan = _MemScan(len(insns))
    out = []
    for pc, insn in enumerate(insns):
        out.append(scan.enter(pc))
        scan.step(pc, insn)
    return out


def near_valid_case(rng: random.Random, breakage: str | None = None) -> NearValid:
    """A valid program with one rule broken, with the breakage, rule and instruction named."""
    insns, rule, breakage, index = _near_valid(rng, breakage)
    return NearValid(Program(insns, source=f"near_valid:{breakage}"), rule, breakage, index)


def _near_valid(rng: random.Random, breakage: str | None
                ) -> tuple[list[_I], str, str, int | None]:
    if breakage is None:
        breakage = rng.choice(sorted(BREAKAGES))
    if breakage not in BREAKAGES:
        raise ValueError(f"unknown breakage {breakage!r}; choose from {', '.join(BREAKAGES)}")
    rule = BREAKAGES[breakage]
    if breakage == "length_0":
        return [], rule, breakage, None
    if breakage == "length_over_4096":
        n = rng.choice((op.BPF_MAXINSNS + 1, op.BPF_MAXINSNS + 2, rng.randint(4097, 4400)))
        loads = [_I(LD_ABS, 0, 0, 4 * w) for w in range(16)]
        body = [loads[rng.randrange(16)] for _ in range(n - 1)]
        return body + [_I(RET_K, 0, 0, random_action(rng))], rule, breakage, None
    if breakage == "scratch_read_after_ret":
        # straight-line code with no store, a return, then a read: the state after the
        # return (no cell written) flows into the next instruction
        pre = [_I(rng.choice((LD_ABS, LD_IMM)), 0, 0, 4 * rng.randrange(16))
               for _ in range(rng.randrange(4))]
        cell = rng.randrange(op.BPF_MEMWORDS)
        insns = pre + [_I(RET_K, 0, 0, random_action(rng)),
                       _I(rng.choice((LD_MEM, LDX_MEM)), 0, 0, cell), _I(RET_A)]
        return insns, rule, breakage, len(pre) + 1
    insns, spots = _plain_base(rng)
    last = len(insns) - 1
    if breakage == "last_not_ret":
        insns[last] = _I(rng.choice(sorted(_PLAIN - {LD_MEM, LDX_MEM})), 0, 0,
                                  4 * rng.randrange(16))
        if insns[last].code == op.BPF_ALU | op.BPF_DIV | op.BPF_K:
            insns[last] = _I(insns[last].code, 0, 0, 1)
        if insns[last].code in (op.BPF_ALU | op.BPF_LSH | op.BPF_K, op.BPF_ALU | op.BPF_RSH | op.BPF_K):
            insns[last] = _I(insns[last].code, 0, 0, 31)
        return insns, rule, breakage, last
    memvalid = _memvalid(insns) if breakage == "scratch_read_before_write" else []
    if breakage == "scratch_read_before_write":
        spots = [i for i in spots if memvalid[i] != 0xFFFF]
        if not spots:
            insns, spots, memvalid = [_I(LD_IMM, 0, 0, 1), _I(RET_A)], [0], [0, 0]
    at = rng.choice(spots)
    room = len(insns) - at - 1     # a jump offset >= room leaves the program
    if breakage == "unknown_opcode":
        new = _I(_unknown_code(rng), rng.randrange(256), rng.randrange(256), random_k(rng))
    elif breakage == "div_by_0":
        new = _I(op.BPF_ALU | rng.choice((op.BPF_DIV, op.BPF_MOD)) | op.BPF_K)
    elif breakage == "shift_ge_32":
        new = _I(op.BPF_ALU | rng.choice((op.BPF_LSH, op.BPF_RSH)) | op.BPF_K, 0, 0,
                          rng.choice((32, 33, 63, 64, 0xFFFFFFFF, rng.randrange(32, 1 << 32))))
    elif breakage == "scratch_index_ge_16":
        new = _I(rng.choice((LD_MEM, LDX_MEM, ST, STX)), 0, 0,
                          rng.choice((16, 17, 31, 32, 0xFFFFFFFF, rng.randrange(16, 1 << 32))))
    elif breakage == "ja_out_of_range":
        new = _I(JA, 0, 0, rng.choice((room, room + 1, rng.randrange(room, 1 << 32))))
    elif breakage == "jt_jf_out_of_range":
        if room > 255:       # too far from the end for an 8-bit offset: break it with a ja
            new = _I(JA, 0, 0, room)
        else:
            bad, good = rng.randrange(room, 256), rng.randrange(room)
            jt, jf = rng.choice(((bad, good), (good, bad), (bad, bad)))
            new = _I(op.BPF_JMP | rng.choice(JMP_OPS) | rng.choice((op.BPF_K, op.BPF_X)),
                              jt, jf, random_k(rng))
    elif breakage == "unknown_ancillary":
        k = rng.choice((op.SKF_AD_OFF + 64, op.SKF_AD_OFF + 2, op.SKF_AD_OFF + 0xFFC,
                        rng.randrange(op.SKF_AD_OFF + 61, 1 << 32)))
        if k - op.SKF_AD_OFF <= 60 and (k - op.SKF_AD_OFF) % 4 == 0:
            k = op.SKF_AD_OFF + 64
        new = _I(op.BPF_LD | rng.choice((op.BPF_W, op.BPF_H, op.BPF_B)) | op.BPF_ABS,
                          0, 0, k)
    elif breakage == "scratch_read_before_write":
        missing = [c for c in range(op.BPF_MEMWORDS) if not memvalid[at] >> c & 1]
        new = _I(rng.choice((LD_MEM, LDX_MEM)), 0, 0, rng.choice(missing))
    elif breakage == "classic_not_seccomp":
        code = rng.choice(CLASSIC_NOT_SECCOMP)
        k = rng.getrandbits(rng.choice((4, 8, 31))) or 1
        if code in (op.BPF_LD | op.BPF_H | op.BPF_ABS, op.BPF_LD | op.BPF_B | op.BPF_ABS) and \
                rng.random() < 0.2:
            k = op.SKF_AD_OFF + 4 * rng.randrange(16)   # a known ancillary load: classic accepts it
        new = _I(code, 0, 0, k)
    elif breakage == "ld_unaligned":
        new = _I(LD_ABS, 0, 0, rng.choice([k for k in range(64) if k % 4]))
    elif breakage == "ld_past_seccomp_data":
        new = _I(LD_ABS, 0, 0, rng.choice((64, 68, 128, 4096, rng.randrange(64, op.SKF_AD_OFF))))
    elif breakage == "ld_known_ancillary":
        new = _I(LD_ABS, 0, 0, op.SKF_AD_OFF + 4 * rng.randrange(16))
    else:  # pragma: no cover - BREAKAGES and this chain are kept in step
        raise AssertionError(breakage)
    insns[at] = new
    return insns, rule, breakage, at


def near_valid_program(rng: random.Random) -> tuple[Program, str]:
    """A valid program with exactly one rule broken, and the kernel function refusing it."""
    case = near_valid_case(rng)
    return case.program, case.rule
