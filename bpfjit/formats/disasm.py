"""Text out: bpf_asm text that :func:`bpfjit.formats.asm.parse` reads back into the same program.

The output is for people first, but it is exact: every program, even garbage,
assembles back to the identical instructions (code, jt, jf and k, bit for
bit):

- jump targets inside the program get labels ``L<index>:``; a target past
  the end is written as a raw offset ``+N``;
- an opcode that is not classic BPF, or an instruction whose unused fields
  are not zero (``jt`` on a ``ld``, ``k`` on a ``tax``), is written raw as
  ``.insn code, jt, jf, k`` with a comment saying what it is.

With ``names=True`` (the default) it also speaks seccomp: ``.arch`` first
(so the names below mean the same when read back), ``ld [nr]``,
``ld [args[1].hi]``, ``jeq #AUDIT_ARCH_X86_64`` after ``ld [arch]``,
syscall names as comments on comparisons of ``nr`` (for the architecture
checked on that path), and actions on returns (``ret ERRNO(1)``). With
``names=False`` it is plain bpf_asm, numbers only.
"""
from __future__ import annotations

from functools import lru_cache

from .. import opcodes as op
from ..program import Instruction, Program
from ..seccomp import actions
from ..seccomp.layouts import Layout, X32_SYSCALL_BIT, by_audit_arch
from ..seccomp.layouts import layout as resolve_layout
from . import symbols
from .asm import DEFAULT_ARCH

_RET_K, _RET_A = op.BPF_RET | op.BPF_K, op.BPF_RET | op.BPF_A
_JA = op.BPF_JMP | op.BPF_JA
_LD_ABS_W = op.BPF_LD | op.BPF_W | op.BPF_ABS
#: classic codes that leave A alone (everything else may change it)
_KEEPS_A = frozenset({op.BPF_LDX | op.BPF_IMM, op.BPF_LDX | op.BPF_MEM,
                      op.BPF_LDX | op.BPF_W | op.BPF_LEN, op.BPF_LDX | op.BPF_B | op.BPF_MSH,
                      op.BPF_ST, op.BPF_STX, op.BPF_MISC | op.BPF_TAX, _JA} | op.CONDITIONAL_JUMPS)
_MASK_OPS = (op.BPF_AND, op.BPF_OR, op.BPF_XOR)
_COMMENT_COLUMN = 36

# Facts about A and seccomp_data.arch on entry to an instruction: (what A holds, which
# arch values are possible). A is a seccomp_data word name or None (unknown); arches is a
# frozenset of AUDIT_ARCH values or None (any).
_State = tuple


def _merge(a: _State | None, b: _State) -> _State:
    if a is None:
        return b
    held = a[0] if a[0] == b[0] else None
    arches = None if a[1] is None or b[1] is None else a[1] | b[1]
    return held, arches


def _num(k: int, mask: bool = False) -> str:
    return str(k) if k < (10 if mask else 0x1000) else f"{k:#x}"


