"""A fast acceptance oracle: the running kernel's seccomp filter *preparation*, without installing.

kernel/seccomp.c ``seccomp_set_mode_filter`` prepares a filter
(``seccomp_prepare_user_filter``: bpf_check_classic, seccomp_check_filter,
bpf_convert_filter, bpf_prog_select_runtime i.e. the JIT) before it takes
any lock, and only then, with SECCOMP_FILTER_FLAG_NEW_LISTENER, checks
``has_duplicate_listener``: a task whose filters already carry a listener gets
EBUSY, and nothing is attached. So a worker process that once installs an
allow-all filter with NEW_LISTENER can ask the kernel about any number of
programs: every later ``seccomp(SET_MODE_FILTER, NEW_LISTENER, prog)``
answers EINVAL (the rules), ENOTSUPP (524, the JIT failed), ENOMEM, or EBUSY
(prepared fine: the kernel accepts the program), and its filter count stays
1. Not covered: the attach-time path budget (ENOMEM in
``seccomp_attach_filter``, see :func:`bpfjit.backends.kernel.kernel_accepts_stack`).

The worker is a separate, isolated Python process (``python -I -c``,
standard library only, ctypes ``syscall``), fed batches over a pipe; a
throwaway: its seccomp filter dies with it. :class:`SeccompPrepare` answers
``0`` (accepted) or the errno, like :func:`bpfjit.backends.kernel.kernel_accepts`.
"""
from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Iterable, Sequence

from ..errors import BackendUnavailable, BpfjitError
from ..program import Program

#: what the worker reports for a program that was *installed* (should never happen)
INSTALLED = -1

_WORKER = r'''
import ctypes, errno, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_void_p]
class sock_fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
NR_seccomp, SET_MODE_FILTER, NEW_LISTENER = 317, 1, 8
out, inp = sys.stdout.buffer, sys.stdin.buffer
if libc.prctl(38, 1, 0, 0, 0) != 0:                     # PR_SET_NO_NEW_PRIVS
    out.write(b"ER" + struct.pack("<i", ctypes.get_errno())); out.flush(); sys.exit(1)
allow = ctypes.create_string_buffer(struct.pack("<HBBI", 6, 0, 0, 0x7FFF0000))
fprog = sock_fprog(1, ctypes.addressof(allow))
fd = libc.syscall(NR_seccomp, SET_MODE_FILTER, NEW_LISTENER, ctypes.addressof(fprog))
if fd < 0:
    out.write(b"ER" + struct.pack("<i", ctypes.get_errno())); out.flush(); sys.exit(1)
out.write(b"OK" + struct.pack("<i", fd)); out.flush()
EBUSY = errno.EBUSY
syscall, get_errno, addr = libc.syscall, ctypes.get_errno, ctypes.addressof(fprog)
while True:
    head = inp.read(8)
    if len(head) < 8:
        break
    count, size = struct.unpack("<II", head)
    lens = struct.unpack("<%dH" % count, inp.read(2 * count))
    buf = ctypes.create_string_buffer(inp.read(size), max(size, 1))
    base = ctypes.addressof(buf)
    res = []
    off = 0
    for n in lens:
        fprog.len = n
        fprog.filter = base + off
        off += 8 * n
        r = syscall(NR_seccomp, SET_MODE_FILTER, NEW_LISTENER, addr)
        if r >= 0:
            res.append(-1)
            import os; os.close(r)
        else:
            e = get_errno()
            res.append(0 if e == EBUSY else e)
    out.write(struct.pack("<%di" % count, *res)); out.flush()
'''


class PrepareOracleError(BpfjitError, RuntimeError):
    """The prepare worker failed in a way that says nothing about the programs."""


