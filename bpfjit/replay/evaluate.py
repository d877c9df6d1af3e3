"""Evaluation stage of replay: recorded calls -> SECCOMP_DATA batches -> the compiled filter.

Calls are gathered into batches of :data:`BATCH` records and evaluated with the
filter's (or stack's) ``evaluate_batch``; only counters and the first call of
each refused (syscall, action) group are kept, so memory does not grow with
the trace.

A 32-bit word strace or audit did not record (a pointer shown as its contents,
an argument not printed, the instruction pointer without ``-i``, the high half
of a negative ``int``) is evaluated as 0 and marked unknown. A verdict *depends on an unrecorded argument* when the
path the filter takes reads such a word: decided without running anything when
no instruction of the filter loads that word at all, or when the constant-verdict
table (:mod:`bpfjit.analysis.verdicts`) proves the verdict for (arch, nr) is the
same whatever the other fields hold; otherwise by tracing the call with the
reference interpreter (cached per distinct record).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..analysis import verdicts
from ..errors import BpfjitError
from ..filter import Filter
from ..seccomp import layouts, records, syscalls
from ..seccomp.actions import Action
from ..stack import Stack
from .args import WIDE_ARGS_32, decode, registers_32
from .calls import Call, Problem

#: how many arguments strace prints for a call with 64-bit arguments (decoded, not raw)
WIDE_ARITY = {name: arity for name, (arity, _) in WIDE_ARGS_32.items()}

BATCH = 8192
MAX_EXAMPLES = 50
_TRACE_CACHE_MAX = 1 << 15
_LD_ABS_W = 0x20
U32 = 0xFFFFFFFF
RUNS = frozenset({"ALLOW", "LOG"})

#: (filter's arch, strace personality) -> the arch of the calling task
COMPAT = {("x86_64", "32"): "x86", ("x86_64", "x32"): "x32", ("x32", "32"): "x86",
          ("aarch64", "32"): "arm", ("s390x", "32"): "s390", ("ppc64", "32"): "ppc",
          ("ppc64le", "32"): "ppc", ("mips64", "32"): "mips", ("mipsel64", "32"): "mipsel",
          ("parisc64", "32"): "parisc"}


def field_bit(k: int, layout: layouts.Layout) -> int:
    """The unknown-mask bit of the 32-bit word ``ld [k]`` reads (0 for nr and arch).

    Bits 0/1: instruction_pointer low/high; 2 + 2*i / 3 + 2*i: args[i] low/high.
    The layout decides which half sits at which offset.
    """
    if k < 8 or k > 60:
        return 0
    slot, upper = divmod(k - 8, 8)
    high = (upper >= 4) != layout.big_endian
    return 1 << (2 * slot + high)


def word_mask(arg_unknown: int, high_unknown: int, ip_unknown: bool) -> int:
    """Mask of unknown words from per-arg masks (whole arg unknown, only its high half)."""
    mask = 3 if ip_unknown else 0
    for i in range(6):
        if arg_unknown >> i & 1:
            mask |= 3 << (2 + 2 * i)
        elif high_unknown >> i & 1:
            mask |= 2 << (2 + 2 * i)
    return mask


def field_names(mask: int) -> list[str]:
    out = []
    for slot in range(7):
        both = mask >> (2 * slot) & 3
        if not both:
            continue
        name = "instruction_pointer" if slot == 0 else f"args[{slot - 1}]"
        out.append(name if both == 3 else name + (".hi" if both == 2 else ".lo"))
    return out


@dataclass
class Group:
    """Calls of one syscall that got one action: the first one is kept for reporting."""

    syscall: str
    arch: str
    action: str
    retval: int
    depends: bool
    count: int
    source: str
    line: int
    text: str
    record: tuple            # (nr, audit_arch, ip, args) as evaluated (unknowns 0)
    unknown: list[str]       # names of the unknown words the path reads
    alternative: str | None = None   # the action with those words all ones instead of 0


@dataclass
class Summary:
    """What a replay found; plain data, JSON-ready through :meth:`as_dict`."""

    arch: str
    calls: int = 0
    counts: Counter = field(default_factory=Counter)      # (action, syscall, depends) -> n
    groups: dict = field(default_factory=dict)            # (syscall, arch, retval, depends) -> Group
    problems: int = 0
    problem_reasons: Counter = field(default_factory=Counter)
    problem_examples: list = field(default_factory=list)
    recorded_mismatches: int = 0
    #: calls taken as a 32-bit task's (i386 on x86_64) from strace -i's 8-digit pointers
    inferred_32: int = 0
    lines: int = 0
    bytes: int = 0

    @property
    def refused(self) -> list[Group]:
        """Groups whose calls would not run (or might not: depends), first line first."""
        out = [g for g in self.groups.values() if g.action.split("(")[0] not in RUNS or g.depends]
        return sorted(out, key=lambda g: (g.source, g.line))

    @property
    def depends(self) -> int:
        return sum(n for (_, _, dep), n in self.counts.items() if dep)

    @property
    def would_not_run(self) -> bool:
        return bool(self.refused)

    def actions(self) -> Counter:
        out: Counter = Counter()
        for (action, _, _), n in self.counts.items():
            out[action] += n
        return out

    def as_dict(self) -> dict:
        rows = [{"action": a, "syscall": s, "count": n, "depends": d}
                for (a, s, d), n in sorted(self.counts.items(), key=lambda kv: (kv[0][0], -kv[1]))]
        return {
            "arch": self.arch, "lines": self.lines, "bytes": self.bytes, "calls": self.calls,
            "actions": dict(self.actions()), "depends_on_unrecorded": self.depends,
            "table": rows,
            "refused": [{"syscall": g.syscall, "arch": g.arch, "action": g.action,
                         "retval": g.retval, "count": g.count, "source": g.source,
                         "first_line": g.line, "text": g.text, "depends": g.depends,
                         "unrecorded_words_read": g.unknown,
                         "action_if_unrecorded_all_ones": g.alternative}
                        for g in self.refused],
            "problems": {"count": self.problems, "by_reason": dict(self.problem_reasons),
                         "examples": [{"source": p.source, "line": p.line, "reason": p.reason,
                                       "text": p.text} for p in self.problem_examples]},
            "recorded_mismatches": self.recorded_mismatches,
            "calls_taken_as_32_bit_from_the_pointer_width": self.inferred_32,
            "would_not_run": self.would_not_run,
        }


class Replayer:
    """Evaluates recorded calls with a Filter or Stack; feed calls, read ``summary``."""

    def __init__(self, target: "Filter | Stack"):
        if not isinstance(target, (Filter, Stack)):
            raise TypeError(f"replay needs a bpfjit Filter or Stack, not {type(target).__name__}")
        self.target = target
        self.filters = list(target.filters) if isinstance(target, Stack) else [target]
        self.layout = target.layout
        self.summary = Summary(arch=self.layout.name)
        self.static_reads = 0
        for f in self.filters:
            for insn in f.program:
                if insn.code == _LD_ABS_W:
                    self.static_reads |= field_bit(insn.k, f.layout)
        self.tables = [verdicts.build(f.program, f.layout) for f in self.filters] \
            if self.static_reads else []
        self._names: dict[tuple[str, str], int | str] = {}
        self._trace_cache: dict[tuple, int] = {}
        self._pending: list[tuple] = []
        self._each = None
        self._recs = records.empty(BATCH)
        self._out = np.empty(BATCH, dtype=np.uint32)

    # --- input ---
    def feed(self, items: Iterable["Call | Problem"], progress: Callable[[], None] | None = None,
             each: "Callable[[Call, int, bool], None] | None" = None) -> Summary:
        """Evaluate every call of ``items``; ``each(call, retval, depends)`` sees every verdict."""
        self._each = each
        for item in items:
            if item.__class__ is Problem:
                self._problem(item)
                continue
            rec = self._record(item)
            if rec is None:
                continue
            self._pending.append(rec)
            if len(self._pending) >= BATCH:
                self._flush()
                if progress is not None:
                    progress()
        self._flush()
        return self.summary

    def _problem(self, p: Problem) -> None:
        s = self.summary
        s.problems += 1
        s.problem_reasons[p.reason.split(" '")[0] if "unknown syscall" in p.reason
                          else p.reason] += 1
        if len(s.problem_examples) < MAX_EXAMPLES:
            s.problem_examples.append(p)

    def _arch_of(self, call: Call) -> str | None:
        if call.arch is not None:
            return call.arch
        if call.compat is None:
            return self.layout.name
        if call.compat == "ip32":                # 8-digit -i pointers, no mode notice
            if self.layout.bits == 32:
                return self.layout.name
            self.summary.inferred_32 += 1
            return COMPAT.get((self.layout.name, "32"))
        return COMPAT.get((self.layout.name, call.compat))

    def _number(self, abi: str, name: str) -> int | str:
        key = (abi, name)
        found = self._names.get(key)
        if found is None:
            try:
                found = syscalls.number(abi, name)
            except BpfjitError as exc:
                found = str(exc)
            if len(self._names) < 65536:
                self._names[key] = found
        return found

    def _record(self, call: Call) -> tuple | None:
        arch = self._arch_of(call)
        if arch is None:
            self._problem(Problem(call.source, call.line, f"a {call.compat}-bit task has no arch "
                                  f"next to {self.layout.name}", call.text))
            return None
        lay = layouts.layout(arch)
        nr = call.nr
        name = call.name
        if nr is None:
            found = self._number(lay.syscall_abi, name)
            if found.__class__ is str:
                self._problem(Problem(call.source, call.line, f"unknown syscall '{name}' on "
                                      f"{arch}", call.text))
                return None
            nr = found
        elif name is None or name.startswith("syscall_"):
            name = syscalls.name(lay.syscall_abi, nr) or f"syscall_{nr:#x}"
        if not -(1 << 31) <= nr <= U32:
            self._problem(Problem(call.source, call.line, f"syscall number {nr} out of range",
                                  call.text))
            return None
        if call.values is not None:
            values, high_unknown = call.values, 0
        else:
            values, high_unknown = decode(name, call.args or [], arch)
            if lay.bits == 32 and len(call.args or ()) == WIDE_ARITY.get(name):
                regs = registers_32(name, lay.name, values, high_unknown)
                if regs is not None:       # 64-bit values over two registers each
                    values = regs
        arg_unknown = 0
        args = []
        mask = U32 if lay.bits == 32 else (1 << 64) - 1
        for i, v in enumerate(values):
            if v is None:
                arg_unknown |= 1 << i
                args.append(0)
            else:
                args.append(v & mask)
        if lay.bits == 32:
            high_unknown = 0          # a 32-bit task's registers have no high half
        ip = call.ip
        unknown = word_mask(arg_unknown, high_unknown, ip is None)
        if ip is None:
            ip = 0
        return (call, name, arch, records.normalize_nr(nr), lay.audit_arch, ip, tuple(args),
                unknown)

    # --- evaluation ---
    def _flush(self) -> None:
        batch = self._pending
        if not batch:
            return
        self._pending = []
        n = len(batch)
        recs = self._recs[:n]
        recs["nr"] = [b[3] for b in batch]
        recs["arch"] = [b[4] for b in batch]
        recs["instruction_pointer"] = np.array([b[5] for b in batch], dtype=np.uint64)
        recs["args"] = np.array([b[6] for b in batch], dtype=np.uint64).reshape(n, 6)
        out = self._out[:n]
        self.target.evaluate_batch(recs, out)
        s = self.summary
        counts = s.counts
        groups = s.groups
        for (call, name, arch, nr, audit_arch, ip, args, unknown), rv in zip(batch, out.tolist()):
            reads = 0
            if unknown & self.static_reads:
                reads = self._reads(nr, audit_arch, ip, args, unknown)
            depends = bool(reads)
            action = str(Action.from_value(rv))
            counts[(action, name, depends)] += 1
            key = (name, arch, rv, depends)
            g = groups.get(key)
            if g is None:
                groups[key] = g = Group(name, arch, action, rv, depends, 1, call.source,
                                        call.line, call.text, (nr, audit_arch, ip, args),
                                        field_names(reads))
                if depends:
                    g.alternative = str(Action.from_value(
                        self._with_ones(nr, audit_arch, ip, args, reads)))
            else:
                g.count += 1
            if self._each is not None:
                self._each(call, rv, depends)
            if call.recorded is not None and call.recorded != rv:
                s.recorded_mismatches += 1
        s.calls += n

    def _reads(self, nr: int, audit_arch: int, ip: int, args: tuple, unknown: int) -> int:
        """The unknown words (mask) that the filters' paths read for this record."""
        if self.tables and all(t.lookup(audit_arch, nr) is not None for t in self.tables):
            return 0
        key = (nr, audit_arch, ip, args, unknown)
        found = self._trace_cache.get(key)
        if found is None:
            found = 0
            for f in self.filters:
                for step in f.trace(nr, args, audit_arch, ip).steps:
                    if step.code == _LD_ABS_W and step.k >= 8:
                        found |= field_bit(step.k, f.layout)
            found &= unknown
            if len(self._trace_cache) >= _TRACE_CACHE_MAX:
                self._trace_cache.clear()
            self._trace_cache[key] = found
        return found

    def _with_ones(self, nr: int, audit_arch: int, ip: int, args: tuple, words: int) -> int:
        """The verdict with the unknown ``words`` (mask) set to all ones instead of zeros."""
        values = [ip, *args]
        for slot in range(7):
            for half in (0, 1):
                if words >> (2 * slot + half) & 1:
                    values[slot] |= 0xFFFFFFFF << (32 * half)
        return self.target.evaluate(nr, tuple(values[1:]), audit_arch, values[0])

    def trace(self, group: Group) -> list[list]:
        """The path (steps per filter, oldest filter first) the first call of ``group`` takes."""
        nr, audit_arch, ip, args = group.record
        return [list(f.trace(nr, args, audit_arch, ip).steps) for f in self.filters]
