"""The process model without a kernel: the facts measured on Linux 6.18 (issue 8), and what
kernel/seccomp.c of older versions does (expected values cited from those sources)."""
from __future__ import annotations

import errno as E
import signal

import pytest

from bpfjit.process import Environment, ProcessOutcome, process_outcome, winner
from bpfjit.seccomp import kernels

ALLOW, LOG, TRACE, NOTIF = 0x7FFF0000, 0x7FFC0000, 0x7FF00000, 0x7FC00000
ERRNO, TRAP, KILL_THREAD, KILL_PROCESS = 0x00050000, 0x00030000, 0x00000000, 0x80000000
LOGF, LISTENER = 2, 8
X86_64, I386 = 0xC000003E, 0x40000003


def out(values, flags=None, env=None, nr=59, arch=X86_64) -> ProcessOutcome:
    return process_outcome(values, flags or [0] * len(values), nr, arch, env)


@pytest.mark.parametrize("values, flags, logged, match", [
    ([ERRNO | 3, ERRNO | 4], [LOGF, 0], False, 1),
    ([ERRNO | 5, ERRNO | 6], [0, LOGF], True, 1),
    ([ERRNO | 5, ALLOW], [LOGF, LOGF], True, 0),
    ([ALLOW, ALLOW | 7], [LOGF, LOGF], False, None),
    ([LOG], [0], True, 0),
    ([KILL_PROCESS, ERRNO], [0, LOGF], True, 0),
    ([0x00010000], [0], True, 0),
    ([TRAP | 1], [0], False, 0),
    ([TRACE | 1, TRAP | 2], [LOGF, 0], False, 1),
    ([NOTIF], [LOGF], True, 0),
], ids=["flagged older ERRNO(3), newer ERRNO(4): not logged, filter 1",
        "older ERRNO(5), flagged newer ERRNO(6): logged, filter 1",
        "flagged ERRNO under ALLOW: logged, filter 0",
        "ALLOW: never logged, no matching filter",
        "LOG: logged without a flag", "KILL_PROCESS wins over a flagged ERRNO",
        "an unknown action is logged as kill_process",
        "TRAP without the flag: not logged", "TRAP wins over TRACE; its filter has no flag",
        "USER_NOTIF with the flag and no listener: logged"])
def test_logging_and_matching_filter(values, flags, logged, match):
    o = out(values, flags)
    assert (o.logged, o.matching_filter) == (logged, match)


def test_actions_logged_silences_an_action():
    env = Environment(actions_logged=frozenset({"errno"}))
    assert not out([KILL_PROCESS], env=env).logged
    assert out([ERRNO | 1], [LOGF], env).logged
    assert not out([LOG], env=env).logged
    for bad in ("allow", "bogus", "errno allow"):
        with pytest.raises(ValueError):
            Environment(actions_logged=frozenset(bad.split()))


def test_what_the_process_sees_on_linux_6_18():
    assert out([ERRNO]).returns_zero and out([ERRNO]).errno == 0
    assert out([ERRNO | 5000]).errno == 4095
    trap = out([TRAP | 42], nr=59, arch=X86_64)
    assert (trap.signal, trap.si_code, trap.si_errno, trap.si_syscall, trap.si_arch) == (
        signal.SIGSYS, 1, 42, 59, X86_64)
    assert out([TRACE | 3]).errno == E.ENOSYS
    traced = out([TRACE | 3], env=Environment(tracer=True))
    assert traced.traced and traced.ptrace_message == 3 and traced.errno is None
    assert out([NOTIF], [LISTENER]).waits_for_listener                 # listener still open
    assert out([NOTIF], [LISTENER], Environment(listeners=frozenset())).errno == E.ENOSYS
    older = out([NOTIF, NOTIF], [LISTENER, 0])
    assert older.errno == E.ENOSYS and older.matching_filter == 1
    assert out([KILL_THREAD]).killed == "process" and out([KILL_THREAD]).core_dump
    two = out([KILL_THREAD], env=Environment(threads=2))
    assert two.killed == "thread" and not two.core_dump and two.signal == signal.SIGSYS
    assert out([0x7FFE0000], env=Environment(threads=2)).killed == "process"
    assert str(out([ERRNO])) == "returns 0 without running"


