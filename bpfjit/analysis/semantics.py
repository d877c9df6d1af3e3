"""Analysis: the exact semantics of a checked filter as a decision structure over the input words.

Public API (small on purpose; :mod:`bpfjit.cli.diff`, ``explain``, ``table``
and the lint helpers build on it):

- :func:`analyse(program, layout) <analyse>` -> :class:`Semantics`: a
  symbolic execution of every path of the program, all 16 input words
  (``nr``, ``arch``, the halves of ``instruction_pointer`` and ``args``)
  unknown.
- :meth:`Semantics.verdict(arch, nr) <Semantics.verdict>` -> :class:`Verdict`:
  for one (AUDIT_ARCH value, nr), the partition of the remaining input space
  into :class:`Path` regions, each with one result, in program order.
- :class:`Path`: ``words`` (word index -> :class:`~.conditions.WordSet`, the
  readable conditions: masked equality, ranges, excluded values), ``opaque``
  (conditions outside that language, ``(jop, a, b, taken)`` over symbolic
  values), ``result`` (a u32, or an expression for ``ret a``), ``end`` (the
  index of the ``ret``), ``jumps`` (``(index, taken)`` of each conditional jump).
  ``Path.witness()`` gives one input of the region (exactly: own search, or
  z3 for opaque paths) or proves it empty.
- :func:`describe(path, layout) <describe>` -> list of conditions in words.
- :meth:`Semantics.evaluate_words` evaluates the structure on an (n, 16) array
  of input words; tests hold it equal to the reference interpreter.

Regions of one (arch, nr) are disjoint and cover every input: the program is
deterministic, and paths are split only at jumps. A region is *symbolic* when
it has no opaque condition and a constant result; :attr:`Verdict.symbolic`
says, per (arch, nr), whether every region is, and the opaque parts are kept
as exact expressions (never approximated). Paths whose word sets are empty are
pruned as they appear; opaque paths are kept until asked (they may be empty).
When a program has more paths than ``max_paths``, :attr:`Semantics.complete`
is False and each (arch, nr) is answered from the proven constant-verdict table
(:mod:`.verdicts`) or executed on its own with nr and arch known; a
:class:`Verdict` that could not be enumerated says so (``complete=False``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .. import opcodes as op
from ..program import Instruction
from ..seccomp.layouts import Layout
from . import conditions as cd
from .conditions import ANY, U32, Word

NR, ARCH = 0, 1
#: paths and abstract steps before the whole-program analysis stops (then: per (arch, nr))
MAX_PATHS = 20_000
MAX_STEPS = 2_000_000
#: budget of one (arch, nr) when the whole program was too large, and failures before giving up
FALLBACK_PATHS, FALLBACK_STEPS, FALLBACK_FAILURES = 20_000, 500_000, 3

LD_ABS = op.BPF_LD | op.BPF_W | op.BPF_ABS


class TooComplex(Exception):
    """More paths than the budget allows."""


@dataclass(frozen=True)
class Path:
    """One path through the program: the inputs that take it and what it returns."""

    words: dict
    opaque: tuple
    result: object
    end: int
    jumps: tuple = ()

    @property
    def symbolic(self) -> bool:
        """True when the region reads as word conditions and the result is a constant."""
        return not self.opaque and isinstance(self.result, int)

    def matches(self, words: Sequence[int]) -> bool:
        return (all(s.contains(int(words[i])) for i, s in self.words.items())
                and all(cd.test(j, cd.evaluate(a, words), cd.evaluate(b, words)) == t
                        for j, a, b, t in self.opaque))

    def matches_vec(self, words: np.ndarray) -> np.ndarray:
        ok = np.ones(len(words), dtype=bool)
        for i, s in self.words.items():
            ok &= s.contains_vec(words[:, i])
        for j, a, b, t in self.opaque:
            hit = cd.test_vec(j, cd.evaluate_vec(a, words), cd.evaluate_vec(b, words))
            ok &= hit if t else ~hit
        return ok

    def specialize(self, known: dict[int, int]) -> "Path | None":
        """The path with the words in ``known`` fixed; None if they do not take it."""
        words = dict(self.words)
        for i, v in known.items():
            s = words.pop(i, None)
            if s is not None and not s.contains(v):
                return None
        opaque = []
        for j, a, b, t in self.opaque:
            a, b = cd.substitute(a, known), cd.substitute(b, known)
            r = cd.atom(j, a, b)
            if r is None:
                opaque.append((j, a, b, t))
            elif isinstance(r, bool):
                if r != t:
                    return None
            else:
                i, c_true, c_false = r
                s = words.get(i, ANY).refine(*(c_true if t else c_false))
                if s is None:
                    return None
                words[i] = s
        return Path(words, tuple(opaque), cd.substitute(self.result, known), self.end,
                    self.jumps)

    def witness(self, prefer: "dict[int, int] | None" = None) -> "dict[int, int] | bool | None":
        """One input (word index -> value) taking this path; False if none; None if unknown."""
        return conjunction_witness(self.words, self.opaque, prefer=prefer)


def conjunction_witness(words: dict, opaque=(), differ=None,
                        prefer: "dict[int, int] | None" = None) -> "dict[int, int] | bool | None":
    """A model of word sets + opaque conditions (+ ``differ = (x, y)``, x != y), exactly."""
    if not opaque and (differ is None or all(isinstance(v, int) for v in differ)):
        if differ is not None and differ[0] == differ[1]:
            return False
        out = {}
        for i, s in words.items():
            v = s.find((prefer or {}).get(i))
            if v is False or v is None:
                return v
            out[i] = v
        for i in range(cd.WORDS):
            out.setdefault(i, (prefer or {}).get(i, 0))
        return out
    from .solver import solve
    return solve(words, opaque, differ)


@dataclass(frozen=True)
class Verdict:
    """The semantics of one (arch, nr): regions in program order."""

    arch: int
    nr: int
    regions: tuple
    complete: bool = True

    @property
    def constant(self) -> int | None:
        """The result when every input of this (arch, nr) gets the same one."""
        results = {p.result for p in self.regions}
        if len(results) == 1 and self.complete and all(isinstance(r, int) for r in results):
            value = next(iter(results))
            if all(p.symbolic for p in self.regions):
                return value
        return None

    @property
    def symbolic(self) -> bool:
        return self.complete and all(p.symbolic for p in self.regions)

    def results(self) -> set:
        return {p.result for p in self.regions}


# --- symbolic execution -----------------------------------------------------------------------

def execute(program: Sequence[Instruction], known: "dict[int, int] | None" = None, *,
            max_paths: int = MAX_PATHS, max_steps: int = MAX_STEPS) -> tuple[list[Path], int]:
    """Every feasible path of a checked program; ``known`` fixes some words. Raises TooComplex."""
    program = tuple(program)
    known = dict(known or {})
    paths: list[Path] = []
    steps = 0
    mem0 = (0,) * op.BPF_MEMWORDS
    stack = [(0, 0, 0, mem0, {}, (), ())]

    def points(words):
        return {i: s.value for i, s in words.items() if s.mask == U32}

    def resolve(value, words):
        if isinstance(value, cd.Op):
            return cd.substitute(value, points(words))
        if isinstance(value, Word):
            s = words.get(value.index)
            if s is not None and s.mask == U32:
                return s.value
        return value

    while stack:
        pc, a, x, mem, words, opaque, jumps = stack.pop()
        while True:
            steps += 1
            if steps > max_steps:
                raise TooComplex(f"more than {max_steps} symbolic steps")
            insn = program[pc]
            code, k = insn.code, insn.k
            cls = op.bpf_class(code)
            if cls == op.BPF_RET:
                result = k if code == op.BPF_RET | op.BPF_K else resolve(a, words)
                paths.append(Path(words, opaque, result, pc, jumps))
                if len(paths) > max_paths:
                    raise TooComplex(f"more than {max_paths} paths")
                break
            if cls == op.BPF_JMP:
                if code == op.BPF_JMP | op.BPF_JA:
                    pc += 1 + k
                    continue
                jop = op.bpf_op(code)
                b = x if op.bpf_src(code) == op.BPF_X else k
                tt, ff = pc + 1 + insn.jt, pc + 1 + insn.jf
                if tt == ff:
                    pc = tt
                    continue
                a, b = resolve(a, words), resolve(b, words)
                r = cd.atom(jop, a, b)
                if isinstance(r, bool):
                    jumps += ((pc, r),)
                    pc = tt if r else ff
                    continue
                branches = []
                for taken, target in ((False, ff), (True, tt)):
                    if r is None:
                        branches.append((target, words, opaque + ((jop, a, b, taken),)))
                        continue
                    i, c_true, c_false = r
                    s = words.get(i, ANY).refine(*(c_true if taken else c_false))
                    if s is not None:
                        w2 = dict(words)
                        w2[i] = s
                        branches.append((target, w2, opaque))
                for target, w2, o2 in branches[:-1]:
                    stack.append((target, a, x, mem, w2, o2, jumps + ((pc, target == tt),)))
                if not branches:
                    break
                target, words, opaque = branches[-1]
                jumps += ((pc, target == tt),)
                pc = target
                continue
            if code == LD_ABS:
                i = k // 4
                a = known[i] if i in known else resolve(Word(i), words)
            elif code in (op.BPF_LD | op.BPF_W | op.BPF_LEN,):
                a = 64
            elif code == op.BPF_LDX | op.BPF_W | op.BPF_LEN:
                x = 64
            elif code == op.BPF_LD | op.BPF_IMM:
                a = k
            elif code == op.BPF_LDX | op.BPF_IMM:
                x = k
            elif code == op.BPF_LD | op.BPF_MEM:
                a = mem[k]
            elif code == op.BPF_LDX | op.BPF_MEM:
                x = mem[k]
            elif code == op.BPF_ST:
                mem = mem[:k] + (a,) + mem[k + 1:]
            elif code == op.BPF_STX:
                mem = mem[:k] + (x,) + mem[k + 1:]
            elif code == op.BPF_MISC | op.BPF_TAX:
                x = a
            elif code == op.BPF_MISC | op.BPF_TXA:
                a = x
            elif code == op.BPF_ALU | op.BPF_NEG:
                a = cd.fold(op.BPF_NEG, a, 0)
            elif cls == op.BPF_ALU:
                aop = op.bpf_op(code)
                b = x if op.bpf_src(code) == op.BPF_X else k
                if aop == op.BPF_DIV and op.bpf_src(code) == op.BPF_X:
                    # bpf_convert_filter: "if (X == 0) return 0" before every div by X
                    b = resolve(b, words)
                    r = cd.atom(op.BPF_JEQ, b, 0)
                    if r is True:
                        paths.append(Path(words, opaque, 0, pc, jumps))
                        break
                    if r is None:
                        paths.append(Path(words, opaque + ((op.BPF_JEQ, b, 0, True),),
                                          0, pc, jumps))
                        opaque = opaque + ((op.BPF_JEQ, b, 0, False),)
                    elif r is not False:
                        i, c_true, c_false = r
                        s_zero = words.get(i, ANY).refine(*c_true)
                        s_nonzero = words.get(i, ANY).refine(*c_false)
                        if s_zero is not None:
                            w2 = dict(words)
                            w2[i] = s_zero
                            paths.append(Path(w2, opaque, 0, pc, jumps))
                        if s_nonzero is None:
                            break
                        words = dict(words)
                        words[i] = s_nonzero
                a = cd.fold(aop, a, b)
            else:
                raise AssertionError(f"instruction {pc}: {code:#x} is not a seccomp instruction "
                                     f"(was the program checked?)")
            pc += 1
    return paths, steps


# --- the whole program ----------------------------------------------------------------------

@dataclass
class Semantics:
    """Every path of a program for one layout (see the module docstring)."""

    program: tuple
    layout: Layout
    paths: list
    complete: bool
    steps: int
    _by_point: dict = field(default_factory=dict, repr=False)
    _by_arch: dict = field(default_factory=dict, repr=False)
    _rest: list = field(default_factory=list, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)
    _constants: object = field(default=None, repr=False)
    _failures: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        for n, p in enumerate(self.paths):
            a, r = p.words.get(ARCH), p.words.get(NR)
            if a is not None and a.mask == U32:
                if r is not None and r.mask == U32:
                    self._by_point.setdefault((a.value, r.value), []).append(n)
                else:
                    self._by_arch.setdefault(a.value, []).append(n)
            else:
                self._rest.append(n)

    def verdict(self, arch: int, nr: int) -> Verdict:
        """The regions of one (AUDIT_ARCH value, nr) (nr as a signed int or its u32 word)."""
        key = (arch & U32, nr & U32)
        found = self._cache.get(key)
        if found is not None:
            return found
        known = {ARCH: key[0], NR: key[1]}
        if self.complete:
            ids = sorted(self._by_point.get(key, []) + self._by_arch.get(key[0], []) + self._rest)
            regions = [s for s in (self.paths[n].specialize(known) for n in ids) if s is not None]
            found = Verdict(key[0], key[1], tuple(regions))
        else:
            found = self._fallback(key, known)
        if len(self._cache) < 1 << 16:
            self._cache[key] = found
        return found

    def _fallback(self, key: tuple, known: dict) -> Verdict:
        """One (arch, nr) when the whole program was too large: the proven constant-verdict
        table first (:mod:`.verdicts`), else a symbolic execution with nr and arch known; after
        ``FALLBACK_FAILURES`` such executions failed, the rest are not tried (incomplete)."""
        if self._constants is None:
            from . import verdicts
            try:
                self._constants = verdicts.build(self.program, self.layout)
            except Exception:   # noqa: BLE001 - no table: every (arch, nr) is executed
                self._constants = verdicts.VerdictTable()
        value = self._constants.lookup(key[0], key[1])
        if value is not None:
            return Verdict(key[0], key[1], (Path({}, (), value, -1),))
        if self._failures < FALLBACK_FAILURES:
            try:
                paths, _ = execute(self.program, known, max_paths=FALLBACK_PATHS,
                                   max_steps=FALLBACK_STEPS)
                return Verdict(key[0], key[1], tuple(p.specialize(known) for p in paths))
            except TooComplex:
                self._failures += 1
        return Verdict(key[0], key[1], (), complete=False)

    def candidates(self, arch: int) -> list:
        """Paths that an input with this arch value may take (any nr)."""
        ids = sorted({n for (a, _), ns in self._by_point.items() if a == arch for n in ns}
                     | set(self._by_arch.get(arch, [])) | set(self._rest))
        return [self.paths[n] for n in ids]

    def evaluate_words(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(results, how many regions each input matched) for an (n, 16) uint32 array."""
        if not self.complete:
            raise TooComplex("the whole-program analysis was abandoned; use verdict()")
        values = np.zeros(len(words), dtype=np.uint64)
        count = np.zeros(len(words), dtype=np.int64)
        for p in self.paths:
            hit = p.matches_vec(words)
            if hit.any():
                count += hit
                values = np.where(hit, cd.evaluate_vec(p.result, words), values)
        return values.astype(np.uint32), count


