"""Testing: random filter stacks checked against the running kernel — acceptance, budget, verdicts.

:func:`run` draws stacks of 1-8 valid programs (the fuzzer's valid,
realistic and probe kinds; a third of them padded so that the stack's eBPF
path length lands within a few instructions of MAX_INSNS_PER_PATH, either
side), each installed with random ``SECCOMP_FILTER_FLAG_*`` bits
(:func:`random_flags`: mostly none, otherwise any mix of the six known
flags, sometimes an unknown bit), and asks Linux three things about each:

- **accept/reject, the ENOMEM budget**: every filter is installed in order
  with its flags in one child (``kernel_stack_installs``); the errno and the
  number installed must be what :func:`bpfjit.install.install_check`
  predicts, filter after filter on top of the ones before (EINVAL for
  unknown bits and the refused flag combinations, EBUSY for a second live
  listener, ENOMEM for the path budget, in the kernel's order). Every
  filter gets a 6-instruction guard first (``ret ALLOW`` for system calls
  from anywhere but the designated site) so the child's own ``seccomp()``
  calls pass the filters already installed; the guard is part of the
  installed program, so the prediction counts it too.
- **combined verdict and matching filter**: for sampled records, each
  filter's value (from the reference interpreter) is installed as a guarded
  constant filter, in order, and one harmless system call is issued from the
  designated site (``kernel_syscall_outcome``). What happens to it — the
  errno returned, the call running, -ENOSYS (TRACE/USER_NOTIF without a
  tracer or listener), the thread or the process killed — must be
  :func:`bpfjit.process.process_outcome` says (a 2-thread process: the
  child's leader idles while a worker calls; the filters keep their flags, so
  a USER_NOTIF fails with ENOSYS unless the *matching* filter has a listener —
  those calls would wait for the listener and are not issued). ERRNO values
  get each filter's index as their data first (precedence ignores the data),
  so the errno seen names the filter that matched: ties must go to the newest.

The report counts how close every stack came to the budget (``near_budget``:
path length minus 32768 for the stacks within 8 of it) and every refusal by
errno; the x86-64 JIT's own refusal (ENOTSUPP, modelled apart) is counted and
its stack kept by index (``jit_refusals``), never compared.
"""
from __future__ import annotations

import errno as errno_mod
import os
import random
import resource
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .. import opcodes as op
from ..install import install_check
from ..process import Environment, ProcessOutcome, process_outcome
from ..program import Program
from ..seccomp import kernels
from ..seccomp.actions import SECCOMP_RET_ALLOW, outcome, stack_retval
from ..stack import FILTER_PENALTY, MAX_INSNS_PER_PATH, ebpf_length, path_length
from .inputs import inputs_for
from .probes import probe_program
from .programs import realistic_program, valid_program

GUARD_LEN = 6
GETPPID = 110
ERRNO = 0x00050000
ENOMEM = errno_mod.ENOMEM
AUDIT_ARCH_X86_64 = 0xC000003E
#: the flags a random stack's filters draw from: the six that Linux 6.18 knows
KNOWN_FLAGS = tuple(bit for bit, _ in kernels.FILTER_FLAGS.values())
#: stacks within this many eBPF instructions of the budget count as "near" it
NEAR = 8


def guard(program: Program, site: int) -> Program:
    """``program`` behind a prologue returning ALLOW unless the call comes from ``site``."""
    lo, hi = site & 0xFFFFFFFF, site >> 32
    head = [(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, 8),
            (op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 0, 2, lo),
            (op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, 12),
            (op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 1, 0, hi),
            (op.BPF_RET | op.BPF_K, 0, 0, SECCOMP_RET_ALLOW),
            (op.BPF_LD | op.BPF_IMM, 0, 0, 0)]
    return Program(head + [tuple(i) for i in program])


def _padding(ebpf: int, site: int) -> Program:
    """A guarded valid program of exactly ``ebpf`` eBPF instructions: ``div x`` (5 eBPF
    instructions each, so 8 filters can reach the budget), ``ld #0``, ``ret #ALLOW``."""
    base = ebpf_length(guard(Program([(op.BPF_RET | op.BPF_K, 0, 0, SECCOMP_RET_ALLOW)]), site))
    n_div, n_ld = divmod(ebpf - base, 5)
    if n_div < 0 or n_div + n_ld + GUARD_LEN + 1 > op.BPF_MAXINSNS:
        raise ValueError(f"no padding program of {ebpf} eBPF instructions")
    body = [(op.BPF_ALU | op.BPF_DIV | op.BPF_X, 0, 0, 0)] * n_div + \
        [(op.BPF_LD | op.BPF_IMM, 0, 0, 0)] * n_ld + [(op.BPF_RET | op.BPF_K, 0, 0,
                                                      SECCOMP_RET_ALLOW)]
    prog = guard(Program(body), site)
    assert ebpf_length(prog) == ebpf
    return prog


