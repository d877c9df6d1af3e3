"""Policy expectations (`bpfjit test`, bpfjit.testing.policy): exact, checked on the reference.

A "holds" answer is cross-checked by running the reference interpreter on
constant-biased inputs within the expectation's wildcards; a failure's
counterexample is re-run on the reference here.
"""
from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

import bpfjit
import bpfjit_reference as ref
from bpfjit.analysis import expectations as ex
from bpfjit.analysis.semantics import analyse
from bpfjit.cli import cli
from bpfjit.seccomp import layouts, syscalls
from corpora import REAL_FILTERS

pytest_plugins = ["bpfjit.testing.pytest_plugin"]

DOCKER = str(REAL_FILTERS / "docker-default.x86_64.bpf")
EXAMPLE = str(REAL_FILTERS.parents[2].parent / "bpfjit" / "examples" / "docker-default.expect.toml")
INSNS = [tuple(i) for i in bpfjit.load(DOCKER)]
SEM = analyse(bpfjit.check(bpfjit.load(DOCKER)), layouts.layout("x86_64"))


def run(*argv: str, code: int = 0) -> str:
    res = CliRunner().invoke(cli, list(argv), catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res.output


def sampled_violation(exp: ex.Expectation, abi: str, tries: int = 300) -> bool:
    """Does the reference find an input violating ``exp`` (random + biased values)?"""
    lay = layouts.layout(abi)
    numbers = ([syscalls.number(abi, exp.syscall)] if exp.syscall else
               sorted(set(syscalls.table(abi).values())))
    rng = random.Random(exp.text)
    mask = 0xFFFFFFFF if exp.with_data else 0xFFFF0000
    pool = (0, 1, 2, 0x26, 0x27, 0x28, 0x20000, 0x10000000, 0x7E020000, 0xFFFFFFFF, 1 << 32)
    limit = 0xFFFFFFFF if lay.bits == 32 else (1 << 64) - 1
    for _ in range(tries):
        nr = rng.choice(numbers)
        args = [(v if v is not None else rng.choice(pool + (rng.getrandbits(64),))) & limit
                for v in exp.args]
        got = ref.run_seccomp(INSNS, nr, lay.audit_arch, 0, args, "little")
        if ((got & mask) == (exp.action & mask)) == exp.negated:
            return True
    return False


@pytest.mark.parametrize("line, holds", [
    ("read -> ALLOW", True),
    ("clone(flags=CLONE_NEWUSER) -> ERRNO(EPERM)", True),
    ("clone -> ALLOW", False),
    ("clone(0) -> ALLOW", True),
    ("socket(AF_VSOCK) on x86 -> ERRNO(1)", True),
    ("socket on x86 -> ALLOW", False),
    ("ptrace -> not ALLOW", False),
    ("kexec_load on x32 -> not ALLOW", True),
    ("personality(8) -> ALLOW", True),
    ("personality(9) -> ALLOW", False),
    ("clone3 -> ERRNO(ENOSYS)", True),
    ("clone3 -> ERRNO(EPERM)", False),
])
def test_expectations_are_decided_exactly(line, holds):
    exp = ex.parse(line)
    found = ex.check(SEM, exp, "x86_64")
    assert (not found) == holds
    abi = exp.abi or "x86_64"
    if holds:
        assert not sampled_violation(exp, abi)
    for c in found:
        got = ref.run_seccomp(INSNS, *c.record, "little")
        mask = 0xFFFFFFFF if exp.with_data else 0xFFFF0000
        assert got == c.retval and ((got & mask) == (exp.action & mask)) == exp.negated


def test_wildcard_syscall_on_an_abi():
    found = ex.check(SEM, ex.parse("* on x32 -> not KILL_PROCESS"))
    assert not found and not sampled_violation(ex.parse("* on x32 -> not KILL_PROCESS"), "x32")


def test_cli_runs_the_shipped_example_and_reports_failures(tmp_path):
    assert run("test", DOCKER, EXAMPLE).splitlines()[-1].endswith("0 failed")
    bad = tmp_path / "policy.expect"
    bad.write_text("# comment\nread -> ALLOW\n\nclone -> ALLOW\n")
    out = run("test", DOCKER, str(bad), code=1)
    assert "FAIL  " in out and ":4: clone -> ALLOW" in out and "counterexample: clone(" in out
    data = json.loads(run("test", DOCKER, str(bad), "--json", code=1))
    c = data["results"][1]["counterexample"]
    assert ref.run_seccomp(INSNS, c["nr"], c["arch"], c["instruction_pointer"], c["args"],
                           "little") == c["retval"] != 0x7FFF0000


@pytest.mark.parametrize("text, message", [
    ("read -> ALLOW\nopne -> ALLOW\n", ":2: x86_64: unknown syscall 'opne'"),
    ("read => ALLOW\n", ":1: expected 'SYSCALL(ARGS)"),
    ("read -> ALLOW\n\nclone(flags=CLONE_NEWUSR) -> ALLOW\n", ":3: argument 'CLONE_NEWUSR'"),
    ("clone(badname=1) -> ALLOW\n", ":1: clone: unknown argument name 'badname'"),
    ("read on x86 -> ERRNO(EWHAT)\n", ":1: unknown errno or data 'EWHAT'"),
    ("socket(0x100000000) on x86 -> ALLOW\n", ":1: argument 0 = 0x100000000 is impossible"),
    ("read on aarch64 -> ALLOW\n", ":1: ABI aarch64 does not run on a x86_64 filter"),
])
def test_mistakes_name_the_line(tmp_path, text, message):
    f = tmp_path / "p.expect"
    f.write_text(text)
    out = run("test", DOCKER, str(f), code=2)
    assert message in out, out


def test_toml_file_errors_name_the_line(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('arch = "x86_64"\nexpect = [\n  "read -> ALLOW",\n  "nosuch -> ALLOW",\n]\n')
    assert ":4: x86_64: unknown syscall 'nosuch'" in run("test", DOCKER, str(f), code=2)


def test_pytest_fixture(policy):
    p = policy(DOCKER)
    assert p.allows("read")
    assert p.returns("clone", "ERRNO(EPERM)", flags=0x10000000)
    denied = p.denies("ptrace")
    assert not denied and "counterexample ptrace() on x86_64 -> ALLOW" in repr(denied)
    assert p.denies("kexec_load", on="x86")
    with pytest.raises(AssertionError, match="counterexample clone"):
        p.expect("clone -> ALLOW")
