"""The process model (bpfjit.process, bpfjit.install, seccomp/kernels.py) against the running kernel.

Every expected value here is what the kernel does to a throw-away probe
(tests/seccomp_probe.py): audit records read from the NETLINK_AUDIT multicast
group, the probe's errno, siginfo, exit status and install results.
"""
from __future__ import annotations

import errno as E
import os
import signal

import pytest
import seccomp_probe as sp
import process_agreement as pa

from bpfjit import Program
from bpfjit.install import install_check
from bpfjit.process import Environment, process_outcome
from bpfjit.seccomp import kernels

pytestmark = pytest.mark.kernel

ALLOW, LOG, TRACE, NOTIF = 0x7FFF0000, 0x7FFC0000, 0x7FF00000, 0x7FC00000
ERRNO, TRAP, KILL_THREAD, KILL_PROCESS = 0x00050000, 0x00030000, 0x00000000, 0x80000000
TSYNC, FLAG_LOG, SPEC_ALLOW, NEW_LISTENER, TSYNC_ESRCH, WAIT_KILLABLE = 1, 2, 4, 8, 16, 32
X86_64 = 0xC000003E
ACTIONS_LOGGED = "/proc/sys/kernel/seccomp/actions_logged"


@pytest.fixture(scope="module")
def audit():
    try:
        sp.probe_path()
    except OSError as exc:
        pytest.skip(f"cannot build the seccomp probe: {exc}")
    reason = sp.audit_unavailable_reason()
    if reason:
        pytest.skip(f"audit records are unreadable here: {reason}")
    reader = sp.AuditReader()
    yield reader
    reader.close()


def model(values, flags, env=None):
    env = env or Environment(listeners=frozenset(), kernel=kernels.running_version())
    return process_outcome(values, flags, sp.PROBE_NR, X86_64, env)


def logged_by_kernel(audit, res) -> bool:
    audit.barrier()
    return bool(audit.of(res.pid))


def prog(value: int) -> Program:
    return Program.from_bytes(sp.guarded(value), "little")


# --- logging and the matching filter ---------------------------------------------------------

@pytest.mark.parametrize("stack, logged", [
    ([(FLAG_LOG, ERRNO | 3), (0, ERRNO | 4)], False),      # newer unflagged filter matches
    ([(0, ERRNO | 5), (FLAG_LOG, ERRNO | 6)], True),       # newer flagged filter matches
    ([(FLAG_LOG, ERRNO | 7), (0, ALLOW)], True),           # the older filter decides
    ([(0, LOG)], True), ([(0, ALLOW)], False), ([(FLAG_LOG, ALLOW)], False),
    ([(0, TRAP | 1)], False), ([(FLAG_LOG, TRAP | 1)], True),
    ([(0, KILL_PROCESS)], True), ([(0, KILL_THREAD)], True), ([(0, 0x00010000)], True),
], ids=["flagged older ERRNO(3) and unflagged newer ERRNO(4): not logged",
        "unflagged older ERRNO(5) and flagged newer ERRNO(6): logged",
        "flagged ERRNO under a newer ALLOW: logged",
        "LOG is logged", "ALLOW is never logged", "ALLOW is not logged even with FLAG_LOG",
        "TRAP without FLAG_LOG: not logged", "TRAP with FLAG_LOG: logged",
        "KILL_PROCESS is logged", "KILL_THREAD is logged", "an unknown action is logged"])
def test_logging_decision_matches_audit_records(audit, stack, logged):
    res = sp.run_probe([(f, sp.guarded(v)) for f, v in stack], options=["-s"])
    assert logged_by_kernel(audit, res) is logged
    assert model([v for _, v in stack], [f for f, _ in stack]).logged is logged


def test_random_stacks_agree_with_audit_records(audit):
    """CI sample: 150 random stacks (1-4 filters, random flags and actions)."""
    tally = pa.Tally()
    pa.run(pa.stacks_for(seed=8, count=150), audit, tally)
    assert not tally.disagreements, tally.disagreements[:5]
    assert tally.logged_agree == tally.batch_agree == tally.stacks == 150
    assert tally.match_observable > 20


@pytest.mark.slow
def test_big_random_sample_agrees_with_audit_records(audit, capsys):
    tally = pa.Tally()
    pa.run(pa.stacks_for(seed=2026, count=2500), audit, tally)
    with capsys.disabled():
        print("\nprocess model vs kernel:", tally.summary(), dict(tally.actions))
    assert not tally.disagreements, tally.disagreements[:5]
    assert tally.batch_agree == tally.stacks


