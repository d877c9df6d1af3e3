"""Parsing strace output: recorded fixtures (tests/replay/data/record.sh) and bad input."""
from __future__ import annotations

import re

import pytest

from bpfjit.replay import strace
from bpfjit.replay.calls import Call, Problem

FIXTURES = ["pipeline.strace", "pipeline.raw.strace", "files_and_sockets.strace",
            "files_and_sockets.rawall.strace", "threads.strace", "threads.filtered.strace",
            "threads.ttt.strace", "sh.strace", "sh.rawall.strace"]


def _parse(path):
    items = list(strace.parse(open(path), str(path)))
    return [c for c in items if isinstance(c, Call)], [p for p in items if isinstance(p, Problem)]


def _entry_lines(path) -> int:
    """System call entries counted on the text: lines that start a call (not resumed/signal/exit)."""
    n = 0
    for line in open(path):
        body = re.sub(r"^(\[pid +\d+\] |\d+ +)?([\d:.]+ +)?(\[ *\d+\] +)?(\[[0-9a-f?]+\] +)?", "",
                      line)
        if re.match(r"[a-z_0-9]+\(", body):
            n += 1
    return n


@pytest.mark.parametrize("name", FIXTURES)
def test_every_recorded_call_is_read_once_and_nothing_is_a_problem(data, name):
    calls, problems = _parse(data / name)
    assert problems == []
    assert len(calls) == _entry_lines(data / name)


def test_unfinished_and_resumed_halves_are_joined_per_pid(data):
    calls, _ = _parse(data / "pipeline.strace")
    text = (data / "pipeline.strace").read_text().splitlines()
    split = [c for c in calls if "<unfinished ...>" in c.text]
    assert split
    for c in split:
        assert text[c.line - 1].startswith(str(c.pid))      # dated at the first half
    clone = [c for c in split if c.name == "clone"]
    assert clone and all(any(a.startswith("child_tidptr=") for a in c.args) for c in clone)


def test_prefixes_give_pid_number_and_instruction_pointer(data):
    calls, _ = _parse(data / "threads.strace")
    first = calls[0]
    assert first.name == "execve" and first.nr == 59 and first.ip is not None
    assert len({c.pid for c in calls}) == 5                 # the main thread and four threads
    calls, _ = _parse(data / "threads.ttt.strace")
    assert calls[0].name == "execve" and calls[0].ip is None


def test_ff_files_take_the_pid_from_the_file_name():
    lines = ["openat(AT_FDCWD, \"/x\", O_RDONLY) = 3\n", "close(3) = 0\n"]
    calls = list(strace.parse(lines, "trace.4242", pid=4242))
    assert [c.pid for c in calls] == [4242, 4242]


def test_signals_exits_and_attach_notes_are_not_calls():
    lines = ["[pid 7] --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---\n",
             "strace: Process 8 attached\n",
             "[pid 8] +++ exited with 0 +++\n",
             "[pid 9] read(0,  <unfinished ...>\n",
             "[pid 9] +++ killed by SIGKILL +++\n"]
    items = list(strace.parse(lines))
    assert [(type(i).__name__, getattr(i, "name", None), i.line) for i in items] == [
        ("Call", "read", 4)]                                # entered, never returned


def test_comm_decoration_and_stack_frames():
    lines = ["[pid 12<sh>] close(3) = 0\n", "12<sh> close(4) = 0\n",
             " > /usr/lib/x86_64-linux-gnu/libc.so.6(__close+0x17) [0x10f0e7]\n"]
    items = list(strace.parse(lines))
    assert [(type(i).__name__, i.pid) for i in items] == [("Call", 12), ("Call", 12)]


def test_a_32_bit_personality_marks_the_pids_calls():
    lines = ["5 [ Process PID=5 runs in 32 bit mode. ]\n", "5 getpid() = 5\n",
             "6 getpid() = 6\n"]
    calls = [c for c in strace.parse(lines) if isinstance(c, Call)]
    assert [(c.pid, c.compat) for c in calls] == [(5, "32"), (6, None)]


def test_bad_lines_are_problems_with_their_line_numbers():
    lines = ["openat(AT_FDCWD, \"/etc/passwd\", O_RDONLY) = 3\n",
             "this is not strace output\n",
             "openat(AT_FDCWD, \"/etc/pas\n",
             "close(3\n",
             "<... read resumed>) = 0\n",
             "\x00\x01garbage\n",
             "close(3) = 0\n"]
    items = list(strace.parse(lines, "t"))
    problems = [(p.line, p.reason.split(":")[0]) for p in items if isinstance(p, Problem)]
    assert problems == [(2, "not a strace line"), (3, "truncated openat(...)"),
                        (4, "truncated close(...)"),
                        (5, "'read resumed' without its '<unfinished ...>' start"),
                        (6, "not a strace line")]
    assert [c.line for c in items if isinstance(c, Call)] == [1, 7]


def test_an_all_decimal_instruction_pointer_is_not_a_syscall_number():
    """-i prints a 32-bit task's pointer as 8 digits, often all decimal ([08049035]); -n prints
    numbers in `[ 257]` form, never 8 or 16 digits. A pointer read as -n made nr 8049035."""
    from bpfjit.replay.strace import parse
    calls = list(parse(["3891  [08049035] pread64(0, 0x804b000, 8, 21474836483) = 0\n",
                        "3891  [ 180] [08049061] pread64(0, 0x804b000, 8, 3) = 0\n",
                        "7  [00007f0012345678] getpid() = 7\n"], "t"))
    assert [(c.name, c.nr, c.ip, c.compat) for c in calls] == [
        ("pread64", None, 0x08049035, "ip32"), ("pread64", 180, 0x08049061, "ip32"),
        ("getpid", None, 0x7F0012345678, None)]
