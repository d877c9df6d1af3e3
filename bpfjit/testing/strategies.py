"""Fuzzing stage, Hypothesis strategies: seccomp programs and ``SECCOMP_DATA`` records for property tests.

Like ``hypothesis.extra.numpy``::

    from hypothesis import given
    from bpfjit.testing import strategies as bst

    @given(bst.programs(), bst.records(n=8))
    def test_mine(program, records): ...

    @given(bst.programs_and_records(kind="realistic"))
    def test_biased(pair): program, records = pair

Two designs, chosen per kind:

- ``kind="valid"`` (the default) is a **structured** strategy
  (:func:`valid_programs`): the length, then each instruction drawn from
  the seccomp forms with in-range operands (jumps never leave the program,
  constant shifts < 32, constant divisors != 0, scratch cells < 16, 32-bit
  aligned loads inside seccomp_data), ending in a return; a scratch load
  that is not written on every path is then repaired into an immediate
  load. Hypothesis therefore shrinks it instruction by instruction and
  operand by operand (towards ``ret #0`` and small constants).
- ``realistic``, ``near_valid`` and ``garbage`` draw a 64-bit seed and call
  the seeded generators of :mod:`bpfjit.testing.programs`; they shrink
  only through the seed (towards seed 0). ``garbage`` gives ``bytes`` (not
  always whole instructions); the others give a :class:`bpfjit.Program`.
  ``valid_programs(structured=False)`` uses the seeded ``valid_program``.

:func:`records` draws each 32-bit word from the program's constants (when a
program is given: :func:`bpfjit.testing.inputs.constants`), edge values (0,
1, 2**31, 2**32-1, the layout's AUDIT_ARCH) or any u32, and pairs words into
the 64-bit fields, so both halves of ``args[i]`` hit compared constants.
"""
from __future__ import annotations

import functools
import random

import numpy as np
from hypothesis import strategies as st

from .. import opcodes as op
from ..check import check_load_and_stores
from ..errors import InvalidProgram
from ..program import Program
from ..seccomp import layouts
from ..seccomp.records import SECCOMP_DATA

U32 = 0xFFFFFFFF
EDGE_WORDS = (0, 1, 2, 31, 32, 59, 0x7FFF0000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
              0xC000003E, 0x40000000)

_ALU_K = [op.BPF_ALU | o | op.BPF_K for o in (op.BPF_ADD, op.BPF_SUB, op.BPF_MUL, op.BPF_OR,
                                              op.BPF_AND, op.BPF_XOR)]
_ALU_X = [op.BPF_ALU | o | op.BPF_X for o in (op.BPF_ADD, op.BPF_SUB, op.BPF_MUL, op.BPF_DIV,
                                              op.BPF_OR, op.BPF_AND, op.BPF_XOR, op.BPF_LSH,
                                              op.BPF_RSH)]
_JMP = sorted(op.CONDITIONAL_JUMPS)
_MEM = [op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM, op.BPF_ST, op.BPF_STX]
_SIMPLE = [op.BPF_LD | op.BPF_W | op.BPF_LEN, op.BPF_LDX | op.BPF_W | op.BPF_LEN,
           op.BPF_ALU | op.BPF_NEG, op.BPF_MISC | op.BPF_TAX, op.BPF_MISC | op.BPF_TXA,
           op.BPF_RET | op.BPF_A]


def words(extra: "tuple[int, ...] | list[int]" = ()) -> st.SearchStrategy[int]:
    """A 32-bit word: one of ``extra`` (a third of the draws), an edge value, or any u32."""
    return _words(tuple(sorted({w & U32 for w in extra})))


@functools.lru_cache(maxsize=256)
def _words(extra: tuple[int, ...]) -> st.SearchStrategy[int]:
    parts = [st.sampled_from(extra)] if extra else []
    return st.one_of(*parts, st.sampled_from(EDGE_WORDS), st.integers(0, U32))


@functools.lru_cache(maxsize=None)
def _instruction(left: int) -> st.SearchStrategy[tuple[int, int, int, int]]:
    """One non-final instruction at a position with ``left`` instructions after its successor."""
    k32 = words()
    jump_off = st.integers(0, min(left, 0xFF))
    forms = [
        st.tuples(st.just(op.BPF_RET | op.BPF_K), st.just(0), st.just(0), k32),
        st.tuples(st.sampled_from([op.BPF_LD | op.BPF_IMM, op.BPF_LDX | op.BPF_IMM]),
                  st.just(0), st.just(0), k32),
        st.tuples(st.just(op.BPF_LD | op.BPF_W | op.BPF_ABS), st.just(0), st.just(0),
                  st.integers(0, 15).map(lambda i: 4 * i)),
        st.tuples(st.sampled_from(_SIMPLE), st.just(0), st.just(0), st.just(0)),
        st.tuples(st.sampled_from(_ALU_K), st.just(0), st.just(0), k32),
        st.tuples(st.just(op.BPF_ALU | op.BPF_DIV | op.BPF_K), st.just(0), st.just(0),
                  st.integers(1, U32)),
        st.tuples(st.sampled_from([op.BPF_ALU | op.BPF_LSH | op.BPF_K,
                                   op.BPF_ALU | op.BPF_RSH | op.BPF_K]),
                  st.just(0), st.just(0), st.integers(0, 31)),
        st.tuples(st.sampled_from(_ALU_X), st.just(0), st.just(0), st.just(0)),
        st.tuples(st.sampled_from(_MEM), st.just(0), st.just(0), st.integers(0, 15)),
    ]
    if left > 0:
        forms += [
            st.tuples(st.sampled_from(_JMP), jump_off, jump_off, k32),
            st.tuples(st.just(op.BPF_JMP | op.BPF_JA), st.just(0), st.just(0),
                      st.integers(0, left)),
        ]
    else:
        forms.append(st.tuples(st.sampled_from(_JMP), st.just(0), st.just(0), k32))
    return st.one_of(forms)


