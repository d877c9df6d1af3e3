"""Fuzzing stage, the differential fuzzer: candidates against the reference interpreter and Linux.

:func:`run` draws programs (valid, realistic, near-valid, garbage — see
:mod:`bpfjit.testing.programs`) and inputs biased to each program's
constants (:mod:`bpfjit.testing.inputs`), runs every candidate
(:mod:`bpfjit.testing.candidates`) and compares it with the oracles:

- **accept/reject**: ``bpfjit.check`` decides (with the errno seccomp(2)
  would return), and is itself compared with the running kernel
  (``kernel_accepts``) when seccomp filters can be installed here;
- **verdicts**: every 32-bit value is compared with the reference
  interpreter ``bpfjit_reference`` (and, for the host's layout, the kernel
  is one more candidate on a sample of the records).

Each disagreement is shrunk (:mod:`bpfjit.testing.shrink`) — program first,
then the input — re-running the candidate at every step, deduplicated by the
shrunk reproducer and who disagrees on it, and written to ``out_dir``.
``stack=True`` fuzzes stack evaluators: 1-8 valid programs, oldest first,
against ``bpfjit_reference.run_stack`` (kernel/seccomp.c precedence).

Coverage is gathered from the reference's ``on_step`` hook on a sample of
records: which seccomp opcodes ran, which conditional-jump outcomes
(code, taken) were seen, and edge events the generators aim at
(:mod:`bpfjit.testing.report` holds :class:`Coverage` and :class:`FuzzReport`).
"""
from __future__ import annotations

import itertools
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable, BpfjitError
from ..program import Program
from ..seccomp import layouts
from . import shrink as shrinking
from .candidates import (Candidate, CandidateError, Failed, Rejected, backend_candidate,
                         resolve_all)
from .report import Coverage, FuzzReport
from .shrink import Disagreement, Referee, expected_acceptance, reference_values

DEFAULT_KINDS = ("valid", "realistic", "near_valid", "garbage", "probe")
STACK_KINDS = ("realistic", "valid", "probe")
INPUTS_PER_PROGRAM = 128



# --- oracles --------------------------------------------------------------------------------
# --- the run --------------------------------------------------------------------------------

def _default_source(seed: int, kinds: Sequence[str], coverage: "Coverage | None" = None
                    ) -> Iterator[tuple[str, bytes]]:
    try:
        from .probes import focus_chooser
        from .programs import program_stream
    except ImportError as exc:
        raise BpfjitError(f"the program generators (bpfjit.testing.programs) cannot be "
                          f"imported: {exc}") from None
    focus = focus_chooser(coverage.missing_edges) if coverage is not None else None
    return program_stream(seed, kinds=tuple(kinds), focus=focus)


def _default_inputs(program: Program, rng: random.Random, n: int, layout: str) -> np.ndarray:
    try:
        from .inputs import inputs_for
    except ImportError as exc:
        raise BpfjitError(f"the input generator (bpfjit.testing.inputs) cannot be imported: "
                          f"{exc}") from None
    return inputs_for(program, rng, n, layout=layout)


def _kernel_setup(use_kernel, layout, kernel_records: int, stack: bool):
    """(kernel_accepts or None, kernel verdict candidate or None, status text)."""
    if use_kernel is False:
        return None, None, "not used"
    try:
        from ..backends import kernel
        reason = kernel.kernel_unavailable_reason()
    except ImportError as exc:
        reason = f"bpfjit.backends.kernel cannot be imported ({exc})"
    if reason:
        if use_kernel is True:
            raise BackendUnavailable(f"the kernel oracle is unavailable: {reason}")
        return None, None, f"unavailable ({reason})"
    verdicts, status = None, "used"
    if stack:
        try:
            verdicts = backend_candidate("kernel", layout, stack=True, max_records=kernel_records)
            verdicts.unsupported = (BackendUnavailable,)
        except BackendUnavailable as exc:
            return None, None, f"not used ({exc})"
        return None, verdicts, "each filter's verdicts (combined by bpfjit.Stack)"
    if kernel_records == 0:
        status = "accept/reject only (kernel_records=0)"
    elif layout.byteorder == layouts.host_layout().byteorder:
        try:
            verdicts = backend_candidate("kernel", layout, max_records=kernel_records)
            verdicts.unsupported = (BackendUnavailable,)   # too long to rewrite, big-endian
        except BackendUnavailable as exc:
            status = f"accept/reject only ({exc})"
    else:
        status = f"accept/reject only (kernel verdicts need a {layouts.host_layout().byteorder}-" \
                 f"endian layout, not {layout.name})"
    return kernel.kernel_accepts, verdicts, status


