"""What the kernel does to the process: the matching filter, logging, and what the caller sees.

After the filters ran (:mod:`bpfjit.stack`), kernel/seccomp.c
``__seccomp_filter`` acts on the winning value. This module models that step
for a given :class:`Environment` (the sysctl ``actions_logged``, a tracer,
live listeners, the thread count, the kernel version):

- **matching filter**: ``seccomp_run_filters`` walks newest to oldest and
  records the filter whenever ``ACTION_ONLY(cur) < ACTION_ONLY(ret)``, so it
  is the newest filter that returned the winning action; for ALLOW there is
  none (``match`` stays NULL). Indexes count from the oldest filter (0).
- **logged** (``seccomp_log``): never ALLOW; never an action missing from
  ``actions_logged``; KILL_PROCESS, KILL_THREAD, unknown actions and LOG
  always; TRAP, ERRNO, TRACE and USER_NOTIF only when the matching filter was
  installed with ``SECCOMP_FILTER_FLAG_LOG``. A TRACE handed to a tracer, or a
  USER_NOTIF handed to a listener, is logged with the same rule only if the
  tracer skips the call or the listener answers without
  ``SECCOMP_USER_NOTIF_FLAG_CONTINUE`` (the model assumes that answer).
- **what the process sees**: ERRNO returns ``-min(data, 4095)`` (ERRNO(0)
  returns 0 without running the call); TRAP delivers SIGSYS with ``si_code``
  SYS_SECCOMP, ``si_errno`` = data, ``si_syscall``, ``si_arch``; TRACE stops
  for a tracer with ``PTRACE_EVENT_SECCOMP`` (message = data) or fails with
  ENOSYS without one; USER_NOTIF waits for the matching filter's listener, or
  fails with ENOSYS when that filter has none (a listener on another filter
  does not help); KILL_PROCESS (and, from 5.10, unknown actions) kills the
  process with SIGSYS and a core dump; KILL_THREAD kills the process the
  same way when the thread is the last one, else only the thread.
- on x86_64 (``seccomp_data.arch == AUDIT_ARCH_X86_64``) the system calls 335
  (uretprobe, 6.11+) and 336 (uprobe, 6.17+) never reach the filters.

Older kernels decode values differently; see :mod:`bpfjit.seccomp.kernels`. The same
answers for whole record arrays: :mod:`bpfjit.batch_detail`.
"""
from __future__ import annotations

import errno as errno_mod
import signal as signal_mod
from collections.abc import Sequence
from dataclasses import dataclass, field


from .seccomp import kernels
from .seccomp.actions import (MAX_ERRNO, SECCOMP_RET_ALLOW, SECCOMP_RET_DATA, SECCOMP_RET_ERRNO,
                              SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_LOG,
                              SECCOMP_RET_TRACE, SECCOMP_RET_TRAP, SECCOMP_RET_USER_NOTIF,
                              Action, action_only)
from .seccomp.kernels import SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_NEW_LISTENER, Version

AUDIT_ARCH_X86_64 = 0xC000003E
#: nr -> (name, first kernel) of the x86_64 calls that bypass seccomp (seccomp_uprobe_exception)
BYPASS = {335: ("uretprobe", (6, 11)), 336: ("uprobe", (6, 17))}
SIGSYS = int(signal_mod.SIGSYS)
SYS_SECCOMP = 1                         # si_code of a seccomp SIGSYS (include/uapi/asm-generic/siginfo.h)
_PRE_414_MASK = 0x7FFF0000              # SECCOMP_RET_ACTION before 4.14


@dataclass(frozen=True)
class Environment:
    """The process and system state the outcome depends on; defaults are Linux 6.18's own.

    ``actions_logged``: the sysctl's names (None: the version's default, every
    action but allow). ``tracer``: a ptracer with ``PTRACE_O_TRACESECCOMP`` is
    attached. ``listeners``: indexes (oldest = 0) of the filters whose
    listener fd is still open; None means every filter installed with
    ``SECCOMP_FILTER_FLAG_NEW_LISTENER``. ``threads``: live threads of the
    process. ``kernel``: ``(major, minor)``. ``no_new_privs`` /
    ``cap_sys_admin``: only the install check uses them.
    """

    actions_logged: frozenset[str] | None = None
    tracer: bool = False
    listeners: frozenset[int] | None = None
    threads: int = 1
    kernel: Version = kernels.DEFAULT_KERNEL
    no_new_privs: bool = True
    cap_sys_admin: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", kernels.parse_version(self.kernel))
        if self.actions_logged is not None:
            object.__setattr__(self, "actions_logged",
                               kernels.parse_actions_logged(self.actions_logged, self.kernel))
        if self.listeners is not None:
            object.__setattr__(self, "listeners", frozenset(int(i) for i in self.listeners))
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 1:
            raise ValueError(f"threads must be a positive int, not {self.threads!r}")

    @property
    def logged_names(self) -> frozenset[str]:
        if self.actions_logged is None:
            return kernels.default_actions_logged(self.kernel)
        return self.actions_logged

    def live_listeners(self, flags: Sequence[int]) -> frozenset[int]:
        if self.listeners is not None:
            return self.listeners
        return frozenset(i for i, f in enumerate(flags) if f & SECCOMP_FILTER_FLAG_NEW_LISTENER)


