"""Random stacks with random flags, installed in probes, compared with bpfjit.process.

Shared by the CI sample and the slow run in test_process_kernel.py. Each stack
has 1-4 filters ``ld [nr]; jeq #110, 0, 1; ret #V; ret ALLOW`` with V drawn from
every action (unknown values included) and ERRNO/TRAP/TRACE data distinct
within the stack, so the errno or si_errno the kernel delivers names the
filter that decided. Flags are drawn from all six bits plus an unknown one, so
some installs fail; listeners are closed right after their install (-c).
"""
from __future__ import annotations

import errno as errno_mod
import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import seccomp_probe as sp

from bpfjit import SECCOMP_DATA, Program, Stack
from bpfjit.install import install_check
from bpfjit.process import Environment, process_outcome
from bpfjit.seccomp import kernels

KNOWN = [0x80000000, 0x00000000, 0x00030000, 0x00050000, 0x7FC00000, 0x7FF00000, 0x7FFC0000,
         0x7FFF0000]
UNKNOWN = [0x00010000, 0x00040000, 0x7FFE0000, 0x80010000, 0x7FC10000, 0x40000000, 0xFFFF0000]
FLAG_BITS = [1, 2, 4, 8, 16, 32, 64]


def random_stack(rng: random.Random) -> list[tuple[int, int]]:
    """[(flags, retval)] oldest first."""
    n = rng.randint(1, 4)
    datas = rng.sample(range(1, 6000), n)
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.75:
            action = rng.choices(KNOWN, weights=[1, 1, 2, 3, 2, 2, 2, 3])[0]
        elif r < 0.9:
            action = rng.choice(UNKNOWN)
        else:
            action = rng.choice([0x00050000, 0x00030000])
        data = datas[i] if rng.random() < 0.9 else rng.choice([0, 4095, 4096, 65535])
        if action in (0x80000000, 0x00000000, 0x7FC00000, 0x7FFC0000, 0x7FFF0000) and \
                rng.random() < 0.7:
            data = 0
        flags = 0
        for bit in FLAG_BITS:
            if rng.random() < (0.5 if bit == 2 else 0.08):
                flags |= bit
        out.append((flags, action | data))
    return out


@dataclass
class Tally:
    stacks: int = 0
    installs: int = 0
    install_agree: int = 0
    logged_agree: int = 0
    logged_true: int = 0
    code_agree: int = 0
    match_observable: int = 0
    match_agree: int = 0
    effect_agree: int = 0
    batch_agree: int = 0
    disagreements: list = field(default_factory=list)
    actions: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        return (f"{self.stacks} stacks, {self.installs} installs: install errno agree "
                f"{self.install_agree}/{self.installs}; logged agree "
                f"{self.logged_agree}/{self.stacks} ({self.logged_true} logged); audit code agree "
                f"{self.code_agree}/{self.logged_true}; matching filter agree "
                f"{self.match_agree}/{self.match_observable} observable; effect agree "
                f"{self.effect_agree}/{self.stacks}; batch detail logged agree "
                f"{self.batch_agree}/{self.stacks}")


def _effect(res: sp.ProbeResult) -> tuple:
    """What the kernel did, in the model's terms."""
    if res.killed_by is not None:
        return ("killed", res.killed_by)
    if res.sigsys is not None:
        return ("sigsys", res.sigsys[2])
    ret, err = res.syscall
    if ret < 0:
        return ("errno", err)
    if ret == 0:
        return ("zero",)
    return ("runs",)


def _model_effect(out) -> tuple:
    if out.killed:
        return ("killed", out.signal)
    if out.signal is not None:
        return ("sigsys", out.si_errno)
    if out.returns_zero:
        return ("zero",)
    if out.errno is not None:
        return ("errno", out.errno)
    return ("runs",)


