"""backend="auto": when LLVM cannot compile or load code, fall back (numba, else reference) with a warning."""
from __future__ import annotations

import logging
import random

import numpy as np
import pytest

import bpfjit
import bpfjit_reference as ref
from bpfjit import backends
from bpfjit.backends import llvm as llvm_backend
from bpfjit.backends.llvm import engine, image, lower
from bpfjit.errors import BackendUnavailable
from bpfjit.program import Instruction, Program
from bpfjit.testing.inputs import inputs_for

pytestmark = pytest.mark.skipif(backends.available()["llvm"] is not None,
                                reason=f"llvm backend unavailable: {backends.available()['llvm']}")


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFJIT_CACHE_DIR", str(tmp_path))
    llvm_backend.BACKEND.cache.clear_memory()


def expected_fallback() -> str:
    for name in backends.AUTO_ORDER[1:]:
        if backends.available()[name] is None:
            return name
    raise AssertionError("no fallback backend available")


def a_program(seed: int) -> Program:
    """A small filter with a constant of its own, so no cache can already hold it."""
    k = random.Random(seed).getrandbits(31)
    return Program([Instruction(0x20, 0, 0, 0), Instruction(0x15, 0, 1, k),
                    Instruction(0x06, 0, 0, 0x50001), Instruction(0x20, 0, 0, 16),
                    Instruction(0x16, 0, 0, 0)])


def check_results(f: bpfjit.Filter) -> None:
    recs = inputs_for(f.program, random.Random(1), 64, layout=f.layout)
    insns = [tuple(i) for i in f.program]
    want = [ref.run_seccomp(insns, int(r["nr"]), int(r["arch"]), int(r["instruction_pointer"]),
                            r["args"].tolist(), f.layout.byteorder) for r in recs]
    assert f.evaluate_batch(recs).tolist() == want


def boom(*args, **kwargs):
    raise RuntimeError("LLVM ERROR: simulated failure")


@pytest.mark.parametrize("where", [
    (lower, "lower"),                 # IR generation
    (engine, "optimize"),             # parsing / verification / passes
    (engine, "emit_object"),          # code generation
    (engine, "mcjit"),                # the JIT itself (after the image loader also failed)
])
def test_auto_falls_back_with_a_warning(where, monkeypatch, caplog):
    module, name = where
    monkeypatch.setattr(module, name, boom)
    if name == "mcjit":
        monkeypatch.setattr(image, "Mapped", boom)           # make the JIT the last resort
    program = a_program(sum(map(ord, name)))
    with caplog.at_level(logging.WARNING, logger="bpfjit"):
        f = bpfjit.compile(program, arch="x86_64")
    assert f.backend == expected_fallback()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "'llvm'" in warnings[0].getMessage()
    assert "simulated failure" in warnings[0].getMessage()
    check_results(f)


def test_explicit_llvm_raises_a_clear_error(monkeypatch):
    monkeypatch.setattr(engine, "emit_object", boom)
    with pytest.raises(BackendUnavailable, match="LLVM could not compile.*simulated failure"):
        bpfjit.compile(a_program(2), backend="llvm", arch="x86_64")


def test_llvm_unavailable_falls_back(monkeypatch, caplog):
    monkeypatch.setattr(llvm_backend.LlvmBackend, "unavailable_reason",
                        lambda self: "llvmlite is not installed (simulated)")
    with pytest.raises(BackendUnavailable, match="not installed"):
        bpfjit.compile(a_program(3), backend="llvm", arch="x86_64")
    with caplog.at_level(logging.WARNING, logger="bpfjit"):
        f = bpfjit.compile(a_program(3), arch="x86_64")
    assert f.backend == expected_fallback()
    assert any("not installed" in r.getMessage() for r in caplog.records)


def test_image_loader_failure_stays_on_llvm_through_mcjit(monkeypatch, caplog):
    def refuse(img):
        raise OSError(13, "mprotect(PROT_EXEC) failed (simulated)")
    monkeypatch.setattr(image, "Mapped", refuse)
    with caplog.at_level(logging.WARNING, logger="bpfjit"):
        f = bpfjit.compile(a_program(4), arch="x86_64")
    assert f.backend == "llvm" and f.evaluator.info["kind"] == "mcjit"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    check_results(f)


def test_auto_uses_llvm_when_it_works():
    f = bpfjit.compile(a_program(5), arch="x86_64")
    assert f.backend == "llvm"
    assert isinstance(f.evaluate_batch(np.zeros(3, dtype=bpfjit.SECCOMP_DATA)), np.ndarray)
