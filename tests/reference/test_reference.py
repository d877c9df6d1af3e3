"""Tests for the reference interpreter (reference/bpfjit_reference).

Every expectation here is worked out by hand from the kernel's rules, not
taken from the code under test.
"""

import json
import struct
import sys
from pathlib import Path

import pytest

try:
    import bpfjit_reference as ref
except ImportError:  # not installed yet: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reference"))
    import bpfjit_reference as ref

VECTORS = Path(__file__).resolve().parents[1] / "vectors"

ARCH_X86_64 = 0xC000003E
ALLOW = 0x7FFF0000


def ret_k(k):
    return (0x06, 0, 0, k)


RET_A = (0x16, 0, 0, 0)
TXA = (0x87, 0, 0, 0)
TAX = (0x07, 0, 0, 0)


def ld_imm(k):
    return (0x00, 0, 0, k)


def ldx_imm(k):
    return (0x01, 0, 0, k)


ZERO = bytes(64)


def run(insns, image=ZERO, **kw):
    return ref.run(insns, image, **kw)


# --- API surface -----------------------------------------------------------


def test_all_exports():
    assert sorted(ref.__all__) == sorted(["run", "run_seccomp", "load_word", "seccomp_data_image", "run_stack"])
    for name in ref.__all__:
        assert callable(getattr(ref, name))


def test_shares_nothing_with_bpfjit():
    src = Path(ref.__file__).resolve().parent
    for path in src.glob("*.py"):
        text = path.read_text()
        assert "import bpfjit\n" not in text and "from bpfjit " not in text and "from bpfjit." not in text


# --- seccomp_data image and loads -------------------------------------------

IMAGE_ARGS = [0x1122334455667788, 1, 2, 3, 4, 0xFFFFFFFF00000000]