def random_stack(rng: random.Random, site: int) -> tuple[list[Program], str]:
    """(guarded programs oldest first, shape); ``boundary`` stacks end near the budget."""
    size = rng.randint(1, 8)
    progs = []
    for _ in range(size):
        r = rng.random()
        p = valid_program(rng) if r < 0.4 else realistic_program(rng) if r < 0.7 else \
            probe_program(rng)
        progs.append(guard(p, site))
    if rng.random() >= 1 / 3:
        return progs, "random"
    # the whole path ends at MAX_INSNS_PER_PATH + d, d in -3..+3: one random filter somewhere,
    # padding filters of exact eBPF lengths around it
    k = rng.randint(3, 8)
    keep = progs[0]
    target = MAX_INSNS_PER_PATH + rng.randint(-3, 3)
    room = target - ebpf_length(keep) - FILTER_PENALTY * (k - 1)
    sizes = [room // (k - 1)] * (k - 1)
    sizes[-1] += room - sum(sizes)
    stack = [_padding(e, site) for e in sizes]
    stack.insert(rng.randrange(k), keep)
    return stack, "boundary"


def random_flags(rng: random.Random, n: int, *, quiet: bool = False) -> list[int]:
    """Flags for ``n`` installs: none for about 2 in 3, else any mix of the known flags (so the
    refused combinations and duplicate listeners come up), now and then an unknown bit.
    ``quiet``: only flags that never refuse (LOG, SPEC_ALLOW, TSYNC) and at most one listener,
    for stacks that must reach the budget."""
    out, listener = [], False
    for _ in range(n):
        if rng.random() < 0.65:
            out.append(0)
            continue
        bits = 0
        for bit in KNOWN_FLAGS:
            if rng.random() < 0.25:
                bits |= bit
        if quiet:
            bits &= ~(kernels.SECCOMP_FILTER_FLAG_NEW_LISTENER |
                      kernels.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV |
                      kernels.SECCOMP_FILTER_FLAG_TSYNC_ESRCH)
            if not listener and rng.random() < 0.2:
                bits = (bits & ~kernels.SECCOMP_FILTER_FLAG_TSYNC) | \
                    kernels.SECCOMP_FILTER_FLAG_NEW_LISTENER
                listener = True
        elif rng.random() < 0.03:
            bits |= 1 << rng.randrange(6, 32)
        out.append(bits)
    return out


def predicted_stack_installs(programs: list[Program], flags: list[int], env: Environment
                             ) -> tuple[int, int]:
    """(errno, filters installed) that :func:`bpfjit.install.install_check` predicts when the
    programs are installed in order, each with its flags, on top of the ones before."""
    for i, (prog, bits) in enumerate(zip(programs, flags)):
        res = install_check(prog, bits, programs[:i], flags[:i], env)
        if not res.ok:
            return res.errno, i
    return 0, len(programs)


def observation(out: ProcessOutcome, parent: int) -> tuple[str, int] | None:
    """What the designated getppid() call shows for ``out`` (None: it would wait for a
    listener, so it must not be issued)."""
    if out.waits_for_listener or out.traced:
        return None
    if out.killed == "thread":
        return "killed_thread", 0
    if out.killed == "process" or out.signal is not None:
        return "died", 31                               # SIGSYS; a TRAP's is blocked: a kill
    if out.errno is not None:
        return "returned", -out.errno
    return "returned", parent


def predicted_installs(programs: list[Program]) -> tuple[int, int]:
    """(errno, filters installed) that bpfjit.stack's budget rule predicts."""
    total = 0
    for i, p in enumerate(programs):
        total += ebpf_length(p) + (FILTER_PENALTY if i else 0)
        if total > MAX_INSNS_PER_PATH:
            return ENOMEM, i
    return 0, len(programs)


def predicted_observation(values: list[int], parent: int) -> tuple[str, int]:
    """What the designated getppid() call shows when the stack's filters return ``values``."""
    out = outcome(stack_retval(values))
    if out.kind == "errno":
        return "returned", -out.errno
    if out.kind in ("allow", "log"):
        return "returned", parent
    if out.kind in ("trace", "user_notif"):
        return "returned", -errno_mod.ENOSYS
    if out.kind == "kill_thread":
        return "killed_thread", 0
    return "died", 31                                   # kill_process, trap: SIGSYS


@dataclass
class StackReport:
    stacks: int = 0
    shapes: Counter = field(default_factory=Counter)
    installs: Counter = field(default_factory=Counter)   # "accepted"/"ENOMEM"/"EINVAL"/...
    flagged: int = 0                                     # stacks with a filter's flags != 0
    near_budget: Counter = field(default_factory=Counter)  # path - 32768 -> stacks (|d| <= NEAR)
    verdicts: int = 0
    outcomes: Counter = field(default_factory=Counter)
    matching_filter_checked: int = 0
    listener_waits: int = 0                              # verdicts not issued: would wait
    jit_refusals: list = field(default_factory=list)     # (stack, filter index, its hex)
    differences: list = field(default_factory=list)
    elapsed: float = 0.0
    cpu_self: float = 0.0                                # CPU s of this process
    cpu_children: float = 0.0                            # CPU s of the reaped kernel children

    def add(self, other: "StackReport") -> "StackReport":
        """Sum another run's figures into this one (chunked long runs)."""
        for name in self.__dataclass_fields__:
            mine = getattr(self, name)
            if isinstance(mine, Counter):
                mine.update(getattr(other, name))
            elif isinstance(mine, list):
                mine.extend(getattr(other, name))
            else:
                setattr(self, name, mine + getattr(other, name))
        return self

    def format(self) -> str:
        near = sum(self.near_budget.values())
        at = sum(n for d, n in self.near_budget.items() if abs(d) <= 3)
        return (f"{self.stacks} stacks ({dict(self.shapes)}; {self.flagged} with flags) in "
                f"{self.elapsed:.0f} s wall, {self.cpu_self:.0f} + {self.cpu_children:.0f} s "
                f"CPU (this process + kernel children); installs {dict(self.installs)}; "
                f"{near} stacks within {NEAR} eBPF instructions of the 32768 budget "
                f"({at} within 3; by distance {dict(sorted(self.near_budget.items()))}); "
                f"{self.verdicts} combined verdicts ({dict(self.outcomes)}), "
                f"{self.matching_filter_checked} with the matching filter named by its errno, "
                f"{self.listener_waits} not issued (would wait for a listener); "
                f"{len(self.jit_refusals)} x86-64 JIT refusals (ENOTSUPP); "
                f"{len(self.differences)} differences")


def run(*, seed: int = 0, max_stacks: int | None = None, seconds: float | None = None,
        records_per_stack: int = 3, flags: bool = True) -> StackReport:
    """Draw stacks from ``seed`` until ``max_stacks`` or ``seconds`` (wall); see the module
    docstring. ``flags``: install with random flags (False: all 0)."""
    from ..backends.kernel import ENOTSUPP, kernel_stack_installs, kernel_syscall_outcome, \
        site_address
    from .shrink import reference_values
    if max_stacks is None and seconds is None:
        raise ValueError("stacks.run needs max_stacks or seconds")
    rng = random.Random(seed)
    site, parent = site_address(), os.getpid()
    env = Environment(kernel=kernels.running_version(), threads=2)
    rep = StackReport()
    start = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    while (max_stacks is None or rep.stacks < max_stacks) and \
            (seconds is None or time.monotonic() - start < seconds):
        progs, shape = random_stack(rng, site)
        bits = random_flags(rng, len(progs), quiet=shape == "boundary" and rng.random() < 0.8) \
            if flags else [0] * len(progs)
        index = rep.stacks
        rep.stacks += 1
        rep.shapes[shape] += 1
        rep.flagged += any(bits)
        distance = path_length(progs) - MAX_INSNS_PER_PATH
        if abs(distance) <= NEAR:
            rep.near_budget[distance] += 1
        want = predicted_stack_installs(progs, bits, env)
        got = kernel_stack_installs(progs, bits)
        if got[0] == ENOTSUPP and got[1] < want[1]:
            rep.installs["ENOTSUPP"] += 1      # the x86-64 JIT's refusal, not the budget
            rep.jit_refusals.append((index, got[1], progs[got[1]].to_bytes().hex()))
            continue
        rep.installs[errno_mod.errorcode.get(got[0], str(got[0])) if got[0] else
                     "accepted"] += 1
        if got != want:
            rep.differences.append(("install", index, shape, [len(p) for p in progs],
                                    [hex(b) for b in bits], want, got))
            continue
        if want[0]:
            continue
        insns = [[tuple(i) for i in p][GUARD_LEN:] for p in progs]       # unguarded bodies
        joined = Program([i for p in insns for i in p])
        recs = inputs_for(joined, rng, records_per_stack)
        values = np.stack([reference_values([p], recs, "little") for p in insns], axis=1)
        for row in values.tolist():
            row = [ERRNO | (i + 1) if v & 0xFFFF0000 == ERRNO else v for i, v in enumerate(row)]
            out = process_outcome(row, bits, GETPPID, AUDIT_ARCH_X86_64, env)
            expect = observation(out, parent)
            if expect is None:
                rep.listener_waits += 1
                continue
            consts = [guard(Program([(op.BPF_RET | op.BPF_K, 0, 0, v)]), site) for v in row]
            seen = kernel_syscall_outcome(consts, GETPPID, flags=bits)
            rep.verdicts += 1
            rep.outcomes[out.action.lower()] += 1
            if out.errno and out.action == "ERRNO":
                rep.matching_filter_checked += 1
                if out.errno != out.matching_filter + 1:       # the model's own matching filter
                    rep.differences.append(("matching filter", index, [hex(v) for v in row],
                                            out.matching_filter, out.errno - 1))
            if seen != expect:
                rep.differences.append(("verdict", index, [hex(v) for v in row],
                                        [hex(b) for b in bits], expect, seen))
    rep.elapsed = time.monotonic() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rep.cpu_self = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    rep.cpu_children = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    return rep

