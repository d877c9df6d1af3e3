"""Fuzzing stage, candidates: anything that evaluates or checks seccomp programs, under one protocol.

A *candidate* is what the differential fuzzer (:mod:`bpfjit.testing.fuzz`)
compares with Linux. It is one of:

- a bpfjit backend by name: ``llvm``, ``numba``, ``reference``, ``kernel``
  (:func:`backend_candidate`);
- a user evaluator named ``module:function`` (:func:`load`), importable from
  the current directory or ``PYTHONPATH``.

The protocol for a user evaluator ``f(program_bytes, records)``:

- ``program_bytes`` is the program as little-endian ``struct sock_filter``
  (8 bytes an instruction, possibly not a whole number of them when the
  fuzzer sends garbage); ``records`` a 1-D numpy array of
  ``bpfjit.SECCOMP_DATA`` holding *logical* values (``nr``, ``arch``,
  ``instruction_pointer``, ``args[6]``) for the run's architecture
  (``--arch``, default ``x86_64``; a function with an ``arch`` keyword
  parameter is passed the name).
- **accept**: return a sequence of ``len(records)`` unsigned 32-bit
  values, the program's return value for each record;
- **reject**: raise any exception, or return ``None`` — "Linux would refuse
  to install this program".
- optional ``f.check(program_bytes) -> bool``: a pure checker; when present,
  it alone decides accept/reject and ``f`` only sees programs it accepted.
- optional ``f.verdicts_only = True``: the candidate does not check
  programs; it is given valid programs only and compared on values only.
- optional ``f.stack = True``: a *stack* evaluator, called as
  ``f(list_of_program_bytes_oldest_first, records)`` and answering, per
  record, what ``seccomp_run_filters`` returns for that stack.

``module:name`` may also name an object (or ``module`` alone a module) with
``evaluate`` and/or ``check`` attributes; one with ``check`` only is a pure
checker, compared on accept/reject decisions only.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import BpfjitError
from ..seccomp import layouts
from ..seccomp.layouts import Layout

#: names :func:`resolve` turns into backend candidates
BACKEND_NAMES = ("reference", "llvm", "numba", "kernel")

class CandidateError(BpfjitError, ValueError):
    """A candidate cannot be loaded or broke the protocol (wrong shape, wrong type)."""


@dataclass(frozen=True)
class Rejected:
    """A candidate's answer "this program would not be installed", with its reason."""

    reason: str

    def __str__(self) -> str:
        return f"rejected ({self.reason})"


class CandidateFailed(BpfjitError, RuntimeError):
    """A candidate process hung or crashed on a request (see :mod:`bpfjit.testing.external`)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Failed:
    """A candidate's non-answer: ``kind`` ``hang`` (no answer within the batch timeout) or
    ``crash`` (died, or broke the protocol), with what was seen."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} ({self.detail})"


@dataclass
class Candidate:
    """One thing under test.

    ``evaluate(programs, records)`` gives the 32-bit values (or raises / returns
    None to reject); ``check(programs) -> bool`` decides accept/reject alone
    when set. ``stack`` candidates take a list of programs (oldest first).
    ``verdicts_only`` candidates are never shown invalid programs.
    ``max_records`` caps the records per program (a slow candidate such as the
    kernel sees a sample). ``accepts_checked`` marks candidates whose
    accept/reject decision is bpfjit's own checker (backends), so comparing it
    with the oracle would be comparing bpfjit.check with itself.
    """

    name: str
    evaluate: Callable | None = None
    check: Callable | None = None
    stack: bool = False
    verdicts_only: bool = False
    max_records: int | None = None
    accepts_checked: bool = False
    unsupported: tuple = ()
    description: str = ""
    calls: int = field(default=0, compare=False)
    #: releases what the candidate holds (a process); it starts again when next asked
    close: Callable | None = field(default=None, compare=False)
    #: the batch timeout of a candidate process, None for in-process candidates
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.evaluate is None and self.check is None:
            raise CandidateError(f"candidate {self.name!r} has neither evaluate nor check")

    @property
    def evaluates(self) -> bool:
        return self.evaluate is not None

    def accepts(self, programs) -> "bool | Rejected | Failed":
        """True when this candidate would install ``programs``; else a :class:`Rejected`
        (or :class:`Failed` when a candidate process hung or crashed on them)."""
        if self.check is not None:
            try:
                ok = self.check(programs)
            except CandidateFailed as exc:
                return Failed(exc.kind, exc.detail)
            except Exception as exc:  # noqa: BLE001 - a crashing checker is a candidate answer
                return Rejected(f"check() raised {type(exc).__name__}: {exc}")
            return True if ok else Rejected("check() returned False")
        one = np.zeros(1, dtype=_seccomp_data())
        answer = self.answer(programs, one)
        return True if isinstance(answer, np.ndarray) or answer is None else answer

    def answer(self, programs, records: np.ndarray) -> "np.ndarray | Rejected | Failed | None":
        """uint32 values for ``records``, :class:`Rejected`, :class:`Failed` (a candidate
        process hung or crashed), or None (cannot evaluate it)."""
        if self.check is not None:
            ok = self.accepts(programs)
            if ok is not True:
                return ok
        if self.evaluate is None:
            raise CandidateError(f"candidate {self.name!r} is a pure checker; it gives no values")
        self.calls += 1
        try:
            out = self.evaluate(programs, records)
        except CandidateError:
            raise
        except CandidateFailed as exc:
            return Failed(exc.kind, exc.detail)
        except self.unsupported:
            return None
        except Exception as exc:  # noqa: BLE001 - raising is the protocol's "reject"
            return Rejected(f"{type(exc).__name__}: {exc}")
        if out is None:
            return Rejected("returned None")
        if isinstance(out, Rejected):
            return out
        return _as_u32(out, len(records), self.name)


