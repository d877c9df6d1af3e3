"""Every format gives back the identical program: real filters, libseccomp filters, garbage."""
from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfjit import opcodes as op
from bpfjit.formats import asm, c_array, detect_format, disasm, dump, hexdump, load, raw
from bpfjit.program import Instruction, Program

from corpora import VECTORS, real_filter_arch, real_filters, vector_cases

REAL = real_filters()


def _vector_filters() -> dict[str, tuple[str, list[str]]]:
    """filter file -> (byte order from vectors.jsonl, the arch names its cases use)."""
    endian: dict[str, set[str]] = defaultdict(set)
    arches: dict[str, set[str]] = defaultdict(set)
    for case in vector_cases():
        endian[case["filter"]].add(case["endian"])
        arches[case["filter"]].add(case["arch_name"])
    out = {}
    for name, orders in endian.items():
        assert len(orders) == 1, f"{name}: cases disagree on the byte order"
        out[name] = (orders.pop(), sorted(arches[name]))
    return out


VECTOR_FILTERS = _vector_filters()


def test_corpora_are_all_here():
    assert len(REAL) == 46
    assert len(VECTOR_FILTERS) == 38


def _asm_round_trips(prog: Program, data: bytes, arch: str | None) -> None:
    for names in (True, False):
        for numbered in (False, True):
            text = disasm.disassemble(prog, arch=arch, names=names, numbered=numbered)
            back = asm.parse(text)
            assert back.to_bytes(prog.endian) == data, (arch, names, numbered)
    # the same text found by load()'s detection, as bytes and as a str
    text = disasm.disassemble(prog, arch=arch)
    assert detect_format(text.encode()) == "asm"
    assert load(text.encode()).to_bytes(prog.endian) == data
    assert load(text).to_bytes(prog.endian) == data


def _c_and_hex_round_trip(prog: Program, data: bytes) -> None:
    ctext = c_array.dump(prog)
    assert detect_format(ctext.encode()) == "c"
    assert load(ctext).to_bytes(prog.endian) == data
    htext = hexdump.dump(prog)
    assert detect_format(htext.encode()) == "hex"
    back = load(htext)
    assert back.endian == prog.endian and back.to_bytes() == data
    assert dump(load(data), "raw") == data


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_filter_round_trips(path):
    data = path.read_bytes()
    prog = load(data)
    assert prog.endian == "little"     # the corpus is stored little-endian, s390x included
    assert Program.from_bytes(data, "little") == prog
    _asm_round_trips(prog, data, real_filter_arch(path))
    _asm_round_trips(prog, data, None)
    _c_and_hex_round_trip(prog, data)


@pytest.mark.parametrize("name", sorted(VECTOR_FILTERS))
def test_libseccomp_filter_round_trips(name):
    endian, arches = VECTOR_FILTERS[name]
    data = (VECTORS / "filters" / name).read_bytes()
    prog = load(data)
    assert prog.endian == endian, f"{name}: byte order detected as {prog.endian}, not {endian}"
    for arch in arches:
        _asm_round_trips(prog, data, arch)
    _c_and_hex_round_trip(prog, data)


def test_the_two_big_endian_libseccomp_filters_are_detected():
    big = sorted(name for name, (endian, _) in VECTOR_FILTERS.items() if endian == "big")
    assert len(big) == 2
    for name in big:
        data = (VECTORS / "filters" / name).read_bytes()
        assert raw.detect_endian(data) == "big"
        assert load(data).endian == "big"
        assert load(VECTORS / "filters" / name).endian == "big"
        # and the other order is what a wrong guess would have given
        assert Program.from_bytes(data, "little") != load(data)


# --- garbage: any 4-tuple of fields, through every format ---

_CODES = st.one_of(st.integers(0, 0xFFFF), st.integers(0, 0xFF),
                   st.sampled_from(sorted(op.CLASSIC_CODES)))
_OFFSETS = st.one_of(st.just(0), st.integers(0, 8), st.integers(0, 0xFF))
_K = st.one_of(st.just(0), st.integers(0, 64), st.integers(0, 0xFFFFFFFF),
               st.integers(0xFFFFF000, 0xFFFFF040))
_INSNS = st.builds(Instruction, _CODES, _OFFSETS, _OFFSETS, _K)
_PROGRAMS = st.builds(Program, st.lists(_INSNS, min_size=1, max_size=40),
                      endian=st.sampled_from(["little", "big"]))
_ARCHES = st.sampled_from([None, "x86_64", "x86", "x32", "aarch64", "s390x", "mips", "ppc64le"])


@settings(max_examples=400, deadline=None)
@given(_PROGRAMS, _ARCHES, st.booleans(), st.booleans())
def test_any_program_round_trips_through_asm(prog, arch, names, numbered):
    text = disasm.disassemble(prog, arch=arch, names=names, numbered=numbered)
    assert asm.parse(text) == prog


@settings(max_examples=300, deadline=None)
@given(_PROGRAMS)
def test_any_program_round_trips_through_c_hex_and_raw(prog):
    assert c_array.parse(c_array.dump(prog)) == prog
    back = hexdump.parse(hexdump.dump(prog))
    assert back == prog and back.endian == prog.endian
    assert raw.load(prog.to_bytes(), prog.endian) == prog


def test_seeded_garbage_round_trips():
    """2,000 more programs from a fixed seed, with fully random 16-bit codes and offsets."""
    rng = random.Random(20240601)
    classic = sorted(op.CLASSIC_CODES)
    for _ in range(2000):
        insns = []
        for _ in range(rng.randint(1, 60)):
            code = rng.choice([rng.randrange(0x10000), rng.randrange(0x100), rng.choice(classic)])
            insns.append(Instruction(code, rng.choice([0, rng.randrange(256)]),
                                     rng.choice([0, rng.randrange(256)]),
                                     rng.choice([0, rng.randrange(64), rng.randrange(1 << 32)])))
        prog = Program(insns, endian=rng.choice(["little", "big"]))
        arch = rng.choice([None, "x86_64", "s390x", "x86"])
        assert asm.parse(disasm.disassemble(prog, arch=arch, names=rng.random() < 0.7)) == prog
        assert c_array.parse(c_array.dump(prog)) == prog
        assert hexdump.parse(hexdump.dump(prog)).to_bytes() == prog.to_bytes()


def test_jumps_whose_targets_coincide_keep_both_offsets():
    # jt and jf both land on instruction 2; ja offsets past the end stay raw
    prog = Program([Instruction(0x15, 1, 1, 7), Instruction(0x06, 0, 0, 0),
                    Instruction(0x05, 0, 0, 0xFFFFFFFF), Instruction(0x15, 200, 0, 1),
                    Instruction(0x16, 0, 0, 0)])
    text = disasm.disassemble(prog)
    assert asm.parse(text) == prog
    assert "+4294967295" in text and "+200" in text
