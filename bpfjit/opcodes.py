"""The classic-BPF instruction encoding: fields of ``code``, kernel names, mnemonics.

``struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }``. The 16-bit
``code`` packs (include/uapi/linux/bpf_common.h)::

    bit  7 6 5 | 4 3 | 2 1 0          class LD/LDX:  mode (3) | size (2) | class (3)
         op/mode | src/size | class   class ALU/JMP: op (4)   | src (1)  | class (3)
                                      class RET:     ..       | rval (2) | class (3)

Codes above 0xff are never valid. This module names things; it decides nothing
about validity beyond the two kernel tables below (``CLASSIC_CODES``, the
``chk_code_allowed`` table of net/core/filter.c, and ``SECCOMP_CODES``, the
whitelist of kernel/seccomp.c ``seccomp_check_filter``).
"""
from __future__ import annotations

# --- classes (BPF_CLASS(code) = code & 0x07) ---
BPF_LD = 0x00
BPF_LDX = 0x01
BPF_ST = 0x02
BPF_STX = 0x03
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_RET = 0x06
BPF_MISC = 0x07

# --- load sizes (BPF_SIZE(code) = code & 0x18) ---
BPF_W = 0x00
BPF_H = 0x08
BPF_B = 0x10

# --- load modes (BPF_MODE(code) = code & 0xe0) ---
BPF_IMM = 0x00
BPF_ABS = 0x20
BPF_IND = 0x40
BPF_MEM = 0x60
BPF_LEN = 0x80
BPF_MSH = 0xA0

# --- ALU / JMP operations (BPF_OP(code) = code & 0xf0) ---
BPF_ADD = 0x00
BPF_SUB = 0x10
BPF_MUL = 0x20
BPF_DIV = 0x30
BPF_OR = 0x40
BPF_AND = 0x50
BPF_LSH = 0x60
BPF_RSH = 0x70
BPF_NEG = 0x80
BPF_MOD = 0x90
BPF_XOR = 0xA0

BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_JGT = 0x20
BPF_JGE = 0x30
BPF_JSET = 0x40

# --- operand source (BPF_SRC(code) = code & 0x08) ---
BPF_K = 0x00
BPF_X = 0x08

# --- return value source (BPF_RVAL(code) = code & 0x18) ---
BPF_A = 0x10

# --- misc (BPF_MISCOP(code) = code & 0xf8) ---
BPF_TAX = 0x00
BPF_TXA = 0x80

BPF_MEMWORDS = 16          # scratch cells M[0..15]
BPF_MAXINSNS = 4096        # include/uapi/linux/bpf_common.h
SKF_AD_OFF = -0x1000 & 0xFFFFFFFF   # ancillary-data loads start here (never valid for seccomp)


def bpf_class(code: int) -> int:
    return code & 0x07


def bpf_size(code: int) -> int:
    return code & 0x18


def bpf_mode(code: int) -> int:
    return code & 0xE0


def bpf_op(code: int) -> int:
    return code & 0xF0


def bpf_src(code: int) -> int:
    return code & 0x08


def bpf_rval(code: int) -> int:
    return code & 0x18


def bpf_miscop(code: int) -> int:
    return code & 0xF8


# Symbolic names of every code the kernel's classic BPF knows, and bpf_asm mnemonics.
ALU_OPS = {BPF_ADD: "add", BPF_SUB: "sub", BPF_MUL: "mul", BPF_DIV: "div", BPF_OR: "or",
           BPF_AND: "and", BPF_LSH: "lsh", BPF_RSH: "rsh", BPF_MOD: "mod", BPF_XOR: "xor"}
JMP_OPS = {BPF_JEQ: "jeq", BPF_JGT: "jgt", BPF_JGE: "jge", BPF_JSET: "jset"}

ALU_OP_NAMES = {BPF_ADD: "BPF_ADD", BPF_SUB: "BPF_SUB", BPF_MUL: "BPF_MUL", BPF_DIV: "BPF_DIV",
                BPF_OR: "BPF_OR", BPF_AND: "BPF_AND", BPF_LSH: "BPF_LSH", BPF_RSH: "BPF_RSH",
                BPF_NEG: "BPF_NEG", BPF_MOD: "BPF_MOD", BPF_XOR: "BPF_XOR"}