def _seccomp_data():
    from ..seccomp.records import SECCOMP_DATA
    return SECCOMP_DATA


def _as_u32(out: object, n: int, name: str) -> np.ndarray:
    """A candidate's values as a uint32 array of length ``n``; CandidateError if they are not."""
    try:
        arr = np.asarray(out)
    except Exception as exc:  # noqa: BLE001
        raise CandidateError(f"candidate {name!r} returned {type(out).__name__}, which is not "
                             f"an array of 32-bit values ({exc})") from None
    if arr.shape != (n,):
        raise CandidateError(f"candidate {name!r} returned shape {arr.shape} for {n} records; "
                             f"expected ({n},): one 32-bit value per record")
    if arr.dtype == np.uint32:
        return arr
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "O" and all(isinstance(v, (int, np.integer)) and
                                         not isinstance(v, bool) for v in arr):
            values = [int(v) for v in arr]
        else:
            raise CandidateError(f"candidate {name!r} returned dtype {arr.dtype}; expected "
                                 f"integers (uint32 return values)")
    else:
        values = arr.astype(np.int64 if arr.dtype != np.uint64 else np.uint64).tolist()
    bad = [v for v in values if not -(1 << 31) <= v <= 0xFFFFFFFF]
    if bad:
        raise CandidateError(f"candidate {name!r} returned {bad[0]}, which is not a 32-bit "
                             f"value")
    return np.array([v & 0xFFFFFFFF for v in values], dtype=np.uint32)


# --- backends as candidates ---------------------------------------------------------------

def _decode(data: bytes):
    from ..program import Program
    return Program.from_bytes(bytes(data), "little", source="<fuzz>")


def backend_candidate(name: str, layout: "str | Layout" = "x86_64", *, stack: bool = False,
                      max_records: int | None = None) -> Candidate:
    """The bpfjit backend ``name`` as a candidate (its checker is bpfjit.check).

    Raises :class:`bpfjit.errors.BackendUnavailable` when the backend cannot run here.
    """
    from .. import backends
    from ..check import check
    lay = layouts.layout(layout)
    backend = backends.get(name)
    reason = getattr(backend, "unavailable_reason", lambda: None)()
    if reason:
        from ..errors import BackendUnavailable
        raise BackendUnavailable(f"backend {name!r} is unavailable here: {reason}")

    cache: dict[bytes, object] = {}

    def compiled(data: bytes):
        """The evaluator for ``data``; the last few are kept (the shrinker re-asks often)."""
        data = bytes(data)
        if data not in cache:
            checked = check(_decode(data))
            if len(cache) >= 8:
                cache.pop(next(iter(cache)))
            cache[data] = (checked, backend.compile(checked, lay))
        return cache[data]

    if stack:
        def evaluate(programs, records):
            from ..filter import Filter
            from ..stack import Stack
            filters = [Filter(c, lay, ev, name) for c, ev in map(compiled, programs)]
            return Stack(filters).evaluate_batch(records)
    else:
        def evaluate(data, records):
            out = np.empty(len(records), dtype=np.uint32)
            compiled(data)[1].evaluate_batch(records, out)
            return out

    return Candidate(name, evaluate=evaluate, stack=stack, max_records=max_records,
                     accepts_checked=True, description=f"bpfjit backend {name!r} ({lay.name})")


def kernel_candidate(layout: "str | Layout" = "x86_64", *, max_records: int | None = 32
                     ) -> Candidate:
    """The running kernel: verdicts through the kernel backend, accept/reject by seccomp(2)."""
    from ..backends import kernel
    from ..errors import BackendUnavailable
    cand = backend_candidate("kernel", layout, max_records=max_records)
    cand.unsupported = (BackendUnavailable,)
    cand.check = lambda data: kernel.kernel_accepts(bytes(data)) == 0
    cand.accepts_checked = False
    cand.description = "the running Linux kernel (seccomp(2) accept/reject, installed verdicts)"
    return cand


# --- user candidates ------------------------------------------------------------------------

