"""CI smoke fuzzing: bpfjit's backends (and the kernel, where usable) against the reference, ~60 s.

Any disagreement fails, with the shrunk reproducer printed. The seed is fixed
(``BPFJIT_FUZZ_SEED`` overrides it) so a failure reproduces with
``bpfjit fuzz --seed N``. The budget is a number of programs (about 30 s each
on a quiet 2-core machine), not a time limit, so a loaded machine runs the same
programs and reaches the same coverage, only later; ``BPFJIT_FUZZ_PROGRAMS``
scales it. Nothing asserts on speed.
"""
from __future__ import annotations

import os

import pytest

from bpfjit import backends
from bpfjit.testing import fuzz

SEED = int(os.environ.get("BPFJIT_FUZZ_SEED", "0"))
SCALE = float(os.environ.get("BPFJIT_FUZZ_PROGRAMS", "1"))
LOCAL_PROGRAMS = int(2000 * SCALE)
KERNEL_PROGRAMS = int(1200 * SCALE)
LOCAL = [name for name in ("llvm", "numba", "reference") if backends.available()[name] is None]


def explain(report: fuzz.FuzzReport) -> str:
    """The report and every reproducer (assembler and JSON), for the failure message."""
    parts = [report.format()]
    for d in report.disagreements:
        if d.path is None:
            continue
        parts.append(f"--- {d.path}")
        for f in sorted(d.path.iterdir()):
            if f.suffix in (".asm", ".json"):
                parts.append(f"{f.name}:\n{f.read_text()}")
    return "\n".join(parts)


def test_local_backends_agree_with_the_reference(tmp_path):
    assert LOCAL, "no local backend is available"
    report = fuzz.run(LOCAL, max_programs=LOCAL_PROGRAMS, seed=SEED, use_kernel=False,
                      out_dir=tmp_path)
    print("\n" + report.format())
    assert report.ok, explain(report)
    assert report.verdicts > 0 and report.valid_programs > 0
    opcodes, total = report.coverage.opcode_fraction
    assert opcodes == total, report.coverage.missing_opcodes()


@pytest.mark.kernel
def test_kernel_agrees_with_the_checker_and_the_reference(tmp_path):
    from bpfjit.backends.kernel import kernel_unavailable_reason
    reason = kernel_unavailable_reason()
    if reason:
        pytest.skip(f"the kernel cannot install seccomp filters here: {reason}")
    report = fuzz.run([], max_programs=KERNEL_PROGRAMS, seed=SEED + 1, use_kernel=True,
                      out_dir=tmp_path)
    print("\n" + report.format())
    assert report.ok, explain(report)
    assert report.kernel_accept_decisions > 0 and report.kernel_verdicts > 0
