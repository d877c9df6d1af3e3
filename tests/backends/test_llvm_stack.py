"""The native stack (a whole Stack as one LLVM function) against per-filter evaluation and the
reference: every record of the bench mixes on the corpus stacks, random stacks, and the
matching-filter rule (the newest filter that returned the winning action; 0 = oldest)."""
from __future__ import annotations

import numpy as np
import pytest

import bpfjit
import bpfjit_reference
from bpfjit import workloads
from bpfjit.analysis import stack_verdicts
from bpfjit.backends import llvm
from bpfjit.seccomp import layouts
from bpfjit.testing import fuzz

pytestmark = pytest.mark.skipif(llvm.BACKEND.unavailable_reason() is not None,
                                reason=str(llvm.BACKEND.unavailable_reason()))

CORPUS_STACKS = ("systemd-nspawn-252", "firejail-server", "sniffglue-0.15.0")
MIX_RECORDS = 200_000
REFERENCE_RECORDS = 300


def _action_only(v: int) -> int:
    a = v & 0xFFFF0000
    return a - (1 << 32) if a & 0x80000000 else a


def _expected_match(values: list[int]) -> int:
    """The matching filter from per-filter values (oldest first), written out independently."""
    winner = bpfjit_reference.run_stack(values)
    for index in reversed(range(len(values))):
        if _action_only(values[index]) == _action_only(winner):
            return index
    raise AssertionError("the winner came from no filter")


def _stack(spec: str) -> bpfjit.Stack:
    programs, arch = workloads.corpus_filter(spec)
    assert len(programs) >= 2, spec
    return bpfjit.Stack(programs, backend="llvm", arch=arch)


@pytest.mark.parametrize("mix", workloads.MIXES)
@pytest.mark.parametrize("spec", CORPUS_STACKS)
def test_native_stack_equals_per_filter_evaluation_on_the_bench_mixes(spec, mix):
    stack = _stack(spec)
    recs = workloads.mix(mix, MIX_RECORDS, seed=20240601, arch=stack.layout)
    got, match = stack.evaluate_batch_matching(recs)
    assert stack._native_evaluator() is not None, "the native stack was not used"
    want_match = np.empty(len(recs), dtype=np.int32)
    want = stack.evaluate_batch_per_filter(recs, match=want_match)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(match, want_match)


@pytest.mark.parametrize("spec", CORPUS_STACKS)
def test_native_stack_and_its_matching_filter_agree_with_the_reference(spec):
    stack = _stack(spec)
    rng = np.random.default_rng(7)
    recs = np.concatenate([workloads.mix(m, REFERENCE_RECORDS // 3, seed=3, arch=stack.layout)
                           for m in workloads.MIXES])
    recs["arch"][::5] = rng.choice([0x40000003, 0xC000003E, 0xDEADBEEF], len(recs[::5]))
    recs["nr"][::7] |= 0x40000000
    got, match = stack.evaluate_batch_matching(recs)
    singles = [bpfjit.compile(f.program, backend="reference", arch=stack.layout).evaluate_batch(recs)
               for f in stack.filters]
    for i in range(len(recs)):
        values = [int(s[i]) for s in singles]
        assert got[i] == bpfjit_reference.run_stack(values), i
        assert match[i] == _expected_match(values), i


def test_threads_and_the_plain_batch_give_the_same_results():
    stack = _stack("systemd-nspawn-252")
    recs = workloads.mix("uniform_nr", 300_000, seed=5, arch=stack.layout)
    one = stack.evaluate_batch(recs)
    np.testing.assert_array_equal(stack.evaluate_batch(recs, threads=2), one)
    np.testing.assert_array_equal(stack.evaluate_batch_per_filter(recs), one)
    assert len(stack.evaluate_batch(recs[:0])) == 0


def test_stack_verdict_table_matches_the_reference_where_it_claims_a_constant():
    programs, arch = workloads.corpus_filter("systemd-nspawn-252")
    lay = layouts.layout(arch)
    checked = [bpfjit.check(p) for p in programs]
    front = stack_verdicts.build(checked, lay)
    assert front.table.known > 1000
    rng = np.random.default_rng(11)
    filters = [bpfjit.compile(p, backend="reference", arch=arch) for p in programs]
    offset = 0
    flat_match = front.flat_matches()
    for w in front.table.windows:
        for i in rng.choice(np.nonzero(w.known)[0], size=min(25, int(w.known.sum())),
                            replace=False):
            nr = (w.base + int(i)) & 0xFFFFFFFF
            args = tuple(int(x) for x in rng.integers(0, 1 << 63, 6, dtype=np.uint64))
            values = [f.evaluate(nr, args, w.arch, 0x7FFF0000) for f in filters]
            assert int(w.verdicts[i]) == bpfjit_reference.run_stack(values)
            assert int(flat_match[offset + i]) == _expected_match(values)
        offset += w.size


def test_the_fuzzers_stack_mode_checks_the_native_stack():
    report = fuzz.run(["llvm"], stack=True, max_programs=40, seed=3, use_kernel=False,
                      inputs_per_program=64)
    assert report.ok, report


def test_a_stack_with_a_non_llvm_filter_falls_back_to_per_filter_batches():
    programs, arch = workloads.corpus_filter("sniffglue-0.15.0")
    mixed = bpfjit.Stack([bpfjit.compile(programs[0], backend="llvm", arch=arch),
                          bpfjit.compile(programs[1], backend="numba", arch=arch)])
    assert mixed._native_evaluator() is None
    recs = workloads.mix("realistic", 5000, seed=1, arch=arch)
    np.testing.assert_array_equal(mixed.evaluate_batch(recs),
                                  _stack("sniffglue-0.15.0").evaluate_batch(recs))