@dataclass(frozen=True)
class ProcessOutcome:
    """What one system call does to the process, as plain fields.

    ``action``: the kernel's name for what it did (``ALLOW``, ``ERRNO``...,
    ``UNKNOWN`` for an action the kernel does not know); ``acts_as``: the
    action it applied (``KILL_PROCESS`` for an unknown one on 6.18);
    ``retval``: the winning 32-bit value (None when bypassed);
    ``matching_filter``: index of the filter that decided (oldest = 0; None
    for ALLOW and bypass); ``errno``: the call returns ``-errno`` (0: returns 0
    without running); ``signal``/``si_*``: a SIGSYS and its siginfo;
    ``killed``: ``"thread"`` or ``"process"``; ``core_dump``: the kernel forces
    a core dump (written only if RLIMIT_CORE and core_pattern allow).
    """

    action: str
    acts_as: str
    retval: int | None
    data: int
    matching_filter: int | None
    logged: bool
    runs: bool = False
    errno: int | None = None
    returns_zero: bool = False
    signal: int | None = None
    si_code: int | None = None
    si_errno: int | None = None
    si_syscall: int | None = None
    si_arch: int | None = None
    killed: str | None = None
    core_dump: bool = False
    waits_for_listener: bool = False
    traced: bool = False
    ptrace_message: int | None = None
    bypass: bool = False
    notes: tuple[str, ...] = field(default=())

    def effect(self) -> str:
        """What the process sees, in words (without the logging)."""
        log = ""
        if self.bypass:
            return "runs: this syscall never reaches seccomp filters"
        if self.killed == "process":
            return f"process killed by SIGSYS{' with a core dump' if self.core_dump else ''}{log}"
        if self.killed == "thread":
            return f"thread killed by SIGSYS (other threads go on){log}"
        if self.signal is not None:
            return f"SIGSYS delivered (si_errno={self.si_errno}, si_syscall={self.si_syscall}){log}"
        if self.waits_for_listener:
            return f"waits for the listener of filter {self.matching_filter}{log}"
        if self.traced:
            return f"stops for the tracer (PTRACE_EVENT_SECCOMP, message {self.ptrace_message}){log}"
        if self.returns_zero:
            return f"returns 0 without running{log}"
        if self.errno is not None:
            name = errno_mod.errorcode.get(self.errno, "")
            return f"returns -{self.errno}{f' ({name})' if name else ''}{log}"
        return f"runs{log}"

    def __str__(self) -> str:
        return self.effect() + (", logged" if self.logged else "")

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "notes"}
        out["notes"] = list(self.notes)
        out["description"] = str(self)
        return out


def winner(values: Sequence[int], kernel: Version = kernels.DEFAULT_KERNEL) -> tuple[int, int | None]:
    """(retval, matching filter index) of ``seccomp_run_filters`` over values OLDEST first."""
    ret, match = SECCOMP_RET_ALLOW, None
    if kernel >= kernels.SYSCTL_FIRST:
        key = action_only
    else:
        def key(v: int) -> int:
            return v & _PRE_414_MASK
    best = key(ret)
    for i in range(len(values) - 1, -1, -1):
        k = key(values[i])
        if k < best:
            ret, match, best = values[i], i, k
    return ret, match


def acts_as(retval: int, kernel: Version = kernels.DEFAULT_KERNEL) -> tuple[str, int]:
    """(kernel's action name or UNKNOWN, action value it applies) for a winning value."""
    if kernel < kernels.SYSCTL_FIRST:
        action = retval & _PRE_414_MASK
    else:
        action = retval & 0xFFFF0000
    known = kernels.known_actions(kernel)
    if action in known:
        name = Action(action).name
        if kernel < kernels.SYSCTL_FIRST and action == SECCOMP_RET_KILL_THREAD:
            name = "KILL_THREAD"
        return name, action
    applied = SECCOMP_RET_KILL_PROCESS if kernel >= kernels.UNKNOWN_KILLS_PROCESS \
        else SECCOMP_RET_KILL_THREAD
    return "UNKNOWN", applied


