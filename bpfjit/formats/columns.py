"""Text out, seccomp-tools style: one row per instruction (line, CODE, JT, JF, K) and a pseudo-C line.

    line  CODE  JT   JF      K
   =================================
    0000: 0x20 0x00 0x00 0x00000004  A = arch
    0001: 0x15 0x00 0x08 0xc000003e  if (A != AUDIT_ARCH_X86_64) goto 0010
    0002: 0x20 0x00 0x00 0x00000000  A = nr
    0003: 0x15 0x05 0x00 0x00000000  if (A == read) goto 0009

This view is for reading, not for assembling (use :mod:`bpfjit.formats.disasm`
for text that round-trips). Names come from the same analysis as the
disassembler: which word A holds, which arch a path has checked.
"""
from __future__ import annotations

from .. import opcodes as op
from ..program import Instruction, Program
from ..seccomp import actions
from ..seccomp.layouts import Layout
from . import symbols
from .disasm import _cached, _layout_for

HEADER = " line  CODE  JT   JF      K\n=================================\n"

_CMP = {op.BPF_JEQ: ("==", "!="), op.BPF_JGT: (">", "<="), op.BPF_JGE: (">=", "<")}
_ALU = {op.BPF_ADD: "+=", op.BPF_SUB: "-=", op.BPF_MUL: "*=", op.BPF_DIV: "/=",
        op.BPF_OR: "|=", op.BPF_AND: "&=", op.BPF_LSH: "<<=", op.BPF_RSH: ">>=",
        op.BPF_MOD: "%=", op.BPF_XOR: "^="}


def rows(program: Program, *, arch: "str | Layout | None" = None) -> list[tuple[Instruction, str]]:
    """``(instruction, pseudo-C)`` for every instruction of ``program``."""
    listing = _cached(program, _layout_for(program, arch))
    width = len(str(max(len(program) - 1, 0)))
    width = max(width, 4)
    return [(ins, _pseudo_c(listing, i, ins, width)) for i, ins in enumerate(program)]


def render(program: Program, *, arch: "str | Layout | None" = None, style=None) -> str:
    """The whole listing; ``style(text, kind)`` may colour parts (kind: ``line``, ``action``)."""
    paint = style or (lambda text, kind: text)
    width = max(len(str(max(len(program) - 1, 0))), 4)
    out = [HEADER.rstrip("\n")]
    for i, (ins, text) in enumerate(rows(program, arch=arch)):
        kind = _row_kind(ins)
        out.append(f" {paint(f'{i:0{width}d}', 'line')}: 0x{ins.code:02x} 0x{ins.jt:02x} "
                   f"0x{ins.jf:02x} 0x{ins.k:08x}  {paint(text, kind)}")
    return "\n".join(out) + "\n"


def _row_kind(ins: Instruction) -> str:
    if ins.code != op.BPF_RET | op.BPF_K:
        return "text"
    action = actions.Action(ins.k).effective.action
    if action == actions.SECCOMP_RET_ALLOW:
        return "allow"
    if action in (actions.SECCOMP_RET_KILL_PROCESS, actions.SECCOMP_RET_KILL_THREAD):
        return "kill"
    return "deny"


def _goto(i: int, off: int, width: int, n: int) -> str:
    t = i + 1 + off
    return f"{t:0{width}d}" if t < n else f"+{off} (past the end)"


def _pseudo_c(listing, i: int, ins: Instruction, width: int) -> str:
    code, k, n = ins.code, ins.k, listing.n
    if code not in op.CLASSIC_CODES:
        return f"invalid opcode {code:#x}"
    cls, mode = op.bpf_class(code), op.bpf_mode(code)
    if code == op.BPF_RET | op.BPF_K:
        act = actions.Action(k)
        return f"return {act}" if act.known else f"return {k:#010x}  /* unknown: KILL_PROCESS */"
    if code == op.BPF_RET | op.BPF_A:
        return "return A"
    if code == op.BPF_JMP | op.BPF_JA:
        return f"goto {_goto(i, k, width, n)}"
    if code in op.CONDITIONAL_JUMPS:
        operand = "X" if op.bpf_src(code) == op.BPF_X else _constant(listing, i, ins)
        jop = op.bpf_op(code)
        t, f = _goto(i, ins.jt, width, n), _goto(i, ins.jf, width, n)
        if jop == op.BPF_JSET:
            yes, no = f"(A & {operand})", f"!(A & {operand})"
        else:
            yes, no = (f"(A {sym} {operand})" for sym in _CMP[jop])
        if ins.jt and not ins.jf:
            return f"if {yes} goto {t}"
        if ins.jf and not ins.jt:
            return f"if {no} goto {f}"
        if not ins.jt and not ins.jf:
            return f"/* if {yes} */ goto {t}"
        return f"if {yes} goto {t} else goto {f}"
    if cls == op.BPF_ALU:
        if code == op.BPF_ALU | op.BPF_NEG:
            return "A = -A"
        operand = "X" if op.bpf_src(code) == op.BPF_X else f"{k:#x}" if k > 9 else str(k)
        return f"A {_ALU[op.bpf_op(code)]} {operand}"
    if code == op.BPF_MISC | op.BPF_TAX:
        return "X = A"
    if code == op.BPF_MISC | op.BPF_TXA:
        return "A = X"
    if code == op.BPF_ST:
        return f"mem[{k}] = A"
    if code == op.BPF_STX:
        return f"mem[{k}] = X"
    reg = "X" if cls == op.BPF_LDX else "A"
    if mode == op.BPF_IMM:
        return f"{reg} = {k:#x}" if k > 9 else f"{reg} = {k}"
    if mode == op.BPF_MEM:
        return f"{reg} = mem[{k}]"
    if mode == op.BPF_LEN:
        return f"{reg} = sizeof(struct seccomp_data)  /* 64 */"
    if code == op.BPF_LD | op.BPF_W | op.BPF_ABS:
        name = symbols.field_name(k, listing.layout)
        return f"A = {name}" if name else f"A = data[{k}]  /* not a seccomp_data word */"
    size = {op.BPF_W: 4, op.BPF_H: 2, op.BPF_B: 1}[op.bpf_size(code)]
    where = f"X + {k}" if mode == op.BPF_IND else str(k)
    if mode == op.BPF_MSH:
        return f"X = 4 * (data[{k}] & 0xf)"
    return f"{reg} = data[{where}]  /* {size}-byte load */"


def _constant(listing, i: int, ins: Instruction) -> str:
    k = ins.k
    held = listing.states[i][0] if listing.states else None
    if held == "arch" and k in symbols.AUDIT_ARCH_NAMES:
        return symbols.AUDIT_ARCH_NAMES[k]
    if held == "nr" and op.bpf_op(ins.code) in (op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE):
        name = listing.syscall_comment(i, ins.code, k)
        if name and " " not in name:
            return name
        if name:
            return f"{k:#x} /* {name} */" if k > 0xFFFF else f"{k} /* {name} */"
        return str(k) if k < 0x10000 else f"{k:#x}"
    return str(k) if k < 10 else f"{k:#x}"