def test_uretprobe_and_uprobe_bypass_keyed_on_the_records_arch_value():
    assert out([KILL_PROCESS], nr=335, arch=X86_64).bypass
    assert out([KILL_PROCESS], nr=336, arch=X86_64).bypass
    assert not out([KILL_PROCESS], nr=335, arch=I386).bypass
    assert not out([KILL_PROCESS], nr=336, arch=X86_64,
                   env=Environment(kernel=(6, 12))).bypass              # uprobe: 6.17
    assert not out([KILL_PROCESS], nr=335, arch=X86_64, env=Environment(kernel=(6, 6))).bypass


@pytest.mark.parametrize("kernel, values, threads, action, killed, core", [
    ((4, 13), [KILL_PROCESS], 1, "KILL_THREAD", "process", True),      # old mask reads 0: KILL
    ((4, 13), [KILL_PROCESS], 2, "KILL_THREAD", "thread", False),
    ((4, 13), [LOG], 2, "UNKNOWN", "thread", False),                   # LOG unknown before 4.14
    ((4, 10), [KILL_THREAD], 1, "KILL_THREAD", "process", False),      # core dump from 4.11
    ((4, 19), [NOTIF], 2, "UNKNOWN", "thread", False),                 # USER_NOTIF from 5.0
    ((4, 19), [0x00010000], 2, "UNKNOWN", "thread", False),           # default: not KILL_PROCESS
    ((5, 10), [0x00010000], 2, "UNKNOWN", "process", True),           # commit 4d671d922d51
    ((5, 0), [NOTIF], 2, "USER_NOTIF", None, False),
])
def test_older_kernels_decode_actions_as_their_seccomp_c(kernel, values, threads, action,
                                                         killed, core):
    o = out(values, env=Environment(kernel=kernel, threads=threads, listeners=frozenset()))
    assert (o.action, o.killed, o.core_dump) == (action, killed, core)


def test_precedence_before_4_14_compares_masked_values_unsigned():
    # 4.13 seccomp_run_filters: (cur & 0x7fff0000) < (ret & 0x7fff0000): KILL_PROCESS (0) ties
    # with KILL and beats ERRNO; 0x80050000 reads as ERRNO there but is unknown (kill) on 4.14+
    assert winner([0x80050001, 0x00050002], (4, 13)) == (0x00050002, 1)
    assert winner([0x80050001, 0x00050002], (6, 18)) == (0x80050001, 0)
    assert out([0x80050007], env=Environment(kernel=(4, 13))).errno == 7


def test_actions_avail_per_version():
    assert kernels.actions_avail((6, 18)) == \
        "kill_process kill_thread trap errno user_notif trace log allow"
    assert kernels.actions_avail((4, 14)) == "kill_process kill_thread trap errno trace log allow"
    assert kernels.actions_avail((4, 13)) is None
    assert kernels.default_actions_logged((6, 18)) == frozenset(
        "kill_process kill_thread trap errno user_notif trace log".split())


@pytest.mark.parametrize("action, flags, kernel, errno", [
    (ALLOW, 0, (6, 18), 0), (NOTIF, 0, (6, 18), 0), (0x00050001, 0, (6, 18), E.EOPNOTSUPP),
    (0x00010000, 0, (6, 18), E.EOPNOTSUPP), (0x7FFE0000, 0, (6, 18), E.EOPNOTSUPP),
    (0x80010000, 0, (6, 18), E.EOPNOTSUPP), (ALLOW, 1, (6, 18), E.EINVAL),
    (NOTIF, 0, (4, 20), E.EOPNOTSUPP), (LOG, 0, (4, 14), 0), (ALLOW, 0, (4, 13), E.EINVAL),
    (ALLOW, 0, (3, 16), E.ENOSYS),
])
def test_get_action_avail_per_version(action, flags, kernel, errno):
    assert kernels.get_action_avail(action, flags, kernel) == errno


def test_flag_names_and_versions():
    assert kernels.parse_flags("LOG,NEW_LISTENER") == 10
    assert kernels.parse_flags("SECCOMP_FILTER_FLAG_TSYNC|spec_allow") == 5
    assert kernels.parse_flags("0x40") == 64
    assert kernels.flag_names(10 | 64) == "LOG|NEW_LISTENER|0x40"
    with pytest.raises(ValueError, match="unknown filter flag 'LOUD'"):
        kernels.parse_flags("LOG,LOUD")
    assert kernels.flag_mask((6, 18)) == 0x3F
    assert kernels.flag_mask((5, 0)) == 0x0F
    assert kernels.flag_mask((4, 14)) == 0x03
    assert kernels.parse_version("5.4.0-150-generic") == (5, 4)
    with pytest.raises(ValueError):
        kernels.parse_version("linux")
    with pytest.raises(ValueError, match="no seccomp filters"):
        kernels.parse_version("3.4")
