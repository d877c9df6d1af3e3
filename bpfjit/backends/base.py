"""The one interface every backend implements: a Backend compiles, an Evaluator fills an array.

A backend turns a :class:`~bpfjit.check.CheckedProgram` and a
:class:`~bpfjit.seccomp.layouts.Layout` into an evaluator; the evaluator fills
``out[i]`` with the 32-bit return value of the program for ``records[i]``.
:class:`bpfjit.filter.Filter` owns everything else (validation, syscall names,
single-record calls, threads, errors), so a backend stays small.

Optional hooks an evaluator may provide:

- ``evaluate_one(nr, arch, instruction_pointer, args) -> int`` — a fast path
  for one record; arguments are already normalised (``nr`` a signed 32-bit
  int, ``arch`` u32, ``instruction_pointer`` u64, ``args`` six u64).
- ``evaluate_nr(nr) -> int`` — the layout's own arch, instruction pointer 0,
  arguments 0 (``nr`` signed or u32): the cheapest single call.
- ``evaluate_packed(record: bytes) -> int`` — one 64-byte host-order
  ``SECCOMP_DATA`` record as ``struct.pack("=iIQ6Q", ...)`` builds it.
- ``releases_gil: bool`` — ``evaluate_batch`` runs without the GIL, so
  :class:`~bpfjit.filter.Filter` may split a batch across threads.
- ``describe() -> dict[str, str]`` — text views (IR, optimised IR, assembly).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..check import CheckedProgram
    from ..seccomp.layouts import Layout


@runtime_checkable
class Evaluator(Protocol):
    def evaluate_batch(self, records: "np.ndarray", out: "np.ndarray") -> None:
        """records: contiguous 1-D ``SECCOMP_DATA`` array; out: uint32 array of the same length."""


class Backend(Protocol):
    name: str

    def compile(self, program: "CheckedProgram", layout: "Layout") -> Evaluator:
        """Raise :class:`bpfjit.errors.BackendUnavailable` if this backend cannot run here."""
