"""seccomp_data layouts: AUDIT_ARCH values, byte order, where each 32-bit word sits."""
from __future__ import annotations

import struct

import numpy as np
import pytest

import bpfjit
from bpfjit.seccomp import layouts, records

# AUDIT_ARCH_* from include/uapi/linux/audit.h, spelled out as numbers on purpose.
EXPECTED = {
    "x86_64": 0xC000003E, "x86": 0x40000003, "x32": 0xC000003E, "arm": 0x40000028,
    "aarch64": 0xC00000B7, "loongarch64": 0xC0000102, "m68k": 0x00000004, "mips": 0x00000008,
    "mipsel": 0x40000008, "mips64": 0x80000008, "mipsel64": 0xC0000008,
    "mips64n32": 0xA0000008, "mipsel64n32": 0xE0000008, "parisc": 0x0000000F,
    "parisc64": 0x8000000F, "ppc": 0x00000014, "ppc64": 0x80000015, "ppc64le": 0xC0000015,
    "riscv64": 0xC00000F3, "s390": 0x00000016, "s390x": 0x80000016, "sh": 0x4000002A,
    "sheb": 0x0000002A,
}


def test_every_libseccomp_arch_has_its_audit_arch_value():
    assert set(layouts.LAYOUTS) == set(EXPECTED)
    for name, value in EXPECTED.items():
        assert layouts.layout(name).audit_arch == value, name


def test_byte_order_follows_the_audit_arch_le_bit():
    for lay in layouts.LAYOUTS.values():
        assert lay.big_endian == (not lay.audit_arch & 0x40000000), lay.name


def test_vectors_agree_with_our_arch_table(vectors):
    for case in vectors:
        lay = layouts.layout(case["arch_name"])
        assert lay.audit_arch == case["arch"]
        assert lay.byteorder == case["endian"]


@pytest.mark.parametrize("name", ["x86_64", "s390x", "ppc64", "aarch64", "mips"])
def test_word_offsets_match_the_kernel_image(name):
    lay = layouts.layout(name)
    rec = records.make(-1, lay.audit_arch, 0x1111111122222222,
                       [0xA0A0A0A0B0B0B0B0 + i for i in range(6)])
    image = records.image(rec, lay)
    order = "<" if lay.byteorder == "little" else ">"
    # the kernel's struct seccomp_data in the task's byte order
    assert image == struct.pack(order + "iIQ6Q", -1, lay.audit_arch, 0x1111111122222222,
                                *[0xA0A0A0A0B0B0B0B0 + i for i in range(6)])
    words = records.words(rec, lay)[0]
    for k in range(0, 64, 4):
        (expected,) = struct.unpack_from(order + "I", image, k)
        assert words[k // 4] == expected, (name, k)
    for i in range(6):
        hi = struct.unpack_from(order + "I", image, lay.word_offset("args", i, "hi"))[0]
        lo = struct.unpack_from(order + "I", image, lay.word_offset("args", i, "lo"))[0]
        assert (hi << 32 | lo) == 0xA0A0A0A0B0B0B0B0 + i
        assert lay.describe_offset(lay.word_offset("args", i, "hi")) == f"args[{i}].hi"


def test_big_endian_high_word_is_first():
    assert layouts.layout("s390x").word_offset("args", 2, "hi") == 16 + 8 * 2
    assert layouts.layout("x86_64").word_offset("args", 2, "hi") == 20 + 8 * 2


def test_aliases_and_unknown_names():
    assert layouts.layout("amd64").name == "x86_64"
    assert layouts.layout("arm64").name == "aarch64"
    assert layouts.layout("i386").name == "x86"
    with pytest.raises(bpfjit.UnknownArchError, match="unknown architecture 'vax'"):
        layouts.layout("vax")


def test_seccomp_data_dtype_is_the_c_struct():
    dt = bpfjit.SECCOMP_DATA
    assert dt.itemsize == 64
    assert [dt.fields[f][1] for f in ("nr", "arch", "instruction_pointer", "args")] == [0, 4, 8, 16]
    assert dt["nr"] == np.dtype("i4") and dt["args"].shape == (6,)
