"""Profiles through the command line: load-based verbs take .json/.seccomp and the profile options."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bpfjit.cli import cli
from bpfjit.profiles import libseccomp
from corpora import TESTS

PROFILES = TESTS / "corpus" / "real" / "profiles"
DOCKER = str(PROFILES / "docker-default.profile.json")

pytestmark = pytest.mark.skipif(not libseccomp.available(), reason="libseccomp2 is not installed")


def run(*argv: str, code: int = 0):
    res = CliRunner().invoke(cli, list(argv), catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res


def action(*argv: str) -> str:
    return json.loads(run("eval", *argv, "--json").stdout)["action"]


def test_eval_reads_a_docker_profile_with_the_documented_defaults():
    assert action(DOCKER, "--arch", "x86_64", "read") == "ALLOW"
    assert action(DOCKER, "--arch", "x86_64", "--kernel", "6.1", "clone", "0x10000000") == \
        "ERRNO(1)"


def test_caps_kernel_and_profile_arch_change_the_filter():
    assert action(DOCKER, "--arch", "x86_64", "--caps", "all", "clone", "0x10000000") == "ALLOW"
    assert action(DOCKER, "--arch", "x86_64", "--kernel", "4.4", "ptrace") == "ERRNO(1)"
    assert action(DOCKER, "--arch", "x86", "modify_ldt") == "ALLOW"           # x86 of x86_64
    assert action(DOCKER, "--arch", "x86_64", "--profile-arch", "aarch64", "read") == \
        "KILL_THREAD"                                                         # bad arch
    assert action(DOCKER, "--arch", "aarch64", "--optimize", "2", "read") == "ALLOW"


def test_warnings_go_to_stderr_and_json_stays_clean():
    res = run("eval", DOCKER, "--arch", "x86_64", "--json", "read")
    assert json.loads(res.stdout)["action"] == "ALLOW"
    assert "warning:" in res.stderr and "mseal" in res.stderr


def test_other_verbs_and_formats():
    fc = str(PROFILES / "firecracker.x86_64.profile.json")
    assert action(f"{fc}#vcpu", "--arch", "x86_64", "ioctl", "3", "0xae80") == "ALLOW"
    out = run("table", str(PROFILES / "lxc-common.profile.seccomp"), "--arch", "x86_64",
              "--action", "ERRNO").stdout
    assert "kexec_load" in out and "read " not in out
    assert "instructions" in run("disasm", DOCKER, "--profile-arch", "s390x").stdout
    assert "0xc000003e }" in run("asm", DOCKER, "-o", "-", "--to", "c", "--profile-arch", "x86_64").stdout
    assert action(DOCKER, "--format", "oci", "--arch", "x86_64", "read") == "ALLOW"


def test_bad_options_exit_2():
    res = run("eval", DOCKER, "--caps", "CAP_FLY", "read", code=2)
    assert "unknown capabilities CAP_FLY" in res.output
    res = run("eval", DOCKER, "--kernel", "new", "read", code=2)
    assert "kernel version" in res.output and "new" in res.output


def test_runtime_runc_answers_unknown_new_syscalls_with_enosys():
    assert action(DOCKER, "--arch", "x86_64", "999") == "ERRNO(1)"
    assert action(DOCKER, "--arch", "x86_64", "--runtime", "runc", "999") == "ERRNO(38)"
    assert action(DOCKER, "--arch", "x86_64", "--runtime", "runc", "read") == "ALLOW"