def analyse(program: Sequence[Instruction], layout: Layout, *, max_paths: int | None = None,
            max_steps: int | None = None) -> Semantics:
    """The exact semantics of a checked program for ``layout`` (budgets: MAX_PATHS, MAX_STEPS)."""
    program = tuple(program)
    max_paths = MAX_PATHS if max_paths is None else max_paths
    max_steps = MAX_STEPS if max_steps is None else max_steps
    try:
        paths, steps = execute(program, max_paths=max_paths, max_steps=max_steps)
        return Semantics(program, layout, paths, True, steps)
    except TooComplex:
        return Semantics(program, layout, [], False, max_steps)


# --- words ----------------------------------------------------------------------------------

def word_name(layout: Layout, index: int) -> str:
    return layout.describe_offset(4 * index) or f"[{4 * index}]"


def describe(path: Path, layout: Layout) -> list[str]:
    """The region's conditions in words (64-bit fields joined when both halves are fixed)."""
    out = []
    words = dict(path.words)
    for field_base in range(8, 64, 8):
        lo_i = layout.word_offset("ip" if field_base == 8 else "args",
                                  (field_base - 16) // 8 if field_base > 8 else 0, "lo") // 4
        hi_i = lo_i ^ 1
        lo, hi = words.get(lo_i), words.get(hi_i)
        if lo is not None and hi is not None and lo.mask == U32 and hi.mask == U32:
            name = word_name(layout, lo_i).rsplit(".", 1)[0]
            out.append(f"{name} == {cd.num(hi.value << 32 | lo.value)}")
            del words[lo_i], words[hi_i]
    for i in sorted(words):
        out.extend(words[i].describe(word_name(layout, i)))
    for jop, a, b, taken in path.opaque:
        name = lambda i: word_name(layout, i)   # noqa: E731
        sa, sb = cd.text(a, name), cd.text(b, name)
        if jop == op.BPF_JSET:
            out.append(f"{sa} & {sb} {'!=' if taken else '=='} 0")
        else:
            out.append(f"{sa} {cd.JUMP_SYMBOLS[jop][0 if taken else 1]} {sb}")
    return out


def result_text(result, layout: Layout) -> str:
    """A constant result as its action (``ERRNO(1)``); ``ret a`` of an expression as that."""
    from ..seccomp.actions import Action
    if isinstance(result, int):
        return str(Action(result))
    return "the value of " + cd.text(result, lambda i: word_name(layout, i))
