"""Seeded valid seccomp programs that stress the x86-64 BPF JIT's jump-size passes.

:func:`bpfjit.testing.program_stream` rarely makes a program this kernel's JIT
refuses (a few per million). These are built to: many forward jumps whose
byte distances sit around the 2-byte/6-byte boundary (offsets near 123 and
128 bytes), returns spread so that every later ``exit``'s backward jump to
the first epilogue sits near -128, and fillers of every translated size
(2 to 14 bytes) so that shrinking one jump moves others across the boundary,
and back: the oscillating shapes that keep the passes from converging.
Valid by construction (forward jumps inside the program, non-zero constant
divisors, constant shifts < 32, scratch cells only written), so the checker
accepts every one and only the JIT can refuse.
"""
from __future__ import annotations

import random

from .. import opcodes as op
from ..program import Instruction, Program

_LD_ABS = op.BPF_LD | op.BPF_W | op.BPF_ABS
_ALU = op.BPF_ALU
#: fillers (code, k) and the x86 bytes they become (the sizes in bpfjit.kernelcfg.x86_jit)
_FILLERS = (
    (_LD_ABS, -1), (op.BPF_LD | op.BPF_IMM, 0), (op.BPF_LD | op.BPF_IMM, 7),
    (op.BPF_LDX | op.BPF_IMM, 9), (op.BPF_LDX | op.BPF_IMM, 0),
    (_ALU | op.BPF_ADD | op.BPF_K, 1), (_ALU | op.BPF_ADD | op.BPF_K, 0x1000),
    (_ALU | op.BPF_AND | op.BPF_X, 0), (_ALU | op.BPF_MUL | op.BPF_K, 1000),
    (_ALU | op.BPF_MUL | op.BPF_K, 3), (_ALU | op.BPF_MUL | op.BPF_X, 0),
    (_ALU | op.BPF_DIV | op.BPF_K, 3), (_ALU | op.BPF_NEG, 0),
    (_ALU | op.BPF_LSH | op.BPF_K, 1), (_ALU | op.BPF_RSH | op.BPF_K, 3),
    (_ALU | op.BPF_LSH | op.BPF_X, 0), (op.BPF_ST, -2), (op.BPF_STX, -2),
    (op.BPF_MISC | op.BPF_TAX, 0), (op.BPF_MISC | op.BPF_TXA, 0),
    (op.BPF_LD | op.BPF_W | op.BPF_LEN, 0),
)
_JUMP_OPS = (op.BPF_JEQ, op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE, op.BPF_JSET)
_JUMP_KS = (0, 5, 100, 0x7FF, 0x80000000, 0xC000003E)


def _distance(rng: random.Random, room: int) -> int:
    """A jump offset in instructions, 0..room: mostly where byte distances are near 128."""
    if room <= 0:
        return 0
    pick = rng.random()
    if pick < 0.15:
        d = rng.randint(0, min(3, room))
    elif pick < 0.75:
        d = rng.randint(12, 45)
    else:
        d = rng.randint(0, min(255, room))
    return min(d, room, 255)


def _filler(rng: random.Random) -> Instruction:
    code, k = rng.choice(_FILLERS)
    if k == -1:
        k = 4 * rng.randrange(16)
    elif k == -2:
        k = rng.randrange(16)
    return Instruction(code, 0, 0, k)


def _jump(rng: random.Random, room: int) -> Instruction:
    if rng.random() < 0.15:
        return Instruction(op.BPF_JMP | op.BPF_JA, 0, 0, _distance(rng, room))
    jop = rng.choice(_JUMP_OPS)
    src = op.BPF_X if rng.random() < 0.15 else op.BPF_K
    k = 0 if src == op.BPF_X else rng.choice(_JUMP_KS)
    shape = rng.random()
    jt, jf = _distance(rng, room), _distance(rng, room)
    if shape < 0.35:
        jf = 0
    elif shape < 0.6:
        jt = 0
    return Instruction(op.BPF_JMP | jop | src, jt, jf, k)


def _ret(rng: random.Random) -> Instruction:
    if rng.random() < 0.2:
        return Instruction(op.BPF_RET | op.BPF_A, 0, 0, 0)
    return Instruction(op.BPF_RET | op.BPF_K, 0, 0,
                       rng.choice((0, 0x7FFF0000, 0x50001, 0x80000000)))


