"""Tests of fuzz.run's own behaviour: limits, bad arguments, custom sources, deduplication."""
from __future__ import annotations

import numpy as np
import pytest

import bpfjit
from bpfjit.testing import fuzz

from . import planted

ALLOW = bpfjit.Program([(0x06, 0, 0, 0x7FFF0000)]).to_bytes()
LD_NR_RET_A = bpfjit.Program([(0x20, 0, 0, 0), (0x16, 0, 0, 0)]).to_bytes()


@pytest.mark.parametrize("kwargs, message", [
    ({}, "needs a limit"),
    ({"seconds": 1, "use_kernel": "yes"}, "use_kernel must be"),
    ({"seconds": 1, "inputs_per_program": 0}, "inputs_per_program must be a number >= 1"),
    ({"max_programs": -1}, "max_programs must be"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fuzz.run(["reference"], **kwargs)


def test_a_custom_source_of_programs():
    source = [("mine", ALLOW), ("mine", LD_NR_RET_A), ("junk", b"\x01\x02\x03")]
    report = fuzz.run([planted.correct], max_programs=10, source=source, use_kernel=False)
    assert report.stopped_by == "source exhausted" and report.programs == 3
    assert report.programs_by_kind == {"mine": 2, "junk": 1} and report.valid_programs == 2
    assert report.ok and report.records == 2 * fuzz.INPUTS_PER_PROGRAM


def test_one_bug_seen_on_many_programs_is_one_disagreement(tmp_path):
    def off_by_one(data, records):       # wrong on every record of every program
        return planted.correct(data, records) + np.uint32(1)
    report = fuzz.run([off_by_one], max_programs=40, kinds=("valid",), use_kernel=False,
                      out_dir=tmp_path, max_shrinks_per_candidate=40)
    assert report.raw_disagreements == 40
    assert len(report.disagreements) == 1 and report.disagreements[0].count == 40
    d = report.disagreements[0]
    assert d.programs == [[(0x06, 0, 0, 0)]] and d.instructions == 1
    assert d.answers[d.candidates[0]]["value"] == 1 and d.expected["value"] == 0
    assert len(list(tmp_path.iterdir())) == 1


def test_a_candidate_rejecting_valid_programs():
    def picky(data, records):
        if len(data) > 16:
            raise ValueError("too long for me")
        return planted.correct(data, records)
    report = fuzz.run([picky], max_programs=30, kinds=("realistic",), use_kernel=False)
    kinds = {d.kind for d in report.disagreements}
    assert kinds == {"rejects-valid"}
    assert all(len(d.programs[0]) == 3 for d in report.disagreements)   # smallest > 16 bytes


def test_report_text_has_the_stats():
    report = fuzz.run(["reference"], max_programs=30, use_kernel=False)
    text = report.format()
    for word in ("programs/s", "inputs/s", "coverage: opcodes", "branch outcomes", "verdicts"):
        assert word in text
    assert report.coverage.branch_fraction[1] == 16