class _Listing:
    """One program, analysed once: which words A holds where, and the text of each line."""

    def __init__(self, program: Program, lay: Layout, names: bool):
        self.program = program
        self.layout = lay
        self.names = names
        self.n = len(program)
        self.states: list[_State] = self._analyse() if names else []

    # --- analysis: a forward pass (classic BPF only jumps forward) ---
    def _analyse(self) -> list[_State]:
        n = self.n
        states: list[_State | None] = [None] * n
        if n:
            states[0] = (None, None)
        for i, ins in enumerate(self.program):
            state = states[i] or (None, None)
            states[i] = state
            held, arches = state
            code = ins.code
            succ: list[tuple[int, _State]] = []
            if code in op.CONDITIONAL_JUMPS:
                t_state = f_state = state
                if held == "arch" and code == op.BPF_JMP | op.BPF_JEQ | op.BPF_K:
                    t_state = (held, frozenset({ins.k}) if arches is None else arches & {ins.k})
                    f_state = (held, None if arches is None else arches - {ins.k})
                succ = [(i + 1 + ins.jt, t_state), (i + 1 + ins.jf, f_state)]
            elif code == _JA:
                succ = [(i + 1 + ins.k, state)]
            elif op.bpf_class(code) != op.BPF_RET:
                if code == _LD_ABS_W:
                    held = self.layout.describe_offset(ins.k)
                elif code not in _KEEPS_A:
                    held = None
                succ = [(i + 1, (held, arches))]
            for j, s in succ:
                if j < n:
                    states[j] = _merge(states[j], s)
        return states  # type: ignore[return-value]

    def syscall_layout(self, i: int, k: int) -> Layout | None:
        """The layout whose syscall table names ``k`` compared with nr at instruction ``i``."""
        arches = self.states[i][1]
        if arches is None:
            return self.layout
        if len(arches) != 1:
            return self.layout if self.layout.audit_arch in arches else None
        lays = by_audit_arch(next(iter(arches)))
        if not lays:
            return None
        own_bit = [lay for lay in lays if lay.nr_bit and k & lay.nr_bit]
        plain = [lay for lay in lays if not lay.nr_bit]
        pick = own_bit or plain or lays
        return self.layout if self.layout in pick else pick[0]

    # --- rendering ---
    def target(self, i: int, off: int) -> str:
        t = i + 1 + off
        return f"L{t}" if t < self.n else f"+{off}"

    def targets(self) -> set[int]:
        found = set()
        for i, ins in enumerate(self.program):
            if ins.code in op.CONDITIONAL_JUMPS:
                form = _jump_form(ins.code, ins.jt, ins.jf)
                found.update(i + 1 + off for side, off in (("t", ins.jt), ("f", ins.jf))
                             if side in form)
            elif ins.code == _JA:
                found.add(i + 1 + ins.k)
        return {t for t in found if t < self.n}

    def line(self, i: int) -> tuple[str, str]:
        """(instruction text, comment) for instruction ``i``."""
        ins = self.program[i]
        text = self.mnemonic(i, ins)
        if text is None:
            return self.raw(i, ins)
        return text, (self.comment(i, ins) if self.names else "")

    def raw(self, i: int, ins: Instruction) -> tuple[str, str]:
        text = f".insn {ins.code:#04x}, {ins.jt}, {ins.jf}, {ins.k:#x}"
        if not self.names:
            return text, ""
        if ins.code not in op.CLASSIC_CODES:
            return text, f"not a classic BPF opcode ({_class_name(ins.code)})"
        used = _used_fields(ins.code)
        clean = Instruction(*(getattr(ins, f) if f in used else 0 for f in ("code", "jt", "jf", "k")))
        shown = " ".join((self.mnemonic(i, clean) or op.code_name(ins.code)).split())
        extra = [f"{f}={getattr(ins, f):#x}" for f in ("jt", "jf", "k") if f not in used
                 and getattr(ins, f)]
        return text, f"{shown}, with unused {', '.join(extra)}"

    def mnemonic(self, i: int, ins: Instruction) -> str | None:
        """bpf_asm spelling, or None when only ``.insn`` is exact."""
        code, k = ins.code, ins.k
        if code not in op.CLASSIC_CODES:
            return None
        used = _used_fields(code)
        if any(getattr(ins, f) for f in ("jt", "jf", "k") if f not in used):
            return None
        cls, mode = op.bpf_class(code), op.bpf_mode(code)
        fixed = _FIXED.get(code)
        if fixed:
            return fixed
        if code in op.CONDITIONAL_JUMPS:
            name = op.JMP_OPS[op.bpf_op(code)]
            operand = "x" if op.bpf_src(code) == op.BPF_X else "#" + self.constant(i, ins)
            form = _jump_form(code, ins.jt, ins.jf)
            if form == "t":
                return f"{name:<4} {operand}, {self.target(i, ins.jt)}"
            if form == "f":
                return f"{_NEGATED[name]:<4} {operand}, {self.target(i, ins.jf)}"
            return f"{name:<4} {operand}, {self.target(i, ins.jt)}, {self.target(i, ins.jf)}"
        if code == _JA:
            return f"ja   {self.target(i, k)}"
        if code == _RET_K:
            return f"ret  {self.action(k)}"
        if cls == op.BPF_ALU:
            name = op.ALU_OPS[op.bpf_op(code)]
            if op.bpf_src(code) == op.BPF_X:
                return f"{name:<4} x"
            return f"{name:<4} #{_num(k, op.bpf_op(code) in _MASK_OPS)}"
        if code in (op.BPF_ST, op.BPF_STX):
            return f"{'st' if code == op.BPF_ST else 'stx':<4} M[{k}]"
        if cls == op.BPF_LDX:
            return {op.BPF_IMM: f"ldx  #{_num(k)}", op.BPF_MEM: f"ldx  M[{k}]",
                    op.BPF_MSH: f"ldxb 4*([{k}]&0xf)"}[mode]
        # class LD
        size = {op.BPF_W: "ld", op.BPF_H: "ldh", op.BPF_B: "ldb"}[op.bpf_size(code)]
        if mode == op.BPF_IMM:
            return f"ld   #{_num(k)}"
        if mode == op.BPF_MEM:
            return f"ld   M[{k}]"
        if mode == op.BPF_IND:
            return f"{size:<4} [x + {k}]"
        ext = symbols.SKF_AD_NAMES.get(k)
        if ext:
            return f"{size:<4} #{ext}"
        if self.names and size == "ld":
            name = symbols.field_name(k, self.layout)
            if name:
                return f"ld   [{name}]"
        return f"{size:<4} [{k}]"

    def constant(self, i: int, ins: Instruction) -> str:
        k = ins.k
        if self.names and self.states[i][0] == "arch" \
                and op.bpf_op(ins.code) == op.BPF_JEQ and k in symbols.AUDIT_ARCH_NAMES:
            return symbols.AUDIT_ARCH_NAMES[k]
        if self.names and self.states[i][0] == "nr" and k < 0x10000:
            return str(k)   # syscall numbers in decimal, as the kernel's tables write them
        return _num(k, op.bpf_op(ins.code) == op.BPF_JSET)

    def action(self, k: int) -> str:
        if not self.names:
            return f"#{_num(k)}"
        act = actions.Action(k)
        if not act.known:
            return f"#{k:#010x}"
        return str(act)

    def comment(self, i: int, ins: Instruction) -> str:
        code, k = ins.code, ins.k
        if code == _RET_K:
            act = actions.Action(k)
            if not act.known:
                return "unknown action: the kernel kills the process"
            if act.action == actions.SECCOMP_RET_ERRNO:
                return symbols.errno_name(act.data, self.layout) or ""
            return ""
        if code == _LD_ABS_W and symbols.field_name(k, self.layout) is None \
                and k not in symbols.SKF_AD_NAMES:
            return "not a 32-bit word of seccomp_data (the kernel refuses it)"
        if code in (op.BPF_JMP | o | op.BPF_K for o in (op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE)) \
                and self.states[i][0] == "nr":
            return self.syscall_comment(i, code, k)
        return ""

    def syscall_comment(self, i: int, code: int, k: int) -> str:
        lay = self.syscall_layout(i, k)
        if lay is None:
            return ""
        if code != op.BPF_JMP | op.BPF_JEQ | op.BPF_K and \
                lay.audit_arch == resolve_layout("x32").audit_arch and \
                k in (X32_SYSCALL_BIT, X32_SYSCALL_BIT - 1):
            return "__X32_SYSCALL_BIT" + (" - 1" if k != X32_SYSCALL_BIT else "")
        name = symbols.syscall_name(k, lay)
        if name is None:
            return ""
        return name if lay is self.layout else f"{name} ({lay.name})"

    def render(self, numbered: bool, header: bool) -> str:
        labels = self.targets()
        width = max((len(f"L{t}:") for t in labels), default=0)
        digits = len(str(max(self.n - 1, 0)))
        out = []
        if header and self.names:
            out.append(f"; {self.n} instruction{'s' if self.n != 1 else ''}; "
                       f"names for {self.layout.name}")
            out.append(f".arch {self.layout.name}")
        for i in range(self.n):
            text, comment = self.line(i)
            label = f"L{i}:" if i in labels else ""
            prefix = f"/* {i:>{digits}} */ " if numbered else ""
            body = f"{prefix}{label:<{width}}  {text}" if width else f"{prefix}  {text}"
            if comment:
                body = f"{body:<{_COMMENT_COLUMN + len(prefix) + width}}  ; {comment}"
            out.append(body.rstrip())
            code = self.program[i].code
            if i + 1 < self.n and (code == _JA or op.bpf_class(code) == op.BPF_RET):
                out.append("")   # control never falls through: end of a block
        return "\n".join(out) + "\n"