def run(stacks: list[list[tuple[int, int]]], reader: sp.AuditReader, tally: Tally,
        batch: int = 50) -> None:
    kernel = kernels.running_version()
    env = Environment(listeners=frozenset(), kernel=kernel, no_new_privs=True)
    pending = []
    for n, spec in enumerate(stacks):
        programs = [Program.from_bytes(sp.guarded(v), "little") for _, v in spec]
        res = sp.run_probe([(f, sp.guarded(v)) for f, v in spec], options=["-c", "-s"])
        # the model's install decisions, filter by filter
        installed: list[int] = []
        for i, (flags, _) in enumerate(spec):
            want = install_check(programs[i], flags, [programs[j] for j in installed],
                                 [spec[j][0] for j in installed], env)
            got_ret, got_err = res.installs[i]
            tally.installs += 1
            if want.errno == got_err and (got_ret >= 0) == want.ok:
                tally.install_agree += 1
            else:
                tally.disagreements.append(("install", spec, i, want, res.installs[i]))
            if got_ret >= 0:
                installed.append(i)
        pending.append((spec, installed, programs, res))
        reader.drain()
        if len(pending) >= batch or n == len(stacks) - 1:
            reader.barrier()
            for item in pending:
                _compare(*item, reader, tally, env)
            pending.clear()


def _compare(spec, installed, programs, res, reader, tally: Tally, env: Environment) -> None:
    tally.stacks += 1
    records = reader.of(res.pid)
    if not installed:
        model = None
        want_logged = False
    else:
        values = [spec[i][1] for i in installed]
        flags = [spec[i][0] for i in installed]
        model = process_outcome(values, flags, sp.PROBE_NR, 0xC000003E, env)
        want_logged = model.logged
        tally.actions[model.action] += 1
    if want_logged == bool(records) and len(records) <= 1:
        tally.logged_agree += 1
    else:
        tally.disagreements.append(("logged", spec, installed, model, records))
    if records:
        tally.logged_true += 1
        want_code = model.retval & 0xFFFF0000 if model else None
        want_sig = 31 if model and model.killed else 0
        if records[0].code == want_code and records[0].sig == want_sig:
            tally.code_agree += 1
        else:
            tally.disagreements.append(("code", spec, installed, model, records))
    if installed:       # the batch form (Stack.evaluate_batch(detail=True)) against the records
        stack = Stack([programs[i] for i in installed], backend="reference", arch="x86_64",
                      flags=[spec[i][0] for i in installed])
        rec = np.zeros(1, dtype=SECCOMP_DATA)
        rec["nr"], rec["arch"] = sp.PROBE_NR, 0xC000003E
        d = stack.evaluate_batch(rec, detail=True, env=env)
        if bool(d.logged[0]) == bool(records) and int(d.matching_filter[0]) == (
                -1 if model.matching_filter is None else model.matching_filter):
            tally.batch_agree += 1
        else:
            tally.disagreements.append(("batch", spec, installed, d, records))
    elif not records:
        tally.batch_agree += 1
    got = _effect(res)
    want = _model_effect(model) if model else ("runs",)
    if got == want:
        tally.effect_agree += 1
    else:
        tally.disagreements.append(("effect", spec, installed, model, got, res.output))
    if model and model.matching_filter is not None and got[0] in ("errno", "sigsys") and \
            model.acts_as in ("ERRNO", "TRAP"):
        datas = [spec[i][1] & 0xFFFF for i in installed]
        seen = got[1]
        candidates = [k for k, d in enumerate(datas) if min(d, 4095) == seen or d == seen]
        if len(candidates) == 1:
            tally.match_observable += 1
            if candidates[0] == model.matching_filter:
                tally.match_agree += 1
            else:
                tally.disagreements.append(("match", spec, installed, model, got))


def errno_name(code: int) -> str:
    return errno_mod.errorcode.get(code, str(code))


def stacks_for(seed: int, count: int) -> list[list[tuple[int, int]]]:
    rng = random.Random(seed)
    return [random_stack(rng) for _ in range(count)]


__all__ = ["Tally", "run", "stacks_for", "random_stack", "Stack"]
