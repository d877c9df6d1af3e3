"""Seccomp return values: ``retval`` (32 bits), :class:`Action` (decoded) and :class:`Outcome`.

Three values, three names:

- ``retval``: the program's 32-bit result, what every backend returns;
- :class:`Action`: ``retval`` decoded — ``SECCOMP_RET_ACTION_FULL`` (high 16
  bits) and ``SECCOMP_RET_DATA`` (low 16) — with the kernel's precedence;
- :class:`Outcome`: what the kernel then does to the calling process
  (kernel/seccomp.c ``__seccomp_filter``): ERRNO data capped at MAX_ERRNO
  (4095), unknown actions treated as KILL_PROCESS, and on x86_64 the
  ``uretprobe``/``uprobe`` syscalls, which never reach the filters.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_KILL = SECCOMP_RET_KILL_THREAD
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000

SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_ACTION = 0x7FFF0000
SECCOMP_RET_DATA = 0x0000FFFF
MAX_ERRNO = 4095

#: action value -> canonical name (include/uapi/linux/seccomp.h)
ACTION_NAMES = {
    SECCOMP_RET_KILL_PROCESS: "KILL_PROCESS",
    SECCOMP_RET_KILL_THREAD: "KILL_THREAD",
    SECCOMP_RET_TRAP: "TRAP",
    SECCOMP_RET_ERRNO: "ERRNO",
    SECCOMP_RET_USER_NOTIF: "USER_NOTIF",
    SECCOMP_RET_TRACE: "TRACE",
    SECCOMP_RET_LOG: "LOG",
    SECCOMP_RET_ALLOW: "ALLOW",
}
ACTION_VALUES = {name: value for value, name in ACTION_NAMES.items()}
ACTION_VALUES.update({"KILL": SECCOMP_RET_KILL_THREAD, "NOTIFY": SECCOMP_RET_USER_NOTIF})

#: actions whose 16 data bits mean something to the kernel
DATA_ACTIONS = frozenset({SECCOMP_RET_TRAP, SECCOMP_RET_ERRNO, SECCOMP_RET_TRACE})


def action_only(retval: int) -> int:
    """``ACTION_ONLY(ret)``: ``(s32)(ret & SECCOMP_RET_ACTION_FULL)``; lower wins."""
    a = retval & SECCOMP_RET_ACTION_FULL
    return a - (1 << 32) if a & 0x80000000 else a


@dataclass(frozen=True, order=False)
class Action:
    """A decoded seccomp return value. ``str()`` gives ``ALLOW``, ``ERRNO(1)``, ``TRAP(5)``..."""

    value: int

    def __post_init__(self) -> None:
        if not isinstance(self.value, int) or not 0 <= self.value <= 0xFFFFFFFF:
            from ..errors import InputError
            raise InputError(f"a seccomp return value is a u32 (0..0xffffffff), "
                             f"not {self.value!r}")

    @classmethod
    def from_value(cls, value: int) -> "Action":
        """The action of a 32-bit return value (0..0xffffffff); anything else is an InputError."""
        return cls(int(value))

    @classmethod
    def parse(cls, text: str) -> "Action":
        """``ALLOW``, ``ERRNO(1)``, ``TRAP(0x10)``, ``KILL``, ``NOTIFY``, ``0x7fff0000``..."""
        t = text.strip()
        m = re.fullmatch(r"(?:SECCOMP_RET_|SCMP_ACT_)?([A-Za-z_]+)\s*(?:\(\s*([^)]*?)\s*\))?", t)
        if m:
            name = m.group(1).upper()
            if name in ACTION_VALUES:
                base = ACTION_VALUES[name]
                data = 0
                if m.group(2):
                    try:
                        data = int(m.group(2), 0)
                    except ValueError:
                        raise ValueError(f"bad data in action {text!r}") from None
                    if not 0 <= data <= SECCOMP_RET_DATA:
                        raise ValueError(f"action data {data} in {text!r} is outside 0..65535")
                return cls(base | data)
        try:
            value = int(t, 0)
        except ValueError:
            names = ", ".join(sorted(ACTION_VALUES))
            raise ValueError(f"unknown action {text!r}; expected one of {names}, with (n) "
                             f"for ERRNO/TRAP/TRACE, or a number") from None
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"action value {text!r} is not a u32")
        return cls(value)

    @property
    def action(self) -> int:
        """``retval & SECCOMP_RET_ACTION_FULL``."""
        return self.value & SECCOMP_RET_ACTION_FULL

    @property
    def data(self) -> int:
        return self.value & SECCOMP_RET_DATA

    @property
    def known(self) -> bool:
        return self.action in ACTION_NAMES

    @property
    def name(self) -> str:
        """``ALLOW``, ``ERRNO``...; an unknown action is ``UNKNOWN``."""
        return ACTION_NAMES.get(self.action, "UNKNOWN")

    @property
    def effective(self) -> "Action":
        """The action the kernel applies: unknown actions act as KILL_PROCESS."""
        return self if self.known else Action(SECCOMP_RET_KILL_PROCESS)

    @property
    def precedence(self) -> int:
        """Sort key: lower wins when filters are stacked (``ACTION_ONLY``)."""
        return action_only(self.value)

    def __str__(self) -> str:
        if not self.known:
            return f"UNKNOWN({self.value:#010x})"
        if self.action in DATA_ACTIONS or self.data:
            return f"{self.name}({self.data})"
        return self.name

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"Action({str(self)}, value={self.value:#010x})"


def parse_action(text: str) -> int:
    """The 32-bit value of an action spelled as text (see :meth:`Action.parse`)."""
    return Action.parse(text).value


# x86_64 system calls that bypass seccomp entirely (kernel/seccomp.c seccomp_uprobe_exception,
# Linux >= 6.11/6.17): when seccomp_data.arch is AUDIT_ARCH_X86_64 and nr is one of these, the
# filters never run and the call proceeds — whatever layout a filter was compiled for (x32 tasks
# also report AUDIT_ARCH_X86_64).
AUDIT_ARCH_X86_64 = 0xC000003E
BYPASS_SYSCALLS = {AUDIT_ARCH_X86_64: {335: "uretprobe", 336: "uprobe"}}


@dataclass(frozen=True)
class Outcome:
    """What the kernel does to the process for a system call, given the stack's retval.

    ``kind`` is one of ``allow``, ``log`` (allowed and logged), ``errno``
    (returns ``-errno``), ``trap`` (SIGSYS, ``si_errno`` = data), ``trace``
    (ptracer notified; -ENOSYS if none), ``user_notif`` (listener asked;
    -ENOSYS if none), ``kill_thread``, ``kill_process`` or ``bypass`` (the
    syscall never reached the filters).
    """

    kind: str
    retval: int | None
    errno: int | None = None
    data: int | None = None

    def __str__(self) -> str:
        if self.kind == "errno":
            return f"returns -{self.errno}" if self.errno else "returns 0 without running"
        if self.kind == "trap":
            return f"SIGSYS (si_errno={self.data})"
        if self.kind == "bypass":
            return "runs: this syscall never reaches seccomp filters"
        if self.kind in ("trace", "user_notif"):
            return {"trace": "stops for the tracer (-ENOSYS without one)",
                    "user_notif": "waits for the listener (-ENOSYS without one)"}[self.kind]
        return {"allow": "runs", "log": "runs (logged)", "kill_thread": "thread killed (SIGSYS)",
                "kill_process": "process killed (SIGSYS, core dump)"}[self.kind]


def outcome(retval: int, *, arch_name: str | None = None, nr: int | None = None,
            audit_arch: int | None = None) -> Outcome:
    """The kernel's handling of ``retval`` (kernel/seccomp.c ``__seccomp_filter``)."""
    if audit_arch is None and arch_name is not None:
        from .layouts import layout
        audit_arch = layout(arch_name).audit_arch
    if nr in BYPASS_SYSCALLS.get(audit_arch, ()):     # keyed on the record's arch value
        return Outcome("bypass", None)
    act = Action.from_value(retval).effective
    data = act.data
    kinds = {SECCOMP_RET_ALLOW: "allow", SECCOMP_RET_LOG: "log", SECCOMP_RET_ERRNO: "errno",
             SECCOMP_RET_TRAP: "trap", SECCOMP_RET_TRACE: "trace",
             SECCOMP_RET_USER_NOTIF: "user_notif", SECCOMP_RET_KILL_THREAD: "kill_thread",
             SECCOMP_RET_KILL_PROCESS: "kill_process"}
    kind = kinds[act.action]
    if kind == "errno":
        return Outcome(kind, retval, errno=min(data, MAX_ERRNO), data=data)
    return Outcome(kind, retval, data=data)


def stack_retval(values: list[int]) -> int:
    """The kernel's choice among the retvals of stacked filters, given OLDEST first.

    kernel/seccomp.c ``seccomp_run_filters``: start from SECCOMP_RET_ALLOW,
    walk newest to oldest, keep ``cur`` when ``ACTION_ONLY(cur) <
    ACTION_ONLY(ret)``; ties go to the newest, ALLOW data is dropped.
    """
    ret = SECCOMP_RET_ALLOW
    for cur in reversed(values):
        if action_only(cur) < action_only(ret):
            ret = cur
    return ret
