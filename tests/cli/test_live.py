"""Reading filters from a live process (PTRACE_SECCOMP_GET_FILTER) — needs Linux and root."""
from __future__ import annotations

import ctypes
import os
import signal
import struct
import sys
import time

import pytest

import bpfjit
from bpfjit.formats.live import load_process

pytestmark = pytest.mark.kernel


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if os.geteuid() != 0:
        return "PTRACE_SECCOMP_GET_FILTER needs root"
    try:
        with open("/proc/self/status") as fh:
            if "Seccomp:" not in fh.read():
                return "kernel without seccomp"
    except OSError:
        return "no /proc"
    return None


def _child_with_filters(programs: list[bytes]) -> int:
    """Fork a child that installs ``programs`` (oldest first) and then sleeps."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only ctypes calls the filters allow (they allow everything but nr 4095)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(38, 1, 0, 0, 0)                       # PR_SET_NO_NEW_PRIVS
            bufs = []
            for prog in programs:
                buf = ctypes.create_string_buffer(prog)
                bufs.append(buf)
                fprog = struct.pack("HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf))
                fp = ctypes.create_string_buffer(fprog)
                if libc.syscall(317, 1, 0, fp) != 0:         # seccomp(SET_MODE_FILTER)
                    os._exit(3)
            os.write(w, b"k")
            while True:
                time.sleep(1)
        finally:
            os._exit(4)
    os.close(w)
    assert os.read(r, 1) == b"k"
    os.close(r)
    return pid


def test_dump_reads_back_every_filter_oldest_first():
    if reason := _skip_reason():
        pytest.skip(reason)
    a = bpfjit.load("ld [nr]\njeq #4095, e\nret ALLOW\ne: ret ERRNO(1)\n", format="asm")
    b = bpfjit.load("ld [nr]\njeq #4094, e\nret ALLOW\ne: ret ERRNO(2)\n", format="asm")
    pid = _child_with_filters([a.to_bytes(), b.to_bytes()])
    try:
        got = load_process(pid)
        assert [p.to_bytes() for p in got] == [a.to_bytes(), b.to_bytes()]
        assert load_process(pid, index=0)[0] == a            # 0 = oldest (get_nth_filter)
        assert load_process(pid, index=1)[0] == b
        with pytest.raises(bpfjit.LoadError, match="no filter at index 5"):
            load_process(pid, index=5)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_dump_of_a_missing_process_is_a_clear_error():
    if reason := _skip_reason():
        pytest.skip(reason)
    with pytest.raises(bpfjit.LoadError, match="cannot attach"):
        load_process(2 ** 22 + 12345)
