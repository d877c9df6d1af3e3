"""The ENOTSUPP model against the running kernel: every program, the kernel's answer vs the prediction.

For each generated program: the kernel's answer from
:class:`bpfjit.testing.seccomp_prepare.SeccompPrepare` (0, EINVAL, ENOTSUPP,
...) and bpfjit's (``check(program, kernel=config)``: the seccomp rules,
then the x86-64 JIT model). Counted: programs, kernel refusals with ENOTSUPP,
predicted refusals, false refusals (predicted, the kernel accepts), misses
(the kernel refuses with ENOTSUPP, predicted accepted), and any other
disagreement (the rules themselves). Every ENOTSUPP program is kept (hex) as
a reproducer.

Run it long with ``nice -n 10 python -m bpfjit.testing.jit_acceptance --count
1000000`` (prints a JSON report with CPU seconds).
"""
from __future__ import annotations

import errno as errno_mod
import itertools
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..check import check
from ..errors import InvalidProgram
from ..program import Program

ENOTSUPP = 524


def _name(code: int) -> str:
    return "accepted" if code == 0 else "ENOTSUPP" if code == ENOTSUPP else \
        errno_mod.errorcode.get(code, str(code))


@dataclass
class Report:
    programs: int = 0
    valid: int = 0
    kernel_enotsupp: int = 0
    predicted_enotsupp: int = 0
    false_refusals: list = field(default_factory=list)      # (kind, hex, model reason)
    misses: list = field(default_factory=list)              # (kind, hex)
    other: list = field(default_factory=list)               # (kind, hex, kernel, model)
    refused: list = field(default_factory=list)             # (kind, hex) every ENOTSUPP
    by_kind: Counter = field(default_factory=Counter)       # (kind, kernel answer) -> n

    def ok(self) -> bool:
        return not (self.false_refusals or self.misses or self.other)

    def as_dict(self) -> dict:
        return {"programs": self.programs, "valid": self.valid,
                "kernel_enotsupp": self.kernel_enotsupp,
                "predicted_enotsupp": self.predicted_enotsupp,
                "false_refusals": len(self.false_refusals), "misses": len(self.misses),
                "other_disagreements": len(self.other),
                "by_kind": {f"{k} {v}": n for (k, v), n in sorted(self.by_kind.items())}}


def _model(data: bytes, kernel) -> tuple[int, str]:
    try:
        check(Program.from_bytes(data, "little"), kernel=kernel)
    except InvalidProgram as exc:
        return (ENOTSUPP if exc.errno == "ENOTSUPP" else errno_mod.EINVAL), exc.reason
    except Exception as exc:      # a loader error on garbage: the rules say EINVAL
        return errno_mod.EINVAL, str(exc)
    return 0, ""


def compare(items: Iterable[tuple[str, bytes]], oracle, kernel, report: Report | None = None,
            *, batch: int = 2048) -> Report:
    """Ask the kernel (``oracle.errnos``) and the model about every (kind, bytes) item."""
    report = report or Report()
    it = iter(items)
    while True:
        chunk = list(itertools.islice(it, batch))
        if not chunk:
            return report
        count = oracle.submit([d for _, d in chunk])      # the kernel works while we model
        wants = [_model(data, kernel) for _, data in chunk]
        answers = oracle.collect(count)
        for (kind, data), got, (want, reason) in zip(chunk, answers, wants):
            report.programs += 1
            report.by_kind[(kind, _name(got))] += 1
            report.valid += want != errno_mod.EINVAL
            report.kernel_enotsupp += got == ENOTSUPP
            report.predicted_enotsupp += want == ENOTSUPP
            if got == ENOTSUPP:
                report.refused.append((kind, data.hex()))
            if want == ENOTSUPP and got != ENOTSUPP:
                report.false_refusals.append((kind, data.hex(), reason))
            elif got == ENOTSUPP and want != ENOTSUPP:
                report.misses.append((kind, data.hex()))
            elif (got == 0) != (want == 0) and not (got, want) == (ENOTSUPP, ENOTSUPP):
                report.other.append((kind, data.hex(), _name(got), _name(want)))


def mixed_stream(seed: int, stress_share: float = 0.25, walk_share: float = 0.1
                 ) -> Iterator[tuple[str, bytes]]:
    """program_stream (every kind) with shares of jit_stress programs and of the oscillating
    walk (:func:`bpfjit.testing.jit_stress.oscillating_programs`), reproducible from ``seed``."""
    import random

    from .jit_stress import jit_stress_program, oscillating_programs
    from .programs import program_stream
    rng = random.Random(seed ^ 0x5EED)
    base = program_stream(seed)
    walk = oscillating_programs(seed + 1)
    while True:
        r = rng.random()
        if r < stress_share:
            yield "jit_stress", jit_stress_program(rng).to_bytes("little")
        elif r < stress_share + walk_share:
            yield next(walk)
        else:
            yield next(base)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .seccomp_prepare import SeccompPrepare
    from ..kernelcfg import kernel_config
    ap = argparse.ArgumentParser(prog="python -m bpfjit.testing.jit_acceptance",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--stress-share", type=float, default=0.25)
    ap.add_argument("--walk-share", type=float, default=0.1)
    ap.add_argument("--kernel", default="linux-6.18-x86_64-jit-always-on")
    ap.add_argument("--reproducers", default=None, help="write every ENOTSUPP program (hex) here")
    args = ap.parse_args(argv)
    cfg = kernel_config(args.kernel)
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    report = Report()
    stream = mixed_stream(args.seed, args.stress_share, args.walk_share)
    with SeccompPrepare() as oracle:
        done = 0
        while done < args.count:
            n = min(50_000, args.count - done)
            compare(itertools.islice(stream, n), oracle, cfg, report)
            done += n
            print(f"  {done} programs: {report.kernel_enotsupp} ENOTSUPP, "
                  f"{report.predicted_enotsupp} predicted, {len(report.false_refusals)} false, "
                  f"{len(report.misses)} missed, {len(report.other)} other, "
                  f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = report.as_dict()
    out.update(kernel=cfg.name, seed=args.seed, stress_share=args.stress_share,
               walk_share=args.walk_share,
               wall_seconds=round(time.perf_counter() - t0, 1),
               cpu_seconds_self=round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 1),
               cpu_seconds_worker=round(children.ru_utime + children.ru_stime, 1),
               false_refusal_examples=report.false_refusals[:5], miss_examples=report.misses[:5],
               other_examples=report.other[:5])
    if args.reproducers:
        with open(args.reproducers, "w") as fh:
            json.dump(report.refused, fh)
    print(json.dumps(out, indent=1))
    return 0 if report.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
