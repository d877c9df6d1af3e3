"""The program model: instructions keep their raw bits; programs are immutable and round-trip."""
from __future__ import annotations

import pytest

import bpfjit
from bpfjit import Instruction, Program
from corpora import REAL_FILTERS


def test_to_numpy_keeps_every_instruction():
    prog = bpfjit.load(REAL_FILTERS / "docker-default.x86_64.bpf")
    arr = prog.to_numpy()
    assert len(arr) == len(prog)
    assert [tuple(int(v) for v in row) for row in arr] == [tuple(i) for i in prog]


def test_invalid_bits_are_kept_and_round_trip():
    prog = Program([Instruction(0xFFFF, 255, 255, 0xFFFFFFFF), Instruction(0x06, 0, 0, 0)])
    assert Program.from_bytes(prog.to_bytes()) == prog
    assert Program.from_bytes(prog.to_bytes("big"), "big") == prog
    assert prog.to_bytes("big") != prog.to_bytes("little")


@pytest.mark.parametrize("fields,message", [
    ((0x10000, 0, 0, 0), "code=65536"), ((0, 256, 0, 0), "jt=256"), ((0, 0, -1, 0), "jf=-1"),
    ((0, 0, 0, 1 << 32), "k=4294967296"),
])
def test_out_of_range_fields_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        Instruction(*fields)


def test_non_int_fields_are_refused():
    with pytest.raises(TypeError, match="Instruction.k must be an int"):
        Instruction(0, 0, 0, 1.5)


def test_truncated_bytes_name_the_leftover():
    with pytest.raises(bpfjit.LoadError, match="3 trailing bytes"):
        Program.from_bytes(b"\x06" * 11)


def test_programs_are_immutable_hashable_values():
    a = bpfjit.load("ret ALLOW\n", format="asm")
    b = Program([bpfjit.stmt(0x06, 0x7FFF0000)])
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(TypeError):
        a[0] = b[0]  # type: ignore[index]
    assert a.check().check() is a.check() or a.check() == a
