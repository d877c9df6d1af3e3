"""Analysis: the path one input takes through a filter, in words.

:func:`walk(program, words, layout) <walk>` runs the program on one input
while it also keeps, for A and X, *what* they hold (``args[0].lo &
0x7e020000``) next to the value, and returns one :class:`Decision` per
conditional jump whose outcome depended on the input ("arch is x86_64", "nr
56 is clone", "args[0].lo & 0x7e020000 = 0x10000000 != 0"), then the return
value. Consecutive not-taken tests of the same word (a ``jeq`` chain) are
merged into one decision. The return value is the program's, by the same
32-bit rules as the reference interpreter (tests hold them equal).
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import opcodes as op
from ..seccomp import layouts, syscalls
from ..seccomp.layouts import Layout
from . import conditions as cd
from .conditions import U32, Word
from .semantics import ARCH, NR, word_name


@dataclass
class Decision:
    index: int            # the (first) jump's index
    text: str
    last: int = -1        # the last jump merged into this decision
    word: object = None   # the expression tested (for merging)
    count: int = 1


def _arch_name(value: int) -> str:
    return layouts.audit_arch_name(value) or f"{value:#x}"


def _nr_name(abi_layout: Layout, value: int) -> str | None:
    try:
        return syscalls.name(abi_layout.syscall_abi, value - (1 << 32) if value >= 1 << 31
                             else value)
    except Exception:   # noqa: BLE001 - no table for this ABI: no name
        return None


def _subject(a, va: int, layout: Layout, abi: Layout) -> str:
    """What a jump tests, with its value: ``nr 56 (clone)``, ``args[0].lo = 0x8``."""
    if isinstance(a, Word) and a.index == NR:
        nm = _nr_name(abi, va)
        return f"nr {va - (1 << 32) if va >= 1 << 31 else va}" + (f" ({nm})" if nm else "")
    if isinstance(a, Word) and a.index == ARCH:
        return f"arch {_arch_name(va)}"
    return f"{cd.text(a, lambda i: word_name(layout, i)).strip('()')} = {cd.num(va)}"


def _phrase(jop: int, a, va: int, b, vb: int, taken: bool, layout: Layout, abi: Layout) -> str:
    is_nr = isinstance(a, Word) and a.index == NR
    if isinstance(a, Word) and a.index == ARCH and isinstance(b, int) and jop == op.BPF_JEQ:
        return f"arch is {_arch_name(va)}" if taken else \
            f"arch {_arch_name(va)} is not {_arch_name(vb)}"
    if is_nr and isinstance(b, int) and jop == op.BPF_JEQ and taken:
        nm = _nr_name(abi, va)
        return f"nr {vb} is {nm}" if nm else f"nr == {vb}"
    subject = _subject(a, va, layout, abi)
    if isinstance(b, int):
        sb = str(vb) if is_nr else cd.num(vb)
    else:
        sb = f"{cd.text(b, lambda i: word_name(layout, i))} (= {cd.num(vb)})"
    if jop == op.BPF_JSET:
        inner = cd.text(a, lambda i: word_name(layout, i)).strip("()")
        return f"{inner} & {sb} = {cd.num(va & vb)} {'!=' if taken else '=='} 0"
    return f"{subject} {cd.JUMP_SYMBOLS[jop][0 if taken else 1]} {sb}"


def walk(program, words, layout: Layout, abi: "Layout | None" = None
         ) -> tuple[list[Decision], int, int]:
    """(decisions, return value, index of the ``ret``) for one input (16 words)."""
    abi = abi or layout
    a = x = 0
    sa = sx = 0
    mem = [0] * op.BPF_MEMWORDS
    smem: list = [0] * op.BPF_MEMWORDS
    out: list[Decision] = []
    pc = 0
    while True:
        insn = program[pc]
        code, k = insn.code, insn.k
        cls = op.bpf_class(code)
        if cls == op.BPF_RET:
            return out, (k if code == op.BPF_RET | op.BPF_K else a), pc
        if code == op.BPF_JMP | op.BPF_JA:
            pc += 1 + k
            continue
        if cls == op.BPF_JMP:
            jop = op.bpf_op(code)
            vb, sb = (x, sx) if op.bpf_src(code) == op.BPF_X else (k, k)
            taken = cd.test(jop, a, vb)
            target = pc + 1 + (insn.jt if taken else insn.jf)
            if insn.jt != insn.jf and not (isinstance(sa, int) and isinstance(sb, int)):
                prev = out[-1] if out else None
                chain = not taken and jop == op.BPF_JEQ and isinstance(sb, int)
                if chain and prev is not None and prev.word == sa and prev.count:
                    prev.count += 1
                    prev.last = pc
                    prev.text = (f"{_subject(sa, a, layout, abi)} is none of the "
                                 f"{prev.count} values tested at {prev.index}..{pc}")
                elif chain:
                    out.append(Decision(pc, _phrase(jop, sa, a, sb, vb, taken, layout, abi),
                                        pc, sa))
                else:
                    out.append(Decision(pc, _phrase(jop, sa, a, sb, vb, taken, layout, abi), pc,
                                        count=0))
            pc = target
            continue
        if code == op.BPF_LD | op.BPF_W | op.BPF_ABS:
            a, sa = int(words[k // 4]), Word(k // 4)
        elif code == op.BPF_LD | op.BPF_W | op.BPF_LEN:
            a = sa = 64
        elif code == op.BPF_LDX | op.BPF_W | op.BPF_LEN:
            x = sx = 64
        elif code == op.BPF_LD | op.BPF_IMM:
            a = sa = k
        elif code == op.BPF_LDX | op.BPF_IMM:
            x = sx = k
        elif code == op.BPF_LD | op.BPF_MEM:
            a, sa = mem[k], smem[k]
        elif code == op.BPF_LDX | op.BPF_MEM:
            x, sx = mem[k], smem[k]
        elif code == op.BPF_ST:
            mem[k], smem[k] = a, sa
        elif code == op.BPF_STX:
            mem[k], smem[k] = x, sx
        elif code == op.BPF_MISC | op.BPF_TAX:
            x, sx = a, sa
        elif code == op.BPF_MISC | op.BPF_TXA:
            a, sa = x, sx
        elif code == op.BPF_ALU | op.BPF_NEG:
            a, sa = (-a) & U32, cd.fold(op.BPF_NEG, sa, 0)
        elif cls == op.BPF_ALU:
            aop = op.bpf_op(code)
            vb, sb = (x, sx) if op.bpf_src(code) == op.BPF_X else (k, k)
            if aop == op.BPF_DIV and vb == 0:
                out.append(Decision(pc, "division by X = 0: the program returns 0", pc))
                return out, 0, pc
            a, sa = cd.concrete_alu(aop, a, vb), cd.fold(aop, sa, sb)
        pc += 1


def decision_texts(decisions: list[Decision]) -> list[str]:
    return [d.text for d in decisions]