def _write_actions_logged(text: str) -> int:
    try:
        with open(ACTIONS_LOGGED, "w") as fh:
            fh.write(text)
        return 0
    except OSError as exc:
        return exc.errno


def test_actions_logged_restricts_logging_and_refuses_allow(audit):
    with open(ACTIONS_LOGGED) as fh:
        saved = fh.read().strip()
    assert frozenset(saved.split()) == kernels.default_actions_logged(kernels.running_version())
    try:
        for bad in ("allow", "bogus", "errno allow", "kill_process bogus"):
            assert _write_actions_logged(bad) == E.EINVAL
            with pytest.raises(ValueError):
                kernels.parse_actions_logged(bad)
            with open(ACTIONS_LOGGED) as fh:
                assert fh.read().strip() == saved
        assert _write_actions_logged("errno log") == 0
        env = Environment(actions_logged=frozenset({"errno", "log"}), listeners=frozenset())
        for stack in ([(0, KILL_PROCESS)], [(FLAG_LOG, ERRNO | 9)], [(FLAG_LOG, TRAP | 2)],
                      [(0, LOG)]):
            res = sp.run_probe([(f, sp.guarded(v)) for f, v in stack], options=["-s"])
            audit.barrier()
            want = model([v for _, v in stack], [f for f, _ in stack], env).logged
            assert bool(audit.of(res.pid)) is want, stack
    finally:
        assert _write_actions_logged(saved) == 0
    with open(ACTIONS_LOGGED) as fh:
        assert fh.read().strip() == saved


def test_actions_avail_and_get_action_avail_match_the_kernel():
    with open("/proc/sys/kernel/seccomp/actions_avail") as fh:
        assert fh.read().strip() == kernels.actions_avail(kernels.running_version())
    cases = [(v, 0) for v in kernels.ACTIONS] + [
        (0x00050001, 0), (0x00010000, 0), (0x7FFE0000, 0), (0x80010000, 0), (ALLOW, 1),
        (KILL_PROCESS, 2), (0xFFFFFFFF, 0)]
    for action, flags in cases:
        res = sp.run_probe([], options=["-a", "-A", str(action), "-F", str(flags)])
        assert res.avail is not None
        want = kernels.get_action_avail(action, flags, kernels.running_version())
        assert res.avail[1] == want, hex(action)


# --- what the process sees ------------------------------------------------------------------

def test_trace_without_a_tracer_fails_with_enosys_and_with_one_reports_the_data():
    res = sp.run_probe([(0, sp.guarded(TRACE | 9))])
    assert res.syscall == (-1, E.ENOSYS)
    assert model([TRACE | 9], [0]).errno == E.ENOSYS
    traced = sp.run_probe([(0, sp.guarded(TRACE | 9))], trace=True)
    assert traced.ptrace_messages == [9]
    assert traced.syscall[0] > 0                     # getppid ran after the tracer resumed it
    out = model([TRACE | 9], [0], Environment(tracer=True, listeners=frozenset()))
    assert out.traced and out.ptrace_message == 9 and out.errno is None


def test_user_notif_needs_a_live_listener_on_the_matching_filter():
    served = sp.run_probe([(NEW_LISTENER, sp.guarded(NOTIF))], options=["-l", "0"])
    assert served.notified == [sp.PROBE_NR] and served.syscall == (-1, E.EPERM)
    assert model([NOTIF], [NEW_LISTENER], Environment()).waits_for_listener
    none = sp.run_probe([(0, sp.guarded(NOTIF))])
    assert none.syscall == (-1, E.ENOSYS)
    assert model([NOTIF], [0]).errno == E.ENOSYS
    closed = sp.run_probe([(NEW_LISTENER, sp.guarded(NOTIF))], options=["-c"])
    assert closed.syscall == (-1, E.ENOSYS)
    older = sp.run_probe([(NEW_LISTENER, sp.guarded(NOTIF)), (0, sp.guarded(NOTIF))],
                         options=["-l", "0"])
    assert older.syscall == (-1, E.ENOSYS) and older.notified == []
    out = model([NOTIF, NOTIF], [NEW_LISTENER, 0], Environment(listeners=frozenset({0})))
    assert out.errno == E.ENOSYS and out.matching_filter == 1


