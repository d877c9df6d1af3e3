"""Testing: probe programs — one operation, its operands on an edge, its effect visible in the return value.

A random valid program executes most opcodes, but the *result* of a given
operation often never reaches a return: it is overwritten, or a later jump
throws it away. A probe is built around one seccomp opcode (the *focus*):

- the operands come from the record (``ld [k]`` of a word the inputs draw
  from edge values, ``ldx`` likewise through ``tax``) or are edge immediates
  for that operation (shift amounts 0/1/31, divisors 1/2/3/sign bit/all ones,
  sign bits, all ones, values one apart);
- an ALU, load, scratch or ``tax``/``txa`` focus ends in ``ret a`` (sometimes
  ``txa; ret a``), so the 32-bit result *is* the verdict;
- a conditional jump chooses between two distinct constant returns (or ``ret
  a``), so taken/not taken is the verdict, with operands drawn on both sides of
  the edge (equal, one apart, different sign bits);
- ``ret #k`` probes return actions of every kind, unknown ones and ERRNO data
  above 4095.

:func:`probe_program` takes an optional focus; :mod:`bpfjit.testing.fuzz`
feeds back the (opcode, edge class) pairs a run has not yet observed
(:data:`EDGE_CLASSES`), so probes go where coverage is missing.
"""
from __future__ import annotations

import random
from collections.abc import Callable

from .. import opcodes as op
from ..program import Program
from ..seccomp import actions as act

U32 = 0xFFFFFFFF
_A = op.BPF_ALU
ALU_K = {o: _A | o | op.BPF_K for o in (op.BPF_ADD, op.BPF_SUB, op.BPF_MUL, op.BPF_DIV, op.BPF_OR,
                                        op.BPF_AND, op.BPF_LSH, op.BPF_RSH, op.BPF_XOR)}
ALU_X = {o: _A | o | op.BPF_X for o in ALU_K}
NEG = _A | op.BPF_NEG
JUMPS = [op.BPF_JMP | o | s for o in (op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE, op.BPF_JSET)
         for s in (op.BPF_K, op.BPF_X)]
LD_ABS, LD_IMM, LDX_IMM = op.BPF_LD | op.BPF_W | op.BPF_ABS, op.BPF_LD | op.BPF_IMM, \
    op.BPF_LDX | op.BPF_IMM
LD_LEN, LDX_LEN = op.BPF_LD | op.BPF_W | op.BPF_LEN, op.BPF_LDX | op.BPF_W | op.BPF_LEN
LD_MEM, LDX_MEM, ST, STX = op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM, op.BPF_ST, op.BPF_STX
TAX, TXA = op.BPF_MISC | op.BPF_TAX, op.BPF_MISC | op.BPF_TXA
RET_K, RET_A, JA = op.BPF_RET | op.BPF_K, op.BPF_RET | op.BPF_A, op.BPF_JMP | op.BPF_JA

#: every focus a probe can have
FOCI = sorted(set(ALU_K.values()) | set(ALU_X.values()) | {NEG} | set(JUMPS) |
              {LD_ABS, LD_IMM, LDX_IMM, LD_LEN, LDX_LEN, LD_MEM, LDX_MEM, ST, STX, TAX, TXA,
               RET_K, RET_A, JA})

SHIFTS = (0, 1, 2, 15, 16, 30, 31, 31, 31)
DIVISORS = (1, 1, 2, 3, 7, 0x10000, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFF)
EDGE_VALUES = (0, 1, 2, 0x7FFFFFFE, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFE, 0xFFFFFFFF,
               0xFFFF, 0x10000, 0x00050000, 0x7FFF0000)

#: an edge class counts as covered once the reference executed it this often (on the
#: sampled records); until then probes keep aiming at its opcode
MIN_EDGE_HITS = 16

