"""Install checks (bpfjit.install) without a kernel; tests/kernel/test_process_kernel.py runs the
same rules against Linux 6.18."""
from __future__ import annotations

import errno as E

import bpfjit
from bpfjit.install import install_check
from bpfjit.process import Environment

ALLOW = bpfjit.load("ret #0x7fff0000\n")


def errno_of(flags, stack=(), stack_flags=None, **env):
    return install_check(ALLOW, flags, list(stack), stack_flags, Environment(**env)).errno


def test_flag_rules_in_kernel_order():
    assert errno_of(64) == E.EINVAL
    assert errno_of("TSYNC,NEW_LISTENER") == E.EINVAL
    assert errno_of("TSYNC,NEW_LISTENER,TSYNC_ESRCH") == 0
    assert errno_of("WAIT_KILLABLE_RECV") == E.EINVAL
    assert errno_of("LOG", kernel=(4, 13)) == E.EINVAL
    assert errno_of("NEW_LISTENER", kernel=(4, 19)) == E.EINVAL
    assert errno_of("LOG", kernel=(3, 16)) == E.ENOSYS
    # flags are checked before privileges
    assert errno_of(64, no_new_privs=False, cap_sys_admin=False) == E.EINVAL


def test_privileges_listeners_and_budget():
    assert errno_of(0, no_new_privs=False, cap_sys_admin=False) == E.EACCES
    assert errno_of(0, no_new_privs=False, cap_sys_admin=True) == 0
    assert errno_of("NEW_LISTENER", [ALLOW], ["NEW_LISTENER"]) == E.EBUSY
    assert errno_of("NEW_LISTENER", [ALLOW], [8], listeners=frozenset()) == 0
    big = bpfjit.load("ld [0]\n" * 4095 + "ret #0x7fff0000\n")
    assert errno_of(0, [big] * 7) == 0
    res = install_check(big, 0, [big] * 7)
    assert res.errno == E.ENOMEM and res.rule == "seccomp_attach_filter"
    bad = install_check(bpfjit.Program.from_bytes(bytes(8)), 0)   # ld [0] then no ret
    assert bad.errno == E.EINVAL and not bad.ok


def test_stack_install_check_uses_its_flags():
    s = bpfjit.Stack([ALLOW], backend="reference", flags=["NEW_LISTENER"])
    assert s.install_check(ALLOW, "NEW_LISTENER").errno_name == "EBUSY"
    assert str(s.install_check(ALLOW, "LOG")) == "installs (returns 0)"