def unavailable_reason() -> str | None:
    """None when this system can run the prepare oracle; else why not."""
    if sys.platform != "linux":
        return f"needs Linux (this is {sys.platform})"
    try:
        with open("/proc/self/status") as fh:
            status = dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError as exc:
        return f"cannot read /proc/self/status: {exc}"
    if "Seccomp" not in status:
        return "this kernel has no seccomp"
    if status["Seccomp"].strip() != "0":
        return "this process is already under seccomp; its filters would answer too"
    import platform
    if platform.machine() != "x86_64":
        return f"the worker's system call numbers are x86_64's (this is {platform.machine()})"
    return None


class SeccompPrepare:
    """One throwaway worker process asking the kernel to prepare programs; use as a context manager."""

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise BackendUnavailable(f"the seccomp prepare oracle is unavailable: {reason}")
        self._proc = subprocess.Popen([sys.executable, "-I", "-c", _WORKER],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        hello = self._proc.stdout.read(6)
        if len(hello) < 6 or hello[:2] != b"OK":
            code = struct.unpack("<i", hello[2:6])[0] if len(hello) == 6 else None
            self.close()
            raise BackendUnavailable(f"the seccomp prepare worker could not install its "
                                     f"listener filter (errno {code})")
        self.pid = self._proc.pid

    def errnos(self, programs: Iterable["bytes | Program"]) -> list[int]:
        """0 (the kernel would accept) or the errno, for each program (little-endian sock_filter bytes)."""
        data = [p.to_bytes("little") if isinstance(p, Program) else bytes(p) for p in programs]
        out: list[int] = []
        for lo in range(0, len(data), 4096):
            out += self.collect(self.submit(data[lo:lo + 4096]))
        return out

    def submit(self, chunk: Sequence[bytes]) -> int:
        """Send one batch (at most 4096 programs, bytes) without waiting; :meth:`collect` answers it."""
        for i, d in enumerate(chunk):
            if len(d) % 8 or len(d) // 8 > 0xFFFF:
                raise ValueError(f"program {i}: {len(d)} bytes is not a sock_filter array the "
                                 f"kernel can be asked about")
        if len(chunk) > 4096:
            raise ValueError("submit() takes at most 4096 programs at a time")
        blob = b"".join(chunk)
        msg = struct.pack("<II", len(chunk), len(blob)) + \
            struct.pack(f"<{len(chunk)}H", *[len(d) // 8 for d in chunk]) + blob
        try:
            self._proc.stdin.write(msg)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise PrepareOracleError(f"the prepare worker died: {exc}") from None
        return len(chunk)

    def collect(self, count: int) -> list[int]:
        """The answers to the batch of ``count`` programs sent last by :meth:`submit`."""
        try:
            raw = self._proc.stdout.read(4 * count)
        except OSError as exc:
            raise PrepareOracleError(f"the prepare worker died: {exc}") from None
        chunk = range(count)
        if len(raw) != 4 * len(chunk):
            raise PrepareOracleError(f"the prepare worker died (exit status {self._proc.poll()})")
        res = list(struct.unpack(f"<{count}i", raw)) if count else []
        if INSTALLED in res:
            raise PrepareOracleError("a program was installed instead of refused with EBUSY: "
                                     "the duplicate-listener rule did not hold")
        return res

    def seccomp_filters(self) -> int:
        """The worker's ``Seccomp_filters`` count (1 while nothing accumulates)."""
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("Seccomp_filters:"):
                    return int(line.split()[1])
        raise PrepareOracleError("no Seccomp_filters line")  # pragma: no cover

    def close(self) -> None:
        proc = self._proc
        if proc.poll() is None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> "SeccompPrepare":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def seccomp_prepare_errnos(programs: Iterable["bytes | Program"]) -> list[int]:
    """0 or the errno for each program, from one throwaway worker."""
    with SeccompPrepare() as oracle:
        return oracle.errnos(programs)


__all__ = ["SeccompPrepare", "seccomp_prepare_errnos", "unavailable_reason",
           "PrepareOracleError", "INSTALLED"]
