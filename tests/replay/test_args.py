"""Symbolic strace arguments back to register values, checked against independent sources:
strace's own raw output of the same program, and the host C library's constants."""
from __future__ import annotations

import mmap
import os
import platform
import re
import resource
import signal
import socket

import pytest

from bpfjit.replay import strace
from bpfjit.replay.args import decode, value
from bpfjit.replay.calls import Call
from bpfjit.replay.constants import table

HOST_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64"}.get(platform.machine())
#: names whose C-library value is not the kernel's register value, with the reason
NOT_KERNEL_VALUES = {
    "O_LARGEFILE": "glibc defines it as 0 on 64-bit hosts; the kernel bit strace prints is 0o100000",
    "SIGRTMIN": "glibc reserves two real-time signals; strace prints the kernel's SIGRTMIN (32)",
}


@pytest.mark.skipif(HOST_ARCH is None, reason="the host's C library constants are x86_64/aarch64")
def test_the_constants_equal_the_host_c_librarys():
    names = table(HOST_ARCH)
    compared = 0
    for module in (os, socket, mmap, signal, resource):
        for attr in dir(module):
            if attr in names and attr not in NOT_KERNEL_VALUES:
                v = getattr(module, attr)
                if isinstance(v, int):
                    assert int(v) == names[attr], f"{module.__name__}.{attr}"
                    compared += 1
    assert compared > 200


def _calls(path):
    return [c for c in strace.parse(open(path), str(path)) if isinstance(c, Call)]


@pytest.mark.parametrize("symbolic, raw", [
    ("files_and_sockets.strace", "files_and_sockets.rawall.strace"),
    ("sh.strace", "sh.rawall.strace"),
])
def test_symbolic_arguments_decode_to_the_registers_strace_raw_all_shows(data, symbolic, raw):
    """The same single-process program traced twice: once decoded, once with -e raw=all
    (strace prints every register in hex). Every argument strace printed as a name
    expression must decode to exactly the register value of the raw run; negative
    ones in their low 32 bits, with the high word marked unknown."""
    a, b = _calls(data / symbolic), _calls(data / raw)
    assert [c.name for c in a] == [c.name for c in b]
    checked = 0
    for x, y in zip(a, b):
        got, high = decode(x.name, x.args, "x86_64")
        exact, _ = decode(y.name, y.args, "x86_64")
        for i, text in enumerate(x.args[:6]):
            if re.search(r"[A-Z]{2}", text) and not text.startswith(('"', "{", "[", "~")):
                assert got[i] is not None, (x.text, text)
                assert got[i] == exact[i] & (0xFFFFFFFF if high >> i & 1 else ~0), (x.text, y.text)
                checked += 1
    assert checked > 30


@pytest.mark.parametrize("text, expected", [
    ("3", 3), ("0x7ffc1000", 0x7FFC1000), ("0644", 0o644), ("0", 0), ("NULL", 0),
    ("O_RDONLY|O_CLOEXEC", 0o2000000), ("AT_FDCWD", (1 << 64) - 100),
    ("SOCK_STREAM|SOCK_CLOEXEC", 0o2000001), ("MAP_PRIVATE|MAP_ANONYMOUS", 0x22),
    ("PROT_READ|PROT_WRITE|PROT_EXEC", 7), ("CLONE_VM|CLONE_FS|SIGCHLD", 0x311),
    ("MAP_HUGETLB|21<<MAP_HUGE_SHIFT", 0x40000 | 21 << 26), ("AF_INET6", 10),
    ("FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME", 9 | 128 | 256),
    ('"/etc/passwd"', None), ("{st_mode=S_IFREG|0644, ...}", None), ("[0, 1]", None),
    ("~[RTMIN RT_1]", None), ("O_RDONLY|O_BOGUS", None), ("0x80000 /* O_??? */", 0x80000),
    ("makedev(0x1, 0x3)", None),
])
def test_one_argument_value(text, expected):
    from bpfjit.replay.args import collapse
    assert value(collapse(text), table("x86_64")) == expected


def test_clone_arguments_go_to_each_arches_register_order():
    texts = ["child_stack=NULL", "flags=CLONE_VM|SIGCHLD", "parent_tid=0x10", "tls=0x20",
             "child_tidptr=0x30"]
    assert decode("clone", texts, "x86_64")[0] == [0x111, 0, 0x10, 0x30, 0x20, None]
    assert decode("clone", texts, "aarch64")[0] == [0x111, 0, 0x10, 0x20, 0x30, None]
    assert decode("clone", texts, "s390x")[0] == [0, 0x111, 0x10, 0x30, 0x20, None]


def test_a_negative_int_is_known_in_its_low_word_only():
    values, high = decode("mmap", ["NULL", "8192", "PROT_READ", "MAP_PRIVATE|MAP_ANONYMOUS",
                                   "-1", "0"], "x86_64")
    assert values == [0, 8192, 1, 0x22, 0xFFFFFFFF, 0] and high == 1 << 4


def test_arches_without_tabulated_constants_leave_names_unknown():
    values, _ = decode("openat", ["AT_FDCWD", '""', "O_RDONLY", "0x1"], "mips")
    assert values == [None, None, None, 1, None, None]
