"""eval/stack process fields, install-check, and dump's filter flags (expected values: the kernel's
behaviour as measured by tests/kernel/test_process_kernel.py and stated in issue 8)."""
from __future__ import annotations

import ctypes
import json
import os
import signal
import struct
import sys
import time

import pytest
from click.testing import CliRunner

import bpfjit
from bpfjit.cli import cli

ERRNO_ON_EXECVE = "ld [nr]\njeq #59, e, ok\ne: ret ERRNO({})\nok: ret ALLOW\n"


def run(*argv: str, code: int = 0) -> str:
    res = CliRunner().invoke(cli, list(argv), catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res.output


@pytest.fixture
def errno_filters(tmp_path):
    paths = []
    for n in (3, 4, 0):
        p = tmp_path / f"errno{n}.asm"
        p.write_text(ERRNO_ON_EXECVE.format(n))
        paths.append(str(p))
    return paths


def test_stack_json_carries_logging_and_the_matching_filter(errno_filters):
    e3, e4, _ = errno_filters
    older_flagged = json.loads(run("stack", "-f", e3, "-f", e4, "--flags", "LOG", "--flags", "0",
                                   "execve", "--json"))
    assert (older_flagged["logged"], older_flagged["matching_filter"],
            older_flagged["errno"]) == (False, 1, 4)
    newer_flagged = json.loads(run("stack", "-f", e3, "-f", e4, "--flags", "0", "--flags", "LOG",
                                   "execve", "--json"))
    assert (newer_flagged["logged"], newer_flagged["matching_filter"]) == (True, 1)
    assert newer_flagged["signal"] is None and newer_flagged["core_dump"] is False
    allowed = json.loads(run("stack", "-f", e3, "-f", e4, "read", "--json"))
    assert allowed["matching_filter"] is None and allowed["logged"] is False


def test_eval_json_and_text(errno_filters, tmp_path):
    e3, _, e0 = errno_filters
    zero = json.loads(run("eval", e0, "execve", "--json"))
    assert zero["errno"] == 0 and zero["process"]["returns_zero"]
    assert "returns 0 without running" in run("eval", e0, "execve")
    kill = tmp_path / "kill.asm"
    kill.write_text("ret KILL_THREAD\n")
    one = json.loads(run("eval", str(kill), "read", "--json"))
    assert (one["signal"], one["core_dump"], one["process"]["killed"], one["logged"]) == (
        signal.SIGSYS, True, "process", True)
    two = json.loads(run("eval", str(kill), "read", "--json", "--threads", "2"))
    assert (two["process"]["killed"], two["core_dump"]) == ("thread", False)
    quiet = json.loads(run("eval", str(kill), "read", "--json", "--actions-logged", "errno"))
    assert quiet["logged"] is False
    old = json.loads(run("eval", str(kill), "read", "--json", "--kernel", "4.13"))
    assert old["process"]["action"] == "KILL_THREAD"
    trace = tmp_path / "trace.asm"
    trace.write_text("ret TRACE(7)\n")
    assert json.loads(run("eval", str(trace), "read", "--json"))["errno"] == 38
    traced = json.loads(run("eval", str(trace), "read", "--json", "--tracer"))
    assert traced["process"]["traced"] and traced["process"]["ptrace_message"] == 7
    notif = tmp_path / "notif.asm"
    notif.write_text("ret USER_NOTIF\n")
    waits = json.loads(run("eval", str(notif), "read", "--json", "--flags", "NEW_LISTENER"))
    assert waits["process"]["waits_for_listener"] and waits["errno"] is None


def test_process_option_errors(errno_filters):
    e3, e4, _ = errno_filters
    assert "allow" in run("eval", e3, "execve", "--actions-logged", "allow", code=2)
    assert "unknown filter flag" in run("eval", e3, "execve", "--flags", "LOUD", code=2)
    assert "once per filter" in run("stack", "-f", e3, "-f", e4, "--flags", "LOG", "execve",
                                    code=2)
    assert "MAJOR.MINOR" in run("eval", e3, "execve", "--kernel", "latest", code=2)


def test_install_check_verb(errno_filters):
    e3, e4, _ = errno_filters
    assert "installs (returns 0)" in run("install-check", e3, "--flags", "LOG")
    assert "EINVAL" in run("install-check", e3, "--flags", "TSYNC,NEW_LISTENER", code=1)
    assert "EINVAL" in run("install-check", e3, "--flags", "WAIT_KILLABLE_RECV", code=1)
    assert "EINVAL" in run("install-check", e3, "--flags", "64", code=1)
    busy = json.loads(run("install-check", e3, "--flags", "NEW_LISTENER", "-s", e4,
                          "--stack-flags", "NEW_LISTENER", "--json", code=1))
    assert busy["errno_name"] == "EBUSY" and busy["rule"] == "has_duplicate_listener"
    assert "listener fd" in run("install-check", e3, "--flags", "NEW_LISTENER", "-s", e4,
                                "--stack-flags", "NEW_LISTENER", "--no-listeners")
    assert "EACCES" in run("install-check", e3, "--no-nnp", code=1)
    assert "installs" in run("install-check", e3, "--no-nnp", "--cap-sys-admin")
    assert "not known to Linux 4.19" in run("install-check", e3, "--flags", "NEW_LISTENER",
                                            "--kernel", "4.19", code=1)
    assert "Usage" in run("install-check", "--help")


@pytest.mark.kernel
def test_dump_shows_each_filters_flags():
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("PTRACE_SECCOMP_GET_METADATA needs Linux and root")
    from bpfjit.formats.live import load_process_flags
    prog = bpfjit.load("ld [nr]\njeq #4095, e\nret ALLOW\ne: ret ERRNO(1)\n").to_bytes()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:    # child: installs two filters (flags 2, then 0) and sleeps
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(38, 1, 0, 0, 0)
            buf = ctypes.create_string_buffer(prog)
            fp = ctypes.create_string_buffer(struct.pack("HxxxxxxQ", len(prog) // 8,
                                                         ctypes.addressof(buf)))
            for flags in (2, 0):
                if libc.syscall(317, 1, flags, fp) != 0:
                    os._exit(3)
            os.write(w, b"k")
            while True:
                time.sleep(1)
        finally:
            os._exit(4)
    os.close(w)
    try:
        assert os.read(r, 1) == b"k"
        assert [flags for _, flags in load_process_flags(pid)] == [2, 0]
        out = run("dump", str(pid))
        assert "flags LOG" in out and "flags 0" in out
        doc = json.loads(run("dump", str(pid), "--json"))      # stdout: JSON only
        assert doc["pid"] == pid and [f["flags"] for f in doc["filters"]] == [2, 0]
        assert [f["flag_names"] for f in doc["filters"]] == ["LOG", "0"]
        assert all(bytes.fromhex(f["raw"]) == prog for f in doc["filters"])
        assert doc["filters"][0]["instructions"][-1]["text"].startswith("ret ERRNO(1)")
    finally:
        os.close(r)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
