"""Stack: several filters of one process, combined by the kernel's precedence and budget.

kernel/seccomp.c: every installed filter runs on every system call and
``seccomp_run_filters`` keeps the lowest ``ACTION_ONLY(ret)`` (ties go to the
newest filter, ALLOW data is dropped). ``seccomp_attach_filter`` refuses a new
filter with ENOMEM when the path would exceed MAX_INSNS_PER_PATH (32768) eBPF
instructions, counting 4 extra per earlier filter; the eBPF length of a classic
program is what ``bpf_convert_filter`` (net/core/filter.c) makes of it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import opcodes as op
from .errors import InputError, StackLimitError
from .filter import Filter, compile
from .program import Program
from .seccomp import records
from .seccomp.actions import SECCOMP_RET_ALLOW, Action, Outcome, outcome, stack_retval
from .seccomp.layouts import Layout

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
        """The stack's values per record; ``detail=True``: a :class:`bpfjit.process.BatchDetail`."""
        if detail:
            from .batch_detail import detail_batch
            return detail_batch(self.filters, self.flags, records.validate(records_), env,
                                threads, out)
        recs = records.validate(records_)
        n = len(recs)
        out = np.empty(n, dtype=np.uint32) if out is None else records.validate_out(out, n)
        best = np.full(n, SECCOMP_RET_ALLOW, dtype=np.uint32)
        best_key = best.view(np.int32) & np.int32(-65536)
        cur = np.empty(n, dtype=np.uint32)
        for f in reversed(self.filters):       # newest first; strict < keeps ties with the newest
            f.evaluate_batch(recs, cur, threads=threads)
            key = cur.view(np.int32) & np.int32(-65536)
            take = key < best_key
            best[take] = cur[take]
            best_key[take] = key[take]
        out[:] = best
        return out
