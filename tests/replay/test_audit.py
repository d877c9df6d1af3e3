"""Audit logs: the kernel's own SECCOMP records (dmesg.log, recorded here) name the action the
kernel took, which replay of the same filter must reproduce."""
from __future__ import annotations

import bpfjit
from bpfjit.replay import replay
from bpfjit.replay.calls import Call, Problem
from bpfjit.replay import audit


def _filter(data):
    return bpfjit.compile(bpfjit.load(str(data / "log-kill.asm")), arch="x86_64")


def test_replay_gives_the_action_the_kernel_logged(data):
    s = replay(_filter(data), [str(data / "dmesg.log")])
    assert s.calls == 5 and s.problems == 0
    assert s.recorded_mismatches == 0                  # code= of every record
    assert s.actions() == {"LOG": 3, "KILL_PROCESS": 2}
    kill = [g for g in s.refused if g.action == "KILL_PROCESS"]
    assert [(g.syscall, g.count, g.line) for g in kill] == [("uname", 2, 4)]


def test_audit_log_form_with_a_bad_record_and_an_unknown_number(data):
    s = replay(_filter(data), [str(data / "audit.log")])
    assert s.calls == 5
    assert [(p.line, p.reason) for p in s.problem_examples] == [(7, "unknown arch=deadbeef")]
    assert s.recorded_mismatches == 1                  # syscall 99999 was logged as killed


def test_ausearch_interpreted_names(data):
    items = list(audit.parse(open(data / "ausearch-i.txt")))
    calls = [c for c in items if isinstance(c, Call)]
    assert not [p for p in items if isinstance(p, Problem)]
    assert [(c.name, c.arch, c.pid) for c in calls] == [
        ("getppid", "x86_64", 5602), ("uname", "x86_64", 5675), ("uname", "x86_64", 5682),
        ("getppid", "x86", 5690)]
    s = replay(_filter(data), [str(data / "ausearch-i.txt")])
    assert s.actions() == {"LOG": 1, "KILL_PROCESS": 2, "ALLOW": 1}   # i386 getppid is nr 64


def test_audit_records_have_no_arguments_so_argument_checks_depend_on_them(data, tmp_path):
    asm = tmp_path / "args.asm"
    asm.write_text("ld [0]\njeq #63, a\nret #0x7fff0000\na:\nld [16]\njeq #0, k\n"
                   "ret #0x7fff0000\nk:\nret #0x80000000\n")
    s = replay(bpfjit.compile(bpfjit.load(str(asm)), arch="x86_64"), [str(data / "dmesg.log")])
    uname = [g for g in s.groups.values() if g.syscall == "uname"]
    assert uname and all(g.depends and g.unknown == ["args[0].lo"] for g in uname)
