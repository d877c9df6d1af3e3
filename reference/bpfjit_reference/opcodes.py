"""Classic BPF opcode constants, spelled as the kernel's UAPI headers spell them.

Values are copied from include/uapi/linux/bpf_common.h and
include/uapi/linux/filter.h. Only names, no behaviour: the meaning of each
opcode lives in interpreter.py.
"""

# --- include/uapi/linux/bpf_common.h ------------------------------------

# Instruction classes: BPF_CLASS(code) = code & 0x07
BPF_LD = 0x00
BPF_LDX = 0x01
BPF_ST = 0x02
BPF_STX = 0x03
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_RET = 0x06
BPF_MISC = 0x07

# ld/ldx fields: BPF_SIZE(code) = code & 0x18, BPF_MODE(code) = code & 0xe0
BPF_W = 0x00
BPF_H = 0x08
BPF_B = 0x10
BPF_IMM = 0x00
BPF_ABS = 0x20
BPF_IND = 0x40
BPF_MEM = 0x60
BPF_LEN = 0x80
BPF_MSH = 0xA0

# alu/jmp fields: BPF_OP(code) = code & 0xf0, BPF_SRC(code) = code & 0x08
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

BPF_K = 0x00
BPF_X = 0x08

# --- include/uapi/linux/filter.h ----------------------------------------

# ret - BPF_K and BPF_X also apply: BPF_RVAL(code) = code & 0x18
BPF_A = 0x10

# misc: BPF_MISCOP(code) = code & 0xf8
BPF_TAX = 0x00
BPF_TXA = 0x80

# Number of scratch memory words M[0..15].
BPF_MEMWORDS = 16

# include/linux/bpf.h (not UAPI, but the limit bpf_check_basics_ok enforces).
BPF_MAXINSNS = 4096


def BPF_CLASS(code):
    return code & 0x07


def BPF_OP(code):
    return code & 0xF0


def BPF_SRC(code):
    return code & 0x08