def test_image_little_endian_layout():
    img = ref.seccomp_data_image(59, ARCH_X86_64, 0x0102030405060708, IMAGE_ARGS, "little")
    assert len(img) == 64
    assert img[0:4] == bytes([59, 0, 0, 0])
    assert img[4:8] == bytes([0x3E, 0, 0, 0xC0])
    assert img[8:16] == bytes([8, 7, 6, 5, 4, 3, 2, 1])
    assert img[16:24] == bytes([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
    assert ref.load_word(img, 16, "little") == 0x55667788  # low word first
    assert ref.load_word(img, 20, "little") == 0x11223344
    assert ref.load_word(img, 56, "little") == 0
    assert ref.load_word(img, 60, "little") == 0xFFFFFFFF


def test_image_big_endian_layout():
    img = ref.seccomp_data_image(59, 0x80000016, 0x0102030405060708, IMAGE_ARGS, "big")
    assert img[0:4] == bytes([0, 0, 0, 59])
    assert img[4:8] == bytes([0x80, 0, 0, 0x16])
    assert img[8:16] == bytes([1, 2, 3, 4, 5, 6, 7, 8])
    assert img[16:24] == bytes([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
    assert ref.load_word(img, 16, "big") == 0x11223344  # high word first
    assert ref.load_word(img, 20, "big") == 0x55667788
    assert ref.load_word(img, 56, "big") == 0xFFFFFFFF
    assert ref.load_word(img, 60, "big") == 0
    # the same bytes read the other way round
    assert ref.load_word(img, 16, "little") == 0x44332211


@pytest.mark.parametrize("nr", [-1, 0xFFFFFFFF])
def test_image_nr_signed_or_unsigned(nr):
    assert ref.seccomp_data_image(nr, 0, 0, [0] * 6, "little")[0:4] == b"\xff\xff\xff\xff"
    assert ref.seccomp_data_image(-(2**31), 0, 0, [0] * 6, "big")[0:4] == b"\x80\x00\x00\x00"


@pytest.mark.parametrize(
    "nr, arch, ip, args, order",
    [
        (2**32, 0, 0, [0] * 6, "little"),
        (-(2**31) - 1, 0, 0, [0] * 6, "little"),
        (0, -1, 0, [0] * 6, "little"),
        (0, 0, 2**64, [0] * 6, "little"),
        (0, 0, 0, [0] * 5, "little"),
        (0, 0, 0, [0] * 5 + [-1], "little"),
        (0, 0, 0, [0] * 6, "middle"),
    ],
)
def test_image_rejects_bad_fields(nr, arch, ip, args, order):
    with pytest.raises(ValueError):
        ref.seccomp_data_image(nr, arch, ip, args, order)


def test_load_word_bounds():
    with pytest.raises(ValueError):
        ref.load_word(ZERO, 61, "little")
    with pytest.raises(ValueError):
        ref.load_word(ZERO, -4, "little")
    assert ref.load_word(bytes(range(64)), 1, "big") == 0x01020304


# --- loads ---------------------------------------------------------------------


def test_ld_abs_little_and_big():
    prog = [(0x20, 0, 0, 20), RET_A]  # A = high/low word of args[0]
    args = [0xAAAAAAAA00000005] + [0] * 5
    assert ref.run_seccomp(prog, 1, ARCH_X86_64, 0, args, "little") == 0xAAAAAAAA
    assert ref.run_seccomp(prog, 1, 0x16, 0, args, "big") == 5
    nr_prog = [(0x20, 0, 0, 0), RET_A]
    assert ref.run_seccomp(nr_prog, -1, 0, 0, [0] * 6, "big") == 0xFFFFFFFF
    img = ref.seccomp_data_image(7, 0x16, 0, [0] * 6, "big")
    assert ref.run(nr_prog, img, byteorder="big") == 7
    assert ref.run(nr_prog, img, byteorder="little") == 0x07000000


def test_ld_len_and_ldx_len():
    assert run([(0x80, 0, 0, 0), RET_A]) == 64
    assert run([(0x81, 0, 0, 0), TXA, RET_A]) == 64


def test_imm_and_scratch_memory():
    prog = [
        ld_imm(0xDEADBEEF),
        (0x02, 0, 0, 3),  # M[3] = A
        ldx_imm(0x12345678),
        (0x03, 0, 0, 15),  # M[15] = X
        ld_imm(0),
        ldx_imm(0),
        (0x61, 0, 0, 3),  # X = M[3]
        (0x60, 0, 0, 15),  # A = M[15]
        (0x0C, 0, 0, 0),  # A += X
        RET_A,
    ]
    assert run(prog) == (0xDEADBEEF + 0x12345678) & 0xFFFFFFFF == 0xF0E21567


def test_scratch_starts_at_zero_and_registers_start_at_zero():
    assert run([(0x60, 0, 0, 0), RET_A]) == 0
    assert run([TXA, RET_A]) == 0
    assert run([RET_A]) == 0


def test_tax_txa():
    assert run([ld_imm(9), TAX, ld_imm(1), TXA, RET_A]) == 9


# --- ALU -----------------------------------------------------------------------

ALU_CASES = [
    # (op, A, operand, expected)
    (0x00, 0xFFFFFFFF, 2, 1),  # ADD wraps
    (0x00, 5, 7, 12),
    (0x10, 0, 1, 0xFFFFFFFF),  # SUB wraps
    (0x10, 10, 3, 7),
    (0x20, 0x10000, 0x10000, 0),  # MUL wraps
    (0x20, 0xFFFFFFFF, 0xFFFFFFFF, 1),
    (0x20, 6, 7, 42),
    (0x30, 7, 2, 3),  # DIV truncates, unsigned
    (0x30, 0xFFFFFFFF, 0x10, 0x0FFFFFFF),
    (0x40, 0xF0F0, 0x0F0F, 0xFFFF),  # OR
    (0x50, 0xF0F0, 0x0FF0, 0x00F0),  # AND
    (0x60, 0x80000001, 1, 2),  # LSH drops bits
    (0x60, 1, 31, 0x80000000),
    (0x70, 0x80000000, 31, 1),  # RSH is logical
    (0x70, 0xFFFFFFFF, 4, 0x0FFFFFFF),
    (0xA0, 0xFF00FF00, 0xFFFF0000, 0x00FFFF00),  # XOR
]


@pytest.mark.parametrize("op, a, operand, expected", ALU_CASES)
def test_alu_k(op, a, operand, expected):
    assert run([ld_imm(a), (0x04 | op, 0, 0, operand), RET_A]) == expected


@pytest.mark.parametrize("op, a, operand, expected", ALU_CASES)
def test_alu_x(op, a, operand, expected):
    assert run([ld_imm(a), ldx_imm(operand), (0x0C | op, 0, 0, 0), RET_A]) == expected


@pytest.mark.parametrize("a, expected", [(1, 0xFFFFFFFF), (0, 0), (0x80000000, 0x80000000), (0xFFFFFFFF, 1)])
def test_neg(a, expected):
    assert run([ld_imm(a), (0x84, 0, 0, 0), RET_A]) == expected


def test_div_by_x_zero_returns_zero():
    prog = [ld_imm(1234), ldx_imm(0), (0x3C, 0, 0, 0), ret_k(ALLOW)]
    assert run(prog) == 0


@pytest.mark.parametrize("x, expected_lsh, expected_rsh", [(33, 2, 0x40000000), (32, 1, 0x80000000), (63, 0x80000000, 1)])
def test_shift_by_x_uses_low_five_bits(x, expected_lsh, expected_rsh):
    assert run([ld_imm(1), ldx_imm(x), (0x6C, 0, 0, 0), RET_A]) == expected_lsh
    assert run([ld_imm(0x80000000), ldx_imm(x), (0x7C, 0, 0, 0), RET_A]) == expected_rsh


# --- jumps and returns ------------------------------------------------------------


def test_ret_k_and_ret_a():
    assert run([ret_k(0xFFFFFFFF)]) == 0xFFFFFFFF
    assert run([ld_imm(0x00050001), RET_A]) == 0x00050001


def test_ja():
    assert run([(0x05, 0, 0, 1), ret_k(1), ret_k(2)]) == 2
    assert run([(0x05, 0, 0, 0), ret_k(1), ret_k(2)]) == 1


JMP_CASES = [
    # (op, A, operand, taken?)
    (0x10, 5, 5, True),  # JEQ
    (0x10, 5, 6, False),
    (0x20, 6, 5, True),  # JGT
    (0x20, 5, 5, False),
    (0x20, 0x80000000, 1, True),  # unsigned: 0x80000000 > 1
    (0x20, 1, 0xFFFFFFFF, False),
    (0x30, 5, 5, True),  # JGE
    (0x30, 4, 5, False),
    (0x30, 0xFFFFFFFF, 0x80000000, True),
    (0x40, 0b1010, 0b0010, True),  # JSET
    (0x40, 0b1010, 0b0101, False),
    (0x40, 0x80000000, 0x80000000, True),
]


@pytest.mark.parametrize("op, a, operand, taken", JMP_CASES)
def test_conditional_jump_k(op, a, operand, taken):
    prog = [ld_imm(a), (0x05 | op, 1, 2, operand), ret_k(0), ret_k(111), ret_k(222)]
    assert run(prog) == (111 if taken else 222)


@pytest.mark.parametrize("op, a, operand, taken", JMP_CASES)
def test_conditional_jump_x(op, a, operand, taken):
    prog = [ld_imm(a), ldx_imm(operand), (0x0D | op, 0, 1, 0), ret_k(111), ret_k(222)]
    assert run(prog) == (111 if taken else 222)


def test_on_step_sees_registers_before_each_instruction():
    steps = []
    prog = [ld_imm(3), TAX, (0x15, 0, 1, 3), RET_A, ret_k(0)]
    assert run(prog, on_step=lambda *s: steps.append(s)) == 3
    assert steps == [
        (0, 0x00, 0, 0, 3, 0, 0),
        (1, 0x07, 0, 0, 0, 3, 0),
        (2, 0x15, 0, 1, 3, 3, 3),
        (3, 0x16, 0, 0, 0, 3, 3),
    ]


# --- invalid programs raise, never crash or loop ------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        0x94,  # BPF_ALU|BPF_MOD|BPF_K
        0x9C,  # BPF_ALU|BPF_MOD|BPF_X
        0x28,  # BPF_LD|BPF_H|BPF_ABS
        0x30,  # BPF_LD|BPF_B|BPF_ABS
        0x40,  # BPF_LD|BPF_W|BPF_IND
        0xB1,  # BPF_LDX|BPF_B|BPF_MSH
        0x21,  # BPF_LDX|BPF_W|BPF_ABS (the kernel's internal rewrite, not user-valid)
        0x0E,  # BPF_RET|BPF_X
        0x8C,  # BPF_ALU|BPF_NEG|BPF_X
        0x55,  # BPF_JMP|0x50 (no such jump)
        0x0F,  # BPF_MISC with an unknown miscop
        0xFFFF,
    ],
)
def test_disallowed_opcodes_raise(code):
    with pytest.raises(ValueError, match="instruction 1"):
        run([ld_imm(1), (code, 0, 0, 1), RET_A])


@pytest.mark.parametrize(
    "prog, index",
    [
        ([(0x05, 0, 0, 1), ret_k(0)], 0),  # JA past the end
        ([(0x05, 0, 0, 0xFFFFFFFF), ret_k(0)], 0),
        ([(0x15, 0, 1, 0), ret_k(0)], 0),  # untaken target out of range still rejected
        ([ld_imm(0), (0x15, 5, 0, 0), ret_k(0)], 1),
        ([(0x20, 0, 0, 64), RET_A], 0),  # load beyond seccomp_data
        ([(0x20, 0, 0, 2), RET_A], 0),  # unaligned load
        ([(0x60, 0, 0, 16), RET_A], 0),  # scratch index 16
        ([(0x02, 0, 0, 99), RET_A], 0),
        ([ld_imm(1), (0x34, 0, 0, 0), RET_A], 1),  # division by constant 0
        ([ld_imm(1), (0x64, 0, 0, 32), RET_A], 1),  # shift by constant 32
        ([ld_imm(1), (0x74, 0, 0, 40), RET_A], 1),
        ([ld_imm(1)], 0),  # falls off the end
        ([ld_imm(1), ld_imm(2)], 1),
        ([ld_imm(1), (0x06, 0, 0, -1)], 1),  # malformed fields
        ([(0x06, 256, 0, 0)], 0),
        ([(0x06, 0, 0)], 0),
        ([ld_imm(0), "ret"], 1),
    ],
)
def test_invalid_programs_raise(prog, index):
    with pytest.raises(ValueError, match=f"instruction {index}\\b"):
        run(prog)


def test_invalid_program_shape_and_image():
    with pytest.raises(ValueError):
        run([])
    with pytest.raises(ValueError):
        run([ret_k(0)] * 4097)
    assert run([ret_k(0)] * 4096) == 0
    with pytest.raises(ValueError):
        run([ret_k(0)], bytes(63))
    with pytest.raises(ValueError):
        run([ret_k(0)], byteorder="native")


# --- stacked filters ------------------------------------------------------------------

KILL_PROCESS = 0x80000000
KILL_THREAD = 0x00000000
UNKNOWN = 0x00010000
TRAP = 0x00030000
ERRNO = 0x00050000
TRACE = 0x7FF00000
LOG = 0x7FFC0000


@pytest.mark.parametrize(
    "values, expected",
    [
        ([ALLOW], ALLOW),
        ([ALLOW | 5], ALLOW),  # ALLOW data is dropped, even for one filter
        ([ALLOW | 1, ALLOW | 2], ALLOW),
        ([ERRNO | 1], ERRNO | 1),
        ([ALLOW, KILL_PROCESS, KILL_THREAD, TRAP], KILL_PROCESS),  # negative as s32
        ([KILL_PROCESS | 7, ERRNO], KILL_PROCESS | 7),
        ([TRAP, UNKNOWN], UNKNOWN),  # unknown action sorts between KILL_THREAD and TRAP
        ([UNKNOWN, KILL_THREAD], KILL_THREAD),
        ([ERRNO | 1, ERRNO | 2], ERRNO | 2),  # tie: newest wins
        ([ERRNO | 2, ERRNO | 1], ERRNO | 1),
        ([TRACE | 9, LOG, ALLOW], TRACE | 9),
        ([LOG, ALLOW | 3], LOG),
        ([], KILL_PROCESS),  # seccomp_run_filters: no filter fails closed
    ],
)
def test_run_stack(values, expected):
    assert ref.run_stack(values) == expected


def test_run_stack_rejects_non_u32():
    with pytest.raises(ValueError):
        ref.run_stack([2**32])
    with pytest.raises(ValueError):
        ref.run_stack([-1])


# --- libseccomp regression vectors --------------------------------------------------


def decode_filter(data, endian):
    assert len(data) % 8 == 0
    fmt = ("<" if endian == "little" else ">") + "HBBI"
    return [struct.unpack_from(fmt, data, i) for i in range(0, len(data), 8)]


def test_libseccomp_vectors():
    vectors = VECTORS / "vectors.jsonl"
    if not vectors.is_file() or not (VECTORS / "filters").is_dir():
        pytest.skip("tests/vectors/vectors.jsonl and tests/vectors/filters/ are not there yet")
    filters = {}
    failures = []
    count = 0
    for line in vectors.read_text().splitlines():
        if not line.strip():
            continue
        v = json.loads(line)
        key = (v["filter"], v["endian"])
        if key not in filters:
            filters[key] = decode_filter((VECTORS / "filters" / v["filter"]).read_bytes(), v["endian"])
        got = ref.run_seccomp(filters[key], v["nr"], v["arch"], v["ip"], v["args"], v["endian"])
        count += 1
        if got != v["expect"]:
            failures.append((v["case_id"], v["arch_name"], hex(got), hex(v["expect"])))
    assert count > 0
    assert not failures, f"{len(failures)} of {count} vectors differ, first: {failures[:5]}"
