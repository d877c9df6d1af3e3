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


def _replay(lines, arch="x86_64", text=FILTER):
    f = bpfjit.compile(bpfjit.load(text.encode(), format="asm"), arch=arch)
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


# i386 calls: ERRNO(args[3].lo ^ args[4].lo); x86_64 calls: ALLOW
WIDE = """
    ld [4]
    jeq #0x40000003, i386
    ret #0x7fff0000
i386:
    ld [48]
    tax
    ld [40]
    xor x
    and #0xffff
    or #0x50000
    ret a
"""


def test_a_64_bit_argument_of_an_i386_task_is_two_registers_low_word_first():
    """i386 pread64(fd, buf, count, pos): pos is args[3] (low) and args[4] (high), printed by
    strace as one number; _llseek passes the high word first (the filter reads args[3] ^
    args[4], so a swap or a shift shows; fallocate: args[3] is the offset's high word, args[4]
    the length's low word)."""
    _, seen = _replay(text=WIDE, lines=["5 [ Process PID=5 runs in 32 bit mode. ]\n",
                     '5 pread64(3, "abc", 4096, 0x500000003) = 3\n',
                     "5 fallocate(3, 0, 0x100000007, 0x200000009) = 0\n",
                     # -e raw=all: every register printed (5 for pread64 on i386): as is
                     "5 pread64(0x3, 0xff80, 0x1000, 0x1, 0x30) = 0x3\n"])
    assert seen == [("pread64", 3 ^ 5, False), ("fallocate", 1 ^ 9, False),
                    ("pread64", 1 ^ 0x30, False)]


def test_other_32_bit_abis_leave_the_registers_of_a_64_bit_argument_unknown():
    """arm EABI aligns a 64-bit pair to an even register (pread64's pos is r4/r5, r3 is
    padding): not guessed — a verdict that reads those registers depends on them."""
    f = bpfjit.compile(bpfjit.load(b"ld [40]\nor #0x50000\nret a\n", format="asm"), arch="arm")
    seen = []
    summary = Replayer(f).feed(strace.parse(['pread64(3, "abc", 4096, 7) = 3\n',
                                             "getpid() = 5\n"], "t"),
                               each=lambda c, rv, dep: seen.append((c.name, dep)))
    assert seen == [("pread64", True), ("getpid", True)]
    g = next(g for g in summary.groups.values() if g.syscall == "pread64")
    assert g.unknown == ["args[3].lo"]
