"""End-to-end tests of ``bpfjit fuzz`` with user candidates importable from the current directory."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from bpfjit.cli.fuzz import command

CORRECT = """
    import numpy as np
    import bpfjit_reference as ref
    from bpfjit import Program

    def evaluate(program_bytes, records):
        prog = Program.from_bytes(program_bytes)
        prog.check()                  # raises for programs Linux refuses: "rejected"
        insns = [tuple(i) for i in prog]
        return np.array([ref.run_seccomp(insns, int(r["nr"]), int(r["arch"]),
                                         int(r["instruction_pointer"]), r["args"].tolist(),
                                         "little") for r in records], dtype=np.uint32)
    """

BUGGY = CORRECT + """
    def buggy(program_bytes, records):
        out = evaluate(program_bytes, records)
        out[out == 0x80000000] = 0     # KILL_PROCESS reported as KILL_THREAD
        return out
    """


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """The current directory holds the user's module, as in `cd project && bpfjit fuzz ...`."""
    (tmp_path / "mycand.py").write_text(textwrap.dedent(BUGGY))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    sys.modules.pop("mycand", None)
    yield tmp_path
    sys.modules.pop("mycand", None)


def test_correct_candidate_exits_zero(user_dir):
    out = user_dir / "repro"
    result = CliRunner().invoke(command, ["--candidate", "mycand:evaluate", "--programs", "120",
                                          "--out", str(out), "--seed", "3", "--no-kernel",
                                          "--json", str(user_dir / "report.json")])
    assert result.exit_code == 0, result.output
    assert "no disagreement" in result.output and "programs/s" in result.output
    assert not out.exists() or not list(out.iterdir())
    report = json.loads((user_dir / "report.json").read_text())
    assert report["ok"] and report["programs"] == 120 and report["verdicts"] > 0


def test_buggy_candidate_exits_one_with_reproducers(user_dir):
    out = user_dir / "repro"
    result = CliRunner().invoke(command, ["--candidate", "mycand:buggy",
                                          "--programs", "3000", "--max-disagreements", "1",
                                          "--out", str(out), "--no-kernel", "--kinds",
                                          "realistic"])
    assert result.exit_code == 1, result.output
    assert "DISAGREEMENTS: 1 distinct" in result.output
    (repro,) = list(out.iterdir())
    files = {p.name for p in repro.iterdir()}
    assert {"program.bpf", "program.asm", "program.c", "reproducer.json"} <= files
    doc = json.loads((repro / "reproducer.json").read_text())
    assert doc["kind"] == "verdict" and doc["disagreeing"] == ["mycand:buggy"]
    assert doc["expected"]["value"] == 0x80000000 and doc["expected"]["action"] == "KILL_PROCESS"
    assert doc["answers"]["mycand:buggy"]["value"] == 0
    assert doc["programs"][0]["instructions"] <= 8
    assert set(doc["record"]) == {"nr", "arch", "arch_hex", "instruction_pointer", "args"}


@pytest.mark.parametrize("args, message", [
    (["--candidate", "nosuchmod_q:f"], "cannot import module 'nosuchmod_q'"),
    (["--candidate", "mycand:nothing"], "has no 'nothing'"),
    (["--kinds", "valid,bogus"], "unknown kind bogus"),
    (["--arch", "vax"], "unknown architecture 'vax'"),
    (["--stack", "--candidate", "mycand:evaluate"], "stack evaluators"),
])
def test_bad_usage_exits_two_with_a_clear_message(user_dir, args, message):
    result = CliRunner().invoke(command, args + ["--programs", "1", "--no-kernel"])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_pure_checker(user_dir):
    (user_dir / "mychecker.py").write_text(textwrap.dedent("""
        from bpfjit import Program
        from bpfjit.check import is_valid
        def accepts(program_bytes):
            return len(program_bytes) % 8 == 0 and is_valid(Program.from_bytes(program_bytes))
        """))
    result = CliRunner().invoke(command, ["--checker", "mychecker:accepts", "--programs", "200",
                                          "--kinds", "near_valid,garbage,valid", "--no-kernel"])
    assert result.exit_code == 0, result.output