class _Run:
    """One fuzz run's state: candidates, oracles, stats and the disagreements found."""

    def __init__(self, cands: list[Candidate], layout, report: FuzzReport, *, out_dir,
                 kernel_accepts, shrink: bool, shrink_budget: int, max_shrinks: int):
        self.cands = cands
        self.layout = layout
        self.report = report
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.kernel_accepts = kernel_accepts
        self.shrink = shrink
        self.shrink_budget = shrink_budget
        self.max_shrinks = max_shrinks
        self.shrinks: Counter = Counter()
        self.seen: dict[tuple, Disagreement] = {}
        self.referee = Referee(cands, layout, stack=report.stack, kernel_accepts=kernel_accepts)
        self.clock = (time.monotonic(), time.process_time())

    def first(self, who: str) -> None:
        if who not in self.report.first_found:
            wall, cpu = self.clock
            self.report.first_found[who] = (self.report.programs, time.monotonic() - wall,
                                            time.process_time() - cpu)

    def found(self, kind: str, oracle: str, cand: Candidate | None, programs, record,
              origin: dict) -> None:
        """Shrink a fresh disagreement, deduplicate it, write its reproducer."""
        rep = self.report
        rep.raw_disagreements += 1
        who = cand.name if cand else "bpfjit.check"
        rep.raw_by_candidate[who] += 1
        self.first(who)
        if self.shrinks[(who, kind)] >= self.max_shrinks:
            rep.unshrunk += 1
            return
        self.shrinks[(who, kind)] += 1
        programs = [[tuple(i) for i in p] for p in programs]
        holds = self.referee.predicate(kind, oracle, cand, record)
        if self.shrink:
            budget = shrinking.Budget(self.shrink_budget)
            programs = shrinking.shrink_programs(programs, holds, budget=budget)
            if record is not None:
                record = shrinking.shrink_record(
                    record, self.referee.batch_predicate(cand, programs))
        d = self.referee.describe(kind, oracle, cand, programs, record, origin)
        old = self.seen.get(d.key())
        if old is not None:
            old.count += 1
            return
        self.seen[d.key()] = d
        rep.disagreements.append(d)
        if self.out_dir is not None:
            sha = Program(programs[0]).digest()[:8] if programs else "empty"
            name = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{len(rep.disagreements):03d}-{kind}-"
                          f"{'+'.join(d.candidates)}-{sha}")
            d.path = shrinking.write_reproducer(self.out_dir / name, programs,
                                                self.referee.to_json(d), arch=self.layout.name)


    def failed(self, cand: Candidate, programs, data, records: np.ndarray | None,
               failure: Failed, origin: dict) -> None:
        """A candidate process hung or crashed on a request: report it with that request's
        program(s) and records (for a crash, the one record that crashes it alone, if any)."""
        rep = self.report
        rep.raw_disagreements += 1
        rep.failures[failure.kind] += 1
        rep.raw_by_candidate[cand.name] += 1
        self.first(cand.name)
        if self.shrinks[(cand.name, failure.kind)] >= self.max_shrinks:
            rep.unshrunk += 1
            return
        self.shrinks[(cand.name, failure.kind)] += 1
        batch = [] if records is None else [shrinking.record_fields(r) for r in records]
        record, alone = (batch[0] if batch else None), False
        if failure.kind == "crash" and len(batch) > 1:
            for i in range(min(len(batch), 32)):
                again = cand.answer(data, records[i:i + 1])
                if isinstance(again, Failed) and again.kind == "crash":
                    record, alone = batch[i], True
                    break
        programs = [[tuple(i) for i in p] for p in programs]
        limit = f"an answer within {cand.timeout:g} s" if cand.timeout else "an answer"
        d = Disagreement(failure.kind, "protocol", (cand.name,), programs, record,
                         {"answer": limit, "oracle": "protocol"},
                         {cand.name: {failure.kind: failure.detail}},
                         dict(origin, records=len(batch), record_crashes_alone=alone),
                         batch=batch)
        if d.key() in self.seen:
            self.seen[d.key()].count += 1
            return
        self.seen[d.key()] = d
        rep.disagreements.append(d)
        if self.out_dir is not None:
            sha = Program(programs[0]).digest()[:8] if programs else "empty"
            name = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{len(rep.disagreements):03d}-"
                          f"{failure.kind}-{cand.name}-{sha}")
            d.path = shrinking.write_reproducer(self.out_dir / name[:120], programs,
                                                self.referee.to_json(d), arch=self.layout.name)


