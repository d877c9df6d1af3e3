"""The classic-BPF interpreter for seccomp filters.

The kernel runs a seccomp filter in three steps, and this file follows them:

1. bpf_check_classic() (net/core/filter.c) and seccomp_check_filter()
   (kernel/seccomp.c) reject bad programs when the filter is installed.
   This interpreter is not a verifier: it checks an instruction only when it
   reaches it, and raises ValueError (naming the instruction index) where
   those two functions would have refused the program.
2. bpf_convert_filter() (net/core/filter.c) translates classic BPF into eBPF;
   A and X become 64-bit registers holding zero-extended 32-bit values, and
   the ALU operations become 32-bit (BPF_ALU) eBPF operations.
3. ___bpf_prog_run() (kernel/bpf/core.c) executes the eBPF program.

Every value below is a Python int kept in 0..2**32-1.
"""

from .opcodes import (
    BPF_A, BPF_ABS, BPF_ADD, BPF_ALU, BPF_AND, BPF_DIV, BPF_IMM, BPF_JA,
    BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_LDX,
    BPF_LEN, BPF_LSH, BPF_MAXINSNS, BPF_MEM, BPF_MEMWORDS, BPF_MISC, BPF_MUL,
    BPF_NEG, BPF_OP, BPF_OR, BPF_RET, BPF_RSH, BPF_SRC, BPF_ST, BPF_STX,
    BPF_SUB, BPF_TAX, BPF_TXA, BPF_W, BPF_X, BPF_XOR,
)
from .seccomp_data import SECCOMP_DATA_SIZE, check_byteorder, load_word, seccomp_data_image

_U32 = 0xFFFFFFFF

# ___bpf_prog_run, the ALU()/SHT() macros for BPF_ALU (32-bit) operations:
# "DST = (u32) DST OP (u32) SRC" (and IMM for BPF_K). The result is masked
# with _U32 by the caller. BPF_DIV is "DST = (u32) DST / (u32) SRC" (do_div).
# BPF_MOD is absent on purpose: seccomp_check_filter does not allow it.
_ALU_OPS = {
    BPF_ADD: lambda a, b: a + b,
    BPF_SUB: lambda a, b: a - b,
    BPF_MUL: lambda a, b: a * b,
    BPF_DIV: lambda a, b: a // b,
    BPF_OR: lambda a, b: a | b,
    BPF_AND: lambda a, b: a & b,
    BPF_LSH: lambda a, b: a << b,
    BPF_RSH: lambda a, b: a >> b,
    BPF_XOR: lambda a, b: a ^ b,
}

# ___bpf_prog_run, JMP_JEQ/JGT/JGE/JSET: unsigned comparisons. A is a
# zero-extended 32-bit value, and bpf_convert_filter moves a k with the top
# bit set through BPF_MOV32_IMM into a temporary register ("BPF immediates
# are signed, zero extend immediate into tmp register"), so both operands
# are unsigned 32-bit.
_JMP_TESTS = {
    BPF_JEQ: lambda a, b: a == b,
    BPF_JGT: lambda a, b: a > b,
    BPF_JGE: lambda a, b: a >= b,
    BPF_JSET: lambda a, b: (a & b) != 0,
}

_ALU_CODES = {BPF_ALU | op | src for op in _ALU_OPS for src in (BPF_K, BPF_X)}
_JMP_CODES = {BPF_JMP | op | src for op in _JMP_TESTS for src in (BPF_K, BPF_X)}


def _fetch(insns, pc):
    """Instruction pc as four checked ints (the fields of struct sock_filter)."""
    if pc >= len(insns):
        # bpf_check_classic: the last instruction must be BPF_RET, so no
        # valid program can run past its end.
        raise ValueError(f"instruction {pc - 1}: execution falls off the end of the program")
    try:
        code, jt, jf, k = insns[pc]
    except (TypeError, ValueError):
        raise ValueError(f"instruction {pc}: not a (code, jt, jf, k) 4-tuple: {insns[pc]!r}") from None
    for name, value, high in (("code", code, 0xFFFF), ("jt", jt, 0xFF), ("jf", jf, 0xFF), ("k", k, _U32)):
        if not isinstance(value, int) or not 0 <= value <= high:
            raise ValueError(f"instruction {pc}: {name} {value!r} is outside 0..{high:#x}")
    return code, jt, jf, k