#: (focus opcode, edge class) pairs the fuzzer's coverage tracks; see :func:`edge_class`
EDGE_CLASSES = {
    **{c: ("wrap", "no wrap") for c in (ALU_K[op.BPF_ADD], ALU_X[op.BPF_ADD], ALU_K[op.BPF_SUB],
                                        ALU_X[op.BPF_SUB], ALU_K[op.BPF_MUL], ALU_X[op.BPF_MUL],
                                        ALU_K[op.BPF_LSH], ALU_X[op.BPF_LSH])},
    ALU_X[op.BPF_LSH]: ("wrap", "no wrap", "by >= 32", "by 31", "by 0"),
    ALU_X[op.BPF_RSH]: ("by >= 32", "by 31", "by 0", "sign bit set"),
    ALU_K[op.BPF_RSH]: ("by 31", "sign bit set"),
    ALU_K[op.BPF_LSH]: ("wrap", "no wrap", "by 31"),
    ALU_K[op.BPF_DIV]: ("by 1", "sign bit set", "remainder"),
    ALU_X[op.BPF_DIV]: ("by 0", "by 1", "sign bit set", "remainder"),
    NEG: ("zero", "0x80000000", "other"),
    **{c: ("taken", "not taken", "different sign bits", "equal")
       for c in JUMPS if op.bpf_op(c) in (op.BPF_JGT, op.BPF_JGE)},
}


def edge_class(code: int, A: int, X: int, k: int) -> str | None:
    """The edge class of executing ``code`` with A, X (None: not one tracked)."""
    src = X if op.bpf_src(code) == op.BPF_X else k
    o = op.bpf_op(code)
    if op.bpf_class(code) == op.BPF_ALU:
        if code == NEG:
            return "zero" if A == 0 else "0x80000000" if A == 0x80000000 else "other"
        # shift by 31 counts only when a bit survives it (else the result is 0 either way)
        survives = A & (0x80000000 if o == op.BPF_RSH else 1)
        if o in (op.BPF_LSH, op.BPF_RSH) and op.bpf_src(code) == op.BPF_X:
            if src >= 32:
                return "by >= 32"
            if src == 0 or (src == 31 and survives):
                return f"by {src}"
        if o == op.BPF_RSH:
            return "by 31" if src == 31 and survives else \
                "sign bit set" if A & 0x80000000 else None
        if o == op.BPF_LSH and src == 31 and A & 1:
            return "by 31"
        if o == op.BPF_DIV:
            if src in (0, 1):
                return f"by {src}"
            return "sign bit set" if (A | src) & 0x80000000 else "remainder" if A % src else None
        full = {op.BPF_ADD: A + src, op.BPF_SUB: A - src, op.BPF_MUL: A * src,
                op.BPF_LSH: A << (src & 31)}.get(o)
        if full is not None:
            return "wrap" if not 0 <= full <= U32 else "no wrap"
        return None
    if o in (op.BPF_JGT, op.BPF_JGE):
        if (A ^ src) & 0x80000000:
            return "different sign bits"
        if A == src:
            return "equal"
    return None


def _operand(rng: random.Random, focus: int) -> int:
    o = op.bpf_op(focus)
    if o in (op.BPF_LSH, op.BPF_RSH):
        return rng.choice(SHIFTS) if rng.random() < 0.7 else rng.randrange(32)
    if o == op.BPF_DIV:
        return rng.choice(DIVISORS) if rng.random() < 0.8 else rng.randrange(1, 1 << 32)
    r = rng.random()
    if r < 0.6:
        return rng.choice(EDGE_VALUES)
    if r < 0.8:
        return rng.randrange(64)
    return rng.getrandbits(32)


def _word(rng: random.Random) -> int:
    """An ld [k] offset: nr, arch, ip halves, argument halves."""
    return 4 * rng.randrange(16)


#: A values that keep bit 0 and bit 31 (a shift by 31 either way leaves a 1), sign bits
AIMED_A = (0x80000001, 0xFFFFFFFF, 0x80000000, 1, 0x7FFFFFFF)


def _load_a(rng: random.Random, out: list, aim: bool = False) -> None:
    if aim and rng.random() < 0.5:
        out.append((LD_IMM, 0, 0, rng.choice(AIMED_A)))
    elif rng.random() < 0.75:
        out.append((LD_ABS, 0, 0, _word(rng)))
    else:
        out.append((LD_IMM, 0, 0, rng.choice(EDGE_VALUES)))