def jit_stress_program(rng: random.Random, *, max_len: int = 160) -> Program:
    """A valid program of up to ``max_len`` instructions shaped to make the JIT's passes oscillate.

    A head of jumps and fillers (no return: everything it shrinks moves the
    first epilogue), the first return, then a body where returns (backward
    jumps to that epilogue), jumps and fillers alternate.
    """
    length = rng.randint(12, max(12, max_len))
    head = rng.randint(1, max(1, min(length // 2, 60)))
    head_jumps = rng.choice((0.3, 0.6, 0.9))
    ret_share = rng.choice((0.15, 0.3, 0.5))
    jump_share = rng.choice((0.1, 0.25, 0.4))
    insns: list[Instruction] = []
    for pc in range(length - 1):
        room = length - pc - 2            # the last reachable target is the final ret
        r = rng.random()
        if pc < head:
            insns.append(_jump(rng, room) if r < head_jumps else _filler(rng))
        elif pc == head or r < ret_share:
            insns.append(_ret(rng))
        elif r < ret_share + jump_share:
            insns.append(_jump(rng, room))
        elif r < ret_share + jump_share + 0.03:
            insns.append(Instruction(_ALU | op.BPF_DIV | op.BPF_X, 0, 0, 0))
        else:
            insns.append(_filler(rng))
    insns.append(Instruction(op.BPF_RET | op.BPF_K, 0, 0, 0x7FFF0000))
    return Program(insns)


def _mutate(rng: random.Random, insns: list[Instruction]) -> list[Instruction]:
    """One small change that keeps the program valid: a filler of another size, a jump offset
    +-1, a compare constant of another encoding size, a return of the other size."""
    out = list(insns)
    n = len(out)
    pc = rng.randrange(n - 1)
    code, jt, jf, k = out[pc]
    room = n - pc - 2
    if code in op.CONDITIONAL_JUMPS:
        which = rng.random()
        if which < 0.4:
            jt = max(0, min(room, 255, jt + rng.choice((-1, 1))))
        elif which < 0.8:
            jf = max(0, min(room, 255, jf + rng.choice((-1, 1))))
        else:
            k = rng.choice(_JUMP_KS)
        out[pc] = Instruction(code, jt, jf, k)
    elif code == op.BPF_JMP | op.BPF_JA:
        out[pc] = Instruction(code, 0, 0, max(0, min(room, k + rng.choice((-1, 1)))))
    elif code & 0x07 == op.BPF_RET:
        out[pc] = _ret(rng)
    else:
        out[pc] = _filler(rng)
    return out


#: programs Linux 6.18's x86-64 JIT refuses (ENOTSUPP), found by generated streams: the
#: 34-instruction shrink of a realistic filter pinned in tests/kernel/test_checker_parity.py,
#: and a 46-instruction realistic filter (program_stream(11, kinds=("realistic",)))
SEEDS = (
    "15000b000000000015000e000000000015000e000000000015000e000000000015000e000100000015001100"
    "03010000150012005301000015001200d001000015001300d401000015001600ffffffff0500000016000000"
    "0600000001000000200000000000000054000000ff0f00004400000000000500160000000100000006000000"
    "0100000006000000010000000600000001000000200000000000000045000001000000000600000001000000"
    "0500000001000000060000000100000006000000010000000600000001000000000000000100000016000000"
    "01000000200000000000000054000000ff0f00004400000000000500160000000100000035000000ffffffff"
    "0600000001000000",
    "20000000040000001500002b2a000040200000000000000015000c001000000015000c007600000015000c00"
    "c800000015000c00db00000015000f00f200000015000f005801000015000f005d010000150012007e010000"
    "150012008101000015001500a401000015001800ad01000015001900c0010000050000001c00000006000000"
    "0000fc7f060000000000fc7f060000000000ff7f200000001800000054000000ff0f00004400000000000500"
    "1600000000000000060000005e77fc7f0600000000000600200000001000000054000000ff0f000044000000"
    "000005001600000000000000060000000000ffff200000001000000054000000ff0f00004400000000000500"
    "1600000000000000200000001000000054000000ff0f00004400000000000500160000000000000000000000"
    "0000c07f1600000000000000200000003000000054000000ff0f000044000000000005001600000000000000"
    "06000000a8a436660600000000000000",
)


def oscillating_programs(seed: int, *, config=None, seeds=SEEDS):
    """An endless stream of ``("jit_search", bytes)``: a walk around programs the JIT refuses.

    Random programs are refused a few times per million; one small valid change
    (:func:`_mutate`) of a refused program is refused about half the time. The
    walk starts from ``seeds`` (hex), takes one or two changes per step, stays
    on refused programs (as the JIT model :mod:`bpfjit.kernelcfg.x86_jit` for
    ``config`` sees them), sometimes steps onto an accepted neighbour, and
    collects refused programs as restart points. Every visited program is
    yielded, refused or not: a kernel comparison sees both sides of the
    boundary. The model only steers; the kernel judges every program.
    """
    from ..kernelcfg import KERNELS
    from ..kernelcfg.x86_jit import jit_result
    cfg = config or KERNELS["linux-6.18-x86_64-jit-always-on"]
    rng = random.Random(seed)
    pool = [list(Program.from_bytes(bytes.fromhex(h))) for h in seeds]
    cur = rng.choice(pool)
    while True:
        cand = _mutate(rng, cur)
        if rng.random() < 0.3:
            cand = _mutate(rng, cand)
        refused = not jit_result(Program(cand), cfg).jited
        yield "jit_search", Program(cand).to_bytes("little")
        if refused:
            cur = cand
            if len(pool) < 1000 and rng.random() < 0.05:
                pool.append(cand)
        elif rng.random() < 0.1:
            cur = cand
        if rng.random() < 0.01:
            cur = rng.choice(pool)


__all__ = ["jit_stress_program", "oscillating_programs", "SEEDS"]