def _jump(pc, offset, n):
    """Target of a jump from pc; bpf_check_classic requires it inside the program."""
    target = pc + 1 + offset
    if target >= n:
        raise ValueError(f"instruction {pc}: jump target {target} is outside the {n}-instruction program")
    return target


def _mem(pc, k):
    """Scratch cell index; bpf_check_classic: "if (ftest->k >= BPF_MEMWORDS)" rejects."""
    if k >= BPF_MEMWORDS:
        raise ValueError(f"instruction {pc}: scratch memory index {k} is not below {BPF_MEMWORDS}")
    return k


def run(insns, image, *, byteorder="little", on_step=None):
    """Run a seccomp filter over a struct seccomp_data image; return its 32-bit value.

    insns: (code, jt, jf, k) tuples. image: the 64-byte struct seccomp_data as
    the target lays it out. byteorder: the target's byte order, used by
    BPF_LD|BPF_W|BPF_ABS. on_step(index, code, jt, jf, k, A, X) is called
    before each instruction runs, with A and X as they are before it.
    """
    check_byteorder(byteorder)
    image = bytes(image)
    if len(image) != SECCOMP_DATA_SIZE:
        raise ValueError(f"image must be {SECCOMP_DATA_SIZE} bytes, not {len(image)}")
    n = len(insns)
    if not 1 <= n <= BPF_MAXINSNS:
        # bpf_check_basics_ok: "if (flen == 0 || flen > BPF_MAXINSNS) return false;"
        raise ValueError(f"instruction 0: program length {n} is not in 1..{BPF_MAXINSNS}")

    # bpf_convert_filter: "Classic BPF expects A and X to be reset first"
    # (BPF_ALU32_REG(BPF_XOR, ...) on BPF_REG_A and on BPF_REG_X).
    A = 0
    X = 0
    # The scratch words live on the eBPF stack; bpf_check_classic's
    # check_load_and_stores() makes sure each is written before it is read.
    # They start at 0 here so a read-before-write is at least deterministic.
    M = [0] * BPF_MEMWORDS
    pc = 0
    while True:
        code, jt, jf, k = _fetch(insns, pc)
        if on_step is not None:
            on_step(pc, code, jt, jf, k, A, X)

        if code == BPF_LD | BPF_W | BPF_ABS:
            # seccomp_check_filter: "if (k >= sizeof(struct seccomp_data) || k & 3)
            # return -EINVAL;" and rewrites the opcode to BPF_LDX|BPF_W|BPF_ABS,
            # which bpf_convert_filter turns into a native 32-bit load from the
            # context: BPF_LDX_MEM(BPF_W, BPF_REG_A, BPF_REG_CTX, k).
            if k >= SECCOMP_DATA_SIZE or k & 3:
                raise ValueError(f"instruction {pc}: load offset {k} is not an aligned offset below 64")
            A = load_word(image, k, byteorder)
        elif code == BPF_LD | BPF_W | BPF_LEN:
            # seccomp_check_filter: rewritten to BPF_LD|BPF_IMM, k = sizeof(struct seccomp_data).
            A = SECCOMP_DATA_SIZE
        elif code == BPF_LDX | BPF_W | BPF_LEN:
            # seccomp_check_filter: rewritten to BPF_LDX|BPF_IMM, k = sizeof(struct seccomp_data).
            X = SECCOMP_DATA_SIZE
        elif code == BPF_LD | BPF_IMM:
            # bpf_convert_filter: BPF_MOV32_IMM(BPF_REG_A, k).
            A = k
        elif code == BPF_LDX | BPF_IMM:
            # bpf_convert_filter: BPF_MOV32_IMM(BPF_REG_X, k).
            X = k
        elif code == BPF_LD | BPF_MEM:
            # bpf_convert_filter: BPF_LDX_MEM(BPF_W, BPF_REG_A, BPF_REG_FP, -stack_off).
            A = M[_mem(pc, k)]
        elif code == BPF_LDX | BPF_MEM:
            # bpf_convert_filter: BPF_LDX_MEM(BPF_W, BPF_REG_X, BPF_REG_FP, -stack_off).
            X = M[_mem(pc, k)]
        elif code == BPF_ST:
            # bpf_convert_filter: BPF_STX_MEM(BPF_W, BPF_REG_FP, BPF_REG_A, -stack_off).
            M[_mem(pc, k)] = A
        elif code == BPF_STX:
            # bpf_convert_filter: BPF_STX_MEM(BPF_W, BPF_REG_FP, BPF_REG_X, -stack_off).
            M[_mem(pc, k)] = X
        elif code == BPF_ALU | BPF_NEG:
            # ___bpf_prog_run ALU_NEG: "DST = (u32) -DST".
            A = (-A) & _U32
        elif code in _ALU_CODES:
            op = BPF_OP(code)
            if BPF_SRC(code) == BPF_X:
                operand = X
                if op == BPF_DIV and X == 0:
                    # bpf_convert_filter: "if (X == 0) { A = 0; exit }" is emitted
                    # before every BPF_DIV|BPF_X: "For cBPF programs, this was
                    # always return 0."
                    return 0
                if op in (BPF_LSH, BPF_RSH):
                    # ___bpf_prog_run SHT(): "DST = (u32) DST OP ((u32) SRC & 31)".
                    operand = X & 31
            else:
                operand = k
                if op == BPF_DIV and k == 0:
                    # bpf_check_classic: "Check for division by zero" rejects k == 0.
                    raise ValueError(f"instruction {pc}: division by constant 0")
                if op in (BPF_LSH, BPF_RSH) and k >= 32:
                    # bpf_check_classic: "if (ftest->k >= 32) return -EINVAL;".
                    raise ValueError(f"instruction {pc}: shift by constant {k} (must be below 32)")
            # ___bpf_prog_run ALU()/SHT(): 32-bit operation, result zero-extended.
            A = _ALU_OPS[op](A, operand) & _U32
        elif code == BPF_JMP | BPF_JA:
            # bpf_convert_filter: target = i + fp->k + 1; bpf_check_classic:
            # "if (ftest->k >= (unsigned int)(flen - pc - 1)) return -EINVAL;".
            pc = _jump(pc, k, n)
            continue
        elif code in _JMP_CODES:
            # bpf_check_classic: "Both conditionals must be safe" (both targets
            # are checked, whichever is taken); bpf_convert_filter: targets are
            # i + jt + 1 and i + jf + 1.
            target_true, target_false = _jump(pc, jt, n), _jump(pc, jf, n)
            operand = X if BPF_SRC(code) == BPF_X else k
            pc = target_true if _JMP_TESTS[BPF_OP(code)](A, operand) else target_false
            continue
        elif code == BPF_RET | BPF_K:
            # bpf_convert_filter: 32-bit move of k into BPF_REG_0, then BPF_EXIT_INSN().
            return k
        elif code == BPF_RET | BPF_A:
            # bpf_convert_filter: 32-bit move of A into BPF_REG_0, then BPF_EXIT_INSN().
            return A
        elif code == BPF_MISC | BPF_TAX:
            # bpf_convert_filter: BPF_MOV64_REG(BPF_REG_X, BPF_REG_A).
            X = A
        elif code == BPF_MISC | BPF_TXA:
            # bpf_convert_filter: BPF_MOV64_REG(BPF_REG_A, BPF_REG_X).
            A = X
        else:
            # seccomp_check_filter: "default: return -EINVAL;" for every opcode
            # not explicitly allowed (BPF_MOD, BPF_LD|BPF_H, BPF_IND, BPF_MSH, ...).
            raise ValueError(f"instruction {pc}: opcode {code:#06x} is not allowed in a seccomp filter")
        pc += 1


def run_seccomp(insns, nr, arch, instruction_pointer, args, byteorder):
    """Build the struct seccomp_data image in byteorder and run the filter on it."""
    image = seccomp_data_image(nr, arch, instruction_pointer, args, byteorder)
    return run(insns, image, byteorder=byteorder)