def _stacks(source: Iterator[tuple[str, bytes]], rng: random.Random
            ) -> Iterator[tuple[str, list[bytes]]]:
    """Stacks of 1-8 valid programs, oldest first, from a program stream."""
    pending: list[tuple[str, bytes]] = []
    want = rng.randint(1, 8)
    for kind, data in source:
        if not expected_acceptance(data)[0]:
            continue
        pending.append((kind, data))
        if len(pending) == want:
            yield f"stack of {len(pending)}", [d for _, d in pending]
            pending, want = [], rng.randint(1, 8)


def run(candidates: Sequence["str | Candidate | Callable"], *, seconds: float | None = None,
        cpu_seconds: float | None = None, max_programs: int | None = None, seed: int = 0, arch: str = "x86_64",
        out_dir: "str | Path | None" = None, use_kernel: "bool | str" = "auto",
        progress: bool = False, stack: bool = False, kinds: Sequence[str] | None = None,
        inputs_per_program: int = INPUTS_PER_PROGRAM, max_disagreements: int | None = None,
        shrink: bool = True, shrink_budget: int = 3000, max_shrinks_per_candidate: int = 8,
        kernel_records: int | None = None, coverage_sample: int = 4,
        source: Iterable[tuple[str, bytes]] | None = None,
        inputs: Callable | None = None) -> FuzzReport:
    """Fuzz ``candidates`` against the reference (and Linux); see the module docstring.

    ``candidates``: backend names (``llvm``, ``numba``, ``reference``,
    ``kernel``), ``module:function`` specs, callables or Candidates. Stops
    after ``seconds`` (wall), ``cpu_seconds`` (CPU time of this process: a
    budget that a loaded machine does not shrink), ``max_programs`` programs
    (stacks) or ``max_disagreements`` distinct disagreements, whichever comes
    first (at least one limit is required). ``use_kernel``: ``"auto"`` (when seccomp
    works here), True (required) or False; ``kernel_records``: how many of a
    program's records the kernel evaluates (None: all; 0: accept/reject
    only). ``source`` replaces the generated programs by ``(kind, bytes)``
    pairs; ``inputs(program, rng, n, layout)`` replaces
    :func:`bpfjit.testing.inputs.inputs_for`. Shrinking tries at most
    ``shrink_budget`` edits per disagreement, for the first
    ``max_shrinks_per_candidate`` of each (candidate, kind); later ones are
    only counted (``unshrunk``). Coverage comes from the first
    ``coverage_sample`` records of each program.
    """
    if seconds is None and cpu_seconds is None and max_programs is None and \
            max_disagreements is None:
        raise ValueError("fuzz.run needs a limit: seconds, cpu_seconds, max_programs or "
                         "max_disagreements")
    for name, value, low in (("seconds", seconds, 0), ("cpu_seconds", cpu_seconds, 0),
                             ("max_programs", max_programs, 0),
                             ("max_disagreements", max_disagreements, 1),
                             ("inputs_per_program", inputs_per_program, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or value < low):
            raise ValueError(f"fuzz.run: {name} must be a number >= {low}, not {value!r}")
    if use_kernel not in (True, False, "auto"):
        raise ValueError(f"use_kernel must be True, False or 'auto', not {use_kernel!r}")
    lay = layouts.layout(arch)
    specs = [candidates] if isinstance(candidates, str) or callable(candidates) else \
        list(candidates)
    if "kernel" in specs and use_kernel is not False:     # the kernel joins as an oracle
        specs.remove("kernel")
        use_kernel = True
    cands = resolve_all(specs, layout=lay, stack=stack)
    kernel_accepts, kernel_cand, kernel_status = _kernel_setup(use_kernel, lay, kernel_records,
                                                               stack)
    if kernel_cand is not None:
        cands.append(kernel_cand)
    if not cands and kernel_accepts is None:
        raise CandidateError("nothing to fuzz: give at least one candidate")
    report = FuzzReport([c.name for c in cands], seed, lay.name, stack, kernel_status)
    state = _Run(cands, lay, report, out_dir=out_dir, kernel_accepts=kernel_accepts,
                 shrink=shrink, shrink_budget=shrink_budget,
                 max_shrinks=max_shrinks_per_candidate)
    kinds = tuple(kinds or (STACK_KINDS if stack else DEFAULT_KINDS))
    stream = iter(source) if source is not None else \
        _default_source(seed, kinds, report.coverage)
    if stack:
        stream = _stacks(stream, random.Random(f"stacks:{seed}"))
    make_inputs = inputs or _default_inputs

    start, cpu_start = time.monotonic(), time.process_time()
    state.clock = (start, cpu_start)
    deadline = start + seconds if seconds is not None else None
    cpu_deadline = cpu_start + cpu_seconds if cpu_seconds is not None else None
    bar = _Progress(progress, seconds, max_programs)
    report.stopped_by = "source exhausted"
    index = -1
    try:
        for index, kind, data, decision in _with_kernel(stream, state, stack):
            if max_programs is not None and report.programs >= max_programs:
                report.stopped_by = "program count"
                break
            if deadline is not None and time.monotonic() >= deadline:
                report.stopped_by = "time"
                break
            if cpu_deadline is not None and time.process_time() >= cpu_deadline:
                report.stopped_by = "CPU time"
                break
            if max_disagreements is not None and len(report.disagreements) >= max_disagreements:
                report.stopped_by = "disagreements"
                break
            report.programs += 1
            report.programs_by_kind[kind] += 1
            rng = random.Random(f"{seed}:{index}")
            origin = {"seed": seed, "index": index, "kind": kind}
            if stack:
                _one_stack(state, data, rng, make_inputs, inputs_per_program, coverage_sample,
                           origin)
            else:
                _one_program(state, data, decision, rng, make_inputs, inputs_per_program,
                             coverage_sample, origin)
            report.elapsed = time.monotonic() - start
            bar.update(report)
    finally:
        bar.close()
        report.elapsed = time.monotonic() - start
        report.cpu_elapsed = time.process_time() - cpu_start
        for cand in cands:
            if cand.close is not None:
                cand.close()
    for d in report.disagreements:      # the final counts
        if d.path is not None:
            shrinking.write_reproducer(d.path, d.programs, state.referee.to_json(d),
                                       arch=lay.name)
    return report


def _with_kernel(stream, state: _Run, stack: bool, chunk: int = 64):
    """``(index, kind, data, kernel decision)``, asking the kernel about ``chunk`` programs at once.

    The kernel's answers for the next chunk are fetched on a helper thread
    while this chunk is compared (the native call releases the GIL and
    mostly waits on its child tasks).
    """
    def take():
        batch = [(kind, data if stack else bytes(data)) for kind, data in
                 itertools.islice(stream, chunk)]
        if stack or state.kernel_accepts is None:
            return batch, None
        return batch, pool.submit(state.referee.kernel_decisions, [data for _, data in batch])

    index = 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        batch, pending = take()
        while batch:
            decisions = pending.result() if pending is not None else [None] * len(batch)
            nxt, nxt_pending = take()
            try:
                for (kind, data), decision in zip(batch, decisions):
                    yield index, kind, data, decision
                    index += 1
            finally:
                if nxt_pending is not None and not nxt:
                    nxt_pending.cancel()
            batch, pending = nxt, nxt_pending


def _one_program(state: _Run, data: bytes, decision, rng, make_inputs, n_inputs: int,
                 sample: int, origin: dict) -> None:
    rep, lay = state.report, state.layout
    whole = bool(data) and not len(data) % 8
    prog = Program.from_bytes(data[: len(data) - len(data) % 8], "little")
    ok, err, _ = expected_acceptance(data, prog)
    insns = [tuple(i) for i in prog]
    origin = dict(origin, instructions=len(insns))
    if decision is not None:
        k_ok, k_err = decision
        rep.kernel_accept_decisions += 1
        if (ok, err) != (k_ok, k_err):
            kind = "errno" if not ok and not k_ok else \
                "accepts-invalid" if ok else "rejects-valid"
            state.found(kind, "kernel", None, [insns], None, origin)
    if not ok:
        for cand in state.cands:
            if cand.verdicts_only or cand.accepts_checked:
                continue
            rep.accept_decisions += 1
            verdict = cand.accepts(data)
            if isinstance(verdict, Failed):
                state.failed(cand, [insns], data, None, verdict, origin)
            elif verdict is True and whole:
                state.found("accepts-invalid", "bpfjit.check", cand, [insns], None, origin)
        return
    rep.valid_programs += 1
    records = make_inputs(prog, rng, n_inputs, lay.name)
    rep.records += len(records)
    expected = reference_values([insns], records, lay.byteorder,
                                on_step=rep.coverage.on_step(lay.byteorder,
                                                             origin["kind"] == "probe"),
                                sample=sample)
    for cand in state.cands:
        _compare(state, cand, data, [insns], records, expected, origin)


def _compare(state: _Run, cand: Candidate, data, programs, records, expected, origin) -> None:
    rep = state.report
    if not cand.evaluates:
        rep.accept_decisions += 1
        verdict = cand.accepts(data)
        if isinstance(verdict, Failed):
            state.failed(cand, programs, data, None, verdict, origin)
        elif verdict is not True:
            state.found("rejects-valid", "bpfjit.check", cand, programs, None, origin)
        return
    recs = records[: cand.max_records] if cand.max_records else records
    got = cand.answer(data, recs)
    if got is None:
        return                      # the candidate cannot evaluate this program at all
    if isinstance(got, Failed):
        state.failed(cand, programs, data, recs, got, origin)
        return
    if not cand.accepts_checked:
        rep.accept_decisions += 1
    if isinstance(got, Rejected):
        state.found("rejects-valid", "bpfjit.check", cand, programs, None,
                    dict(origin, reason=got.reason))
        return
    rep.verdicts += len(recs)
    if cand.name == "kernel":
        rep.kernel_verdicts += len(recs)
    bad = np.nonzero(got != expected[: len(recs)])[0]
    if len(bad):
        state.found("verdict", "reference", cand, programs, shrinking.record_fields(recs[bad[0]]),
                    dict(origin, mismatched_records=int(len(bad)), records=int(len(recs))))


def _one_stack(state: _Run, datas: list[bytes], rng, make_inputs, n_inputs: int, sample: int,
               origin: dict) -> None:
    rep, lay = state.report, state.layout
    programs = [[tuple(i) for i in Program.from_bytes(d, "little")] for d in datas]
    origin = dict(origin, instructions=[len(p) for p in programs])
    rep.valid_programs += len(programs)
    joined = Program([i for p in programs for i in p])
    records = make_inputs(joined, rng, n_inputs, lay.name)
    rep.records += len(records)
    expected = reference_values(programs, records, lay.byteorder, stack=True,
                                on_step=rep.coverage.on_step(lay.byteorder, False),
                                sample=sample)
    for cand in state.cands:
        _compare(state, cand, datas, programs, records, expected, origin)


class _Progress:
    """A rich progress bar over time or program count; nothing when disabled."""

    def __init__(self, enabled: bool, seconds: float | None, max_programs: int | None):
        self.bar = None
        if not enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        self.by_time = seconds is not None
        self.total = seconds if self.by_time else max_programs
        self.bar = Progress(TextColumn("[bold]fuzz"), BarColumn(), TimeElapsedColumn(),
                            TextColumn("{task.description}"), transient=True)
        self.task = self.bar.add_task("", total=self.total)
        self.bar.start()
        self.last = 0.0

    def update(self, report: FuzzReport) -> None:
        if self.bar is None or report.elapsed - self.last < 0.2:
            return
        self.last = report.elapsed
        done = report.elapsed if self.by_time else report.programs
        self.bar.update(self.task, completed=min(done, self.total or done), description=(
            f"{report.programs} programs, {report.programs_per_second:.0f}/s, "
            f"{report.inputs_per_second:.0f} inputs/s, {len(report.disagreements)} disagreements"))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