def _class_name(code: int) -> str:
    if code > 0xFF:
        return "codes stop at 0xff"
    return "class BPF_" + ("LD", "LDX", "ST", "STX", "ALU", "JMP", "RET", "MISC")[code & 7]


#: classic codes whose k means nothing (bpf_asm writes 0 there)
_NO_K = frozenset({op.BPF_ALU | op.BPF_NEG, op.BPF_MISC | op.BPF_TAX, op.BPF_MISC | op.BPF_TXA,
                   _RET_A, op.BPF_LD | op.BPF_W | op.BPF_LEN, op.BPF_LDX | op.BPF_W | op.BPF_LEN}
                  | {c for c in op.CLASSIC_CODES
                     if op.bpf_class(c) in (op.BPF_ALU, op.BPF_JMP) and op.bpf_src(c) == op.BPF_X})


_FIXED = {op.BPF_ALU | op.BPF_NEG: "neg", op.BPF_MISC | op.BPF_TAX: "tax",
          op.BPF_MISC | op.BPF_TXA: "txa", _RET_A: "ret  a",
          op.BPF_LD | op.BPF_W | op.BPF_LEN: "ld   #len", op.BPF_LDX | op.BPF_W | op.BPF_LEN: "ldx  #len"}


#: bpf_asm's negated jumps: jump to the label when the test is false (jt = 0)
_NEGATED = {"jeq": "jne", "jgt": "jle", "jge": "jlt"}


