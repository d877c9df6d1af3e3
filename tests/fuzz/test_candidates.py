"""Tests of the candidate protocol: loading module:function, accept/reject, answer validation."""
from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

import bpfjit
from bpfjit.seccomp.records import SECCOMP_DATA
from bpfjit.testing import candidates
from bpfjit.testing.candidates import CandidateError, Rejected

ALLOW = bpfjit.Program([(0x06, 0, 0, 0x7FFF0000)]).to_bytes()
RECS = np.zeros(3, dtype=SECCOMP_DATA)


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    """A directory on sys.path where tests write candidate modules."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
        return name
    return write


def test_accept_is_an_array_reject_is_an_exception_or_none():
    ok = candidates.from_object(lambda p, r: [0x7FFF0000] * len(r), "ok")
    assert ok.answer(ALLOW, RECS).tolist() == [0x7FFF0000] * 3
    assert ok.accepts(ALLOW) is True

    def raises(p, r):
        raise ValueError("bad program")
    answer = candidates.from_object(raises, "raises").answer(ALLOW, RECS)
    assert isinstance(answer, Rejected) and "ValueError: bad program" in answer.reason
    assert isinstance(candidates.from_object(lambda p, r: None, "none").accepts(ALLOW), Rejected)


def test_signed_values_are_read_as_u32_and_bad_shapes_are_errors():
    signed = candidates.from_object(lambda p, r: np.full(len(r), -1, dtype=np.int32), "s")
    assert signed.answer(ALLOW, RECS).tolist() == [0xFFFFFFFF] * 3
    with pytest.raises(CandidateError, match=r"shape \(2,\) for 3 records"):
        candidates.from_object(lambda p, r: [0, 0], "short").answer(ALLOW, RECS)
    with pytest.raises(CandidateError, match="not a 32-bit value"):
        candidates.from_object(lambda p, r: [1 << 40] * 3, "big").answer(ALLOW, RECS)
    with pytest.raises(CandidateError, match="dtype float64"):
        candidates.from_object(lambda p, r: np.zeros(3), "float").answer(ALLOW, RECS)


def test_check_attribute_decides_accept_and_reject():
    seen = []

    def evaluate(p, r):
        seen.append(p)
        return [0] * len(r)
    evaluate.check = lambda p: len(p) == 8
    cand = candidates.from_object(evaluate, "checked")
    assert isinstance(cand.answer(ALLOW * 2, RECS), Rejected) and not seen
    assert cand.answer(ALLOW, RECS).tolist() == [0, 0, 0] and seen == [ALLOW]


def test_arch_keyword_is_passed_when_the_function_takes_it():
    got = {}

    def evaluate(p, r, arch):
        got["arch"] = arch
        return [0] * len(r)
    candidates.from_object(evaluate, "a", layout="aarch64").answer(ALLOW, RECS)
    assert got == {"arch": "aarch64"}


def test_load_module_function_and_pure_checker(module_dir):
    module_dir("cand_mod", """
        import numpy as np
        def evaluate(program_bytes, records):
            return np.full(len(records), 0x7fff0000, dtype=np.uint32)
        def accepts(program_bytes):
            return True
        """)
    cand = candidates.load("cand_mod:evaluate")
    assert cand.name == "cand_mod:evaluate" and cand.evaluates and cand.check is None
    checker = candidates.load("cand_mod:accepts", checker_only=True)
    assert not checker.evaluates and checker.accepts(b"") is True
    whole = candidates.load("cand_mod")       # a module with evaluate (and no check)
    assert whole.evaluates


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ("cand_mod2:missing", "has no 'missing' \\(it has: evaluate\\)"),
    ("cand_mod2:evaluat", "has no 'evaluat'; did you mean evaluate\\?"),
    ("cand_mod2:", "expected module:function"),
    ("cand_mod2:CONSTANT_", "not callable|expected a function"),
])
def test_load_errors_name_what_is_wrong(module_dir, spec, message):
    module_dir("cand_mod2", """
        CONSTANT_ = 3
        def evaluate(p, r):
            return [0] * len(r)
        """)
    with pytest.raises(CandidateError, match=message):
        candidates.load(spec)


def test_import_error_inside_the_module_is_reported(module_dir):
    module_dir("broken_cand", "import no_such_dependency_abc\n")
    with pytest.raises(CandidateError, match="no_such_dependency_abc"):
        candidates.load("broken_cand:f")


def test_resolve_backends_and_stack_mismatch():
    ref = candidates.resolve("reference")
    assert ref.accepts_checked and ref.answer(ALLOW, RECS).tolist() == [0x7FFF0000] * 3
    assert isinstance(ref.accepts(b"\x00" * 8), Rejected)           # ld #0 alone: no return
    with pytest.raises(CandidateError, match="unknown candidate 'nope'"):
        candidates.resolve("nope")
    with pytest.raises(CandidateError, match="stack evaluators"):
        candidates.resolve(lambda p, r: None, stack=True)
    stack = candidates.resolve("reference", stack=True)
    kill = bpfjit.Program([(0x06, 0, 0, 0x80000000)]).to_bytes()
    assert stack.answer([ALLOW, kill], RECS).tolist() == [0x80000000] * 3


def test_names_must_be_distinct():
    with pytest.raises(CandidateError, match="repeated: reference"):
        candidates.resolve_all(["reference", "reference"])
