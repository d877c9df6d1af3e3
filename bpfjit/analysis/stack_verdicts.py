"""Analysis stage: the constant-verdict table of a whole stack (several filters, one process).

For each (arch, nr) where EVERY filter's verdict is a constant
(:func:`bpfjit.analysis.verdicts.interpret` over the union of the filters'
nr windows), the stack's verdict is the kernel's combination of those
constants (kernel/seccomp.c ``seccomp_run_filters``: newest first, strict
``ACTION_ONLY`` less-than, start from SECCOMP_RET_ALLOW) and so is the
matching filter. The native stack consults this table first and runs the
filters only for the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..program import Instruction
from ..seccomp.actions import SECCOMP_RET_ALLOW
from ..seccomp.layouts import Layout
from .cfg import leaders
from .verdicts import (MAX_ARCHES, MAX_ENTRIES, STEP_BUDGET, BudgetExceeded, VerdictTable, Window,
                       _Space, interpret, tested_constants, windows_for)


@dataclass(frozen=True)
class StackTable:
    """The stack's constant verdicts and, entry for entry, the index of the matching filter."""

    table: VerdictTable
    matches: tuple[np.ndarray, ...]     # int32, one per window of ``table``

    def flat_matches(self) -> np.ndarray:
        return (np.concatenate(self.matches).astype(np.int32) if self.matches
                else np.zeros(0, dtype=np.int32))


def combine(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stack retval, matching filter) per column of ``values`` (filters OLDEST first, as rows)."""
    count, n = values.shape
    best = np.full(n, SECCOMP_RET_ALLOW, dtype=np.uint32)
    key = best.view(np.int32) & np.int32(-65536)
    match = np.full(n, count - 1, dtype=np.int32)
    for index in reversed(range(count)):
        cur = values[index].astype(np.uint32)
        cur_key = cur.view(np.int32) & np.int32(-65536)
        take = cur_key < key
        best[take], key[take], match[take] = cur[take], cur_key[take], index
    return best, match


def build(programs: Sequence[Sequence[Instruction]], layout: Layout, *,
          budget: int = STEP_BUDGET) -> StackTable:
    """The constant-verdict table of a stack (programs OLDEST first) for ``layout``."""
    nr_k: set[int] = set()
    arch_k: set[int] = set()
    for prog in programs:
        n, a = tested_constants(prog)
        nr_k |= n
        arch_k |= a
    spans = windows_for(nr_k)
    if not spans:
        return StackTable(VerdictTable(), ())
    arches = ([layout.audit_arch] + sorted(arch_k - {layout.audit_arch}))[:MAX_ARCHES]
    per_arch = sum(size for _, size in spans)
    arches = arches[:max(1, MAX_ENTRIES // per_arch)]
    space = _Space(spans)
    starts = [set(leaders(tuple(p))) for p in programs]
    windows: list[Window] = []
    matches: list[np.ndarray] = []
    steps = 0
    abandoned = []
    for arch in arches:
        rows, knowns = [], []
        try:
            for prog, st in zip(programs, starts):
                verdicts, known, used = interpret(prog, arch, space, budget, st)
                steps += used
                rows.append(verdicts)
                knowns.append(known)
        except BudgetExceeded:
            abandoned.append(arch)
            continue
        known_all = np.logical_and.reduce(knowns)
        best, match = combine(np.stack(rows))
        pos = 0
        for base, size in spans:
            kn = known_all[pos:pos + size]
            if kn.any():
                windows.append(Window(arch, base, best[pos:pos + size].copy(), kn.copy()))
                matches.append(match[pos:pos + size].copy())
            pos += size
    return StackTable(VerdictTable(tuple(windows), steps, tuple(abandoned)), tuple(matches))
