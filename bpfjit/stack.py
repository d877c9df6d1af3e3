"""Stack: several filters of one process, combined by the kernel's precedence and budget.

kernel/seccomp.c: every installed filter runs on every system call and
``seccomp_run_filters`` keeps the lowest ``ACTION_ONLY(ret)`` (ties go to the
newest filter, ALLOW data is dropped). ``seccomp_attach_filter`` refuses a new
filter with ENOMEM when the path would exceed MAX_INSNS_PER_PATH (32768) eBPF
instructions, counting 4 extra per earlier filter; the eBPF length of a classic
program is what ``bpf_convert_filter`` (net/core/filter.c) makes of it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import opcodes as op
from .errors import InputError, StackLimitError
from .filter import MIN_RECORDS_PER_THREAD, Filter, compile
from .program import Program
from .seccomp import records
from .seccomp.actions import SECCOMP_RET_ALLOW, Action, Outcome, outcome, stack_retval
from .seccomp.layouts import Layout

log = logging.getLogger("bpfjit")

MAX_INSNS_PER_PATH = (1 << 18) // 8   # 32768
FILTER_PENALTY = 4                     # per earlier filter


def ebpf_length(program: Program) -> int:
    """Instructions ``bpf_convert_filter`` emits for a seccomp program (its ``prog->len``).

    Prologue 3 (A = 0, X = 0, ctx); ``ret #k`` 2; ``div x`` 5 (X == 0 check);
    a conditional jump 1, +1 for a ``#k`` with bit 31 set (moved to a temporary
    register), +1 for a second jump unless ``jf`` is 0, or ``jt`` is 0 and
    the op is jeq/jgt/jge (inverted to jne/jle/jlt); everything else 1.
    """
    n = 3
    for insn in program:
        code = insn.code
        if code == op.BPF_RET | op.BPF_K:
            n += 2
        elif code == op.BPF_ALU | op.BPF_DIV | op.BPF_X:
            n += 5
        elif code in op.CONDITIONAL_JUMPS:
            n += 1
            if op.bpf_src(code) == op.BPF_K and insn.k & 0x80000000:
                n += 1
            if insn.jf != 0 and not (insn.jt == 0 and op.bpf_op(code) != op.BPF_JSET):
                n += 1
        else:
            n += 1
    return n


def path_length(programs: Sequence[Program]) -> int:
    """The ``total_insns`` seccomp_attach_filter computes when the last program is added."""
    return sum(ebpf_length(p) for p in programs) + FILTER_PENALTY * (len(programs) - 1)


def check_budget(programs: Sequence[Program]) -> None:
    """Raise StackLimitError (ENOMEM) at the first filter the kernel would refuse to attach."""
    total = 0
    for i, prog in enumerate(programs):
        total += ebpf_length(prog) + (FILTER_PENALTY if i else 0)
        if total > MAX_INSNS_PER_PATH:
            raise StackLimitError(
                f"installing filter {i} (oldest first) makes the path {total} eBPF "
                f"instructions; the kernel allows {MAX_INSNS_PER_PATH}", index=None)


class Stack:
    """Filters of one process, OLDEST FIRST (installation order), evaluated as the kernel does."""

    def __init__(self, filters: Sequence[Filter | Program], backend: str = "auto",
                 arch: "str | Layout | None" = None,
                 flags: "Sequence[int | str] | None" = None):
        """``flags``: per filter, the SECCOMP_FILTER_FLAG_* bits it was installed with (names
        such as ``LOG,NEW_LISTENER`` or numbers; default: each Filter's own ``flags``, else 0)."""
        from .seccomp.kernels import parse_flags
        if not filters:
            raise InputError("a stack needs at least one filter")
        if flags is not None and len(flags) != len(filters):
            raise InputError(f"{len(filters)} filters but {len(flags)} flag values")
        compiled = [f if isinstance(f, Filter) else compile(f, backend=backend, arch=arch)
                    for f in filters]
        layouts_ = {f.layout.byteorder for f in compiled}
        if len(layouts_) != 1:
            raise InputError("all filters of a stack must use the same seccomp_data byte order")
        check_budget([f.program for f in compiled])
        self.filters: tuple[Filter, ...] = tuple(compiled)
        self.layout = compiled[-1].layout
        #: SECCOMP_FILTER_FLAG_* bits of each filter, oldest first
        self.flags: tuple[int, ...] = tuple(
            parse_flags(x) for x in flags) if flags is not None else tuple(
            f.flags for f in compiled)
        self._native = None                    # the native stack, built on first batch use

    def __len__(self) -> int:
        return len(self.filters)

    def evaluate(self, nr: "int | str", args: Sequence[int] = (), arch: "int | str | None" = None,
                 instruction_pointer: int = 0) -> int:
        """The stack's 32-bit result: what ``seccomp_run_filters`` returns."""
        number, audit = self.filters[-1].resolve(nr, arch)
        return stack_retval([f.evaluate(number, args, audit, instruction_pointer)
                             for f in self.filters])

    def action(self, *a, **kw) -> Action:
        return Action.from_value(self.evaluate(*a, **kw))

    def outcome(self, nr: "int | str", args: Sequence[int] = (), arch: "int | str | None" = None,
                instruction_pointer: int = 0) -> Outcome:
        number, audit = self.filters[-1].resolve(nr, arch)
        return outcome(self.evaluate(number, args, audit, instruction_pointer),
                       arch_name=self.layout.name, nr=number, audit_arch=audit)

    def process(self, nr: "int | str", args: Sequence[int] = (), arch: "int | str | None" = None,
                instruction_pointer: int = 0, env=None):
        """:class:`bpfjit.process.ProcessOutcome`: matching filter, logged, what the process sees."""
        from .process import process_outcome
        number, audit = self.filters[-1].resolve(nr, arch)
        values = [f.evaluate(number, args, audit, instruction_pointer) for f in self.filters]
        return process_outcome(values, self.flags, number, audit, env)

    def install_check(self, program: Program, flags: "int | str" = 0, env=None):
        """Would installing ``program`` with ``flags`` on top of this stack succeed? (bpfjit.install)"""
        from .install import install_check
        return install_check(program, flags, [f.program for f in self.filters], self.flags, env)

    def evaluate_batch(self, records_: np.ndarray, out: np.ndarray | None = None, *,
                       threads: int = 1, detail: bool = False, env=None):
        """uint32 stack results (what ``seccomp_run_filters`` returns) for SECCOMP_DATA records.

        ``detail=True``: a :class:`bpfjit.process.BatchDetail` (action, matching filter, logged).
        When every filter was compiled by ``llvm`` for one layout, the whole
        stack runs as one native function (:meth:`LlvmBackend.compile_stack
        <bpfjit.backends.llvm.LlvmBackend.compile_stack>`); otherwise each
        filter runs on the batch and numpy combines the results.
        """
        if detail:
            from .batch_detail import detail_batch
            return detail_batch(self.filters, self.flags, records.validate(records_), env,
                                threads, out)
        return self.evaluate_batch_matching(records_, out, threads=threads, match=False)[0]

    def evaluate_batch_matching(self, records_: np.ndarray, out: np.ndarray | None = None, *,
                                threads: int = 1, match: bool = True
                                ) -> tuple[np.ndarray, np.ndarray | None]:
        """(results, matching filter per record as int32: 0 = oldest; None unless ``match``).

        The matching filter is the newest filter that returned the winning
        action (kernel/seccomp.c: ties go to the newest); when all allow, the newest.
        """
        recs = records.validate(records_)
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise InputError(f"threads must be a positive int, not {threads!r}")
        n = len(recs)
        out = np.empty(n, dtype=np.uint32) if out is None else records.validate_out(out, n)
        which = np.empty(n, dtype=np.int32) if match else None
        native = self._native_evaluator()
        if native is None or not recs.flags.aligned or np.may_share_memory(recs, out) \
                or not out.flags.aligned:
            self.evaluate_batch_per_filter(recs, out, threads=threads, match=which)
            return out, which
        threads = min(threads, os.cpu_count() or 1, max(1, n // MIN_RECORDS_PER_THREAD))
        if threads == 1:
            native.evaluate_batch(recs, out, which)
            return out, which
        bounds = np.linspace(0, n, threads + 1).astype(np.int64)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            jobs = [pool.submit(native.evaluate_batch, recs[a:b], out[a:b],
                                None if which is None else which[a:b])
                    for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
            for job in jobs:
                job.result()
        return out, which

    def _native_evaluator(self):
        """The one-function native stack when every filter is ``llvm`` on one layout, else None."""
        if self._native is False:
            return None
        if self._native is None:
            self._native = False
            if len({f.layout for f in self.filters}) == 1 and \
                    all(f.backend == "llvm" for f in self.filters):
                from .backends import llvm
                try:
                    self._native = llvm.BACKEND.compile_stack([f.program for f in self.filters],
                                                              self.layout)
                except Exception as exc:  # noqa: BLE001 - fall back to per-filter batches
                    log.warning("bpfjit: native stack failed (%s); evaluating per filter", exc)
        return self._native or None

    def evaluate_batch_per_filter(self, records_: np.ndarray, out: np.ndarray | None = None, *,
                                  threads: int = 1, match: np.ndarray | None = None) -> np.ndarray:
        """The stack result computed filter by filter and combined in numpy (the oracle of the
        native stack; ``match``: an int32 array to fill with the matching filter)."""
        recs = records.validate(records_)
        n = len(recs)
        out = np.empty(n, dtype=np.uint32) if out is None else records.validate_out(out, n)
        best = np.full(n, SECCOMP_RET_ALLOW, dtype=np.uint32)
        best_key = best.view(np.int32) & np.int32(-65536)
        if match is not None:
            match[:] = len(self.filters) - 1
        cur = np.empty(n, dtype=np.uint32)
        for index in reversed(range(len(self.filters))):   # newest first; strict < keeps ties
            self.filters[index].evaluate_batch(recs, cur, threads=threads)
            key = cur.view(np.int32) & np.int32(-65536)
            take = key < best_key
            best[take] = cur[take]
            best_key[take] = key[take]
            if match is not None:
                match[take] = index
        out[:] = best
        return out
