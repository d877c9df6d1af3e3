"""Batch detail: the process model's action, matching filter and logging for whole record arrays.

``Filter.evaluate_batch(records, detail=True)`` and ``Stack.evaluate_batch(...,
detail=True)`` land here. The compiled code evaluates each filter over blocks of
records (the block stays in cache between filters); whole-array numpy turns
the values into the fields of :func:`bpfjit.process.process_outcome` — one
table gather per record, or for a program that only returns known constant
actions, a few comparisons; the uretprobe/uprobe bypass is answered by the
compiled code itself (:func:`bypass_variant`). No Python code runs per record.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .process import (_PRE_414_MASK, AUDIT_ARCH_X86_64, BYPASS, Environment, acts_as, winner)
from .seccomp import kernels
from .seccomp.actions import (SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS,
                              SECCOMP_RET_KILL_THREAD, SECCOMP_RET_LOG, SECCOMP_RET_TRACE,
                              SECCOMP_RET_TRAP, SECCOMP_RET_USER_NOTIF)
from .seccomp.kernels import SECCOMP_FILTER_FLAG_LOG, Version


@dataclass(frozen=True)
class BatchDetail:
    """Per-record arrays: ``retval`` (u32, the winning value), ``action`` (u32, the action the
    kernel applies, ``retval & 0xffff0000`` with unknown actions mapped as the kernel maps
    them), ``matching_filter`` (i8, oldest = 0, -1 for ALLOW and bypass), ``logged`` (bool)."""

    retval: np.ndarray
    action: np.ndarray
    matching_filter: np.ndarray
    logged: np.ndarray

    def __len__(self) -> int:
        return len(self.retval)


_ALWAYS, _FLAGGED, _MATCHES = 1, 2, 4


def _table(env: Environment) -> np.ndarray:
    """uint32 per ``retval >> 16``: the applied action in the high half; bit 0 logged whatever
    the flags, bit 1 logged if the matching filter has FLAG_LOG, bit 2 a filter matches (not
    ALLOW). Action values have 16 zero low bits, so one gather answers everything."""
    kernel = env.kernel
    names = env.logged_names if kernel >= kernels.SYSCTL_FIRST else frozenset()
    table = np.zeros(1 << 16, dtype=np.uint32)
    category = {SECCOMP_RET_KILL_PROCESS: ("kill_process", False),
                SECCOMP_RET_KILL_THREAD: ("kill_thread", False), SECCOMP_RET_LOG: ("log", False),
                SECCOMP_RET_TRAP: ("trap", True), SECCOMP_RET_ERRNO: ("errno", True),
                SECCOMP_RET_TRACE: ("trace", not env.tracer),   # a tracer resumes: not logged
                SECCOMP_RET_USER_NOTIF: ("user_notif", True), SECCOMP_RET_ALLOW: ("allow", False)}
    for hi in range(1 << 16):
        name, action = acts_as(hi << 16, kernel)
        bits = action
        if winner([hi << 16], kernel)[1] is not None:
            bits |= _MATCHES
        cat, needs_flag = ("kill_process", False) if name == "UNKNOWN" else category[action]
        if cat in names and not (action == SECCOMP_RET_TRACE and env.tracer):
            bits |= _FLAGGED if needs_flag else _ALWAYS
        table[hi] = bits
    return table


_TABLE_CACHE: dict[tuple, np.ndarray] = {}


def table(env: Environment, log_flag: bool | None = None) -> np.ndarray:
    """The cached :func:`_table`; with ``log_flag`` (one filter) bit 0 is the final answer."""
    key = (env.actions_logged, env.tracer, env.kernel, log_flag)
    found = _TABLE_CACHE.get(key)
    if found is None:
        base = _TABLE_CACHE.get(key[:3] + (None,))
        if base is None:
            base = _TABLE_CACHE[key[:3] + (None,)] = _table(env)
        found = base
        if log_flag is not None:
            logged = (base & _ALWAYS) | ((base & _FLAGGED) >> 1 if log_flag else 0)
            found = (base & ~np.uint32(_ALWAYS | _FLAGGED)) | logged.astype(np.uint32)
        _TABLE_CACHE[key] = found
    return found


def _high_halves(retval: np.ndarray) -> np.ndarray:
    if retval.dtype.byteorder in ("=", "|") and np.little_endian:
        return retval.view(np.uint16)[1::2]          # no shift pass: a strided view
    return retval >> np.uint32(16)


def detail_from_values(values: Sequence[np.ndarray], flags: Sequence[int], nr: np.ndarray | None,
                       arch: np.ndarray | None, env: Environment | None = None) -> BatchDetail:
    """Vectorised :func:`process_outcome` fields over per-filter value arrays (OLDEST first).

    Whole-array numpy only: one pass per filter to find the winner (none for a
    single filter) and one table gather for action, matching and logging. With
    ``nr``/``arch`` None the values already account for the uretprobe/uprobe
    bypass (:func:`bypass_variant`); else it is applied here.
    """
    env = env or Environment()
    kernel = env.kernel
    if len(values) == 1:
        retval = values[0]
        tv = np.take(table(env, bool(flags[0] & SECCOMP_FILTER_FLAG_LOG)), retval >> np.uint32(16))
        matches = (tv & np.uint32(_MATCHES)).astype(bool)
        match = matches.view(np.int8) - np.int8(1)
        logged = (tv & np.uint32(_ALWAYS)).astype(bool)
        # ALLOW data dropped: retval - (retval & 0xffff) where no filter matched
        retval = retval - (retval & np.uint32(0xFFFF)) * ~matches
    else:
        n = len(values[0])
        retval = np.full(n, SECCOMP_RET_ALLOW, dtype=np.uint32)
        match = np.full(n, -1, dtype=np.int8)
        if kernel >= kernels.SYSCTL_FIRST:
            best = np.full(n, SECCOMP_RET_ALLOW, dtype=np.int32)
            mask, view = np.int32(-65536), np.int32
        else:
            best = np.full(n, SECCOMP_RET_ALLOW, dtype=np.uint32)
            mask, view = np.uint32(_PRE_414_MASK), np.uint32
        for i in range(len(values) - 1, -1, -1):     # newest first; strict < keeps the newest
            key = values[i].view(view) & mask
            take = key < best
            np.copyto(best, key, where=take)
            np.copyto(retval, values[i], where=take)
            np.copyto(match, np.int8(i), where=take)
        tv = np.take(table(env), retval >> np.uint32(16))
        log_flags = np.array([bool(f & SECCOMP_FILTER_FLAG_LOG) for f in flags] + [False])
        logged = (tv & np.uint32(_ALWAYS)).astype(bool)
        logged |= (tv & np.uint32(_FLAGGED)).astype(bool) & np.take(log_flags, match)
    action = tv & np.uint32(0xFFFF0000)
    if nr is not None and kernel >= BYPASS[335][1]:
        idx = np.flatnonzero(match >= 0)
        if len(idx):
            sub_nr = nr[idx]
            hit = (sub_nr == 335) | ((sub_nr == 336) if kernel >= BYPASS[336][1] else False)
            if hit.any():
                by = idx[hit]
                by = by[arch[by] == np.uint32(AUDIT_ARCH_X86_64)]
                retval[by] = SECCOMP_RET_ALLOW
                action[by] = SECCOMP_RET_ALLOW
                match[by] = -1
                logged[by] = False
    return BatchDetail(retval, action, match, logged)


def bypass_nrs(kernel: Version) -> tuple[int, ...]:
    return tuple(nr for nr, (_, since) in sorted(BYPASS.items()) if kernel >= since)


def bypass_variant(filt, kernel: Version):
    """``filt`` rewritten so that the records that bypass seccomp return ALLOW.

    To the detail a bypassed record is exactly an ALLOW (no match, not logged),
    so the compiled code answers it in the same pass. Only returns other than
    ALLOW can change: each distinct ``ret #k`` of another action becomes ``ja``
    to a tail ``ld [arch]; jeq #AUDIT_ARCH_X86_64; ld [nr]; jeq #335/#336 →
    ret ALLOW; ret #k`` (the ALLOW paths are untouched). A program with ``ret a``
    gets the test as a prologue instead (ending in ``ld #0``: A = 0 again, X and
    M untouched). None when there is nothing to bypass or no room (4096).
    """
    from .filter import compile as compile_filter
    from .program import Instruction, Program
    nrs = bypass_nrs(kernel)
    if not nrs:
        return None
    cache = filt.__dict__.setdefault("_bypass_variants", {})
    if nrs in cache:
        return cache[nrs]
    insns = list(filt.program)
    n = len(nrs)
    if any(i.code & 0x07 == 0x06 and i.code != 0x06 for i in insns):     # ret a
        prologue = [Instruction(0x20, 0, 0, 4),                        # ld [arch]
                    Instruction(0x15, 0, n + 2, AUDIT_ARCH_X86_64),     # jeq #X86_64, +0, ld #0
                    Instruction(0x20, 0, 0, 0)]                         # ld [nr]
        for i, nr in enumerate(nrs):                                    # jeq #nr, ret ALLOW
            prologue.append(Instruction(0x15, n - 1 - i, 1 if i == n - 1 else 0, nr))
        prologue += [Instruction(0x06, 0, 0, SECCOMP_RET_ALLOW),        # ret ALLOW
                     Instruction(0x00, 0, 0, 0)]                        # ld #0
        new = prologue + insns
    else:
        tails: dict[int, int] = {}
        new = list(insns)
        for k in sorted({i.k for i in insns if i.code == 0x06
                         and i.k >> 16 != SECCOMP_RET_ALLOW >> 16}):
            tails[k] = len(new)
            new += [Instruction(0x20, 0, 0, 4),                          # ld [arch]
                    Instruction(0x15, 0, n + 1, AUDIT_ARCH_X86_64),       # jeq #X86_64, +0, ret k
                    Instruction(0x20, 0, 0, 0)]                           # ld [nr]
            new += [Instruction(0x15, n - i, 0, nr) for i, nr in enumerate(nrs)]
            new += [Instruction(0x06, 0, 0, k), Instruction(0x06, 0, 0, SECCOMP_RET_ALLOW)]
        for i, insn in enumerate(insns):
            if insn.code == 0x06 and insn.k in tails:
                new[i] = Instruction(0x05, 0, 0, tails[insn.k] - i - 1)  # ja tail
    if len(new) > 4096:
        cache[nrs] = None
        return None
    program = Program(new, endian=filt.program.endian,
                      source=f"{filt.program.source} with the uprobe bypass")
    cache[nrs] = compile_filter(program, backend=filt.backend, arch=filt.layout, flags=filt.flags)
    return cache[nrs]


#: records per block of :func:`detail_batch`: the block's records stay in cache between the
#: filters' passes and the bypass test
DETAIL_BLOCK = 1 << 15


def empty_detail(n: int) -> BatchDetail:
    """A BatchDetail to fill (``evaluate_batch(..., detail=True, out=...)`` reuses it)."""
    return BatchDetail(np.empty(n, np.uint32), np.empty(n, np.uint32), np.empty(n, np.int8),
                       np.empty(n, bool))


def _check_out(out: BatchDetail, n: int) -> BatchDetail:
    from .errors import InputError
    if not isinstance(out, BatchDetail):
        raise InputError(f"with detail=True, out must be a bpfjit.process.BatchDetail (see "
                         f"empty_detail), not {type(out).__name__}")
    for name, dtype in (("retval", np.uint32), ("action", np.uint32),
                        ("matching_filter", np.int8), ("logged", np.bool_)):
        arr = getattr(out, name)
        if not (isinstance(arr, np.ndarray) and arr.dtype == dtype and arr.shape == (n,)
                and arr.flags.c_contiguous and arr.flags.writeable):
            raise InputError(f"out.{name} must be a writable contiguous {np.dtype(dtype)} array "
                             f"of {n} elements")
    return out


def detail_batch(filters, flags: Sequence[int], recs: np.ndarray, env: Environment | None = None,
                 threads: int = 1, out: BatchDetail | None = None) -> BatchDetail:
    """Evaluate ``filters`` (OLDEST first) over ``recs`` block by block and build the detail."""
    env = env or Environment()
    n = len(recs)
    out = empty_detail(n) if out is None else _check_out(out, n)
    variants = [bypass_variant(f, env.kernel) for f in filters]
    if bypass_nrs(env.kernel) and None in variants:
        nr, arch = recs["nr"], recs["arch"]           # no room for a prologue: test here
        variants = filters
    else:
        variants = [v or f for v, f in zip(variants, filters)]
        nr = arch = None
    size = min(n, DETAIL_BLOCK)
    buffers = [np.empty(size, np.uint32) for _ in filters]
    if len(filters) == 1 and nr is None:
        _single_blocks(variants[0], flags[0], recs, env, threads, buffers[0], out)
        return out
    for a in range(0, n, DETAIL_BLOCK):
        b = min(n, a + DETAIL_BLOCK)
        block = recs[a:b]
        values = [f.evaluate_batch(block, buf[:b - a], threads=threads)
                  for f, buf in zip(variants, buffers)]
        d = detail_from_values(values, flags, None if nr is None else nr[a:b],
                               None if arch is None else arch[a:b], env)
        out.retval[a:b] = d.retval
        out.action[a:b] = d.action
        out.matching_filter[a:b] = d.matching_filter
        out.logged[a:b] = d.logged
    return out


def _static_plan(program, tab: np.ndarray, kernel: Version) -> tuple[int, ...] | None:
    """For a program whose only returns are ``ret #k`` of actions the kernel knows (4.14+):
    the actions among them that are logged. Then ``action = retval & 0xffff0000`` and logging
    is a few comparisons, with no table gather. None when that does not hold."""
    if kernel < kernels.SYSCTL_FIRST:
        return None
    logged = set()
    for insn in program:
        if insn.code & 0x07 != 0x06:
            continue
        if insn.code != 0x06:
            return None                              # ret a: any value
        hi = insn.k >> 16
        if int(tab[hi]) & 0xFFFF0000 != hi << 16:
            return None                              # an unknown action (applied as another)
        if hi == SECCOMP_RET_ALLOW >> 16 and insn.k & 0xFFFF:
            return None                              # ALLOW data: the kernel drops it
        if int(tab[hi]) & _ALWAYS:
            logged.add(hi << 16)
    return tuple(sorted(logged))


def _single_blocks(filt, flags: int, recs: np.ndarray, env: Environment, threads: int,
                   buf: np.ndarray, out: BatchDetail) -> None:
    """The one-filter detail, block by block, every step writing in place; the compiled code
    writes straight into ``out.retval`` (a program that can return ALLOW with data gets the
    kernel's plain ALLOW there afterwards)."""
    tab = table(env, bool(flags & SECCOMP_FILTER_FLAG_LOG))
    size = len(buf)
    plan = _static_plan(filt.program, tab, env.kernel)
    index = np.empty(size, np.intp) if plan is None else None
    tmp = np.empty(size, np.uint32) if plan is None else None
    low_byte = 0 if np.little_endian else 3
    for a in range(0, len(recs), size):
        b = min(len(recs), a + size)
        k = b - a
        act, match, logged = out.action[a:b], out.matching_filter[a:b], out.logged[a:b]
        v = out.retval[a:b]
        allowed = match.view(bool)
        filt.evaluate_batch(recs[a:b], v, threads=threads)
        if plan is not None:
            np.bitwise_and(v, np.uint32(0xFFFF0000), out=act)
            np.greater_equal(v.view(np.int32), np.int32(SECCOMP_RET_ALLOW), out=allowed)
            if not plan:
                logged.fill(False)
            else:
                np.equal(act, np.uint32(plan[0]), out=logged)
                for extra in plan[1:]:
                    np.logical_or(logged, act == np.uint32(extra), out=logged)
            np.negative(match, out=match)                          # 1 -> -1
            continue
        ix, t = index[:k], tmp[:k]
        np.right_shift(v, np.uint32(16), out=ix)
        np.take(tab, ix, out=act, mode="clip")                   # action | flag bits
        np.bitwise_and(act.view(np.uint8)[low_byte::4], np.uint8(_ALWAYS),
                       out=logged.view(np.uint8))
        np.bitwise_and(act, np.uint32(0xFFFF0000), out=act)
        np.equal(act, np.uint32(SECCOMP_RET_ALLOW), out=allowed)   # no filter matched: 1
        np.bitwise_and(v, np.uint32(0xFFFF), out=t)
        np.multiply(t, allowed, out=t)                           # ALLOW data dropped
        np.subtract(v, t, out=v)
        np.negative(match, out=match)                              # 1 -> -1
