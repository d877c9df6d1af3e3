"""Text in: the bpf_asm assembler language (Linux tools/bpf/bpf_exp.y) plus seccomp names.

One instruction per line, optionally after ``label:``. Everything the kernel's
bpf_asm accepts for classic BPF is accepted with the same encoding:

==========================  ================================================
``ld/ldh/ldb [k]``          BPF_LD|size|BPF_ABS (``ld [nr]``, ``ld [args[1].hi]``)
``ld/ldh/ldb [x + k]``      BPF_LD|size|BPF_IND (``%x`` also)
``ld #k`` / ``ldi k``       BPF_LD|BPF_IMM; ``ldx #k`` / ``ldxi k``: BPF_LDX|BPF_IMM
``ld M[k]``, ``ldx M[k]``   BPF_LD|BPF_MEM, BPF_LDX|BPF_MEM; ``st/stx M[k]``
``ld #len``, ``ldx #len``   BPF_LD|BPF_W|BPF_LEN (0x80), BPF_LDX|BPF_W|BPF_LEN (0x81)
``ldxb 4*([k]&0xf)``        BPF_LDX|BPF_B|BPF_MSH
``ld #proto`` ...           ancillary loads (``SKF_AD_OFF + n``), as bpf_asm spells them
``add #k`` / ``add x``      ALU: add sub mul div mod and or xor lsh rsh; ``neg``
``ja L`` / ``jmp L``        BPF_JMP|BPF_JA
``jeq #k, Lt, Lf``          jeq jgt jge jset; ``#k, Lt`` falls through on false;
                            ``x`` instead of ``#k`` compares with X
``jne/jneq/jlt/jle #k, L``  bpf_asm's negations: jump to L when false (JEQ/JGE/JGT
                            with ``jf`` = L); with two labels ``Lt, Lf`` as usual
``ret #k``, ``ret a``       BPF_RET|BPF_K, BPF_RET|BPF_A (``ret x``: BPF_RET|BPF_X)
``tax``, ``txa``            BPF_MISC
==========================  ================================================

Extensions (written by :mod:`bpfjit.formats.disasm`, so any program round-trips):

- ``.insn code, jt, jf, k``: one raw ``struct sock_filter``, for opcodes that
  are not classic BPF or fields the mnemonic form cannot carry.
- ``+N`` as a jump target: the raw offset N (jt/jf/k), e.g. past the end.
- ``.arch NAME``: the layout and syscall table that names below it use
  (default: the ``arch`` argument, else x86_64). It wins over the argument,
  which is only a default, so a text always means the same program.
- seccomp names: ``ld [nr]``, ``[arch]``, ``[ip.lo]`` / ``[instruction_pointer.hi]``,
  ``[args[2].hi]`` (offsets from the layout: on big-endian layouts ``.hi``
  is the lower address); ``#AUDIT_ARCH_X86_64`` and other audit.h names;
  ``#openat`` (or ``#__NR_openat``) for the layout's syscall numbers;
  ``#SECCOMP_RET_*``; ``ret ALLOW``, ``ret ERRNO(1)``, ``ret ERRNO(EPERM)``,
  ``ret KILL``, ``ret KILL_PROCESS``, ``ret TRAP(5)``, ``ret TRACE(3)``,
  ``ret LOG``, ``ret USER_NOTIF``.

Numbers: decimal, ``0x`` hex, ``0b`` binary, ``0o`` octal, optionally signed
(negative values are two's complement u32). A leading zero (``017``) is
refused: bpf_asm reads it as octal, most people as decimal.

Comments: ``;`` and ``//`` to the end of the line, ``/* ... */``, and lines
whose first non-blank character is ``#``. Mnemonics and ``x``/``a``/``M``
are case-insensitive, labels are not. Jumps go forward only; a conditional
jump reaches at most 255 instructions ahead.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from .. import opcodes as op
from ..errors import LoadError, UnknownArchError
from ..program import Instruction, Program
from ..seccomp import actions
from ..seccomp.layouts import Layout
from ..seccomp.layouts import layout as resolve_layout
from . import symbols

DEFAULT_ARCH = "x86_64"

_COMMENTS = re.compile(r"^[ \t]*#[^\n]*|/\*.*?\*/|//[^\n]*|;[^\n]*", re.DOTALL | re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*:")
_MNEMONIC = re.compile(r"([A-Za-z]+)\s*(.*)")
_NUMBER = re.compile(r"([-+]?)\s*(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|[0-9]+)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_X = re.compile(r"%?[xX]")
_A = re.compile(r"%?[aA]")
_MEM = re.compile(r"[mM]\s*\[\s*(.*?)\s*\]")
_IND = re.compile(r"\[\s*%?[xX]\s*(?:\+\s*(.*?)\s*)?\]")
_ABS = re.compile(r"\[\s*(.*?)\s*\]")
_MSH = re.compile(r"(.+?)\s*\*\s*\(\s*\[\s*(.+?)\s*\]\s*&\s*(.+?)\s*\)")
_LEN = re.compile(r"#?len", re.IGNORECASE)
_EXT = re.compile(r"#?([A-Za-z_]+)")
_TARGET = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\+\s*(\S+)")
_ACTION = re.compile(r"#?\s*([A-Za-z_]+)\s*(?:\(\s*(.*?)\s*\))?")

_SIZES = {"ld": op.BPF_W, "ldh": op.BPF_H, "ldb": op.BPF_B}
_ALU = {"add": op.BPF_ADD, "sub": op.BPF_SUB, "mul": op.BPF_MUL, "div": op.BPF_DIV,
        "mod": op.BPF_MOD, "and": op.BPF_AND, "or": op.BPF_OR, "xor": op.BPF_XOR,
        "lsh": op.BPF_LSH, "rsh": op.BPF_RSH}
#: mnemonic -> (BPF_OP, negated): negated forms jump to their label when the test is false
_JUMPS = {"jeq": (op.BPF_JEQ, False), "jgt": (op.BPF_JGT, False), "jge": (op.BPF_JGE, False),
          "jset": (op.BPF_JSET, False), "jne": (op.BPF_JEQ, True), "jneq": (op.BPF_JEQ, True),
          "jlt": (op.BPF_JGE, True), "jle": (op.BPF_JGT, True)}
MNEMONICS = tuple(sorted([*_SIZES, "ldi", "ldx", "ldxi", "ldxb", "st", "stx", "ja", "jmp",
                          *_JUMPS, *_ALU, "neg", "ret", "tax", "txa"]))

_U32 = 0xFFFFFFFF


@dataclass
class _Item:
    """One instruction before label resolution; a target is a label name or a raw offset."""

    line: int
    text: str
    code: int
    k: int = 0
    jt: int = 0
    jf: int = 0
    targets: dict[str, str] = field(default_factory=dict)   # "jt"/"jf"/"k" -> label


class _Assembler:
    def __init__(self, lay: Layout, source: str | None):
        self.layout = lay
        self.source = source
        self.items: list[_Item] = []
        self.labels: dict[str, tuple[int, int]] = {}     # name -> (index, line)
        self.pending: list[tuple[str, int]] = []          # labels waiting for an instruction
        self.label_lines: dict[str, int] = {}             # every label seen -> its line
        self.line = 0
        self.text = ""

    # --- errors ---
    def error(self, message: str, line: int | None = None) -> LoadError:
        return LoadError(message, source=self.source, line=self.line if line is None else line)

    def bad(self, what: str) -> LoadError:
        return self.error(f"{what} in {_show(self.text)}")

    # --- numbers and names ---
    def number(self, text: str, what: str = "k", top: int = _U32, signed: bool = True) -> int:
        t = text.strip()
        m = _NUMBER.fullmatch(t)
        if not m:
            raise self.bad(f"{_show(t)} is not a number (decimal, 0x hex, 0b binary, 0o octal)")
        sign, body = m.groups()
        if len(body) > 1 and body[0] == "0" and body[1].isdigit():
            raise self.bad(f"{_show(t)} has a leading zero: bpf_asm reads it as octal "
                           f"({_octal(body)}), most readers as decimal; write "
                           f"0o{body.lstrip('0') or '0'} or {body.lstrip('0') or '0'}")
        value = int(body, 0)
        if sign == "-":
            if not signed or value > (top + 1) // 2:
                raise self.bad(f"{what} {t} is out of range (0..{top:#x})")
            return -value & top
        if value > top:
            raise self.bad(f"{what} {t} is too large: it must fit in {top.bit_length()} bits "
                           f"(at most {top:#x})")
        return value

    def value(self, text: str, what: str = "k") -> int:
        """A number, or a named constant (``AUDIT_ARCH_X86_64``, ``openat``)."""
        t = text.strip()
        if _IDENT.fullmatch(t):
            try:
                return symbols.constant(t, self.layout)
            except ValueError as exc:
                raise self.bad(str(exc)) from None
        return self.number(t, what)

    def immediate(self, text: str, named: bool = True) -> int:
        t = text.strip()
        if not t.startswith("#"):
            raise self.bad(f"expected an immediate '#k', not {_show(t)}")
        return self.value(t[1:]) if named else self.number(t[1:])

    def target(self, text: str) -> int | str:
        t = text.strip()
        m = _TARGET.fullmatch(t)
        if not m:
            raise self.bad(f"{_show(t)} is not a jump target (a label, or +N for a raw offset)")
        if m.group(1):
            return m.group(1)
        return self.number(m.group(2), "offset", signed=False)

    # --- lines ---
    def feed(self, lineno: int, line: str) -> None:
        self.line = lineno
        rest = line.strip()
        while True:
            m = _LABEL.match(rest)
            if not m:
                break
            self.label(m.group(1))
            rest = rest[m.end():].strip()
        if not rest:
            return
        self.text = rest
        if rest.startswith("."):
            self.directive(rest)
            return
        m = _MNEMONIC.fullmatch(rest)
        if not m:
            hint = ""
            if rest[0].isdigit():
                hint = (" (numbers only? bpfjit reads C arrays as tcpdump -dd and bpf_asm -c "
                        "print them, not tcpdump -ddd or bpf_asm's default output)")
            raise self.error(f"expected an instruction, not {_show(rest)}{hint}")
        mnemonic, operands = m.group(1).lower(), m.group(2).strip()
        if mnemonic not in MNEMONICS:
            close = difflib.get_close_matches(mnemonic, MNEMONICS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise self.error(f"unknown mnemonic {_show(m.group(1))} in {_show(rest)}{hint}")
        self.emit(self.instruction(mnemonic, operands))

    def emit(self, item: _Item) -> None:
        self.items.append(item)
        for name, line_of in self.pending:
            self.labels[name] = (len(self.items) - 1, line_of)
        self.pending.clear()

    def label(self, name: str) -> None:
        if name in self.label_lines:
            raise self.error(f"label '{name}' defined twice (first at line "
                             f"{self.label_lines[name]})")
        self.label_lines[name] = self.line
        self.pending.append((name, self.line))

    def directive(self, text: str) -> None:
        name, _, rest = text.replace("\t", " ").partition(" ")
        rest = rest.strip()
        if name == ".arch":
            try:
                self.layout = resolve_layout(rest)
            except UnknownArchError as exc:
                raise self.error(str(exc)) from None
        elif name == ".insn":
            parts = rest.split(",")
            if len(parts) != 4:
                raise self.bad("'.insn' takes four numbers: code, jt, jf, k")
            code = self.number(parts[0], "code", 0xFFFF, signed=False)
            jt = self.number(parts[1], "jt", 0xFF, signed=False)
            jf = self.number(parts[2], "jf", 0xFF, signed=False)
            k = self.number(parts[3], "k")
            self.emit(_Item(self.line, text, code, k, jt, jf))
        else:
            raise self.error(f"unknown directive {_show(name)} (known: .arch, .insn)")

    def instruction(self, mn: str, ops: str) -> _Item:
        item = _Item(self.line, self.text, 0)
        if mn in ("neg", "tax", "txa"):
            if ops:
                raise self.bad(f"'{mn}' takes no operand")
            item.code = {"neg": op.BPF_ALU | op.BPF_NEG, "tax": op.BPF_MISC | op.BPF_TAX,
                         "txa": op.BPF_MISC | op.BPF_TXA}[mn]
        elif mn in _SIZES:
            self.load(item, mn, ops)
        elif mn in ("ldi", "ldxi"):
            item.code = op.BPF_LD | op.BPF_IMM if mn == "ldi" else op.BPF_LDX | op.BPF_IMM
            item.k = self.value(ops[1:] if ops.startswith("#") else ops)
        elif mn in ("ldx", "ldxb"):
            self.load_x(item, mn, ops)
        elif mn in ("st", "stx"):
            m = _MEM.fullmatch(ops)
            if not m:
                raise self.bad(f"'{mn}' stores to a scratch cell: {mn} M[k]")
            item.code = op.BPF_ST if mn == "st" else op.BPF_STX
            item.k = self.number(m.group(1))
        elif mn in ("ja", "jmp"):
            item.code = op.BPF_JMP | op.BPF_JA
            self.set_target(item, "k", ops)
        elif mn in _JUMPS:
            self.cond_jump(item, mn, ops)
        elif mn in _ALU:
            item.code, item.k = self.source_operand(op.BPF_ALU | _ALU[mn], mn, ops)
        else:
            self.ret(item, ops)
        return item

    def set_target(self, item: _Item, slot: str, text: str) -> None:
        if not text:
            raise self.bad("missing jump target")
        tgt = self.target(text)
        if isinstance(tgt, str):
            item.targets[slot] = tgt
        elif slot != "k" and tgt > 0xFF:
            raise self.bad(f"offset +{tgt} does not fit in {slot} (at most +255)")
        else:
            setattr(item, slot, tgt)

    def source_operand(self, base: int, mn: str, text: str) -> tuple[int, int]:
        if _X.fullmatch(text):
            return base | op.BPF_X, 0
        if text.startswith("#"):
            return base | op.BPF_K, self.immediate(text)
        raise self.bad(f"'{mn}' takes '#k' or 'x', not {_show(text)}")

    def load(self, item: _Item, mn: str, ops: str) -> None:
        size = _SIZES[mn]
        if _LEN.fullmatch(ops):
            if mn != "ld":
                raise self.bad("only 'ld' (32-bit) loads the length: 'ld #len'")
            item.code = op.BPF_LD | op.BPF_W | op.BPF_LEN
            return
        m = _EXT.fullmatch(ops)
        if m and m.group(1).lower() in symbols.SKF_AD:
            item.code = op.BPF_LD | size | op.BPF_ABS
            item.k = symbols.SKF_AD_OFF + symbols.SKF_AD[m.group(1).lower()]
            return
        if ops.startswith("#"):
            if mn != "ld":
                raise self.bad(f"'{mn}' has no immediate form; use 'ld #k'")
            item.code, item.k = op.BPF_LD | op.BPF_IMM, self.immediate(ops)
            return
        m = _MEM.fullmatch(ops)
        if m:
            if mn != "ld":
                raise self.bad(f"scratch cells are 32-bit: 'ld M[k]', not '{mn}'")
            item.code, item.k = op.BPF_LD | op.BPF_MEM, self.number(m.group(1))
            return
        m = _IND.fullmatch(ops)
        if m:
            item.code = op.BPF_LD | size | op.BPF_IND
            item.k = self.number(m.group(1)) if m.group(1) else 0
            return
        m = _ABS.fullmatch(ops)
        if m:
            item.code, item.k = op.BPF_LD | size | op.BPF_ABS, self.offset(m.group(1))
            return
        raise self.bad(f"'{mn}' takes [k], [x + k], #k, M[k] or #len, not {_show(ops)}")

    def offset(self, text: str) -> int:
        try:
            off = symbols.field_offset(text, self.layout)
        except ValueError as exc:
            raise self.bad(str(exc)) from None
        if off is not None:
            return off
        if _NUMBER.fullmatch(text.strip()):
            return self.number(text)
        raise self.bad(f"[{text}]: expected a byte offset or a seccomp_data word (nr, arch, "
                       f"ip.lo, ip.hi, args[0..5].lo, args[0..5].hi)")

    def load_x(self, item: _Item, mn: str, ops: str) -> None:
        m = _MSH.fullmatch(ops)
        if m:
            if self.number(m.group(1)) != 4 or self.number(m.group(3)) != 0xF:
                raise self.bad("the only BPF_MSH form is 4*([k]&0xf)")
            item.code, item.k = op.BPF_LDX | op.BPF_B | op.BPF_MSH, self.number(m.group(2))
            return
        if mn == "ldxb":
            raise self.bad("'ldxb' only has the form 4*([k]&0xf)")
        if _LEN.fullmatch(ops):
            item.code = op.BPF_LDX | op.BPF_W | op.BPF_LEN
            return
        if ops.startswith("#"):
            item.code, item.k = op.BPF_LDX | op.BPF_IMM, self.immediate(ops)
            return
        m = _MEM.fullmatch(ops)
        if m:
            item.code, item.k = op.BPF_LDX | op.BPF_MEM, self.number(m.group(1))
            return
        raise self.bad(f"'ldx' takes #k, M[k], #len or 4*([k]&0xf), not {_show(ops)}")

    def cond_jump(self, item: _Item, mn: str, ops: str) -> None:
        parts = [p.strip() for p in ops.split(",")]
        if len(parts) not in (2, 3):
            raise self.bad(f"'{mn}' takes a comparand and one or two labels: {mn} #k, Lt, Lf")
        bpf_op, negated = _JUMPS[mn]
        item.code, item.k = self.source_operand(op.BPF_JMP | bpf_op, mn, parts[0])
        if len(parts) == 2:
            self.set_target(item, "jf" if negated else "jt", parts[1])
        else:
            first, second = ("jf", "jt") if negated else ("jt", "jf")
            self.set_target(item, first, parts[1])
            self.set_target(item, second, parts[2])

    def ret(self, item: _Item, ops: str) -> None:
        if _A.fullmatch(ops):
            item.code = op.BPF_RET | op.BPF_A
            return
        if _X.fullmatch(ops):
            item.code = op.BPF_RET | op.BPF_X
            return
        item.code = op.BPF_RET | op.BPF_K
        bare = ops[1:].strip() if ops.startswith("#") else ops
        if _NUMBER.fullmatch(bare):
            item.k = self.number(bare)
            return
        m = _ACTION.fullmatch(ops)
        if not m:
            raise self.bad("'ret' takes an action (ALLOW, ERRNO(n), KILL_PROCESS...), #k, a or x")
        name = m.group(1).upper()
        if name.startswith("SECCOMP_RET_") and name[12:] in actions.ACTION_VALUES:
            name = name[12:]
        if name not in actions.ACTION_VALUES:
            if m.group(2) is None and name in symbols.SECCOMP_RET:
                item.k = symbols.SECCOMP_RET[name]
                return
            raise self.bad(f"unknown action {_show(m.group(1))}; expected one of "
                           f"{', '.join(sorted(actions.ACTION_VALUES))} (with (n) for data), "
                           f"#k, a or x")
        data = 0
        if m.group(2):
            arg = m.group(2)
            errnos = symbols.errno_table(self.layout)
            data = errnos[arg] if arg in errnos else self.number(arg, "action data", 0xFFFF,
                                                                  signed=False)
        item.k = actions.ACTION_VALUES[name] | data

    # --- second pass ---
    def finish(self) -> Program:
        if self.pending:
            name, line = self.pending[0]
            raise self.error(f"label '{name}' is not followed by an instruction", line)
        if not self.items:
            raise LoadError("no instructions (empty assembler text)", source=self.source)
        insns = []
        for index, item in enumerate(self.items):
            for slot, name in item.targets.items():
                setattr(item, slot, self.resolve(index, item, slot, name))
            insns.append(Instruction(item.code, item.jt, item.jf, item.k))
        return Program(insns, source=self.source)

    def resolve(self, index: int, item: _Item, slot: str, name: str) -> int:
        if name not in self.labels:
            close = difflib.get_close_matches(name, self.labels, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise self.error(f"undefined label '{name}' in {_show(item.text)}{hint}", item.line)
        target, line = self.labels[name]
        off = target - index - 1
        if off < 0:
            raise self.error(f"jump to '{name}' (line {line}) goes backward or to itself "
                             f"in {_show(item.text)}: classic BPF jumps only forward", item.line)
        if slot != "k" and off > 0xFF:
            raise self.error(f"label '{name}' (line {line}) is {off} instructions ahead in "
                             f"{_show(item.text)}: a conditional jump reaches at most 255 "
                             f"(jump to a 'ja' instead)", item.line)
        return off


def _show(text: str, limit: int = 60) -> str:
    """Quote offending text for a message, shortened and with control characters escaped."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def _octal(body: str) -> str:
    try:
        return str(int(body, 8))
    except ValueError:
        return "invalid octal"