def _repair_scratch(insns: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Turn each scratch load check_load_and_stores would refuse into an immediate load."""
    for _ in range(len(insns) + 1):
        try:
            check_load_and_stores(Program(insns))
            return insns
        except InvalidProgram as exc:
            code, jt, jf, k = insns[exc.index]
            imm = op.BPF_LD | op.BPF_IMM if code == op.BPF_LD | op.BPF_MEM \
                else op.BPF_LDX | op.BPF_IMM
            insns[exc.index] = (imm, 0, 0, k)
    raise AssertionError("scratch repair did not converge")  # pragma: no cover


@st.composite
def _structured_valid(draw, min_len: int, max_len: int) -> Program:
    n = draw(st.integers(min_len, max_len))
    insns = [draw(_instruction(n - pc - 2)) for pc in range(n - 1)]
    last = draw(st.one_of(
        st.tuples(st.just(op.BPF_RET | op.BPF_K), st.just(0), st.just(0), words()),
        st.just((op.BPF_RET | op.BPF_A, 0, 0, 0))))
    return Program(_repair_scratch(insns + [last]), source="<hypothesis>")


def valid_programs(*, min_len: int = 1, max_len: int = 24, structured: bool = True
                   ) -> st.SearchStrategy[Program]:
    """Programs the kernel accepts (see the module docstring for the two designs)."""
    if not 1 <= min_len <= max_len <= op.BPF_MAXINSNS:
        raise ValueError(f"need 1 <= min_len <= max_len <= {op.BPF_MAXINSNS}, got "
                         f"{min_len}..{max_len}")
    if structured:
        return _structured_valid(min_len, max_len)
    from .programs import valid_program
    return _seeds().map(lambda s: valid_program(random.Random(s), max_len=max_len))


def _seeds() -> st.SearchStrategy[int]:
    return st.integers(0, (1 << 64) - 1)


def programs(kind: str = "valid", *, max_len: int = 24, arch: str = "x86_64"):
    """Programs of one kind: ``valid``, ``realistic``, ``near_valid`` or ``garbage`` (bytes)."""
    if kind == "valid":
        return valid_programs(max_len=max_len)
    from . import programs as gen
    if kind == "realistic":
        layouts.layout(arch)
        return _seeds().map(lambda s: gen.realistic_program(random.Random(s), arch=arch))
    if kind == "near_valid":
        return _seeds().map(lambda s: gen.near_valid_program(random.Random(s))[0])
    if kind == "garbage":
        return _seeds().map(lambda s: gen.garbage_program(random.Random(s)))
    raise ValueError(f"unknown program kind {kind!r}; choose valid, realistic, near_valid "
                     f"or garbage")


def near_valid_programs() -> st.SearchStrategy[tuple[Program, str]]:
    """``(program, rule)``: a program breaking exactly the kernel rule named."""
    from . import programs as gen
    return _seeds().map(lambda s: gen.near_valid_program(random.Random(s)))


def _constants(program) -> list[int]:
    if program is None:
        return []
    try:
        from .inputs import constants
        return sorted(constants(program))
    except ImportError:
        return sorted({insn.k for insn in program})


def records(program: "Program | None" = None, layout: str = "x86_64", *, n: int | None = None,
            min_n: int = 1, max_n: int = 16) -> st.SearchStrategy[np.ndarray]:
    """A 1-D ``SECCOMP_DATA`` array of ``n`` (or ``min_n..max_n``) records biased to ``program``."""
    lay = layouts.layout(layout)
    if n is not None:
        min_n = max_n = n
    if not 0 <= min_n <= max_n:
        raise ValueError(f"need 0 <= min_n <= max_n, got {min_n}..{max_n}")
    w = words(_constants(program) + [lay.audit_arch])
    u64 = st.tuples(w, w).map(lambda hl: hl[0] << 32 | hl[1])
    one = st.tuples(w, st.one_of(st.just(lay.audit_arch), w), u64, st.lists(u64, min_size=6,
                                                                            max_size=6))

    def build(rows) -> np.ndarray:
        out = np.zeros(len(rows), dtype=SECCOMP_DATA)
        for i, (nr, arch, ip, args) in enumerate(rows):
            out[i]["nr"] = nr - (1 << 32) if nr >= 1 << 31 else nr
            out[i]["arch"] = arch
            out[i]["instruction_pointer"] = ip
            out[i]["args"] = args
        return out
    return st.lists(one, min_size=min_n, max_size=max_n).map(build)


@st.composite
def programs_and_records(draw, kind: str = "valid", *, layout: str = "x86_64",
                         n: int | None = None, max_len: int = 24):
    """``(program, records)`` with the records biased to that program's constants."""
    prog = draw(programs(kind, max_len=max_len, arch=layout))
    decoded = prog
    if isinstance(prog, (bytes, bytearray)):      # garbage: constants of its whole instructions
        decoded = Program.from_bytes(bytes(prog[: len(prog) - len(prog) % 8]))
    return prog, draw(records(decoded, layout, n=n))