def _jump_form(code: int, jt: int, jf: int) -> str:
    """Which targets a conditional jump's text names: ``t`` (jf falls through), ``f``
    (negated mnemonic, jt falls through) or ``tf``."""
    if jf == 0 and jt != 0:
        return "t"
    if jt == 0 and jf != 0 and op.bpf_op(code) != op.BPF_JSET:
        return "f"
    return "tf"


def _used_fields(code: int) -> set[str]:
    """The fields of a classic instruction that the mnemonic form carries."""
    used = {"code"}
    if code in op.CONDITIONAL_JUMPS:
        used |= {"jt", "jf"}
    if code not in _NO_K:
        used.add("k")
    return used


@lru_cache(maxsize=16)
def infer_arch(program: Program) -> Layout:
    """The layout of the first ``jeq #AUDIT_ARCH_...`` after ``ld [arch]``; x86_64 if none."""
    held = None
    for ins in program:
        if ins.code == _LD_ABS_W:
            held = ins.k
        elif ins.code == op.BPF_JMP | op.BPF_JEQ | op.BPF_K and held == 4:
            lays = [lay for lay in by_audit_arch(ins.k) if not lay.nr_bit] or by_audit_arch(ins.k)
            if lays:
                return lays[0]
        elif ins.code not in _KEEPS_A:
            held = None
    return resolve_layout(DEFAULT_ARCH)


def _layout_for(program: Program, arch: "str | Layout | None") -> Layout:
    return infer_arch(program) if arch is None else resolve_layout(arch)


def disassemble(program: Program, *, arch: "str | Layout | None" = None, numbered: bool = False,
                names: bool = True) -> str:
    """bpf_asm text for ``program``; ``asm.parse`` gives back the identical instructions.

    ``arch``: the layout and syscall table for names (None: the arch the
    program checks first, else x86_64). ``numbered``: prefix each line with
    its index as a ``/* n */`` comment. ``names=False``: plain bpf_asm, no
    seccomp names, no comments.
    """
    lay = _layout_for(program, arch)
    return _Listing(program, lay, names).render(numbered, header=True)


@lru_cache(maxsize=16)
def _cached(program: Program, lay: Layout) -> _Listing:
    return _Listing(program, lay, True)


def instruction_text(program: Program, index: int, *, arch: "str | Layout | None" = None) -> str:
    """One instruction as the disassembler writes it (jump targets ``L<n>``), with its comment."""
    listing = _cached(program, _layout_for(program, arch))
    if not 0 <= index < len(program):
        raise IndexError(f"instruction {index} is outside the program (0..{len(program) - 1})")
    text, comment = listing.line(index)
    text = " ".join(text.split()) if not text.startswith(".insn") else text
    return f"{text}  ; {comment}" if comment else text
