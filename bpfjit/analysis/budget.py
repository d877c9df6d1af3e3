"""Analysis stage: cost budgets, so no program can make an analysis (or the lowering) run for minutes.

Every analysis the llvm backend uses is an optimisation: without it the
backend lowers the plain program, which is still exact. So each analysis gets
a :class:`Budget` of *work units* and charges it for what it does — one unit
per abstract step, more for a step that touches a vector or a set as large as
its size makes it — and when the budget runs out it raises
:class:`BudgetExceeded` and the caller drops that analysis (or keeps what it
had found so far, when that part is exact on its own).

Units are counted, not timed, so the code generated for a program does not
depend on the machine's load or speed: the same bytes always give the same
machine code, which the compile cache relies on. The limits are calibrated so
that one unit costs one to two microseconds on a 2020s x86-64 core; see
``bench/README.md`` ("Bounded compile time") for the measurements.

:func:`gc_paused`: the analyses allocate hundreds of thousands of small
acyclic objects (abstract states, masks, tuples) that reference counting
frees; Python's cyclic collector would walk them again and again while they
are alive (a third of the time of a state-exploding program), so a compile
runs with it paused.
"""
from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator


class BudgetExceeded(Exception):
    """An analysis spent its whole budget; its result must not be used (or only its finished part)."""


class Budget:
    """``limit`` work units; :meth:`spend` raises :class:`BudgetExceeded` once they are gone."""

    __slots__ = ("limit", "left", "name")

    def __init__(self, limit: int, name: str = "analysis"):
        self.limit = limit
        self.left = limit
        self.name = name

    @property
    def spent(self) -> int:
        return self.limit - self.left

    def spend(self, units: int = 1) -> None:
        self.left -= units
        if self.left < 0:
            raise BudgetExceeded(f"{self.name}: more than {self.limit} work units")

    def __repr__(self) -> str:
        return f"Budget({self.name}: {self.spent}/{self.limit})"


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (nestable, thread-safe); restore it as it was."""
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()