def test_kill_thread_kills_the_process_with_a_core_dump_only_when_single_threaded(tmp_path):
    single = sp.run_probe([(0, sp.guarded(KILL_THREAD))], options=["-d"], cwd=str(tmp_path))
    assert single.killed_by == signal.SIGSYS and single.core_dumped
    out = model([KILL_THREAD], [0])
    assert out.killed == "process" and out.core_dump and out.signal == signal.SIGSYS
    multi = sp.run_probe([(0, sp.guarded(KILL_THREAD))], options=["-t", "-d"], cwd=str(tmp_path))
    assert multi.killed_by is None and multi.thread_survivor and multi.syscall is None
    out = model([KILL_THREAD], [0], Environment(threads=2, listeners=frozenset()))
    assert out.killed == "thread" and not out.core_dump
    proc = sp.run_probe([(0, sp.guarded(KILL_PROCESS))], options=["-t", "-d"], cwd=str(tmp_path))
    assert proc.killed_by == signal.SIGSYS and proc.core_dumped and not proc.thread_survivor
    out = model([KILL_PROCESS], [0], Environment(threads=2, listeners=frozenset()))
    assert out.killed == "process" and out.core_dump
    unknown = sp.run_probe([(0, sp.guarded(0x00010000))], options=["-t", "-d"], cwd=str(tmp_path))
    assert unknown.killed_by == signal.SIGSYS and not unknown.thread_survivor
    assert model([0x00010000], [0], Environment(threads=2)).killed == "process"
    for core in tmp_path.iterdir():
        core.unlink()


def test_errno_zero_returns_zero_and_large_data_is_capped():
    zero = sp.run_probe([(0, sp.guarded(ERRNO | 0))])
    assert zero.syscall == (0, 0)
    assert model([ERRNO], [0]).returns_zero and model([ERRNO], [0]).errno == 0
    for data in (4095, 4096, 65535):
        res = sp.run_probe([(0, sp.guarded(ERRNO | data))])
        assert res.syscall == (-1, 4095) and model([ERRNO | data], [0]).errno == 4095


def test_trap_delivers_sigsys_with_the_data_syscall_and_arch():
    res = sp.run_probe([(0, sp.guarded(TRAP | 1234))], options=["-s"])
    signo, code, si_errno, si_syscall, si_arch = res.sigsys
    out = model([TRAP | 1234], [0])
    assert (signo, code, si_errno, si_syscall, si_arch) == (
        out.signal, out.si_code, out.si_errno, out.si_syscall, out.si_arch)


# --- install-time rules ---------------------------------------------------------------------

def _installs(stack, options=()):
    return sp.run_probe([x if x == "+" else (x[0], sp.guarded(x[1])) for x in stack],
                        options=list(options))


def _model_installs(stack, env) -> list[int]:
    """errno per install, following '+' (a fork keeps the stack and the open listeners)."""
    installed: list[tuple[int, Program]] = []
    out = []
    for item in stack:
        if item == "+":
            continue
        flags, value = item
        res = install_check(prog(value), flags, [p for _, p in installed],
                            [f for f, _ in installed], env)
        out.append(res.errno)
        if res.ok:
            installed.append((flags, prog(value)))
    return out


@pytest.mark.parametrize("stack, options, env_kw, errnos", [
    ([(64, ALLOW)], [], {}, [E.EINVAL]),
    ([(1 << 31, ALLOW)], [], {}, [E.EINVAL]),
    ([(TSYNC | NEW_LISTENER, ALLOW)], ["-c"], {}, [E.EINVAL]),
    ([(TSYNC | NEW_LISTENER | TSYNC_ESRCH, ALLOW)], ["-c"], {}, [0]),
    ([(WAIT_KILLABLE, ALLOW)], [], {}, [E.EINVAL]),
    ([(WAIT_KILLABLE | NEW_LISTENER, ALLOW)], ["-c"], {}, [0]),
    ([(FLAG_LOG | SPEC_ALLOW | TSYNC, ALLOW)], [], {}, [0]),
    ([(NEW_LISTENER, ALLOW), (NEW_LISTENER, ALLOW)], [], {}, [0, E.EBUSY]),
    ([(NEW_LISTENER, ALLOW), "+", (NEW_LISTENER, ALLOW)], [], {}, [0, E.EBUSY]),
    ([(NEW_LISTENER, ALLOW), (NEW_LISTENER, ALLOW)], ["-c"], {"listeners": frozenset()}, [0, 0]),
    ([(0, ALLOW)], ["-N", "-u"], {"no_new_privs": False, "cap_sys_admin": False}, [E.EACCES]),
    ([(0, ALLOW)], ["-N"], {"no_new_privs": False, "cap_sys_admin": True}, [0]),
], ids=["an unknown flag bit (64): EINVAL", "flag bit 31: EINVAL",
        "TSYNC|NEW_LISTENER: EINVAL", "TSYNC|NEW_LISTENER|TSYNC_ESRCH: installs",
        "WAIT_KILLABLE_RECV alone: EINVAL", "WAIT_KILLABLE_RECV|NEW_LISTENER: installs",
        "LOG|SPEC_ALLOW|TSYNC: installs", "a second NEW_LISTENER: EBUSY",
        "NEW_LISTENER in a forked child that inherited a listener: EBUSY",
        "NEW_LISTENER again once the first listener is closed: installs",
        "no NO_NEW_PRIVS and no CAP_SYS_ADMIN: EACCES",
        "no NO_NEW_PRIVS but CAP_SYS_ADMIN: installs"])
