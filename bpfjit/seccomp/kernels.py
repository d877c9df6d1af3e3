"""What each kernel version knows: filter flags, actions, ``actions_avail``, ``SECCOMP_GET_ACTION_AVAIL``.

Versions are mainline ``(major, minor)`` tuples; a distribution kernel may
carry backports (e.g. 4.19.152 got the 5.10 change to unknown actions).
Sources, per fact:

- flags (include/uapi/linux/seccomp.h): ``SECCOMP_FILTER_FLAG_TSYNC`` 3.17,
  ``LOG`` 4.14, ``SPEC_ALLOW`` 4.17, ``NEW_LISTENER`` 5.0, ``TSYNC_ESRCH``
  5.7, ``WAIT_KILLABLE_RECV`` 5.19; a bit outside the version's
  ``SECCOMP_FILTER_FLAG_MASK`` makes ``seccomp_set_mode_filter`` fail EINVAL;
- actions: KILL, TRAP, ERRNO, TRACE, ALLOW since 3.5; KILL_PROCESS and LOG
  4.14; USER_NOTIF 5.0. ``seccomp_get_action_avail`` (4.14+) answers 0 for
  exactly those values and EOPNOTSUPP for anything else (data bits included);
  ``do_seccomp`` gives EINVAL for flags != 0 and, before 4.14, for the
  unknown operation;
- the sysctls ``/proc/sys/kernel/seccomp/actions_avail`` (read-only) and
  ``actions_logged`` (4.14+; ``allow`` and unknown names refused with EINVAL);
- how a return value is decoded (``__seccomp_filter``): before 4.14
  ``action = ret & SECCOMP_RET_ACTION`` (0x7fff0000), so KILL_PROCESS
  (0x80000000) reads as KILL, and ``seccomp_run_filters`` compares those
  masked values unsigned; from 4.14 ``ACTION_ONLY`` (signed, 0xffff0000).
  An action the version does not know takes the ``default:`` branch: before
  5.10 with ``action != SECCOMP_RET_KILL_PROCESS`` it exits only the thread
  (core dump if it was the only thread, from 4.11); from 5.10 (commit
  4d671d922d51 "kill process instead of thread for unknown actions") it kills
  the process.
"""
from __future__ import annotations

import errno as errno_mod
import functools
import platform
import re

from .actions import (SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS,
                      SECCOMP_RET_KILL_THREAD, SECCOMP_RET_LOG, SECCOMP_RET_TRACE,
                      SECCOMP_RET_TRAP, SECCOMP_RET_USER_NOTIF)

Version = tuple[int, int]

#: the kernel this project is verified on, and the model's default
DEFAULT_KERNEL: Version = (6, 18)
#: the oldest kernel with seccomp filters (SECCOMP_MODE_FILTER)
OLDEST_KERNEL: Version = (3, 5)

SECCOMP_SET_MODE_STRICT = 0
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_GET_NOTIF_SIZES = 3

SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5

#: flag name (without the SECCOMP_FILTER_FLAG_ prefix) -> (bit, first kernel)
FILTER_FLAGS: dict[str, tuple[int, Version]] = {
    "TSYNC": (SECCOMP_FILTER_FLAG_TSYNC, (3, 17)),
    "LOG": (SECCOMP_FILTER_FLAG_LOG, (4, 14)),
    "SPEC_ALLOW": (SECCOMP_FILTER_FLAG_SPEC_ALLOW, (4, 17)),
    "NEW_LISTENER": (SECCOMP_FILTER_FLAG_NEW_LISTENER, (5, 0)),
    "TSYNC_ESRCH": (SECCOMP_FILTER_FLAG_TSYNC_ESRCH, (5, 7)),
    "WAIT_KILLABLE_RECV": (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, (5, 19)),
}

#: action value -> (sysctl name, first kernel); sysctl order is actions_avail's (lowest first)
ACTIONS: dict[int, tuple[str, Version]] = {
    SECCOMP_RET_KILL_PROCESS: ("kill_process", (4, 14)),
    SECCOMP_RET_KILL_THREAD: ("kill_thread", (3, 5)),
    SECCOMP_RET_TRAP: ("trap", (3, 5)),
    SECCOMP_RET_ERRNO: ("errno", (3, 5)),
    SECCOMP_RET_USER_NOTIF: ("user_notif", (5, 0)),
    SECCOMP_RET_TRACE: ("trace", (3, 5)),
    SECCOMP_RET_LOG: ("log", (4, 14)),
    SECCOMP_RET_ALLOW: ("allow", (3, 5)),
}
#: the names actions_logged accepts (every action but allow)
LOGGABLE = ("kill_process", "kill_thread", "trap", "errno", "user_notif", "trace", "log")

SYSCTL_FIRST: Version = (4, 14)
UNKNOWN_KILLS_PROCESS: Version = (5, 10)
KILL_DUMPS_CORE: Version = (4, 11)


