"""The newcomer's path (issue 13): each command run as a user types it, message and exit code."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import bpfjit
from bpfjit.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "bpfjit" / "examples" / "docker-default.x86_64.bpf"


def run(args: list[str], capfd) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capfd.readouterr()
    return rc, out, err


@pytest.mark.parametrize("typo", ["typo.bfp", "filterz", "missing.BPF", "./nope", "dir/none.bpf"])
@pytest.mark.parametrize("verb", [["check"], ["disasm"], ["eval", "{}", "read"]])
def test_a_missing_path_is_reported_as_a_missing_file(verb, typo, capfd, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{}", typo) for a in verb] if "{}" in verb else verb + [typo]
    rc, out, err = run(args, capfd)
    assert rc == 2 and f"{typo}: no such file" in err, (out, err)
    assert "mnemonic" not in err


def test_load_of_a_missing_name_says_no_such_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(bpfjit.LoadError, match="^myfilter: no such file$"):
        bpfjit.load("myfilter")


@pytest.mark.parametrize("name", ["adir", "adir/"])
def test_a_directory_is_named_as_one(name, capfd, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    rc, _, err = run(["check", name], capfd)
    assert rc == 2 and f"{name}: is a directory" in err
    with pytest.raises(bpfjit.LoadError, match="is a directory"):
        bpfjit.load(name)


def test_one_line_text_is_still_assembler_and_ambiguity_is_said(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(bpfjit.load("ret #0")) == 1
    assert len(bpfjit.load("0600000000000000")) == 1           # hex text
    with pytest.raises(bpfjit.LoadError, match="read as assembler text: no file named"):
        bpfjit.load("my filter.bpf")


def test_fuzz_json_to_stdout_is_only_json():
    done = subprocess.run([sys.executable, "-m", "bpfjit", "fuzz", "-n", "3", "--no-kernel",
                           "--json", "-"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is True and doc["programs"] == 3
    assert "programs/s" in done.stderr           # the text report went to stderr


def test_check_json_reports_an_unreadable_file_and_goes_on(capfd, tmp_path):
    empty = tmp_path / "empty.bpf"
    empty.write_bytes(b"")
    rc, out, _ = run(["check", "--json", str(DOCKER), str(empty)], capfd)
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["valid"] is True and first["instructions"] == 1001
    assert second["file"] == str(empty) and second["valid"] is None
    assert "empty input" in second["error"]
    assert rc == 2


def test_fuzz_unknown_candidate_function_is_one_short_line(capfd):
    rc, _, err = run(["fuzz", "--candidate", "os:nosuchfn", "-n", "1"], capfd)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and len(err) < 200, err


def test_library_errors_are_bpfjit_errors():
    with pytest.raises(bpfjit.BpfjitError, match="at least one filter"):
        bpfjit.Stack([])
    for bad in (2**33, -1):
        with pytest.raises(bpfjit.BpfjitError, match="u32"):
            bpfjit.Action.from_value(bad)
    assert str(bpfjit.Action.from_value(0xFFFFFFFF)).startswith("UNKNOWN")


def test_disasm_columns_view_reads_like_seccomp_tools(capfd, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    rc, out, _ = run(["disasm", "--columns", str(DOCKER)], capfd)
    lines = out.splitlines()
    assert rc == 0 and lines[0].split() == ["line", "CODE", "JT", "JF", "K"]
    assert lines[2] == " 0000: 0x20 0x00 0x00 0x00000004  A = arch"
    assert lines[3] == " 0001: 0x15 0x01 0x00 0xc000003e  if (A == AUDIT_ARCH_X86_64) goto 0003"
    assert lines[6] == " 0004: 0x15 0xdf 0x00 0x00000000  if (A == read) goto 0228"
    assert "\x1b[" not in out


def test_disasm_columns_colour_only_on_a_terminal_without_no_color(monkeypatch):
    from bpfjit.cli.inspect import colour_wanted

    class Tty:
        def isatty(self):
            return True
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour_wanted(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_wanted(Tty())


def test_disasm_json_lists_every_instruction(capfd):
    rc, out, _ = run(["disasm", "--json", str(DOCKER)], capfd)
    doc = json.loads(out)
    assert rc == 0 and doc["arch"] == "x86_64" and len(doc["instructions"]) == 1001
    first = doc["instructions"][1]
    assert first == {"index": 1, "code": 0x15, "jt": 1, "jf": 0, "k": 0xC000003E,
                     "text": "jeq #AUDIT_ARCH_X86_64, L3",
                     "pseudo_c": "if (A == AUDIT_ARCH_X86_64) goto 0003"}


def test_disasm_help_says_the_arch_is_detected(capfd):
    rc, out, _ = run(["disasm", "--help"], capfd)
    assert rc == 0 and "detected from the filter" in " ".join(out.split())


def test_syscalls_json(capfd):
    rc, out, _ = run(["syscalls", "--json", "--arch", "aarch64", "openat", "59"], capfd)
    assert rc == 0 and json.loads(out) == {"arch": "aarch64", "syscalls": [
        {"nr": 56, "name": "openat"}, {"nr": 59, "name": "pipe2"}]}


def test_asm_warns_when_the_kernel_would_refuse_the_output(capfd, tmp_path):
    src = tmp_path / "bad.asm"
    src.write_text("ld [nr]\nja +5\nret #0\n")
    rc, _, err = run(["asm", str(src), "-o", str(tmp_path / "bad.bpf")], capfd)
    assert rc == 0 and (tmp_path / "bad.bpf").stat().st_size == 24
    assert "warning:" in err and "would refuse" in err and "bpf_check_classic" in err
    good = tmp_path / "good.asm"
    good.write_text("ret #0\n")
    rc, _, err = run(["asm", str(good), "-o", str(tmp_path / "good.bpf")], capfd)
    assert rc == 0 and err == ""


def test_bench_json_is_only_json_and_tables_fit_80_columns(capfd):
    rc, out, _ = run(["bench", "-n", "2000", "-s", "0", "-b", "llvm", "--no-baselines",
                      "--json"], capfd)
    doc = json.loads(out)
    (row,) = doc["rows"]
    assert rc == 0 and row["backend"] == "llvm" and row["equals_reference"] is True
    assert row["records_per_second"] > 0

    from rich.console import Console
    from bpfjit.cli.bench import Cell, render_table
    cells = [Cell("docker-default.x86_64", b, "realistic", 10_000_000, seconds=s, checked=True)
             for b, s in (("llvm", 0.02), ("numba", 0.05))]
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    console.print(render_table(cells, {"stream": {}, "pcap": {}, "notes": []}, 1, 80))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for word in ("realistic", "records/s", "vs stream", "docker-default.x86_64", "500 M"):
        assert word in text, (word, text)


def test_demo_warms_up_before_timing(capfd):
    rc, out, _ = run(["demo", "--backend", "numba", "--records", "20000"], capfd)
    assert rc == 0 and "after a warm-up" in out and "KILL" not in out


def test_contributing_names_only_files_of_the_repository():
    import re
    text = (ROOT / "CONTRIBUTING.md").read_text()
    assert "../" not in text
    paths = set(re.findall(r"`((?:bpfjit|tests|reference|tools|bench)/[\w./-]*)`", text))
    paths |= set(re.findall(r"^((?:bpfjit|tests|reference|tools|bench)/[\w./-]*)", text, re.M))
    missing = sorted(p for p in paths if not (ROOT / p.rstrip("/")).exists()
                     and "*" not in p and "X" not in p)
    assert not missing, missing


def test_sim_verbose_names_the_truncated_file(tmp_path):
    trunc = tmp_path / "trunc.bpf"
    trunc.write_bytes(DOCKER.read_bytes()[:20])
    done = subprocess.run([sys.executable, "-m", "bpfjit", "sim", "-v", "-f", str(trunc),
                           "-a", "x86_64", "-s", "0"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode != 0 and f"{trunc}: byte 16" in done.stdout + done.stderr


def test_eval_ip_garbage_names_the_option(capfd):
    rc, _, err = run(["eval", str(DOCKER), "--ip", "garbage", "read"], capfd)
    assert rc == 2 and "--ip: 'garbage' is not an integer" in err and "0x hex" in err


def test_eval_accepts_negative_arguments_and_explains_unknown_options(capfd):
    rc, out, _ = run(["eval", str(DOCKER), "read", "-1"], capfd)
    assert rc == 0 and out.startswith("ALLOW")
    rc, out, _ = run(["eval", str(DOCKER), "--json", "openat", "-100", "0"], capfd)
    assert rc == 0 and json.loads(out)["args"] == [2**64 - 100, 0]
    rc, _, err = run(["eval", str(DOCKER), "read", "--jsno"], capfd)
    assert rc == 2 and "'--jsno'" in err and "option" in err


def test_eval_and_stack_name_the_bad_file(capfd, tmp_path):
    trunc = tmp_path / "trunc.bpf"
    trunc.write_bytes(DOCKER.read_bytes()[:20])
    invalid = tmp_path / "invalid.bpf"
    invalid.write_bytes(bpfjit.load("ld [nr]\nmod #3\nret a\n").to_bytes())
    for args in (["eval", str(trunc), "read"], ["eval", str(invalid), "read"],
                 ["stack", "-f", str(DOCKER), "-f", str(trunc), "read"],
                 ["stack", "-f", str(DOCKER), "-f", str(invalid), "read"]):
        rc, _, err = run(args, capfd)
        bad = args[1] if args[0] == "eval" else args[-2]
        assert rc == 2 and err.startswith(f"Error: {bad}: "), (args, err)


def test_eval_hints_at_the_filters_arch(capfd):
    ppc = ROOT / "tests" / "corpus" / "real" / "filters" / "docker-default.ppc64le.opt.bpf"
    rc, out, err = run(["eval", str(ppc), "read"], capfd)
    assert rc == 0 and out.startswith("KILL_THREAD")
    assert "hint:" in err and "AUDIT_ARCH_PPC64LE" in err and len(err.splitlines()) == 1
    rc, _, err = run(["eval", str(ppc), "--arch", "ppc64le", "read"], capfd)
    assert rc == 0 and err == ""


def test_format_errors_use_the_cli_spelling(capfd):
    rc, _, err = run(["check", "--format", "asm", str(DOCKER)], capfd)
    assert rc == 2 and "--format raw" in err and "format='raw'" not in err


@pytest.mark.parametrize("bad", ["garbage", "ERRNO(1", "ERRNO(99999)"])
def test_table_action_garbage_lists_the_valid_actions(bad, capfd):
    rc, out, err = run(["table", str(DOCKER), "--action", bad], capfd)
    assert rc == 2 and out == "" and "--action" in err
    if bad != "ERRNO(99999)":
        assert "ALLOW, ERRNO" in err


def test_table_action_filters_by_name_or_exact_value_with_right_plurals(capfd):
    rc, out, _ = run(["table", str(DOCKER), "--action", "ERRNO(38)"], capfd)
    assert rc == 0 and out.splitlines() == ["       435  clone3                   ERRNO(38)",
                                            "; 1 syscall — ERRNO(38): 1"]
    rc, out, _ = run(["table", str(DOCKER), "--action", "kill_process"], capfd)
    assert rc == 0 and out.strip() == "; 0 syscalls match"
    rc, out, _ = run(["table", str(DOCKER), "--action", "errno"], capfd)
    assert "ERRNO(38): 1" in out.splitlines()[-1]
