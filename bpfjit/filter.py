"""compile() and Filter: a checked program bound to a layout and a backend, ready to evaluate.

This is the only place that validates evaluation inputs, resolves syscall and
arch names, splits batches across threads and picks the ``auto`` backend;
backends only fill arrays (see :mod:`bpfjit.backends.base`).

Single calls are the hot path of interactive use. ``evaluate(nr)`` with the
default arch and no arguments goes straight to the evaluator's optional
``evaluate_nr(nr)`` hook (for ``backend="llvm"`` a ctypes call into native
code); with arguments, the record is packed by ``struct`` (which range-checks
every field at C speed) and handed to the optional ``evaluate_packed(bytes)``
hook; syscall and arch names are resolved once per Filter. Anything unusual
(negative arguments, numpy integers, bad values) takes the general path, which
normalises or explains.
"""
from __future__ import annotations

import logging
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from . import backends
from .check import CheckedProgram, check
from .errors import BackendUnavailable, BpfjitError, InputError, UnknownArchError
from .program import Program
from .seccomp import layouts, records, syscalls
from .seccomp.actions import Action, Outcome, outcome
from .seccomp.layouts import Layout

if TYPE_CHECKING:  # pragma: no cover
    from .backends.base import Evaluator

log = logging.getLogger("bpfjit")

#: below this many records a batch is not worth splitting across threads
MIN_RECORDS_PER_THREAD = 1 << 16

_NO_ARGS = (0,) * 6
#: one record in SECCOMP_DATA layout (native order, no padding) for n given arguments, the
#: missing ones packed as zero bytes; packing range-checks every field
_RECORD_N = tuple(struct.Struct(f"=iIQ{n}Q{8 * (6 - n)}x") for n in range(7))
assert all(r.size == records.SECCOMP_DATA.itemsize for r in _RECORD_N)
#: remembered (nr, arch) -> (signed nr, AUDIT_ARCH) resolutions per Filter
_RESOLVED_MAX = 4096
_PLAIN_INT = frozenset((int,))


def compile(program: Program, backend: str = "auto", arch: "str | Layout | None" = None,
            flags: "int | str" = 0) -> "Filter":
    """Check ``program`` and compile it for ``arch``'s seccomp_data layout with ``backend``.

    ``backend``: ``auto`` (llvm, else numba with a logged warning, else
    reference), ``llvm``, ``numba``, ``reference`` or ``kernel``. ``arch``: a
    libseccomp arch name such as ``x86_64`` or ``aarch64`` (default: the host).
    ``flags``: the ``SECCOMP_FILTER_FLAG_*`` bits it is installed with (``LOG``,
    ``NEW_LISTENER``... or a number), used by :meth:`Filter.process`.
    """
    if not isinstance(program, Program):
        raise TypeError(f"compile() takes a bpfjit.Program (see bpfjit.load), not "
                        f"{type(program).__name__}")
    from .seccomp.kernels import parse_flags
    bits = parse_flags(flags)
    lay = layouts.layout(arch)
    if backend in ("llvm", "auto") and not isinstance(program, CheckedProgram):
        # compiled before (memory, or an authenticated disk entry of these exact bytes): no
        # need to check again — only checked programs are ever compiled and stored
        evaluator = _recall_llvm(program, lay)
        if evaluator is not None:
            return Filter(evaluator.program, lay, evaluator, "llvm", flags=bits)
    checked = check(program)
    if backend != "auto":
        evaluator = backends.get(backend).compile(checked, lay)
        return Filter(checked, lay, evaluator, backend, flags=bits)
    failures = []
    for name in backends.AUTO_ORDER:
        try:
            evaluator = backends.get(name).compile(checked, lay)
        except Exception as exc:  # noqa: BLE001 - any codegen/JIT failure means: fall back
            failures.append(f"{name}: {exc}")
            log.warning("bpfjit: backend %r failed (%s); falling back", name, exc)
            continue
        return Filter(checked, lay, evaluator, name, flags=bits)
    raise BackendUnavailable("no backend could compile this program: " + "; ".join(failures))


def _recall_llvm(program: Program, lay: Layout) -> "Evaluator | None":
    try:
        llvm = backends.get("llvm")
    except BpfjitError:
        return None
    return llvm.recall(program, lay)


@dataclass(frozen=True)
class Step:
    """One executed instruction of a trace: A and X are the values *before* it runs."""

    index: int
    code: int
    jt: int
    jf: int
    k: int
    A: int
    X: int


@dataclass(frozen=True)
class Trace:
    retval: int
    steps: tuple[Step, ...]

    @property
    def action(self) -> Action:
        return Action.from_value(self.retval)