def parse_version(text: "str | Version | None") -> Version:
    """``"6.18"``, ``"5.4.0-150-generic"``, ``(4, 13)`` or None (the model's default, 6.18)."""
    if text is None:
        return DEFAULT_KERNEL
    if isinstance(text, tuple):
        version = text
    else:
        m = re.match(r"\s*(\d+)\.(\d+)", str(text))
        if not m:
            raise ValueError(f"kernel version {text!r} is not of the form MAJOR.MINOR[...] "
                             f"(e.g. 6.18 or 5.4.0-150-generic)")
        version = (int(m.group(1)), int(m.group(2)))
    if len(version) != 2 or not all(isinstance(v, int) and v >= 0 for v in version):
        raise ValueError(f"kernel version {text!r} is not (major, minor)")
    if version < OLDEST_KERNEL:
        raise ValueError(f"kernel {version[0]}.{version[1]} has no seccomp filters "
                         f"(they arrived in {OLDEST_KERNEL[0]}.{OLDEST_KERNEL[1]})")
    return version


def running_version() -> Version:
    """The running kernel's version (``uname -r``)."""
    return parse_version(platform.release())


def flag_mask(kernel: "str | Version | None" = None) -> int:
    """``SECCOMP_FILTER_FLAG_MASK`` of a kernel version."""
    v = parse_version(kernel)
    return sum(bit for bit, since in FILTER_FLAGS.values() if v >= since)


def parse_flags(text: "str | int | None") -> int:
    """``LOG,NEW_LISTENER``, ``SECCOMP_FILTER_FLAG_LOG|SPEC_ALLOW``, ``0x2``, ``10`` or ``""`` -> bits.

    Unknown names are an error; numbers may carry any bits (the install
    check reports the EINVAL the kernel gives for bits it does not know).
    """
    if text is None:
        return 0
    if isinstance(text, int) and not isinstance(text, bool):
        if not 0 <= text <= 0xFFFFFFFF:
            raise ValueError(f"filter flags {text} are not an unsigned int")
        return text
    bits = 0
    for part in re.split(r"[,|+\s]+", str(text).strip()):
        if not part:
            continue
        name = part.upper()
        name = name[len("SECCOMP_FILTER_FLAG_"):] if name.startswith("SECCOMP_FILTER_FLAG_") else name
        if name in FILTER_FLAGS:
            bits |= FILTER_FLAGS[name][0]
            continue
        try:
            value = int(part, 0)
        except ValueError:
            raise ValueError(f"unknown filter flag {part!r}; expected names among "
                             f"{', '.join(FILTER_FLAGS)} or a number") from None
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"filter flags {part} are not an unsigned int")
        bits |= value
    return bits


def flag_names(bits: int) -> str:
    """``LOG|NEW_LISTENER``; unknown bits as hex; ``0`` for none."""
    names = [name for name, (bit, _) in FILTER_FLAGS.items() if bits & bit]
    rest = bits & ~sum(bit for bit, _ in FILTER_FLAGS.values())
    if rest:
        names.append(f"{rest:#x}")
    return "|".join(names) or "0"


@functools.lru_cache(maxsize=64)
def known_actions(kernel: "str | Version | None" = None) -> tuple[int, ...]:
    """The exact action values a kernel version implements, lowest (most restrictive) first."""
    v = parse_version(kernel)
    return tuple(value for value, (_, since) in ACTIONS.items() if v >= since)


def actions_avail(kernel: "str | Version | None" = None) -> str | None:
    """``/proc/sys/kernel/seccomp/actions_avail`` of a version (None before 4.14: no sysctl)."""
    v = parse_version(kernel)
    if v < SYSCTL_FIRST:
        return None
    return " ".join(ACTIONS[value][0] for value in known_actions(v))


def default_actions_logged(kernel: "str | Version | None" = None) -> frozenset[str]:
    """The boot value of ``actions_logged``: every available action except allow."""
    v = parse_version(kernel)
    if v < SYSCTL_FIRST:
        return frozenset()
    return frozenset(ACTIONS[value][0] for value in known_actions(v)) - {"allow"}


def parse_actions_logged(text: "str | frozenset[str] | set[str] | list[str]",
                         kernel: "str | Version | None" = None) -> frozenset[str]:
    """Validate an ``actions_logged`` value as the sysctl write handler does (EINVAL -> ValueError)."""
    names = text.split() if isinstance(text, str) else list(text)
    allowed = default_actions_logged(kernel)
    for name in names:
        if name == "allow":
            raise ValueError("actions_logged cannot contain 'allow' (the kernel refuses it: EINVAL)")
        if name not in allowed:
            raise ValueError(f"unknown action {name!r} for actions_logged (EINVAL); this kernel "
                             f"knows: {' '.join(n for n in LOGGABLE if n in allowed)}")
    return frozenset(names)


def get_action_avail(action: int, flags: int = 0, kernel: "str | Version | None" = None) -> int:
    """``seccomp(SECCOMP_GET_ACTION_AVAIL, flags, &action)``: 0 or the errno."""
    v = parse_version(kernel)
    if v < (3, 17):
        return errno_mod.ENOSYS                   # no seccomp(2) system call yet
    if v < SYSCTL_FIRST:
        return errno_mod.EINVAL                   # do_seccomp: unknown operation
    if flags != 0:
        return errno_mod.EINVAL
    return 0 if action in known_actions(v) else errno_mod.EOPNOTSUPP
