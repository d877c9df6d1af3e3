"""Proof that the fuzzer finds bugs: each planted bug is found and shrunk to at most 8 instructions.

The budget is the fuzzer's own (60 s and a program count), never a wall-clock
assertion; the assertions are on the reproducer: small, and still a real
disagreement when re-run against the reference interpreter.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import bpfjit_reference as ref
from bpfjit.program import Program
from bpfjit.check import is_valid
from bpfjit.testing import fuzz

from . import planted

#: bug -> (program kinds to draw, stack run)
PLANS = {
    "signed_jgt": (("realistic", "valid"), False),
    "unmasked_shift": (("valid",), False),
    "div0_continues": (("valid",), False),
    "swapped_args": (("realistic", "valid"), False),
    "stack_unsigned": (("realistic", "valid"), True),
    "scratch_rule": (("near_valid",), False),
}


def _hunt(bug: str, tmp_path):
    kinds, stack = PLANS[bug]
    return fuzz.run([planted.make(bug)], max_programs=20_000, seed=1,
                    kinds=kinds, stack=stack, use_kernel=False, max_disagreements=1,
                    out_dir=tmp_path)


def _record(doc) -> tuple:
    r = doc["record"]
    return r["nr"], r["arch"], r["instruction_pointer"], r["args"]


@pytest.mark.parametrize("bug", [b for b in PLANS if b != "scratch_rule"])
def test_verdict_bug_is_found_and_shrunk(bug, tmp_path):
    report = _hunt(bug, tmp_path)
    assert report.disagreements, f"{bug} not found in {report.programs} programs"
    (d,) = report.disagreements
    assert d.kind == "verdict" and d.oracle == "reference"
    assert d.instructions <= 8, d.programs
    doc = json.loads((d.path / "reproducer.json").read_text())
    nr, arch, ip, args = _record(doc)
    progs = [[tuple(i) for i in Program.from_bytes((d.path / f["bpf"]).read_bytes())]
             for f in doc["programs"]]
    assert all(is_valid(Program(p)) for p in progs)
    values = [ref.run_seccomp(p, nr, arch, ip, args, "little") for p in progs]
    expected = ref.run_stack(values) if PLANS[bug][1] else values[0]
    assert doc["expected"]["value"] == expected
    rec = fuzz.shrinking.make_records([d.record])
    cand = planted.make(bug)
    data = [Program(p).to_bytes() for p in progs]
    got = cand(data if PLANS[bug][1] else data[0], rec)
    assert int(np.asarray(got)[0]) != expected
    assert doc["answers"][d.candidates[0]]["value"] == int(np.asarray(got)[0])


def test_checker_without_the_scratch_rule_is_found(tmp_path):
    report = _hunt("scratch_rule", tmp_path)
    assert report.disagreements
    (d,) = report.disagreements
    assert d.kind == "accepts-invalid" and d.instructions <= 8
    (prog,) = d.programs
    with pytest.raises(Exception, match="check_load_and_stores"):
        Program(prog).check()
    assert any(i[0] in (0x60, 0x61) for i in prog)      # it reads a scratch cell
    assert (d.path / "program.bpf").read_bytes() == Program(prog).to_bytes()


def test_correct_candidates_are_not_flagged(tmp_path):
    report = fuzz.run([planted.correct, planted.reference_candidate], max_programs=150, seed=2,
                      use_kernel=False, out_dir=tmp_path)
    assert report.ok, report.format()
    assert report.verdicts > 0 and report.accept_decisions > 0
    assert not list(tmp_path.iterdir())
