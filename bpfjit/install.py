"""Would ``seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`` succeed on top of a stack, and if not, why.

The rules, in the order kernel/seccomp.c applies them
(``seccomp_set_mode_filter`` → ``seccomp_prepare_filter`` →
``seccomp_attach_filter``):

1. a flag bit the version does not know (outside ``SECCOMP_FILTER_FLAG_MASK``) → EINVAL;
2. ``TSYNC`` with ``NEW_LISTENER`` but without ``TSYNC_ESRCH`` → EINVAL (a TSYNC
   failure returns a thread id, a listener an fd: they could not be told apart);
3. ``WAIT_KILLABLE_RECV`` without ``NEW_LISTENER`` → EINVAL;
4. 0 or more than 4096 instructions → EINVAL;
5. neither ``no_new_privs`` nor CAP_SYS_ADMIN → EACCES;
6. the program fails the checker → EINVAL (:mod:`bpfjit.check`);
7. ``NEW_LISTENER`` while a filter of the stack still has an open listener
   (``has_duplicate_listener``; a forked child inherits the stack and so the
   listener) → EBUSY;
8. the path budget of 32768 eBPF instructions, 4 more per earlier filter → ENOMEM.

On success the call returns 0, or the new listener fd with ``NEW_LISTENER``.
``TSYNC`` is assumed to succeed (every thread of the model shares the stack).
"""
from __future__ import annotations

import errno as errno_mod
from collections.abc import Sequence
from dataclasses import dataclass

from .check import check
from .errors import InvalidProgram
from .program import Program
from .seccomp import kernels
from .seccomp.kernels import (SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_FILTER_FLAG_TSYNC,
                              SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
                              SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)

BPF_MAXINSNS = 4096


@dataclass(frozen=True)
class InstallResult:
    """``ok``; ``errno`` (0 on success) and its name; ``reason``; ``returns``: what the call
    returns on success (``"0"`` or ``"listener fd"``); ``rule``: the kernel function that refused."""

    ok: bool
    errno: int
    reason: str
    returns: str | None = None
    rule: str | None = None

    @property
    def errno_name(self) -> str | None:
        return errno_mod.errorcode.get(self.errno) if self.errno else None

    def __str__(self) -> str:
        if self.ok:
            return f"installs (returns {self.returns})"
        return f"refused: {self.errno_name} — {self.reason}"

    def as_dict(self) -> dict:
        return {"ok": self.ok, "errno": self.errno, "errno_name": self.errno_name,
                "reason": self.reason, "returns": self.returns, "rule": self.rule}


def _fail(err: int, reason: str, rule: str) -> InstallResult:
    return InstallResult(False, err, reason, None, rule)


def install_check(program: Program, flags: "int | str" = 0, stack: Sequence[Program] = (),
                  stack_flags: Sequence[int] | None = None, env=None) -> InstallResult:
    """Would installing ``program`` with ``flags`` on top of ``stack`` (OLDEST first) succeed?

    ``env``: a :class:`bpfjit.process.Environment` (kernel version,
    ``no_new_privs``, ``cap_sys_admin``, ``listeners``: which filters of the
    stack still have an open listener).
    """
    from .process import Environment
    from .stack import FILTER_PENALTY, MAX_INSNS_PER_PATH, ebpf_length
    env = env or Environment()
    bits = kernels.parse_flags(flags)
    stack = list(stack)
    stack_flags = ([kernels.parse_flags(f) for f in stack_flags] if stack_flags is not None
                   else [0] * len(stack))
    if len(stack_flags) != len(stack):
        raise ValueError(f"{len(stack)} filters in the stack but {len(stack_flags)} flag values")
    v = env.kernel
    if bits and v < (3, 17):
        return _fail(errno_mod.ENOSYS, "filter flags need the seccomp(2) system call (3.17+)",
                     "sys_seccomp")
    mask = kernels.flag_mask(v)
    if bits & ~mask:
        return _fail(errno_mod.EINVAL, f"flag bits {kernels.flag_names(bits & ~mask)} are not "
                     f"known to Linux {v[0]}.{v[1]} (SECCOMP_FILTER_FLAG_MASK = {mask:#x})",
                     "seccomp_set_mode_filter")
    if (bits & SECCOMP_FILTER_FLAG_TSYNC and bits & SECCOMP_FILTER_FLAG_NEW_LISTENER
            and not bits & SECCOMP_FILTER_FLAG_TSYNC_ESRCH):
        return _fail(errno_mod.EINVAL, "TSYNC with NEW_LISTENER needs TSYNC_ESRCH (a TSYNC "
                     "failure would return a thread id where the listener fd is expected)",
                     "seccomp_set_mode_filter")
    if bits & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV and not bits & SECCOMP_FILTER_FLAG_NEW_LISTENER:
        return _fail(errno_mod.EINVAL, "WAIT_KILLABLE_RECV without NEW_LISTENER",
                     "seccomp_set_mode_filter")
    if not 1 <= len(program) <= BPF_MAXINSNS:
        return _fail(errno_mod.EINVAL, f"{len(program)} instructions (1 to {BPF_MAXINSNS} allowed)",
                     "seccomp_prepare_filter")
    if not env.no_new_privs and not env.cap_sys_admin:
        return _fail(errno_mod.EACCES, "neither no_new_privs (prctl PR_SET_NO_NEW_PRIVS) nor "
                     "CAP_SYS_ADMIN", "seccomp_prepare_filter")
    try:
        check(program)
    except InvalidProgram as exc:
        return _fail(getattr(errno_mod, exc.errno, errno_mod.EINVAL), str(exc),
                     exc.rule or "bpf_check_classic")
    if bits & SECCOMP_FILTER_FLAG_NEW_LISTENER:
        live = sorted(env.live_listeners(stack_flags))
        if live:
            return _fail(errno_mod.EBUSY, f"filter {live[0]} of the stack still has an open "
                         f"listener (one listener per task tree)", "has_duplicate_listener")
    total = ebpf_length(program) + sum(ebpf_length(p) + FILTER_PENALTY for p in stack)
    if total > MAX_INSNS_PER_PATH:
        return _fail(errno_mod.ENOMEM, f"the path would be {total} eBPF instructions; the kernel "
                     f"allows {MAX_INSNS_PER_PATH}", "seccomp_attach_filter")
    returns = "listener fd" if bits & SECCOMP_FILTER_FLAG_NEW_LISTENER else "0"
    return InstallResult(True, 0, "installs", returns, None)
