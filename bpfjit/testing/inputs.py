"""Testing: seeded ``seccomp_data`` records biased to a program's constants, for differential tests.

A filter's behaviour changes only where an input word crosses one of its
constants, so :func:`inputs_for` draws each 32-bit word ``ld [k]`` can see
from: the constants the program compares *that word* with (found by a linear
scan that follows which word A holds), each of them -1 and +1, every other
constant of the program, edge values (0, all ones, the sign bits
0x80000000/0x7fffffff), and random bits. Words are placed per the layout, so
a constant compared with ``args[1].hi`` lands in the high half of
``args[1]`` on little- and big-endian layouts alike. ``arch`` favours the
program's own AUDIT_ARCH constants and the layout's. 40% of the records are
"on target": each of their words is one of the exact constants compared with
it, so conjunctions (arch and nr and two arguments) are met too.
``instruction_pointer`` is random but drawn from a small pool per call (plus
the program's ip constants), which keeps kernel-backend runs cheap (one child
per distinct (arch, ip)).
"""
from __future__ import annotations

import random

import numpy as np

from .. import opcodes as op
from ..program import Program
from ..seccomp.layouts import LAYOUTS, Layout, layout as get_layout
from ..seccomp.records import SECCOMP_DATA

U32 = 0xFFFFFFFF
EDGES = (0, 1, 2, 3, 31, 32, 33, 63, 64, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFE,
         0xFFFFFFFF, 0xFFFF, 0x10000)

_LD_ABS = op.BPF_LD | op.BPF_W | op.BPF_ABS
_AND_K = op.BPF_ALU | op.BPF_AND | op.BPF_K


def constants(program: Program) -> set[int]:
    """Every ``k`` the program compares with (jumps), loads (``ld/ldx #k``) or computes with (ALU)."""
    found: set[int] = set()
    for insn in program:
        code = insn.code
        if code in op.CONDITIONAL_JUMPS and op.bpf_src(code) == op.BPF_K:
            found.add(insn.k)
        elif op.bpf_class(code) == op.BPF_ALU and op.bpf_src(code) == op.BPF_K \
                and op.bpf_op(code) != op.BPF_NEG:
            found.add(insn.k)
        elif code in (op.BPF_LD | op.BPF_IMM, op.BPF_LDX | op.BPF_IMM):
            found.add(insn.k)
    return found


def word_constants(program: Program) -> dict[int, set[int]]:
    """offset -> constants compared with the word loaded from that offset (a linear scan).

    Follows A through ``and #m`` (adding values whose masked bits match, with
    the unmasked bits set), through ``st``/``ld M[i]`` and ``tax``/``txa``.
    """
    out: dict[int, set[int]] = {}
    a_src: int | None = None          # which seccomp_data word A holds
    x_src: int | None = None
    mem: dict[int, int | None] = {}
    mask: int | None = None
    for insn in program:
        code, k = insn.code, insn.k
        if code == _LD_ABS:
            a_src, mask = k, None
        elif code == _AND_K:
            mask = k if mask is None else mask & k
        elif code in op.CONDITIONAL_JUMPS and a_src is not None:
            if op.bpf_src(code) == op.BPF_K:
                values = out.setdefault(a_src, set())
                values.add(k)
                if mask is not None:
                    values.add(k | (~mask & U32))
        elif code == op.BPF_ST:
            mem[k] = a_src
        elif code == op.BPF_STX:
            mem[k] = x_src
        elif code == op.BPF_LD | op.BPF_MEM:
            a_src, mask = mem.get(k), None
        elif code == op.BPF_LDX | op.BPF_MEM:
            x_src = mem.get(k)
        elif code == op.BPF_MISC | op.BPF_TAX:
            x_src = a_src
        elif code == op.BPF_MISC | op.BPF_TXA:
            a_src, mask = x_src, None
        elif code in (op.BPF_LDX | op.BPF_IMM, op.BPF_LDX | op.BPF_W | op.BPF_LEN):
            x_src = None
        elif code not in op.CONDITIONAL_JUMPS and code != op.BPF_JMP | op.BPF_JA \
                and op.bpf_class(code) != op.BPF_RET:
            a_src, mask = None, None
    return out