def _strip_comments(text: str, source: str | None) -> str:
    def blank(m: re.Match) -> str:
        return " " + "\n" * m.group().count("\n")
    out = _COMMENTS.sub(blank, text)
    where = out.find("/*")
    if where >= 0:
        raise LoadError("unterminated /* comment", source=source,
                        line=out.count("\n", 0, where) + 1)
    return out


def parse(text: str, *, arch: "str | Layout | None" = None, source: str | None = None) -> Program:
    """Assemble bpf_asm text into a :class:`~bpfjit.program.Program` (little-endian).

    ``arch`` picks the layout and syscall table for names until a ``.arch``
    line says otherwise (default x86_64). Raises
    :class:`~bpfjit.errors.LoadError` naming the line and the offending text.
    """
    if not isinstance(text, str):
        raise TypeError(f"asm.parse() takes text (str), not {type(text).__name__}")
    bad = _CONTROL.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise LoadError(f"control character U+{ord(bad.group()):04X} in assembler text: this "
                        f"looks like binary data (a raw filter needs format='raw')",
                        source=source, line=line)
    try:
        lay = resolve_layout(arch if arch is not None else DEFAULT_ARCH)
    except UnknownArchError as exc:
        raise LoadError(str(exc), source=source) from None
    asm = _Assembler(lay, source)
    for lineno, line in enumerate(_strip_comments(text, source).split("\n"), start=1):
        asm.feed(lineno, line)
    return asm.finish()