def _import(spec: str, option: str):
    module_name, _, attr = spec.partition(":")
    if not module_name or (":" in spec and not attr):
        raise CandidateError(f"{option} {spec!r}: expected module:function (e.g. "
                             f"mymodule:evaluate)")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see
        raise CandidateError(f"{option} {spec!r}: cannot import module {module_name!r} "
                             f"({type(exc).__name__}: {exc}); it must be importable from the "
                             f"current directory or PYTHONPATH") from None
    if not attr:
        return module
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            import difflib
            names = [n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n))]
            close = difflib.get_close_matches(part, names, n=3)
            hint = (f"; did you mean {', '.join(close)}?" if close else
                    f" ({len(names)} public callables)" if len(names) > 8 else
                    f" (it has: {', '.join(names) or 'nothing callable'})")
            raise CandidateError(f"{option} {spec!r}: module {module_name!r} has no "
                                 f"{attr!r}{hint}") from None
    return obj


def _with_arch(fn: Callable, arch: str) -> Callable:
    """``fn`` itself, or ``fn`` with ``arch=`` bound when its signature takes that keyword."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn
    if "arch" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return lambda programs, records: fn(programs, records, arch=arch)
    return fn


def from_object(obj: object, name: str, *, layout: "str | Layout" = "x86_64",
                stack: bool | None = None, checker_only: bool = False) -> Candidate:
    """A Candidate from a callable or an object with ``evaluate``/``check`` (see the module doc)."""
    if isinstance(obj, Candidate):
        return obj
    lay = layouts.layout(layout)
    if checker_only:
        if not callable(obj):
            raise CandidateError(f"checker {name!r} is {type(obj).__name__}, not callable")
        return Candidate(name, check=obj, description=f"user checker {name}")
    evaluate = getattr(obj, "evaluate", None)
    if evaluate is None and callable(obj) and not inspect.ismodule(obj):
        evaluate = obj
    check = getattr(obj, "check", None)
    if evaluate is not None and not callable(evaluate):
        raise CandidateError(f"candidate {name!r}: evaluate is {type(evaluate).__name__}, "
                             f"not callable")
    if check is not None and not callable(check):
        raise CandidateError(f"candidate {name!r}: check is {type(check).__name__}, not callable")
    if evaluate is None and check is None:
        raise CandidateError(f"candidate {name!r} is {type(obj).__name__}: expected a function "
                             f"f(program_bytes, records) or an object with evaluate/check")
    is_stack = bool(getattr(obj, "stack", False)) if stack is None else stack
    return Candidate(
        name, evaluate=_with_arch(evaluate, lay.name) if evaluate else None, check=check,
        stack=is_stack, verdicts_only=bool(getattr(obj, "verdicts_only", False)),
        max_records=getattr(obj, "max_records", None), description=f"user candidate {name}")


def load(spec: str, *, layout: "str | Layout" = "x86_64", checker_only: bool = False,
         option: str = "--candidate") -> Candidate:
    """A user candidate from ``module:function`` (or ``module`` with evaluate/check)."""
    if not isinstance(spec, str) or not spec.strip():
        raise CandidateError(f"{option}: expected module:function, got {spec!r}")
    return from_object(_import(spec.strip(), option), spec.strip(), layout=layout,
                       checker_only=checker_only)


def resolve(spec: "str | Candidate | Callable", *, layout: "str | Layout" = "x86_64",
            stack: bool = False, kernel_records: int | None = 32) -> Candidate:
    """A backend name, a ``module:function`` spec, a callable or a Candidate -> Candidate."""
    if isinstance(spec, Candidate):
        cand = spec
    elif isinstance(spec, str):
        if spec == "kernel" and not stack:
            return kernel_candidate(layout, max_records=kernel_records)
        if spec in BACKEND_NAMES:
            return backend_candidate(spec, layout, stack=stack)
        if ":" not in spec:
            raise CandidateError(f"unknown candidate {spec!r}: expected a backend name "
                                 f"({', '.join(BACKEND_NAMES)}) or module:function")
        cand = load(spec, layout=layout)
    elif callable(spec) or hasattr(spec, "evaluate") or hasattr(spec, "check"):
        name = getattr(spec, "__qualname__", None) or type(spec).__name__
        module = getattr(spec, "__module__", None)
        cand = from_object(spec, f"{module}:{name}" if module else name, layout=layout)
    else:
        raise CandidateError(f"a candidate is a backend name, module:function or a callable, "
                             f"not {type(spec).__name__}")
    if stack and not cand.stack:
        raise CandidateError(f"candidate {cand.name!r} evaluates single programs; a stack run "
                             f"needs stack evaluators (set f.stack = True and take a list of "
                             f"programs, oldest first)")
    if cand.stack and not stack:
        raise CandidateError(f"candidate {cand.name!r} is a stack evaluator; pass stack=True "
                             f"(bpfjit fuzz --stack)")
    return cand


def resolve_all(specs: Sequence, **kw) -> list[Candidate]:
    """Resolve each spec; names must be distinct."""
    out = [resolve(s, **kw) for s in specs]
    names = [c.name for c in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise CandidateError(f"candidate names must be distinct; repeated: "
                             f"{', '.join(sorted(dup))}")
    return out
