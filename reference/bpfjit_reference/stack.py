"""Combining the return values of a process's stacked filters.

Follows seccomp_run_filters() in kernel/seccomp.c. Action values from
include/uapi/linux/seccomp.h.
"""

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_DATA = 0x0000FFFF


def action_only(value):
    """ACTION_ONLY(ret) from kernel/seccomp.c: (s32)(ret & SECCOMP_RET_ACTION_FULL)."""
    action = value & SECCOMP_RET_ACTION_FULL
    return action - 2**32 if action >= 2**31 else action


def run_stack(values):
    """The value seccomp acts on, given each filter's return value, OLDEST FIRST."""
    values = list(values)
    for i, value in enumerate(values):
        if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"values[{i}] is not a 32-bit unsigned int: {value!r}")
    if not values:
        # seccomp_run_filters: "if (WARN_ON(f == NULL)) return SECCOMP_RET_KILL_PROCESS;"
        return SECCOMP_RET_KILL_PROCESS
    # seccomp_run_filters: "u32 ret = SECCOMP_RET_ALLOW;"
    ret = SECCOMP_RET_ALLOW
    # seccomp_run_filters: "for (; f; f = f->prev)" walks from the newest filter
    # (current->seccomp.filter) to the oldest, and takes cur only when strictly
    # lower: "if (ACTION_ONLY(cur_ret) < ACTION_ONLY(ret))". So ties keep the
    # newer filter's value, and an all-ALLOW stack keeps the initial 0x7fff0000.
    for cur in reversed(values):
        if action_only(cur) < action_only(ret):
            ret = cur
    return ret