def _load_x(rng: random.Random, out: list, focus: int, aim: bool = False) -> None:
    r = rng.random()
    if aim and op.bpf_op(focus) in (op.BPF_LSH, op.BPF_RSH, op.BPF_DIV) and r < 0.6:
        out.append((LDX_IMM, 0, 0, rng.choice((31, 31, 32, 63, 0) if op.bpf_op(focus) !=
                                              op.BPF_DIV else (0, 1, 1, 0x80000000))))
    elif r < 0.6:
        out += [(LD_ABS, 0, 0, _word(rng)), (TAX, 0, 0, 0)]
    elif r < 0.9:
        shift = op.bpf_op(focus) in (op.BPF_LSH, op.BPF_RSH)
        values = (0, 1, 31, 31, 32, 33, 63, 64, 0x80000000, 0xFFFFFFFF) if shift else \
            (0, 1, 2, 3) + EDGE_VALUES
        out.append((LDX_IMM, 0, 0, rng.choice(values)))
    else:
        out.append((LDX_LEN, 0, 0, 0))


def _ret_value(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.5:
        return rng.choice((act.SECCOMP_RET_ALLOW, act.SECCOMP_RET_KILL_PROCESS,
                           act.SECCOMP_RET_KILL_THREAD, act.SECCOMP_RET_TRAP,
                           act.SECCOMP_RET_ERRNO, act.SECCOMP_RET_TRACE, act.SECCOMP_RET_LOG,
                           act.SECCOMP_RET_USER_NOTIF)) | rng.choice((0, 1, 4095, 4096, 0xFFFF))
    if r < 0.75:
        return (rng.choice((0x0001, 0x0002, 0x0004, 0x0006, 0x1234, 0x7FC1, 0x7FFE, 0xFFFF)) << 16
                | rng.randrange(1 << 16))
    return rng.getrandbits(32)


def _aimed_operand(rng: random.Random, focus: int) -> int:
    o = op.bpf_op(focus)
    if o in (op.BPF_LSH, op.BPF_RSH):
        return rng.choice((31, 31, 0, 1))
    if o == op.BPF_DIV:
        return rng.choice((1, 1, 0x80000000, 0xFFFFFFFF, 3))
    return rng.choice((0xFFFFFFFF, 0x80000000, 0x80000001, 1))


def probe_insns(rng: random.Random, focus: int | None = None, *, aim: bool = False
                ) -> list[tuple[int, int, int, int]]:
    """A probe around ``focus``; ``aim``: its operands are drawn on the edges themselves
    (the feedback asked for this opcode because an edge class of it is missing)."""
    focus = rng.choice(FOCI) if focus is None else focus
    out: list = []
    cls = op.bpf_class(focus)
    if cls == op.BPF_ALU:
        if op.bpf_src(focus) == op.BPF_X and focus != NEG:
            _load_x(rng, out, focus, aim)
            if focus == ALU_X[op.BPF_DIV] and rng.random() < 0.3:
                out.append((LDX_IMM, 0, 0, 0))            # the division by zero itself
        _load_a(rng, out, aim)
        if not aim and rng.random() < 0.3:                # an earlier op moves A off the edge
            extra = rng.choice((ALU_K[op.BPF_ADD], ALU_K[op.BPF_SUB], NEG))
            out.append((extra, 0, 0, 0 if extra == NEG else rng.choice((1, 0x80000000))))
        k = 0 if focus == NEG or op.bpf_src(focus) == op.BPF_X else \
            _aimed_operand(rng, focus) if aim and rng.random() < 0.7 else _operand(rng, focus)
        out.append((focus, 0, 0, k))
        if rng.random() < 0.3:                            # a second op of the same kind
            out.append((focus, 0, 0, k))
        r = rng.random()
        if r < 0.6:         # a consumer that sees all of A: bits above 32 or the sign must not leak
            consumer = rng.choice(((ALU_K[op.BPF_RSH], rng.choice((1, 16, 31))),
                                   (ALU_K[op.BPF_ADD], rng.choice((1, 0x80000000))),
                                   (ALU_K[op.BPF_DIV], rng.choice((2, 3, 0x10000))),
                                   (JUMPS[2], rng.choice((0x7FFFFFFF, 0xFFFFFFFE, 0xFFFF))),
                                   (JUMPS[4], rng.choice((0x80000000, 0xFFFFFFFF, 1)))))
            if op.bpf_class(consumer[0]) == op.BPF_JMP:
                out += [(consumer[0], 0, 1, consumer[1]), (RET_K, 0, 0, _ret_value(rng))]
            else:
                out.append((consumer[0], 0, 0, consumer[1]))
        elif r < 0.75:      # the result compared with X or stored and reloaded
            out += [(JUMPS[5], 1, 0, 0), (RET_K, 0, 0, _ret_value(rng))]
        out.append((RET_A, 0, 0, 0))
    elif focus in JUMPS:
        if op.bpf_src(focus) == op.BPF_X:
            _load_x(rng, out, focus)
        _load_a(rng, out)
        if op.bpf_src(focus) == op.BPF_X and rng.random() < (0.7 if aim else 0.4):
            # A and X equal or one apart
            out += [(TXA, 0, 0, 0), (ALU_K[op.BPF_ADD], 0, 0, rng.choice((0, 0, 1, U32)))]
        k = 0 if op.bpf_src(focus) == op.BPF_X else _operand(rng, focus)
        r1, r2 = _ret_value(rng), _ret_value(rng)
        while r2 == r1:
            r2 = _ret_value(rng)
        if rng.random() < 0.5:            # jt/jf 0 and 1: offsets matter exactly
            out += [(focus, 0, 1, k), (RET_K, 0, 0, r1), (RET_K, 0, 0, r2)]
        else:                             # further targets, through a ja
            out += [(focus, 1, 0, k), (RET_K, 0, 0, r1), (JA, 0, 0, 1), (RET_A, 0, 0, 0),
                    (RET_K, 0, 0, r2)]
    elif focus in (LD_MEM, LDX_MEM, ST, STX):
        cells = rng.sample(range(16), 3)
        _load_x(rng, out, focus)
        _load_a(rng, out)
        out += [(ST, 0, 0, cells[0]), (STX, 0, 0, cells[1]), (LD_IMM, 0, 0, 0x1234),
                (LDX_IMM, 0, 0, 0x5678), (ST, 0, 0, cells[2])]
        if focus == LD_MEM or (focus != LDX_MEM and rng.random() < 0.5):
            out += [(LD_MEM, 0, 0, cells[rng.randrange(2)]), (RET_A, 0, 0, 0)]
        else:
            out += [(LDX_MEM, 0, 0, cells[rng.randrange(2)]), (TXA, 0, 0, 0), (RET_A, 0, 0, 0)]
    elif focus in (TAX, TXA):
        _load_x(rng, out, focus)
        _load_a(rng, out)
        out += [(focus, 0, 0, 0)]
        if rng.random() < 0.5:
            out += [(ALU_X[op.BPF_SUB], 0, 0, 0)]         # A - X: 0 only if they agree
        out += [(RET_A, 0, 0, 0)]
    elif focus == RET_K:
        _load_a(rng, out)
        out += [(RET_K, 0, 0, _ret_value(rng))]
    elif focus == JA:
        _load_a(rng, out)
        skip = rng.randrange(1, 4)
        out += [(JA, 0, 0, skip)] + [(RET_K, 0, 0, _ret_value(rng)) for _ in range(skip)] + \
            [(RET_A, 0, 0, 0)]
    else:                                 # loads: the word itself is the verdict
        if focus == LDX_IMM or focus == LDX_LEN:
            out += [(focus, 0, 0, rng.choice(EDGE_VALUES)), (TXA, 0, 0, 0)]
        elif focus == LD_IMM:
            out += [(LD_IMM, 0, 0, rng.choice(EDGE_VALUES))]
        elif focus == LD_LEN:
            out += [(LD_LEN, 0, 0, 0)]
        else:
            out += [(LD_ABS, 0, 0, _word(rng))]
        out += [(RET_A, 0, 0, 0)]
    return out


def probe_program(rng: random.Random, focus: int | None = None) -> Program:
    """A valid probe program around ``focus`` (an opcode; random when None)."""
    return Program(probe_insns(rng, focus), source="probe_program")


def focus_chooser(missing: Callable[[], list[int]] | None
                  ) -> Callable[[random.Random], tuple[int, bool]]:
    """Half the time a focus from ``missing()`` (opcodes with an edge class not yet observed),
    otherwise every focus in turn (a fresh shuffled round of :data:`FOCI` each time), so that
    each opcode is probed equally often whatever the seed. Returns (focus, aim)."""
    queue: list[int] = []

    def choose(rng: random.Random) -> int:
        if missing is not None and rng.random() < 0.5:
            wanted = missing()
            if wanted:
                return rng.choice(wanted), True
        if not queue:
            queue.extend(rng.sample(FOCI, len(FOCI)))
        return queue.pop(), False
    return choose
