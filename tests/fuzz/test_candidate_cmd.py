"""Candidates in other processes: the protocol, the C example, timeouts and crash isolation.

The C example (examples/candidates/c/seccomp_candidate.c) is compiled by the
test with the system C compiler. Expected values come from the reference
interpreter through the fuzzer; a hanging or crashing candidate must be
reported with the input that did it, and the run must go on.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bpfjit.cli.fuzz import command
from bpfjit.seccomp.records import SECCOMP_DATA
from bpfjit.testing import external, fuzz, inputs_for
from bpfjit.testing import protocol as proto
from bpfjit.testing.candidates import CandidateError, Failed, Rejected

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "candidates" / "c"
ALLOW = bytes.fromhex("060000000000ff7f")         # ret #ALLOW


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the example candidate")
    exe = tmp_path_factory.mktemp("cand") / "seccomp_candidate"
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(EXAMPLE / "seccomp_candidate.c")], check=True)
    return str(exe)


def _inputs_with_nr(marked: dict[int, int]):
    """The fuzzer's inputs, except program number i gets nr = marked[i] in its 5th record."""
    count = {"n": 0}

    def make(program, rng, n, layout):
        recs = inputs_for(program, rng, n, layout=layout)
        nr = marked.get(count["n"])
        count["n"] += 1
        recs["nr"][recs["nr"] >= 0] %= 1000          # no accidental fault numbers above 1000
        recs["nr"][np.isin(recs["nr"], (7, 11))] = 12
        if nr is not None:
            recs["nr"][4] = nr
        return recs
    return make


def test_the_c_example_agrees_with_the_reference_on_every_kind(example):
    for arch in ("x86_64", "s390x"):             # both byte orders
        cand = external.command_candidate(example, arch)
        report = fuzz.run([cand], max_programs=150, seed=3, arch=arch, use_kernel=False)
        assert report.ok, report.format()
        assert report.verdicts > 3000 and report.valid_programs > 50
        assert not report.failures


def test_a_planted_bug_in_c_is_found_and_shrunk(example, tmp_path):
    cand = external.command_candidate(f"{example} --bug signed-jgt", "x86_64")
    report = fuzz.run([cand], max_programs=400, seed=1, use_kernel=False, out_dir=tmp_path,
                      max_disagreements=1)
    assert [d.kind for d in report.disagreements] == ["verdict"]
    d = report.disagreements[0]
    assert any(c & 0xF7 == 0x25 for p in d.programs for c, *_ in p)    # a jgt survived shrinking
    assert d.instructions <= 6 and (d.path / "program.asm").exists()


def test_hanging_and_crashing_candidates_are_reported_and_the_run_goes_on(example, tmp_path):
    cand = external.command_candidate(f"{example} --fault hang:7 --fault crash:11", "x86_64",
                                      timeout=1.0)
    report = fuzz.run([cand], max_programs=60, seed=5, use_kernel=False, out_dir=tmp_path,
                      kinds=["valid"], inputs=_inputs_with_nr(marked := {5: 11, 20: 7, 40: 11}))
    assert report.programs == 60 and report.stopped_by == "program count"
    kinds = sorted(d.kind for d in report.disagreements)
    assert kinds == ["crash", "crash", "hang"], report.format()
    assert report.failures == {"crash": 2, "hang": 1}
    for d in report.disagreements:
        assert d.oracle == "protocol" and d.origin["records"] == 128
        doc = json.loads((d.path / "reproducer.json").read_text())
        assert len(doc["batch"]) == 128 and doc["batch"][4]["nr"] == marked[d.origin["index"]]
        if d.kind == "crash":      # the one record that crashes it, found by retrying singly
            assert d.record["nr"] == 11 and d.origin["record_crashes_alone"]
            assert "SIGSEGV" in d.answers[cand.name]["crash"]
        else:
            assert "1 s" in d.answers[cand.name]["hang"]
    assert report.verdicts >= (60 - 3) * 128            # every other program was compared
    # restarted after each failure, and after the crash each isolating retry caused
    assert cand.evaluate.__self__.starts == 1 + 3 + 2


