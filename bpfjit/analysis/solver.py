"""Analysis: the exact fallback for conditions the word-set language cannot hold (z3 bit-vectors).

A path whose conditions are all :class:`~.conditions.WordSet` constraints is
decided and given a witness without a solver. A path that compares computed
values (``args[0] + X > 5``, two words with each other, ``ret a`` of an
expression) is handed here: each input word becomes a 32-bit z3 bit-vector and
every operation is the kernel's (32-bit wrap-around, shifts by ``b & 31``,
division by a zero X split off beforehand by the symbolic execution). z3 is
imported only when such a path needs deciding, so the common libseccomp shapes
never pay for it.
"""
from __future__ import annotations

from .. import opcodes as op
from .conditions import U32, WORDS, Word, WordSet

#: milliseconds z3 may spend on one query before the answer is "unknown"
TIMEOUT_MS = 20_000


class SolverUnavailable(RuntimeError):
    pass


def _z3():
    try:
        import z3
    except ImportError as exc:   # pragma: no cover - z3-solver is a dependency
        raise SolverUnavailable("deciding this path needs z3 (pip install z3-solver)") from exc
    return z3


def _expr(z3, e, words):
    if isinstance(e, int):
        return z3.BitVecVal(e, 32)
    if isinstance(e, Word):
        return words[e.index]
    a, b = _expr(z3, e.a, words), _expr(z3, e.b, words)
    aop = e.aop
    if aop == op.BPF_ADD:
        return a + b
    if aop == op.BPF_SUB:
        return a - b
    if aop == op.BPF_MUL:
        return a * b
    if aop == op.BPF_DIV:
        return z3.If(b == 0, z3.BitVecVal(0, 32), z3.UDiv(a, b))
    if aop == op.BPF_OR:
        return a | b
    if aop == op.BPF_AND:
        return a & b
    if aop == op.BPF_LSH:
        return a << (b & 31)
    if aop == op.BPF_RSH:
        return z3.LShR(a, b & 31)
    if aop == op.BPF_XOR:
        return a ^ b
    if aop == op.BPF_NEG:
        return -a
    raise AssertionError(aop)


def _cond(z3, jop, a, b):
    if jop == op.BPF_JEQ:
        return a == b
    if jop == op.BPF_JGT:
        return z3.UGT(a, b)
    if jop == op.BPF_JGE:
        return z3.UGE(a, b)
    return (a & b) != 0


def _wordset(z3, w, s: WordSet):
    out = []
    if s.mask:
        out.append(w & s.mask == s.value)
    if s.lo:
        out.append(z3.UGE(w, s.lo))
    if s.hi != U32:
        out.append(z3.ULE(w, s.hi))
    out.extend((w & m) != x for m, x in s.nots)
    out.extend(w != p for p in s.points)
    return out


def solve(words: dict[int, WordSet], opaque, differ=None) -> "dict[int, int] | bool | None":
    """A model ``{word index: value}`` of the word sets, the opaque conditions
    (``(jop, a, b, taken)`` each) and, if given, ``differ = (x, y)``: ``x != y``.

    False when there is none (proven), None when z3 gave up (timeout).
    """
    z3 = _z3()
    ws = [z3.BitVec(f"w{i}", 32) for i in range(WORDS)]
    s = z3.Solver()
    s.set("timeout", TIMEOUT_MS)
    for i, ws_i in words.items():
        s.add(*_wordset(z3, ws[i], ws_i))
    for jop, a, b, taken in opaque:
        c = _cond(z3, jop, _expr(z3, a, ws), _expr(z3, b, ws))
        s.add(c if taken else z3.Not(c))
    if differ is not None:
        s.add(_expr(z3, differ[0], ws) != _expr(z3, differ[1], ws))
    r = s.check()
    if r == z3.unsat:
        return False
    if r != z3.sat:
        return None
    m = s.model()
    return {i: m.eval(ws[i], model_completion=True).as_long() for i in range(WORDS)}