def _near(values: set[int]) -> list[int]:
    """Each value and its neighbours k-1, k+1 (mod 2**32)."""
    return sorted({(v + d) & U32 for v in values for d in (-1, 0, 1)})


def inputs_for(program: Program, rng: random.Random, n: int, *,
               layout: "str | Layout" = "x86_64") -> np.ndarray:
    """``n`` SECCOMP_DATA records biased to ``program``'s constants, for ``layout``'s word order."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, not {n!r}")
    lay = get_layout(layout)
    gen = np.random.default_rng(rng.getrandbits(64))
    consts = constants(program)
    per_word = word_constants(program)
    general = np.array(_near(consts) + list(EDGES), dtype=np.uint64)
    seen = np.zeros((n, 16), dtype=np.uint64)         # the words ld [4*i] sees
    arches = np.array(sorted({x.audit_arch for x in LAYOUTS.values()}), dtype=np.uint64)
    # "on target" records take, in every word, one of the exact constants compared with it:
    # filters test conjunctions (arch and nr and args...), which independent draws rarely meet
    on_target = gen.random(n) < 0.4
    for w in range(16):
        exact = sorted(per_word.get(4 * w, set()))
        targeted = _near(set(exact))
        pick = gen.random(n)
        col = gen.integers(0, 1 << 32, n, dtype=np.uint64)                      # random bits
        col = np.where(pick < 0.9, general[gen.integers(0, len(general), n)], col)
        if w == 0:      # nr: also small numbers of the layout's ABI
            small = gen.integers(0, 512, n, dtype=np.uint64) | np.uint64(lay.nr_bit)
            col = np.where(pick < 0.7, small, col)
        if w == 1:      # arch: every layout's AUDIT_ARCH, mostly this one's
            col = np.where(pick < 0.75, arches[gen.integers(0, len(arches), n)], col)
        if targeted:
            cand = np.array(targeted, dtype=np.uint64)
            col = np.where(pick < 0.55, cand[gen.integers(0, len(cand), n)], col)
        if w == 1:
            col = np.where(pick < 0.3, np.uint64(lay.audit_arch), col)
        if exact:
            cand = np.array(exact, dtype=np.uint64)
            hit = on_target & (gen.random(n) < 0.9)
            col = np.where(hit, cand[gen.integers(0, len(cand), n)], col)
        seen[:, w] = col
    # instruction_pointer: a small random pool, plus the program's ip constants
    ip_words = (lay.word_offset("ip", 0, "lo"), lay.word_offset("ip", 0, "hi"))
    pool = [0] + [rng.getrandbits(64) for _ in range(3)]
    lo_c = _near(per_word.get(ip_words[0], set()))[:4]
    hi_c = _near(per_word.get(ip_words[1], set()))[:4]
    pool += [(h << 32) | lo for h in (hi_c or [0]) for lo in (lo_c or [0])]
    ips = np.array(pool, dtype=np.uint64)[gen.integers(0, len(pool), n)]
    seen[:, ip_words[0] // 4] = ips & np.uint64(U32)
    seen[:, ip_words[1] // 4] = ips >> np.uint64(32)
    # seen words -> logical fields (a 64-bit field's words trade places on big-endian layouts)
    lo_words = seen[:, 2::2] if not lay.big_endian else seen[:, 3::2]
    hi_words = seen[:, 3::2] if not lay.big_endian else seen[:, 2::2]
    fields64 = lo_words | (hi_words << np.uint64(32))
    recs = np.zeros(n, dtype=SECCOMP_DATA)
    recs["nr"] = seen[:, 0].astype(np.uint32).view(np.int32)
    recs["arch"] = seen[:, 1].astype(np.uint32)
    recs["instruction_pointer"] = fields64[:, 0]
    recs["args"] = fields64[:, 1:]
    return recs
