"""Tests of the shrinker: jump fix-up on deletion, program and record minimisation."""
from __future__ import annotations

import numpy as np
import pytest

import bpfjit_reference as ref
from bpfjit.check import is_valid
from bpfjit.program import Program
from bpfjit.testing import shrink

RET_ALLOW = (0x06, 0, 0, 0x7FFF0000)
RET_KILL = (0x06, 0, 0, 0)


def run(insns, nr=0, args=(0,) * 6):
    return ref.run_seccomp(insns, nr, 0xC000003E, 0, args, "little")


def test_delete_fixes_jumps_over_and_into_the_hole():
    prog = [(0x20, 0, 0, 0),            # 0 ld [nr]
            (0x15, 3, 1, 59),           # 1 jeq #59 -> 5, else 3
            (0x00, 0, 0, 1),            # 2 ld #1
            (0x00, 0, 0, 2),            # 3 ld #2
            (0x05, 0, 0, 1),            # 4 ja 6
            RET_KILL,                   # 5
            RET_ALLOW]                  # 6
    out = shrink.delete(prog, 2, 4)     # drop 2 and 3
    assert out == [(0x20, 0, 0, 0), (0x15, 1, 0, 59), (0x05, 0, 0, 1), RET_KILL, RET_ALLOW]
    assert is_valid(Program(out))
    for nr in (0, 59):                  # jeq's false target was 3 (deleted): it lands on 4
        assert run(out, nr) == run(prog, nr)


def test_delete_refuses_empty_ranges():
    assert shrink.delete([RET_KILL], 1, 1) is None
    assert shrink.delete([RET_KILL], 0, 1) == []


def test_shrink_programs_keeps_only_what_the_predicate_needs():
    # the "bug": any program containing a div x, whose value differs from 0 for nr = 7
    body = [(0x20, 0, 0, 0), (0x15, 0, 1, 59), RET_KILL, (0x20, 0, 0, 16), (0x07, 0, 0, 0),
            (0x20, 0, 0, 0), (0x3C, 0, 0, 0), (0x54, 0, 0, 0xFF), (0x02, 0, 0, 3),
            (0x60, 0, 0, 3), (0x16, 0, 0, 0)]
    assert is_valid(Program(body))

    def holds(programs):
        (p,) = programs
        return is_valid(Program(p)) and any(i[0] == 0x3C for i in p) and run(p, 7) != 0

    (small,) = shrink.shrink_programs([body], holds)
    assert holds([small])
    assert len(small) <= 4, small   # e.g. ld [nr]; tax; div x; ret a


def test_shrink_programs_drops_filters_of_a_stack():
    stack = [[RET_ALLOW], [(0x00, 0, 0, 5), RET_KILL], [RET_ALLOW]]
    out = shrink.shrink_programs(stack, lambda ps: any(p and p[-1] == RET_KILL for p in ps))
    assert out == [[RET_KILL]]


def test_shrink_record_clears_every_irrelevant_bit():
    fields = {"nr": 0xFFFFFFFF, "arch": 0xC000003E, "instruction_pointer": 0x1234,
              **{f"args[{i}]": 0xDEADBEEFCAFEF00D for i in range(6)}}

    def holds_batch(recs):   # the "bug" shows when bit 35 of args[2] is set
        return [(int(a) >> 35) & 1 == 1 for a in recs["args"][:, 2]]

    out = shrink.shrink_record(fields, holds_batch)
    assert out == {**{name: 0 for name, _ in shrink.RECORD_FIELDS}, "args[2]": 1 << 35}


def test_records_round_trip_signed_nr():
    fields = {name: 0 for name, _ in shrink.RECORD_FIELDS}
    fields["nr"] = 0xFFFFFFFF
    recs = shrink.make_records([fields])
    assert recs["nr"][0] == -1
    assert shrink.record_fields(recs[0]) == fields


def test_budget_stops_shrinking_but_keeps_a_holding_program():
    prog = [(0x00, 0, 0, i) for i in range(40)] + [RET_KILL]
    budget = shrink.Budget(5)
    out = shrink.shrink_programs([prog], lambda ps: len(ps[0]) >= 30 and ps[0][-1] == RET_KILL,
                                 budget=budget)
    assert budget.used == 5 and out[0][-1] == RET_KILL


def test_reproducer_files(tmp_path):
    path = shrink.write_reproducer(tmp_path / "r", [[(0x20, 0, 0, 0), RET_ALLOW]],
                                   {"kind": "verdict"}, arch="x86_64")
    assert (path / "program.bpf").read_bytes() == Program([(0x20, 0, 0, 0), RET_ALLOW]).to_bytes()
    assert "{ 0x20, 0, 0, 0x00000000 }," in (path / "program.c").read_text()
    assert (path / "program.asm").read_text().strip()
    import json
    doc = json.loads((path / "reproducer.json").read_text())
    assert doc["kind"] == "verdict" and doc["programs"][0]["instructions"] == 2