def bypasses(nr: int, audit_arch: int | None, kernel: Version = kernels.DEFAULT_KERNEL) -> bool:
    """Does this record skip every filter? Keyed on the record's arch value, not the layout."""
    found = BYPASS.get(nr)
    return audit_arch == AUDIT_ARCH_X86_64 and found is not None and kernel >= found[1]


def process_outcome(values: Sequence[int], flags: Sequence[int], nr: int,
                    audit_arch: int, env: Environment | None = None) -> ProcessOutcome:
    """The kernel's handling of one system call, given each filter's value (OLDEST first)."""
    env = env or Environment()
    kernel = env.kernel
    if len(flags) != len(values):
        raise ValueError(f"{len(values)} filters but {len(flags)} flag values")
    if bypasses(nr, audit_arch, kernel):
        return ProcessOutcome("ALLOW", "ALLOW", None, 0, None, False, runs=True, bypass=True)
    retval, match = winner(values, kernel)
    name, applied = acts_as(retval, kernel)
    data = retval & SECCOMP_RET_DATA
    requested = match is not None and bool(flags[match] & SECCOMP_FILTER_FLAG_LOG)
    names = env.logged_names if kernel >= kernels.SYSCTL_FIRST else frozenset()
    notes: list[str] = []
    if kernel < kernels.SYSCTL_FIRST:
        notes.append("before 4.14 a seccomp action is audited only for tasks audit rules select")
    applied_name = Action(applied).name
    base = dict(action=name, acts_as=applied_name, retval=retval, data=data,
                matching_filter=match)

    def category_logged(category: str, needs_flag: bool) -> bool:
        return category in names and (requested or not needs_flag)

    if applied == SECCOMP_RET_ALLOW:
        return ProcessOutcome(**base, logged=False, runs=True, notes=tuple(notes))
    if applied == SECCOMP_RET_LOG:
        return ProcessOutcome(**base, logged=category_logged("log", False), runs=True,
                              notes=tuple(notes))
    if applied == SECCOMP_RET_ERRNO:
        err = min(data, MAX_ERRNO)
        return ProcessOutcome(**base, logged=category_logged("errno", True), errno=err,
                              returns_zero=err == 0, notes=tuple(notes))
    if applied == SECCOMP_RET_TRAP:
        notes.append("SIGSYS is not forced: a handler may catch it; unhandled, it kills the "
                     "process with a core dump (its default action)")
        return ProcessOutcome(**base, logged=category_logged("trap", True), signal=SIGSYS,
                              si_code=SYS_SECCOMP, si_errno=data, si_syscall=nr,
                              si_arch=audit_arch, notes=tuple(notes))
    if applied == SECCOMP_RET_TRACE:
        if env.tracer:
            notes.append("logged only if the tracer skips the call (sets nr to -1)")
            return ProcessOutcome(**base, logged=False, traced=True, ptrace_message=data,
                                  notes=tuple(notes))
        return ProcessOutcome(**base, logged=category_logged("trace", True),
                              errno=errno_mod.ENOSYS, notes=tuple(notes))
    if applied == SECCOMP_RET_USER_NOTIF:
        if match in env.live_listeners(flags):
            notes.append("logged as shown unless the listener answers "
                         "SECCOMP_USER_NOTIF_FLAG_CONTINUE")
            return ProcessOutcome(**base, logged=category_logged("user_notif", True),
                                  waits_for_listener=True, notes=tuple(notes))
        return ProcessOutcome(**base, logged=category_logged("user_notif", True),
                              errno=errno_mod.ENOSYS, notes=tuple(notes))
    # KILL_THREAD, KILL_PROCESS, and unknown actions (logged under kill_process)
    category = "kill_thread" if name == "KILL_THREAD" else "kill_process"
    logged = category_logged(category, False)
    if applied == SECCOMP_RET_KILL_PROCESS or env.threads == 1:
        core = kernel >= kernels.KILL_DUMPS_CORE
        return ProcessOutcome(**base, logged=logged, signal=SIGSYS, killed="process",
                              core_dump=core, notes=tuple(notes))
    return ProcessOutcome(**base, logged=logged, signal=SIGSYS, killed="thread",
                          notes=tuple(notes))
