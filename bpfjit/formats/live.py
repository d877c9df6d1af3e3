"""Filters of a live process: read them with ``PTRACE_SECCOMP_GET_FILTER`` (Linux, root).

kernel/seccomp.c ``seccomp_get_filter``: the tracee must be ptrace-stopped,
the tracer needs CAP_SYS_ADMIN. Filter 0 is the OLDEST (first installed) one:
``get_nth_filter`` counts back from the newest to the ``count - index``-th
(verified on Linux 6.18 by tests/cli/test_live.py; some documentation says
the opposite).
We attach with ``PTRACE_SEIZE`` + ``PTRACE_INTERRUPT`` (the process does not
see a SIGSTOP), copy each filter, and detach.

:func:`load_process_flags` also reads each filter's flags with
``PTRACE_SECCOMP_GET_METADATA`` (``seccomp_get_metadata``: the kernel reports
``SECCOMP_FILTER_FLAG_LOG`` only, the one flag a filter keeps that changes
what it does later; NEW_LISTENER, TSYNC... act at install time only).
"""
from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import sys

from ..errors import LoadError
from ..program import Program

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
PTRACE_SECCOMP_GET_METADATA = 0x420D
WALL = 0x40000000


def _libc():
    if not sys.platform.startswith("linux"):
        raise LoadError("reading a live process's filters needs Linux (PTRACE_SECCOMP_GET_FILTER)")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    return libc


def _why(err: int, pid: int) -> str:
    return {
        errno_mod.ESRCH: f"no process {pid} (or it exited)",
        errno_mod.EPERM: "not permitted (needs root/CAP_SYS_ADMIN, and a Yama ptrace_scope "
                         "that allows attaching)",
        errno_mod.EACCES: "not permitted (needs CAP_SYS_ADMIN)",
        errno_mod.EINVAL: "the process has no seccomp filter (or uses strict mode)",
        errno_mod.EBUSY: "the process is already being traced",
    }.get(err, os.strerror(err))


class _Metadata(ctypes.Structure):
    _fields_ = [("filter_off", ctypes.c_uint64), ("flags", ctypes.c_uint64)]   # seccomp_metadata


def load_process(pid: int, index: int | None = None) -> list[Program]:
    """The filters of process ``pid``, oldest first; with ``index`` only that one (0 = oldest)."""
    return [prog for prog, _ in _read(pid, index, False)]


def load_process_flags(pid: int, index: int | None = None) -> list[tuple[Program, int]]:
    """(filter, its SECCOMP_FILTER_FLAG_* bits as the kernel reports them), oldest first."""
    return _read(pid, index, True)


def _read(pid: int, index: int | None, metadata: bool) -> list[tuple[Program, int]]:
    libc = _libc()
    if libc.ptrace(PTRACE_SEIZE, pid, None, None) != 0:
        err = ctypes.get_errno()
        raise LoadError(f"cannot attach to process {pid}: {_why(err, pid)}", source=f"pid {pid}")
    try:
        libc.ptrace(PTRACE_INTERRUPT, pid, None, None)
        status = ctypes.c_int()
        libc.waitpid(pid, ctypes.byref(status), WALL)
        found: list[tuple[Program, int]] = []
        indexes = [index] if index is not None else range(1 << 20)
        for i in indexes:
            count = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, ctypes.c_void_p(i), None)
            if count < 0:
                err = ctypes.get_errno()
                if err == errno_mod.ENOENT and index is None:
                    break
                if err == errno_mod.ENOENT:
                    raise LoadError(f"process {pid} has no filter at index {i}",
                                    source=f"pid {pid}")
                raise LoadError(f"cannot read filter {i} of process {pid}: {_why(err, pid)}",
                                source=f"pid {pid}")
            buf = ctypes.create_string_buffer(count * 8)
            got = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, ctypes.c_void_p(i), buf)
            if got != count:
                raise LoadError(f"filter {i} of process {pid} changed while being read",
                                source=f"pid {pid}")
            flags = 0
            if metadata:
                md = _Metadata(i, 0)
                size = libc.ptrace(PTRACE_SECCOMP_GET_METADATA, pid,
                                   ctypes.c_void_p(ctypes.sizeof(md)), ctypes.byref(md))
                if size < 0:
                    err = ctypes.get_errno()
                    raise LoadError(f"cannot read the flags of filter {i} of process {pid}: "
                                    f"{_why(err, pid)}", source=f"pid {pid}")
                flags = md.flags
            found.append((Program.from_bytes(buf.raw, sys.byteorder,
                                             source=f"pid {pid} filter {i}"), flags))
        return found
    finally:
        libc.ptrace(PTRACE_DETACH, pid, None, None)
