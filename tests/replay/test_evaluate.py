"""The evaluation stage: records built from calls (arch, number, arguments, unknown words)."""
from __future__ import annotations

import bpfjit
from bpfjit.replay import Replayer, strace
from bpfjit.replay.evaluate import field_bit, field_names
from bpfjit.seccomp import layouts

# ERRNO(nr) for i386 calls, ERRNO(args[0].hi) for openat, ALLOW otherwise
FILTER = """
    ld [4]
    jeq #0x40000003, i386
    ld [0]
    jeq #257, openat
    ret #0x7fff0000
i386:
    ld [0]
    or #0x50000
    ret a
openat:
    ld [20]
    or #0x50000
    ret a
"""


def _replay(lines, arch="x86_64"):
    f = bpfjit.compile(bpfjit.load(FILTER.encode(), format="asm"), arch=arch)
    seen = []
    summary = Replayer(f).feed(strace.parse(lines, "t"),
                               each=lambda c, rv, dep: seen.append((c.name, rv & 0xFFFF, dep)))
    return summary, seen


def test_a_32_bit_task_uses_the_i386_numbers_and_arch():
    _, seen = _replay(["5 [ Process PID=5 runs in 32 bit mode. ]\n", "5 getpid() = 5\n",
                       "6 getpid() = 6\n"])
    assert seen == [("getpid", 20, False), ("getpid", 0, False)]   # i386 getpid is 20


def test_the_high_word_of_a_negative_int_is_unrecorded():
    summary, seen = _replay(['openat(AT_FDCWD, "/x", O_RDONLY) = 3\n',
                             'openat(3, "/x", O_RDONLY) = 3\n',
                             'openat(0xffffffffffffff9c, "/x", 0) = 3\n'])
    assert seen == [("openat", 0, True), ("openat", 0, False), ("openat", 0xFFFF, False)]
    dep = [g for g in summary.groups.values() if g.depends]
    assert [(g.line, g.unknown, g.action, g.alternative) for g in dep] == [
        (1, ["args[0].hi"], "ERRNO(0)", "UNKNOWN(0xffffffff)")]   # 0xffffffff | 0x50000


def test_unknown_syscalls_and_numbers():
    summary, seen = _replay(["frobnicate(1) = 0\n", "syscall_0x1c2(1) = -1 ENOSYS\n"])
    assert seen == [("syscall_0x1c2", 0, False)]
    assert [(p.line, p.reason) for p in summary.problem_examples] == [
        (1, "unknown syscall 'frobnicate' on x86_64")]


def test_word_bits_follow_the_layouts_byte_order():
    le, be = layouts.layout("x86_64"), layouts.layout("s390x")
    assert field_names(field_bit(16, le) | field_bit(12, le)) == ["instruction_pointer.hi",
                                                                  "args[0].lo"]
    assert field_names(field_bit(16, be)) == ["args[0].hi"]
