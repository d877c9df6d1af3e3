"""The mutation yardstick: the fuzzer must kill single-point semantic mutants of a small evaluator.

The mutants (tests/fuzz/mutants/evaluator.py) each get one operator, operand
form or edge class wrong; the unmutated evaluator is the control and must
agree with the reference interpreter everywhere. CI runs a short,
program-count-limited sample; ``-m slow`` runs the measurement of the issue
(5 seeds, 30 s each, every mutant must die) and prints the table.
"""
from __future__ import annotations

import numpy as np
import pytest

import bpfjit
from bpfjit.seccomp.records import SECCOMP_DATA
from bpfjit.testing import candidates, fuzz

from .mutants import evaluator, score
from .mutants.evaluator import MUTANTS, STACK_MUTANTS


def test_the_suite_covers_every_edge_class_of_the_issue():
    assert len(MUTANTS) + len(STACK_MUTANTS) >= 60
    names = " ".join(MUTANTS)
    for needle in ("add_k", "add_x", "sub_k", "sub_x", "mul_k", "mul_x", "div_k", "div_x",
                   "or_k", "or_x", "and_k", "and_x", "xor_k", "xor_x", "lsh_k", "lsh_x",
                   "rsh_k", "rsh_x", "neg", "jgt_k", "jgt_x", "jge_k", "jge_x", "jeq_k", "jeq_x",
                   "jset_k", "jset_x", "jt_off", "jf_off", "ja_", "ld_arch", "ld_ip", "ld_args",
                   "ld_nr", "ld_len", "ldx_len", "ld_imm", "ldx_imm", "st_", "stx_", "ld_mem",
                   "ldx_mem", "tax", "txa", "ret_a", "ret_k", "ret_errno", "ret_unknown",
                   "div_x_zero", "_31_", "mask_63", "no_mask"):
        assert needle in names, needle
    assert {"stack_ties_oldest", "stack_unsigned_precedence"} <= set(STACK_MUTANTS)


def test_the_control_evaluator_agrees_with_the_reference():
    single = candidates.from_object(evaluator.candidate(None), "correct")
    report = fuzz.run([single], max_programs=300, seed=11, use_kernel=False)
    assert report.ok and report.verdicts > 10_000, report.format()
    stack = candidates.from_object(evaluator.candidate("stack"), "stack", stack=True)
    report = fuzz.run([stack], max_programs=150, seed=11, use_kernel=False, stack=True)
    assert report.ok, report.format()


@pytest.mark.parametrize("mutant, insns", [
    ("add_k_no_wrap", [(0x20, 0, 0, 16), (0x04, 0, 0, 0x80000001), (0x74, 0, 0, 31),
                       (0x16, 0, 0, 0)]),
    ("rsh_k_31_zero", [(0x20, 0, 0, 16), (0x74, 0, 0, 31), (0x16, 0, 0, 0)]),
    ("div_x_zero_continues", [(0x01, 0, 0, 0), (0x20, 0, 0, 16), (0x3C, 0, 0, 0),
                              (0x16, 0, 0, 0)]),
    ("jgt_k_signed", [(0x20, 0, 0, 16), (0x25, 0, 1, 1), (0x06, 0, 0, 1), (0x06, 0, 0, 2)]),
    # held out (HELD_OUT): real mutants too
    ("rsh_x_32_zero", [(0x01, 0, 0, 32), (0x20, 0, 0, 16), (0x7C, 0, 0, 0), (0x16, 0, 0, 0)]),
    ("neg_sign_zero", [(0x20, 0, 0, 16), (0x84, 0, 0, 0), (0x16, 0, 0, 0)]),
    ("jset_k_low_16", [(0x20, 0, 0, 16), (0x45, 0, 1, 0x80000001), (0x06, 0, 0, 1),
                       (0x06, 0, 0, 2)]),
])
def test_mutants_are_real_mutants(mutant, insns):
    """A witness each: the control matches the reference there, the mutant does not."""
    prog = bpfjit.Program(insns)
    recs = np.zeros(2, dtype=SECCOMP_DATA)
    recs["args"][:, 0] = [0x80000000, 0x7FFFFFFF]
    ref = bpfjit.compile(prog, backend="reference").evaluate_batch(recs)
    data = prog.to_bytes()
    assert evaluator.evaluate(data, recs).tolist() == ref.tolist()
    assert evaluator.evaluate(data, recs, mutant).tolist() != ref.tolist()


def test_a_short_run_kills_nearly_every_mutant():
    cands = [candidates.from_object(evaluator.candidate(m), m) for m in list(MUTANTS) + [None]]
    report = fuzz.run(cands, max_programs=400, seed=0, use_kernel=False, shrink=False,
                      max_shrinks_per_candidate=0)
    killed = set(report.raw_by_candidate)
    assert "correct" not in killed
    assert len(killed & set(MUTANTS)) >= 0.85 * len(MUTANTS), sorted(set(MUTANTS) - killed)


def test_held_out_mutants_are_counted_and_named():
    assert len(evaluator.HELD_OUT) + len(evaluator.HELD_OUT_STACK) >= 10
    assert set(evaluator.HELD_OUT) <= set(MUTANTS)
    assert set(evaluator.HELD_OUT_STACK) <= set(STACK_MUTANTS)


def test_the_score_kills_a_mutant_alone_within_a_cpu_budget():
    row = score.kill("neg_as_not", seed=1, seconds=20.0)
    assert row["killed"] and 0 < row["cpu"] <= 20.0 and row["programs"] >= 1, row
    row = score.kill("stack_newest_only", seed=1, seconds=20.0)
    assert row["killed"], row


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_every_mutant_dies_within_30_seconds(seed):
    """Each mutant fuzzed alone for at most 30 CPU seconds (tests/fuzz/mutants/score.py)."""
    row = score.score(seed, 30.0)
    print("\n" + score.line(row))
    assert row["control_ok"] and not row["survivors"], row["survivors"]
