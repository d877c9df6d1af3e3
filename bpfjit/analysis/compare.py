"""Analysis: the exact semantic difference of two filters, every witness checked by the reference.

:func:`compare(a, b, layout) <compare>` walks every syscall of every ABI that
runs on ``layout``'s architecture (x86_64: x86_64, x32 and i386 numbers; aarch64:
aarch64 and arm; ...), intersects the regions of the two filters'
:class:`~.semantics.Verdict` for that (arch, nr) pairwise, and keeps each
non-empty intersection where the results differ, with one concrete input of
it (for a 32-bit ABI such as i386, only inputs whose upper argument halves
are 0, the only ones such a task can make: :func:`compat_words`). Then it
does the same for the numbers outside the syscall tables and for arch values of no ABI of the family, from the whole-program paths. Each
witness is run through ``bpfjit_reference`` on both programs before it is
returned: a witness that does not reproduce is an internal error, never output.

Public API: :func:`compare` -> :class:`Comparison` (``equal``, ``differences``,
``undecided``), :func:`family` (the ABIs of a layout), :func:`record_of`
(input words -> ``(nr, arch, ip, args)``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import bpfjit_reference as reference

from ..seccomp import layouts, syscalls
from ..seccomp.layouts import Layout
from . import conditions as cd
from .conditions import U32, WordSet
from .semantics import ARCH, NR, Path, Semantics, conjunction_witness, describe, result_text

#: the ABIs whose system calls a kernel of the first one's arch filters with the same layout
FAMILIES = {"x86_64": ("x86_64", "x32", "x86"), "aarch64": ("aarch64", "arm"),
            "ppc64": ("ppc64", "ppc"), "mips64": ("mips64", "mips64n32", "mips"),
            "mipsel64": ("mipsel64", "mipsel64n32", "mipsel"), "parisc64": ("parisc64", "parisc"),
            "s390x": ("s390x", "s390")}


#: z3 queries one comparison may make before the rest is reported undecided
SOLVER_CALLS = 2000


def family(layout: Layout) -> list[Layout]:
    """``layout`` and the compat ABIs of its architecture (those with a syscall table)."""
    names = FAMILIES.get(layout.name, (layout.name,))
    return [layouts.layout(n) for n in names if syscalls.has_table(n)]


@dataclass(frozen=True)
class Difference:
    """Inputs where the two filters return different values."""

    abi: str                 # the ABI whose syscall this is, or "" for other arch values
    arch: int                # AUDIT_ARCH value (or the witness's, for other arch values)
    nr: int | None           # the syscall number (signed), None when a range of numbers
    name: str | None
    conditions: tuple        # the region, in words (arch and nr included when not fixed)
    result_a: str
    result_b: str
    witness: tuple           # (nr, arch, instruction_pointer, args)
    retval_a: int
    retval_b: int


@dataclass
class Comparison:
    layout: Layout
    abis: list
    differences: list = field(default_factory=list)
    undecided: list = field(default_factory=list)   # (where, why): not proven either way

    @property
    def equal(self) -> bool:
        return not self.differences and not self.undecided


def record_of(words: dict, layout: Layout) -> tuple[int, int, int, tuple]:
    """(signed nr, arch, instruction_pointer, args) of input words (word index -> u32)."""
    def field64(name: str, i: int = 0) -> int:
        lo = layout.word_offset(name, i, "lo") // 4
        return words.get(lo ^ 1, 0) << 32 | words.get(lo, 0)
    nr = words.get(NR, 0)
    return (nr - (1 << 32) if nr >= 1 << 31 else nr, words.get(ARCH, 0), field64("ip"),
            tuple(field64("args", i) for i in range(6)))


def compat_words(abi: Layout, layout: Layout) -> "Path | None":
    """For a 32-bit ABI, the high halves of ``instruction_pointer`` and ``args`` are 0: the
    kernel zero-extends a 32-bit task's registers (arch/x86/entry/entry_64_compat.S), so no
    call of that ABI can show anything else to the filter."""
    if abi.bits != 32:
        return None
    zero = WordSet(mask=U32, value=0)
    his = [layout.word_offset("ip", 0, "hi") // 4] + [layout.word_offset("args", i, "hi") // 4
                                                      for i in range(6)]
    return Path({i: zero for i in his}, (), 0, -1)


def _conjoin(pa: Path, pb: Path) -> dict | None:
    words = dict(pa.words)
    for i, s in pb.words.items():
        t = words[i].intersect(s) if i in words else s
        if t is None:
            return None
        words[i] = t
    return words


class _Checker:
    def __init__(self, a: Semantics, b: Semantics, layout: Layout, out: Comparison):
        self.ia = [tuple(i) for i in a.program]
        self.ib = [tuple(i) for i in b.program]
        self.layout, self.out = layout, out
        self.solver_calls = 0

    def pair(self, pa: Path, pb: Path, *, abi: str, arch: int, nr: int | None, name: str | None,
             fixed: dict, extra: "Path | None" = None) -> None:
        """Record the difference of two regions (of one (arch, nr) when ``fixed`` has both);
        ``extra``: word sets every input must also satisfy."""
        ra, rb = pa.result, pb.result
        if ra == rb:                       # the same constant, or the same expression
            return
        shown = _conjoin(pa, pb)
        words = shown
        if shown is not None and extra is not None:
            words = _conjoin(Path(shown, (), 0, -1), extra)
        if words is None:
            return
        opaque = pa.opaque + pb.opaque
        differ = None if isinstance(ra, int) and isinstance(rb, int) else (ra, rb)
        where = f"{name or nr} on {abi or 'other arches'}"
        if opaque or differ is not None:
            self.solver_calls += 1
            if self.solver_calls > SOLVER_CALLS:
                if self.solver_calls == SOLVER_CALLS + 1:
                    self.out.undecided.append((f"{where} and later", f"more than {SOLVER_CALLS} "
                                               f"solver queries (regions on computed values)"))
                return
        found = conjunction_witness(words, opaque, differ, prefer={i: 0 for i in range(16)})
        if found is None:
            self.out.undecided.append((where, "the solver gave up on an opaque condition"))
            return
        if found is False:
            return
        found = {**found, **fixed}
        rec = record_of(found, self.layout)
        got_a = reference.run_seccomp(self.ia, *rec, self.layout.byteorder)
        got_b = reference.run_seccomp(self.ib, *rec, self.layout.byteorder)
        want_a, want_b = cd.evaluate(ra, _list(found)), cd.evaluate(rb, _list(found))
        if (got_a, got_b) != (want_a, want_b) or got_a == got_b:
            raise AssertionError(f"internal error: the witness {rec} for {where} does not "
                                 f"reproduce on the reference (got {got_a:#x}/{got_b:#x}, "
                                 f"expected {want_a:#x}/{want_b:#x})")
        region = Path(shown, opaque, 0, -1)
        self.out.differences.append(Difference(
            abi, arch, nr, name, tuple(describe(region, self.layout)),
            result_text(ra, self.layout), result_text(rb, self.layout), rec, got_a, got_b))


def _list(words: dict) -> list[int]:
    return [words.get(i, 0) for i in range(cd.WORDS)]


def compare(a: Semantics, b: Semantics, layout: Layout | None = None,
            abis: "list[Layout] | None" = None) -> Comparison:
    """Every difference between ``a`` and ``b`` (analysed for the same layout)."""
    layout = layout or a.layout
    abis = abis if abis is not None else family(layout)
    out = Comparison(layout, abis)
    chk = _Checker(a, b, layout, out)
    named: dict[int, set[int]] = {}
    for abi in abis:
        audit = abi.audit_arch
        seen = named.setdefault(audit, set())
        table = syscalls.table(abi.syscall_abi)
        for nr_value in sorted(set(table.values())):
            name = syscalls.name(abi.syscall_abi, nr_value)
            word = nr_value & U32
            seen.add(word)
            va, vb = a.verdict(audit, word), b.verdict(audit, word)
            if not (va.complete and vb.complete):
                out.undecided.append((f"{name} on {abi.name}", "too many paths"))
                continue
            ca, cb = va.constant, vb.constant
            if ca is not None and ca == cb:
                continue
            fixed = {ARCH: audit, NR: word}
            extra = compat_words(abi, layout)
            for pa in va.regions:
                for pb in vb.regions:
                    chk.pair(pa, pb, abi=abi.name, arch=audit, nr=nr_value, name=name,
                             fixed=fixed, extra=extra)
    if not (a.complete and b.complete):
        out.undecided.append(("numbers outside the syscall tables, other arch values",
                              "the whole-program analysis was abandoned (too many paths)"))
        return out
    # numbers of no syscall, per arch value of the family
    for audit, numbers in named.items():
        abi = next(x.name for x in abis if x.audit_arch == audit)
        rest = WordSet(points=frozenset(numbers))
        _rest_pairs(chk, a.candidates(audit), b.candidates(audit), {ARCH: audit}, NR, rest,
                    abi=abi, arch=audit)
    # arch values of no ABI of the family
    rest = WordSet(points=frozenset(named))
    _rest_pairs(chk, a.paths, b.paths, {}, ARCH, rest, abi="", arch=0)
    return out


def _rest_pairs(chk: _Checker, pa_all, pb_all, known: dict, index: int, rest: WordSet, *,
                abi: str, arch: int) -> None:
    def restrict(paths):
        kept = []
        for p in paths:
            p = p.specialize(known) if known else p
            if p is None:
                continue
            s = p.words.get(index)
            s = rest if s is None else s.intersect(rest)
            if s is None:
                continue
            words = dict(p.words)
            words[index] = s
            kept.append(Path({**{i: WordSet(mask=U32, value=v) for i, v in known.items()},
                              **words}, p.opaque, p.result, p.end, p.jumps))
        return kept
    for pa in restrict(pa_all):
        for pb in restrict(pb_all):
            chk.pair(pa, pb, abi=abi, arch=arch, nr=None, name=None, fixed={})
