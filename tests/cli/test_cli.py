"""The bpfjit command line: every verb, its output and its errors (expected values from the reference)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import bpfjit
from bpfjit.cli import cli, main
from corpora import REAL_FILTERS, VECTORS

DOCKER = str(REAL_FILTERS / "docker-default.x86_64.bpf")
DOCKER_ARM = str(REAL_FILTERS / "docker-default.aarch64.bpf")


def run(*argv: str, code: int = 0) -> str:
    res = CliRunner().invoke(cli, list(argv), catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res.output


def test_help_everywhere():
    assert "disasm" in run("--help")
    for verb in ("disasm", "asm", "check", "eval", "stack", "table", "syscalls", "sim", "dump",
                 "demo"):
        assert "Usage" in run(verb, "--help"), verb


def test_check_accepts_real_filters_and_refuses_invalid(tmp_path):
    assert "OK (1001 instructions" in run("check", DOCKER)
    bad = tmp_path / "mod.bpf"
    bad.write_bytes(bpfjit.Program([bpfjit.stmt(0x94, 3), bpfjit.stmt(0x06, 0)]).to_bytes())
    out = run("check", str(bad), code=1)
    assert "INVALID" in out and "instruction 0" in out and "seccomp_check_filter" in out
    line = json.loads(run("check", "--json", str(bad), code=1))
    assert line == {"file": str(bad), "valid": False, "index": 0, "rule": "seccomp_check_filter",
                    "errno": "EINVAL", "reason": line["reason"]}


def test_eval_matches_the_reference_on_both_arches():
    ref = bpfjit.compile(bpfjit.load(DOCKER), backend="reference", arch="x86_64")
    for name, args in (("read", ()), ("clone", ("0x10000000",)), ("personality", ("0",)),
                       ("kexec_load", ())):
        out = json.loads(run("eval", DOCKER, "--arch", "x86_64", "--json", name, *args))
        expected = ref.evaluate(name, tuple(int(a, 0) for a in args))
        assert out["retval"] == expected
        assert out["action"] == str(bpfjit.Action.from_value(expected))
    ref_arm = bpfjit.compile(bpfjit.load(DOCKER_ARM), backend="reference", arch="aarch64")
    out = json.loads(run("eval", DOCKER_ARM, "--arch", "aarch64", "--json", "openat", "3", "0"))
    assert out["retval"] == ref_arm.evaluate("openat", (3, 0))
    assert out["nr"] == 56


def test_eval_trace_shows_the_path():
    out = run("eval", DOCKER, "--arch", "x86_64", "--trace", "read")
    lines = out.strip().splitlines()
    assert lines[-1].startswith("ALLOW")
    assert lines[0].split() == ["index", "instruction", "A", "and", "X", "before", "it"]
    assert "A=0x" in lines[1] and lines[1].split()[0] == "0"
    traced = json.loads(run("eval", DOCKER, "--json", "--trace", "read"))
    assert traced["trace"][0]["index"] == 0 and len(traced["trace"]) == len(lines) - 2


def test_eval_errors_are_clear():
    assert "openatt" in run("eval", DOCKER, "openatt", code=2)
    assert "argument 0" in run("eval", DOCKER, "read", "zz", code=2)
    assert "unknown architecture" in run("eval", DOCKER, "--arch", "vax", "read", code=2)
    assert "no such file" in run("eval", "/nonexistent/f.bpf", "read", code=2).lower()


def test_stack_applies_kernel_precedence(tmp_path):
    a = tmp_path / "a.asm"
    b = tmp_path / "b.asm"
    a.write_text("ld [nr]\njeq #1, e\nret ALLOW\ne: ret ERRNO(5)\n")
    b.write_text("ld [nr]\njeq #1, e\nret LOG\ne: ret KILL_PROCESS\n")
    assert run("stack", "-f", str(a), "-f", str(b), "1").splitlines()[-1].startswith("KILL_PROCESS")
    assert run("stack", "-f", str(a), "-f", str(b), "0").splitlines()[-1].startswith("LOG")


def test_table_lists_every_syscall_with_its_action():
    out = run("table", DOCKER, "--arch", "x86_64", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    by_name = {r["name"]: r for r in rows}
    ref = bpfjit.compile(bpfjit.load(DOCKER), backend="reference", arch="x86_64")
    for name in ("read", "clone", "kexec_load", "personality"):
        assert by_name[name]["retval"] == ref.evaluate(name)
    assert any("args[0]" in r for r in by_name["clone"]["reads"])
    assert by_name["read"]["reads"] == []


def test_syscalls_lookup():
    assert run("syscalls", "--arch", "aarch64", "openat").split() == ["56", "openat"]
    assert run("syscalls", "--arch", "x86_64", "59").split() == ["59", "execve"]


def test_asm_and_disasm_round_trip(tmp_path):
    text = run("disasm", DOCKER, "--arch", "x86_64")
    src = tmp_path / "d.asm"
    src.write_text(text)
    out = tmp_path / "d.bpf"
    run("asm", str(src), "-o", str(out), "--arch", "x86_64")
    assert out.read_bytes() == open(DOCKER, "rb").read()


def test_sim_errors_like_scmp_bpf_sim(tmp_path):
    bad = tmp_path / "bad.bpf"
    bad.write_bytes(bpfjit.Program([bpfjit.stmt(0x06, 0x00010000)]).to_bytes())
    res = CliRunner().invoke(cli, ["sim", "-f", str(bad), "-s", "0"])
    assert res.exit_code == 8 and "ERROR" in res.output
    notify = tmp_path / "n.bpf"
    notify.write_bytes(bpfjit.Program([bpfjit.stmt(0x06, 0x7FC00000)]).to_bytes())
    assert run("sim", "-f", str(notify), "-s", "1") == "NOTIFY\n"
    vec = str(VECTORS / "filters" / "2dfd42971b69614c.bpf")
    assert run("sim", "-f", vec, "-a", "x86_64", "-s", "read") == "ALLOW\n"


def test_main_returns_exit_codes(capsys, tmp_path):
    assert main(["check", DOCKER]) == 0
    bad = tmp_path / "bad.bpf"
    bad.write_bytes(bpfjit.Program([bpfjit.stmt(0x94, 3), bpfjit.stmt(0x06, 0)]).to_bytes())
    assert main(["check", str(bad)]) == 1
    unknown = tmp_path / "unknown.bpf"
    unknown.write_bytes(bpfjit.Program([bpfjit.stmt(0x06, 0x00010000)]).to_bytes())
    assert main(["sim", "-f", str(unknown), "-s", "0"]) == 8
    assert main(["eval", DOCKER, "nosuchcall"]) == 2
    assert "nosuchcall" in capsys.readouterr().err


@pytest.mark.parametrize("garbage", [b"", b"\x01\x02\x03", b"\xff" * 13])
def test_garbage_files_never_traceback(tmp_path, garbage):
    p = tmp_path / "g.bin"
    p.write_bytes(garbage)
    res = CliRunner().invoke(cli, ["check", str(p)])
    assert res.exit_code in (1, 2) and "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