JMP_OP_NAMES = {BPF_JA: "BPF_JA", BPF_JEQ: "BPF_JEQ", BPF_JGT: "BPF_JGT", BPF_JGE: "BPF_JGE",
                BPF_JSET: "BPF_JSET"}


def _classic_codes() -> dict[int, str]:
    """Every code in net/core/filter.c ``chk_code_allowed``, with its kernel spelling."""
    names: dict[int, str] = {}
    for op, opname in ALU_OP_NAMES.items():
        if op == BPF_NEG:
            names[BPF_ALU | BPF_NEG] = "BPF_ALU|BPF_NEG"
            continue
        names[BPF_ALU | op | BPF_K] = f"BPF_ALU|{opname}|BPF_K"
        names[BPF_ALU | op | BPF_X] = f"BPF_ALU|{opname}|BPF_X"
    for size, sname in ((BPF_W, "BPF_W"), (BPF_H, "BPF_H"), (BPF_B, "BPF_B")):
        names[BPF_LD | size | BPF_ABS] = f"BPF_LD|{sname}|BPF_ABS"
        names[BPF_LD | size | BPF_IND] = f"BPF_LD|{sname}|BPF_IND"
    names[BPF_LD | BPF_W | BPF_LEN] = "BPF_LD|BPF_W|BPF_LEN"
    names[BPF_LD | BPF_IMM] = "BPF_LD|BPF_IMM"
    names[BPF_LD | BPF_MEM] = "BPF_LD|BPF_MEM"
    names[BPF_LDX | BPF_W | BPF_LEN] = "BPF_LDX|BPF_W|BPF_LEN"
    names[BPF_LDX | BPF_B | BPF_MSH] = "BPF_LDX|BPF_B|BPF_MSH"
    names[BPF_LDX | BPF_IMM] = "BPF_LDX|BPF_IMM"
    names[BPF_LDX | BPF_MEM] = "BPF_LDX|BPF_MEM"
    names[BPF_ST] = "BPF_ST"
    names[BPF_STX] = "BPF_STX"
    names[BPF_MISC | BPF_TAX] = "BPF_MISC|BPF_TAX"
    names[BPF_MISC | BPF_TXA] = "BPF_MISC|BPF_TXA"
    names[BPF_RET | BPF_K] = "BPF_RET|BPF_K"
    names[BPF_RET | BPF_A] = "BPF_RET|BPF_A"
    names[BPF_JMP | BPF_JA] = "BPF_JMP|BPF_JA"
    for op, opname in JMP_OP_NAMES.items():
        if op == BPF_JA:
            continue
        names[BPF_JMP | op | BPF_K] = f"BPF_JMP|{opname}|BPF_K"
        names[BPF_JMP | op | BPF_X] = f"BPF_JMP|{opname}|BPF_X"
    return names


#: code -> kernel spelling, for every code classic BPF accepts (``chk_code_allowed``).
CODE_NAMES: dict[int, str] = _classic_codes()
CLASSIC_CODES: frozenset[int] = frozenset(CODE_NAMES)

#: The whitelist of kernel/seccomp.c ``seccomp_check_filter``.
SECCOMP_CODES: frozenset[int] = frozenset(
    [BPF_LD | BPF_W | BPF_ABS, BPF_LD | BPF_W | BPF_LEN, BPF_LDX | BPF_W | BPF_LEN,
     BPF_RET | BPF_K, BPF_RET | BPF_A, BPF_ALU | BPF_NEG,
     BPF_LD | BPF_IMM, BPF_LDX | BPF_IMM, BPF_MISC | BPF_TAX, BPF_MISC | BPF_TXA,
     BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM, BPF_ST, BPF_STX, BPF_JMP | BPF_JA]
    + [BPF_ALU | op | src for op in (BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_AND, BPF_OR,
                                      BPF_XOR, BPF_LSH, BPF_RSH) for src in (BPF_K, BPF_X)]
    + [BPF_JMP | op | src for op in (BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JSET) for src in (BPF_K, BPF_X)]
)

CONDITIONAL_JUMPS: frozenset[int] = frozenset(
    BPF_JMP | op | src for op in (BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JSET) for src in (BPF_K, BPF_X))


def code_name(code: int) -> str:
    """Kernel spelling of ``code`` (``BPF_LD|BPF_W|BPF_ABS``), or ``0x1234`` if unknown."""
    return CODE_NAMES.get(code, f"0x{code:04x}")