CANDIDATES = """
    import os, time
    import numpy as np
    import bpfjit_reference as ref
    from bpfjit import Program

    def evaluate(program_bytes, records):
        prog = Program.from_bytes(program_bytes)
        prog.check()
        insns = [tuple(i) for i in prog]
        if (records["nr"] == 7).any():
            time.sleep(3600)
        if (records["nr"] == 11).any():
            os.abort()
        print("stdout noise must not break the framing")
        return np.array([ref.run_seccomp(insns, int(r["nr"]), int(r["arch"]),
                                         int(r["instruction_pointer"]), r["args"].tolist(),
                                         "little") for r in records], dtype=np.uint32)
    """


def test_a_python_candidate_that_hangs_is_timed_out_too(tmp_path, monkeypatch):
    (tmp_path / "slowcand.py").write_text(textwrap.dedent(CANDIDATES))
    monkeypatch.chdir(tmp_path)
    cand = external.python_candidate("slowcand:evaluate", "x86_64", timeout=2.0)
    recs = np.zeros(3, dtype=SECCOMP_DATA)
    assert cand.answer(ALLOW, recs).tolist() == [0x7FFF0000] * 3
    assert isinstance(cand.answer(b"\x06\x00", recs), Rejected)        # prog.check() raised
    recs["nr"][1] = 7
    got = cand.answer(ALLOW, recs)
    assert isinstance(got, Failed) and got.kind == "hang"
    recs["nr"][1] = 11
    got = cand.answer(ALLOW, recs)
    assert isinstance(got, Failed) and got.kind == "crash" and "SIGABRT" in got.detail
    recs["nr"][1] = 0
    assert cand.answer(ALLOW, recs).tolist() == [0x7FFF0000] * 3     # a fresh worker
    cand.close()


def test_cli_candidate_cmd_reports_a_crash_and_exits_one(example, tmp_path):
    result = CliRunner().invoke(command, [
        "--candidate-cmd", f"{example} --fault crash:-1", "--programs", "40", "--no-kernel",
        "--timeout", "2", "--kinds", "valid", "--json", "-", "--out", str(tmp_path)])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output[result.output.index("{"):])
    assert doc["programs"] == 40
    assert doc["disagreements"] and doc["disagreements"][0]["kind"] == "crash"


@pytest.mark.parametrize("cmd, message", [
    ("/nonexistent/candidate", "cannot start '/nonexistent/candidate'"),
    (f"{sys.executable} -c \"import sys; sys.stdout.buffer.write(b'BPFJ' + bytes([2, 0, 0, 0]) "
     f"+ bytes(4)); sys.stdout.flush(); sys.stdin.read()\"", "protocol version 2"),
    (f"{sys.executable} -c \"print('hello')\"", "exited with status 0 (does it speak"),
    (f"{sys.executable} -c \"print('hello, I am not bpfjit'); input()\"",
     "answered b'hell', not b'BPFJ'"),
])
def test_candidates_that_cannot_start_are_clear_errors(cmd, message):
    with pytest.raises(CandidateError, match=message.replace("(", r"\(")):
        external.command_candidate(cmd, "x86_64", timeout=5)
    result = CliRunner().invoke(command, ["--candidate-cmd", cmd, "-n", "1", "--no-kernel"])
    assert result.exit_code == 2 and "Error:" in result.output


def test_the_wire_format():
    recs = np.zeros(2, dtype=SECCOMP_DATA)
    recs["nr"] = [-1, 59]
    recs["args"][1, 5] = 0x1122334455667788
    frame = proto.request(proto.OP_EVALUATE, [ALLOW], recs)
    assert frame[:16] == bytes([1, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0]) + ALLOW[:4]
    body = frame[20 + 4:]
    assert len(body) == 128 and body[:4] == b"\xff\xff\xff\xff" and body[64:68] == bytes([59, 0, 0, 0])
    assert body[64 + 56:128] == bytes.fromhex("8877665544332211")
    assert proto.hello(0xC000003E, "x86_64", True)[:20] == \
        b"BPFJ" + bytes([1, 0, 0, 0, 0x3E, 0, 0, 0xC0, 1, 0, 0, 0, 6, 0, 0, 0])