def test_install_rules_match_the_kernel(stack, options, env_kw, errnos):
    res = _installs(stack, options)
    assert [err for _, err in res.installs] == errnos
    env = Environment(kernel=kernels.running_version(), **env_kw)
    assert _model_installs(stack, env) == errnos


def test_the_instruction_budget_refuses_with_enomem():
    big = Program.from_bytes(sp.guarded(ALLOW)[:8] * 4095 + sp.guarded(ALLOW)[24:], "little")
    stack = [(0, big)] * 9
    res = sp.run_probe([(f, p.to_bytes()) for f, p in stack])
    got = [err for _, err in res.installs]
    want = [install_check(p, f, [q for _, q in stack[:i]]).errno for i, (f, p) in enumerate(stack)]
    assert E.ENOMEM in got and got[:got.index(E.ENOMEM) + 1] == want[:got.index(E.ENOMEM) + 1]


def test_filters_are_inherited_by_forked_children_threads_and_execve():
    forked = sp.run_probe([(0, sp.guarded(ERRNO | 77)), "+"])
    assert forked.syscall == (-1, 77)
    execed = sp.run_probe([(0, sp.guarded(ERRNO | 79))], options=["-e"])
    assert execed.installs == [(0, 0)] and execed.syscall == (-1, 79)
    threaded = sp.run_probe([(0, sp.guarded(ERRNO | 78))], options=["-t"])
    assert threaded.syscall == (-1, 78) and threaded.thread_survivor


def test_listener_fd_is_what_new_listener_returns():
    res = _installs([(NEW_LISTENER, ALLOW)], ["-c"])
    assert res.installs[0][0] >= 3
    assert install_check(prog(ALLOW), NEW_LISTENER).returns == "listener fd"
    assert os.path.exists("/proc/sys/kernel/seccomp/actions_avail")


@pytest.mark.slow
def test_kmsg_carries_the_same_records_under_the_printk_rate_limit(audit):
    """Without auditd, records also go to /dev/kmsg through printk_ratelimit() (burst
    /proc/sys/kernel/printk_ratelimit_burst per printk_ratelimit seconds, shared with every
    other ratelimited printk). Every record kmsg shows for our probes must equal the netlink
    one; the ones it drops are announced as 'kauditd_printk_skb: N callbacks suppressed'."""
    import re
    import time
    with open("/proc/sys/kernel/printk_ratelimit") as fh:
        interval = int(fh.read())
    with open("/proc/sys/kernel/printk_ratelimit_burst") as fh:
        burst = int(fh.read())
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.lseek(fd, 0, os.SEEK_END)
        time.sleep(interval + 0.5)                     # start from a fresh rate-limit window
        probes = [sp.run_probe([(0, sp.guarded(LOG))]) for _ in range(burst + 5)]
        time.sleep(interval + 0.5)
        probes.append(sp.run_probe([(0, sp.guarded(LOG))]))   # reports the suppressed count
        audit.barrier()
        time.sleep(0.2)
        lines = []
        while True:
            try:
                lines.append(os.read(fd, 8192).decode(errors="replace"))
            except BlockingIOError:
                break
    finally:
        os.close(fd)
    pids = {p.pid for p in probes}
    seen = {}
    suppressed = 0
    for line in lines:
        m = sp._RECORD.search(line)
        if "type=1326" in line and m and int(m.group(1)) in pids:
            seen[int(m.group(1))] = sp.AuditRecord(int(m.group(1)), int(m.group(2)),
                                                   int(m.group(3), 16), int(m.group(4)),
                                                   int(m.group(5), 16))
        found = re.search(r"kauditd_printk_skb: (\d+) callbacks suppressed", line)
        if found:
            suppressed += int(found.group(1))
    for pid, rec in seen.items():
        assert audit.of(pid) == [rec]                  # kmsg and netlink agree record for record
    assert all(audit.of(p.pid) for p in probes)       # netlink has every one
    assert len(seen) < len(probes) and suppressed >= len(probes) - 1 - len(seen)
    print(f"\nkmsg: {len(seen)} of {len(probes)} records shown, {suppressed} suppressed "
          f"(burst {burst} per {interval} s)")
