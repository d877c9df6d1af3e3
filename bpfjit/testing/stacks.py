"""Testing: random filter stacks checked against the running kernel — acceptance, budget, verdicts.

:func:`run` draws stacks of 1-8 valid programs (the fuzzer's valid,
realistic and probe kinds; a third of them padded so that the stack's eBPF
path length lands within a few instructions of MAX_INSNS_PER_PATH, either
side) and asks Linux three things about each:

- **accept/reject, the ENOMEM budget**: every filter is installed in order
  in one child (``kernel_stack_installs``); the errno and the number
  installed must be what :func:`bpfjit.stack.check_budget` predicts. Every
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
  :func:`bpfjit.seccomp.actions.outcome` of
  :func:`~bpfjit.seccomp.actions.stack_retval`. ERRNO values get each
  filter's index as their data first (precedence ignores the data), so the
  errno seen names the filter that matched: ties must go to the newest.
"""
from __future__ import annotations

import errno as errno_mod
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .. import opcodes as op
from ..program import Program
from ..seccomp.actions import SECCOMP_RET_ALLOW, outcome, stack_retval
from ..stack import FILTER_PENALTY, MAX_INSNS_PER_PATH, ebpf_length
from .inputs import inputs_for
from .probes import probe_program
from .programs import realistic_program, valid_program

GUARD_LEN = 6
GETPPID = 110
ERRNO = 0x00050000
ENOMEM = errno_mod.ENOMEM


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
    installs: Counter = field(default_factory=Counter)   # "accepted"/"ENOMEM"/"ENOTSUPP"
    verdicts: int = 0
    outcomes: Counter = field(default_factory=Counter)
    matching_filter_checked: int = 0
    differences: list = field(default_factory=list)
    elapsed: float = 0.0

    def format(self) -> str:
        return (f"{self.stacks} stacks ({dict(self.shapes)}) in {self.elapsed:.0f} s; installs "
                f"{dict(self.installs)}; {self.verdicts} combined verdicts "
                f"({dict(self.outcomes)}), {self.matching_filter_checked} with the matching "
                f"filter named by its errno; {len(self.differences)} differences")


def run(*, seed: int = 0, max_stacks: int | None = None, seconds: float | None = None,
        records_per_stack: int = 3) -> StackReport:
    from ..backends.kernel import ENOTSUPP, kernel_stack_installs, kernel_syscall_outcome, \
        site_address
    from .shrink import reference_values
    if max_stacks is None and seconds is None:
        raise ValueError("stacks.run needs max_stacks or seconds")
    rng = random.Random(seed)
    site, parent = site_address(), os.getpid()
    rep = StackReport()
    start = time.monotonic()
    while (max_stacks is None or rep.stacks < max_stacks) and \
            (seconds is None or time.monotonic() - start < seconds):
        progs, shape = random_stack(rng, site)
        rep.stacks += 1
        rep.shapes[shape] += 1
        want = predicted_installs(progs)
        got = kernel_stack_installs(progs)
        if got[0] == ENOTSUPP:
            rep.installs["ENOTSUPP"] += 1      # the x86-64 JIT's known refusal, not the budget
            continue
        rep.installs["ENOMEM" if got[0] == ENOMEM else "accepted" if not got[0] else
                     str(got[0])] += 1
        if got != want:
            rep.differences.append(("install", shape, [len(p) for p in progs], want, got))
            continue
        if want[0]:
            continue
        insns = [[tuple(i) for i in p][GUARD_LEN:] for p in progs]       # unguarded bodies
        joined = Program([i for p in insns for i in p])
        recs = inputs_for(joined, rng, records_per_stack)
        values = np.stack([reference_values([p], recs, "little") for p in insns], axis=1)
        for row in values.tolist():
            row = [ERRNO | (i + 1) if v & 0xFFFF0000 == ERRNO else v for i, v in enumerate(row)]
            consts = [guard(Program([(op.BPF_RET | op.BPF_K, 0, 0, v)]), site) for v in row]
            expect = predicted_observation(row, parent)
            seen = kernel_syscall_outcome(consts, GETPPID)
            rep.verdicts += 1
            rep.outcomes[expect[0] if expect[0] != "returned" else
                         outcome(stack_retval(row)).kind] += 1
            if expect[0] == "returned" and expect[1] < 0 and \
                    outcome(stack_retval(row)).kind == "errno":
                rep.matching_filter_checked += 1
            if seen != expect:
                rep.differences.append(("verdict", [hex(v) for v in row], expect, seen))
    rep.elapsed = time.monotonic() - start
    return rep