class Filter:
    """A compiled seccomp filter. ``evaluate()`` one call, ``evaluate_batch()`` an array."""

    def __init__(self, program: CheckedProgram, layout: Layout, evaluator: "Evaluator",
                 backend: str, flags: int = 0):
        self.program = program
        #: SECCOMP_FILTER_FLAG_* bits this filter is installed with (bpfjit.process)
        self.flags = flags
        self.layout = layout
        self.evaluator = evaluator
        self.backend = backend
        self._one = getattr(evaluator, "evaluate_one", None)
        self._nr_only = getattr(evaluator, "evaluate_nr", None)
        self._packed = getattr(evaluator, "evaluate_packed", None)
        self._default_arch = layout.audit_arch
        self._resolved: dict[tuple, tuple[int, int]] = {}

    def __repr__(self) -> str:
        return (f"<Filter {len(self.program)} instructions, arch={self.layout.name}, "
                f"backend={self.backend}>")

    # --- name resolution ---
    def resolve(self, nr: "int | str", arch: "int | str | None" = None) -> tuple[int, int]:
        """(signed nr, AUDIT_ARCH value) for a syscall number or name and an arch name/value."""
        lay = self.layout
        if arch is None:
            audit = lay.audit_arch
        elif isinstance(arch, str):
            lay = layouts.layout(arch)
            audit = lay.audit_arch
        elif isinstance(arch, (int, np.integer)) and not isinstance(arch, bool):
            audit = records.normalize_u(arch, 32, "arch")
            if audit != self.layout.audit_arch:
                same = layouts.by_audit_arch(audit)
                lay = same[0] if same else lay
        else:
            raise UnknownArchError(f"arch must be a name or an AUDIT_ARCH value, not {arch!r}")
        if isinstance(nr, str):
            text = nr.strip()
            try:
                number = int(text, 0)
            except ValueError:
                number = syscalls.number(lay.syscall_abi, text)
        else:
            number = nr
        return records.normalize_nr(number), audit

    # --- evaluation ---
    def evaluate(self, nr: "int | str", args: Sequence[int] = (), arch: "int | str | None" = None,
                 instruction_pointer: int = 0) -> int:
        """The program's 32-bit return value for one system call."""
        # the common call, evaluate(nr, (a0, ...)): packed and range-checked by struct in C
        if (args.__class__ is tuple and arch is None and nr.__class__ is int and args
                and instruction_pointer.__class__ is int and len(args) <= 6
                and self._packed is not None and _PLAIN_INT.issuperset(map(type, args))):
            try:
                record = _RECORD_N[len(args)].pack(nr, self._default_arch, instruction_pointer,
                                                   *args)
            except struct.error:
                pass                            # negative or too large: normalise (or explain)
            else:
                return self._packed(record)
        if (nr.__class__ is int and arch is None and args.__class__ is tuple and not args
                and instruction_pointer.__class__ is int and not instruction_pointer
                and self._nr_only is not None and -0x80000000 <= nr <= 0xFFFFFFFF):
            return self._nr_only(nr)            # the layout's arch, ip 0, args 0
        if nr.__class__ is int and arch is None and -0x80000000 <= nr <= 0x7FFFFFFF:
            audit = self._default_arch
        else:
            nr, audit = self._resolve_cached(nr, arch)
            if (not args and args.__class__ is tuple and instruction_pointer.__class__ is int
                    and not instruction_pointer and audit == self._default_arch
                    and self._nr_only is not None):
                return self._nr_only(nr)        # a syscall name, the layout's arch
        packed = self._packed
        if (packed is not None and args.__class__ in (tuple, list) and len(args) <= 6
                and instruction_pointer.__class__ is int
                and set(map(type, args)) <= _PLAIN_INT):
            try:
                record = _RECORD_N[len(args)].pack(nr, audit, instruction_pointer, *args)
            except struct.error:
                pass                            # negative or too large: normalise (or explain)
            else:
                return packed(record)
        if args is None or (args.__class__ in (tuple, list) and not args):
            args = _NO_ARGS
        else:
            args = records.normalize_args(args)
        if instruction_pointer.__class__ is not int or instruction_pointer:
            instruction_pointer = records.normalize_u(instruction_pointer, 64, "instruction_pointer")
        if self._one is not None:
            return self._one(nr, audit, instruction_pointer, args)
        rec = records.make(nr, audit, instruction_pointer, args)
        out = np.empty(1, dtype=np.uint32)
        self.evaluator.evaluate_batch(rec, out)
        return int(out[0])

    def _resolve_cached(self, nr: "int | str", arch: "int | str | None") -> tuple[int, int]:
        if nr.__class__ in (str, int) and arch.__class__ in (str, int, type(None)):
            key = (nr, arch)
            found = self._resolved.get(key)
            if found is None:
                found = self.resolve(nr, arch)
                if len(self._resolved) < _RESOLVED_MAX:
                    self._resolved[key] = found
            return found
        return self.resolve(nr, arch)

    def action(self, nr: "int | str", args: Sequence[int] = (), arch: "int | str | None" = None,
               instruction_pointer: int = 0) -> Action:
        return Action.from_value(self.evaluate(nr, args, arch, instruction_pointer))

    def outcome(self, nr: "int | str", args: Sequence[int] = (), arch: "int | str | None" = None,
                instruction_pointer: int = 0) -> Outcome:
        """What the kernel would do to the process (this filter alone installed)."""
        number, audit = self.resolve(nr, arch)
        retval = self.evaluate(number, args, audit, instruction_pointer)
        from .seccomp.actions import stack_retval
        return outcome(stack_retval([retval]), arch_name=self.layout.name, nr=number,
                       audit_arch=audit)

    def process(self, nr: "int | str", args: Sequence[int] = (), arch: "int | str | None" = None,
                instruction_pointer: int = 0, env=None):
        """:class:`bpfjit.process.ProcessOutcome`: this filter alone installed with ``self.flags``."""
        from .process import process_outcome
        number, audit = self.resolve(nr, arch)
        value = self.evaluate(number, args, audit, instruction_pointer)
        return process_outcome([value], [self.flags], number, audit, env)

    def evaluate_batch(self, records_: np.ndarray, out: np.ndarray | None = None, *,
                       threads: int = 1, detail: bool = False, env=None):
        """uint32 return values for a 1-D contiguous array of ``bpfjit.SECCOMP_DATA``.

        ``out``: a writable 1-D uint32 array of the same length to fill (else a
        new one). ``threads``: split the batch over up to this many threads when
        the backend releases the GIL (results are identical to one thread).
        ``detail=True``: return a :class:`bpfjit.process.BatchDetail` instead
        (winning value, applied action, matching filter, logged; ``env`` a
        :class:`bpfjit.process.Environment`), computed with whole-array numpy;
        ``out`` may then be a BatchDetail to fill (``bpfjit.process.empty_detail(n)``).
        """
        if detail:
            from .batch_detail import detail_batch
            return detail_batch([self], [self.flags], records.validate(records_), env, threads,
                                out)
        recs = records.validate(records_)
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise InputError(f"threads must be a positive int, not {threads!r}")
        n = len(recs)
        out = np.empty(n, dtype=np.uint32) if out is None else records.validate_out(out, n)
        if n == 0:
            return out
        if not recs.flags.aligned:
            recs = recs.copy()                  # native code reads aligned 32-bit words
        target = out
        if not out.flags.aligned or np.may_share_memory(recs, out):
            target = np.empty(n, dtype=np.uint32)   # never write over records being read
        self._fill(recs, target, threads)
        if target is not out:
            out[:] = target
        return out

    def _fill(self, recs: np.ndarray, out: np.ndarray, threads: int) -> None:
        n = len(recs)
        if threads > 1:
            threads = min(threads, os.cpu_count() or 1, max(1, n // MIN_RECORDS_PER_THREAD))
        if threads == 1 or not getattr(self.evaluator, "releases_gil", False):
            self.evaluator.evaluate_batch(recs, out)
            return
        bounds = np.linspace(0, n, threads + 1).astype(np.int64)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            jobs = [pool.submit(self.evaluator.evaluate_batch, recs[a:b], out[a:b])
                    for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
            for job in jobs:
                job.result()

    def describe(self) -> dict[str, str]:
        """The backend's text views of the compiled code (for llvm: ``ir``, ``optimized_ir``, ``asm``)."""
        describe = getattr(self.evaluator, "describe", None)
        return describe() if describe is not None else {}

    def trace(self, nr: "int | str", args: Sequence[int] = (), arch: "int | str | None" = None,
              instruction_pointer: int = 0) -> Trace:
        """The path taken (by the reference interpreter), with A and X before each step."""
        from .backends.reference import ReferenceEvaluator
        number, audit = self.resolve(nr, arch)
        steps: list[Step] = []
        ref = ReferenceEvaluator(self.program, self.layout)
        retval = ref.trace(number, audit, records.normalize_u(instruction_pointer, 64, "ip"),
                           records.normalize_args(args),
                           lambda i, c, jt, jf, k, a, x: steps.append(Step(i, c, jt, jf, k, a, x)))
        return Trace(retval, tuple(steps))
