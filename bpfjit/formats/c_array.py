"""Text in and out: C arrays of ``struct sock_filter`` (``tcpdump -dd``, ``bpf_asm -c``, hand-written C).

Reads, in order:

- ``{ 0x20, 0, 0, 0x00000004 },`` lines, as ``tcpdump -dd`` and ``bpf_asm -c``
  print them (any C integer: ``0x`` hex, decimal, ``0`` octal, ``U``/``L``
  suffixes; designated ``{ .code = ..., .k = ... }`` too);
- ``BPF_STMT(code, k)`` and ``BPF_JUMP(code, k, jt, jf)`` (include/uapi/linux/filter.h);
- inside ``struct sock_filter NAME[] = { ... };`` (or ``struct bpf_insn``) when
  the text has one, ignoring everything around it; else the whole text.

Fields are C constant expressions (``| & + - * / % << >> ~``, parentheses,
casts to integer types) over numbers and these names: ``BPF_*`` and
``SKF_AD_*`` (linux/filter.h, bpf_common.h), ``SECCOMP_RET_*``,
``AUDIT_ARCH_*``, ``__NR_*``/``SYS_*`` (syscall numbers for ``arch``,
default x86_64), errno names valid for that arch (``EPERM``...),
``offsetof(struct seccomp_data, nr | arch | instruction_pointer | args[i])``,
``sizeof(struct seccomp_data)``, and object-like ``#define NAME value`` from
the same text. Function-like macros other than BPF_STMT/BPF_JUMP, and
``#if``/``#ifdef`` inside the array, are refused with the advice to run
``cc -E`` first: evaluating them would need a C preprocessor.

A value must fit its field (code u16, jt/jf u8, k u32; a negative k is two's
complement, as C converts it); anything else is a LoadError with the line.
"""
from __future__ import annotations

import re

from .. import opcodes as op
from ..errors import LoadError, UnknownArchError
from ..program import Instruction, Program
from ..seccomp.layouts import X32_SYSCALL_BIT, Layout
from ..seccomp.layouts import layout as resolve_layout
from . import symbols
from .asm import DEFAULT_ARCH

_COMMENT = re.compile(r'"(?:\\.|[^"\\\n])*"|/\*.*?\*/|//[^\n]*', re.DOTALL)
_TOKEN = re.compile(r"""(?P<ws>[ \t\r\f\v]+)|(?P<nl>\n)
    |(?P<num>(?:0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)[uUlL]*)
    |(?P<id>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op><<|>>|\#\#|[-+*/%&|^~(){}\[\],.=;!:?<>\#"'])""", re.VERBOSE)
_ARRAY = re.compile(r"\b(?:sock_filter|bpf_insn)\s+([A-Za-z_]\w*)\s*\[[^\]]*\]\s*=\s*\{")
_DIRECTIVE = re.compile(r"^[ \t]*#[ \t]*(\w*)(.*)$", re.MULTILINE)
_DEFINE = re.compile(r"([A-Za-z_]\w*)(\()?\s*(.*)", re.DOTALL)

_BPF_NAMES = {name: getattr(op, name) for name in dir(op)
              if name.startswith("BPF_") and isinstance(getattr(op, name), int)}
_SKF = {"SKF_AD_OFF": -0x1000, "SKF_NET_OFF": -0x100000, "SKF_LL_OFF": -0x200000,
        "SKF_AD_PROTOCOL": 0, "SKF_AD_PKTTYPE": 4, "SKF_AD_IFINDEX": 8, "SKF_AD_NLATTR": 12,
        "SKF_AD_NLATTR_NEST": 16, "SKF_AD_MARK": 20, "SKF_AD_QUEUE": 24, "SKF_AD_HATYPE": 28,
        "SKF_AD_RXHASH": 32, "SKF_AD_CPU": 36, "SKF_AD_ALU_XOR_X": 40, "SKF_AD_VLAN_TAG": 44,
        "SKF_AD_VLAN_TAG_PRESENT": 48, "SKF_AD_PAY_OFFSET": 52, "SKF_AD_RANDOM": 56,
        "SKF_AD_VLAN_TPID": 60, "SKF_AD_MAX": 64}
_SECCOMP_DATA = {"nr": 0, "arch": 4, "instruction_pointer": 8}
#: cast target -> (bits, signed)
_TYPES = {"char": (8, True), "short": (16, True), "int": (32, True), "long": (64, True),
          "__u8": (8, False), "__u16": (16, False), "__u32": (32, False), "__u64": (64, False),
          "__s8": (8, True), "__s16": (16, True), "__s32": (32, True), "__s64": (64, True),
          "u8": (8, False), "u16": (16, False), "u32": (32, False), "u64": (64, False),
          "uint8_t": (8, False), "uint16_t": (16, False), "uint32_t": (32, False),
          "uint64_t": (64, False), "int8_t": (8, True), "int16_t": (16, True),
          "int32_t": (32, True), "int64_t": (64, True), "size_t": (64, False)}
_FIELDS = (("code", 0xFFFF), ("jt", 0xFF), ("jf", 0xFF), ("k", 0xFFFFFFFF))


class _Tok:
    __slots__ = ("kind", "text", "line")

    def __init__(self, kind: str, text: str, line: int):
        self.kind, self.text, self.line = kind, text, line

    def __repr__(self) -> str:
        return repr(self.text)


class _Parser:
    def __init__(self, tokens: list[_Tok], lay: Layout, defines: dict, source: str | None,
                 lines: list[str], depth: int = 0):
        self.toks = tokens
        self.pos = 0
        self.layout = lay
        self.defines = defines
        self.source = source
        self.lines = lines
        self.depth = depth
        self.errnos = symbols.errno_table(lay)

    # --- token access ---
    def peek(self, ahead: int = 0) -> _Tok | None:
        i = self.pos + ahead
        return self.toks[i] if i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end of the array")
        self.pos += 1
        return tok

    def accept(self, text: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.text == text:
            self.pos += 1
            return True
        return False

    def expect(self, text: str, what: str) -> _Tok:
        tok = self.peek()
        if tok is None or tok.text != text:
            raise self.error(f"expected '{text}' {what}", tok)
        self.pos += 1
        return tok

    def error(self, message: str, tok: _Tok | None = None) -> LoadError:
        if tok is None:
            tok = self.peek() or (self.toks[-1] if self.toks else None)
        line = tok.line if tok else None
        near = ""
        if tok is not None:
            near = f" at {tok.text!r}"
            if line is not None and 0 < line <= len(self.lines):
                snippet = self.lines[line - 1].strip()
                near += f" in {snippet[:60]!r}" if snippet else ""
        return LoadError(message + near, source=self.source, line=line)

    # --- the array ---
    def elements(self) -> list[Instruction]:
        out = []
        while self.peek() is not None:
            if self.accept(","):
                continue
            tok = self.peek()
            if tok.text == "{":
                out.append(self.brace())
            elif tok.text in ("BPF_STMT", "BPF_JUMP"):
                out.append(self.macro())
            elif tok.text == "}" or tok.text == ";":
                raise self.error("unexpected text after the array", tok)
            elif tok.kind == "id" and self.peek(1) is not None and self.peek(1).text == "(":
                raise self.error(f"macro {tok.text}(...) is not understood (only BPF_STMT and "
                                 f"BPF_JUMP); run the file through the C preprocessor "
                                 f"(cc -E) first", tok)
            else:
                raise self.error("expected '{ code, jt, jf, k }', BPF_STMT(...) or "
                                 "BPF_JUMP(...)", tok)
        return out

    def brace(self) -> Instruction:
        self.expect("{", "")
        values: dict[str, int] = {}
        if self.peek() is not None and self.peek().text == ".":
            while not self.accept("}"):
                self.expect(".", "before a field name")
                name = self.take()
                if name.text not in ("code", "jt", "jf", "k"):
                    raise self.error("struct sock_filter has fields code, jt, jf, k", name)
                self.expect("=", f"after .{name.text}")
                values[name.text] = self.field(name.text)
                if not self.accept(","):
                    self.expect("}", "closing the instruction")
                    break
            fields = [values.get(f, 0) for f, _ in _FIELDS]
        else:
            fields = []
            for i, (name, _) in enumerate(_FIELDS):
                fields.append(self.field(name))
                if i < 3:
                    self.expect(",", f"after {name}; an instruction is {{ code, jt, jf, k }}")
            self.accept(",")
            self.expect("}", "closing the instruction (4 fields: code, jt, jf, k)")
        return Instruction(*fields)

    def macro(self) -> Instruction:
        name = self.take()
        self.expect("(", f"after {name.text}")
        if name.text == "BPF_STMT":
            code = self.field("code")
            self.expect(",", "in BPF_STMT(code, k)")
            k = self.field("k")
            fields = [code, 0, 0, k]
        else:
            code = self.field("code")
            self.expect(",", "in BPF_JUMP(code, k, jt, jf)")
            k = self.field("k")
            self.expect(",", "in BPF_JUMP(code, k, jt, jf)")
            jt = self.field("jt")
            self.expect(",", "in BPF_JUMP(code, k, jt, jf)")
            jf = self.field("jf")
            fields = [code, jt, jf, k]
        self.expect(")", f"closing {name.text}(...)")
        return Instruction(*fields)

    def field(self, name: str) -> int:
        tok = self.peek()
        value = self.expr()
        top = dict(_FIELDS)[name]
        if name == "k" and -(1 << 31) <= value < 0:
            return value & top
        if not 0 <= value <= top:
            raise self.error(f"{name} = {value} does not fit (0..{top:#x})", tok)
        return value

    # --- constant expressions (C precedence) ---
    def expr(self) -> int:
        return self.binary(0)

    _LEVELS = (("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> int:
        if level == len(self._LEVELS):
            return self.unary()
        value = self.binary(level + 1)
        while self.peek() is not None and self.peek().text in self._LEVELS[level]:
            optok = self.take()
            rhs = self.binary(level + 1)
            value = self.apply(optok, value, rhs)
        return value

    def apply(self, optok: _Tok, a: int, b: int) -> int:
        o = optok.text
        if o in ("/", "%"):
            if b == 0:
                raise self.error("division by zero in a constant expression", optok)
            q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)   # C truncates
            return q if o == "/" else a - q * b
        if o in ("<<", ">>"):
            if b < 0 or b >= 64:
                raise self.error(f"shift by {b} in a constant expression", optok)
            return a << b if o == "<<" else a >> b
        return {"|": a | b, "^": a ^ b, "&": a & b, "+": a + b, "-": a - b, "*": a * b}[o]

    def unary(self) -> int:
        tok = self.peek()
        if tok is None:
            raise self.error("expected a value")
        if tok.text in ("-", "+", "~", "!"):
            self.take()
            v = self.unary()
            return {"-": -v, "+": v, "~": ~v, "!": int(not v)}[tok.text]
        if tok.text == "(" and self.is_cast():
            self.take()
            bits, signed = self.cast_type()
            v = self.unary() & ((1 << bits) - 1)
            return v - (1 << bits) if signed and v >> (bits - 1) else v
        return self.primary()

    def is_cast(self) -> bool:
        nxt = self.peek(1)
        return nxt is not None and (nxt.text in _TYPES or nxt.text in ("unsigned", "signed"))

    def cast_type(self) -> tuple[int, bool]:
        words = []
        while not self.accept(")"):
            words.append(self.take().text)
        signed = "unsigned" not in words
        base = [w for w in words if w not in ("unsigned", "signed", "const")]
        if not base:
            return 32, signed
        if base[0] not in _TYPES:
            raise self.error(f"unknown type {' '.join(words)!r} in a cast")
        bits, own_sign = _TYPES[base[0]]
        return bits, signed and own_sign

    def primary(self) -> int:
        tok = self.take()
        if tok.kind == "num":
            return self.number(tok)
        if tok.text == "(":
            v = self.expr()
            self.expect(")", "closing '('")
            return v
        if tok.kind == "id":
            if tok.text == "offsetof":
                return self.offsetof(tok)
            if tok.text == "sizeof":
                return self.sizeof(tok)
            return self.name(tok)
        raise self.error("expected a number or a name", tok)

    def number(self, tok: _Tok) -> int:
        t = tok.text.rstrip("uUlL")
        if t[:2] in ("0x", "0X"):
            return int(t, 16)
        if t[:2] in ("0b", "0B"):
            return int(t[2:], 2)
        if len(t) > 1 and t[0] == "0":
            if not re.fullmatch(r"[0-7]+", t):
                raise self.error(f"{t} is not a valid octal number (C reads a leading 0 as octal)",
                                 tok)
            return int(t, 8)
        return int(t)

    def name(self, tok: _Tok) -> int:
        n = tok.text
        if n in self.defines:
            return self.define(tok)
        for table in (_BPF_NAMES, _SKF, symbols.SECCOMP_RET, symbols.AUDIT_ARCHES, self.errnos):
            if n in table:
                return table[n]
        if n in ("X32_SYSCALL_BIT", "__X32_SYSCALL_BIT"):
            return X32_SYSCALL_BIT
        if n.startswith(("__NR_", "SYS_")):
            try:
                return symbols.syscall_number(n, self.layout)
            except (LookupError, UnknownArchError) as exc:
                raise self.error(str(exc).strip("'\""), tok) from None
        if n in symbols.ERRNO_GENERIC:
            raise self.error(f"{n} differs between architectures; on {self.layout.name} write "
                             f"the number", tok)
        raise self.error(f"unknown name {n!r} (not a BPF_*, SECCOMP_RET_*, AUDIT_ARCH_*, "
                         f"__NR_*, errno or #define'd constant)", tok)

    def define(self, tok: _Tok) -> int:
        body = self.defines[tok.text]
        if body is None:
            raise self.error(f"{tok.text} is a function-like macro; run the file through the C "
                             f"preprocessor (cc -E) first", tok)
        if self.depth > 32:
            raise self.error(f"#define {tok.text} expands into itself", tok)
        sub = _Parser([_Tok(t.kind, t.text, tok.line) for t in body], self.layout, self.defines,
                      self.source, self.lines, self.depth + 1)
        value = sub.expr()
        if sub.peek() is not None:
            raise self.error(f"#define {tok.text} is not a constant expression", tok)
        return value

    def offsetof(self, tok: _Tok) -> int:
        self.expect("(", "after offsetof")
        self.expect("struct", "in offsetof(struct seccomp_data, field)")
        self.expect("seccomp_data", "in offsetof(struct seccomp_data, field)")
        self.expect(",", "in offsetof(struct seccomp_data, field)")
        field = self.take()
        if field.text == "args":
            self.expect("[", "after args")
            index = self.expr()
            self.expect("]", "closing args[")
            if not 0 <= index < 6:
                raise self.error(f"seccomp_data has args[0] to args[5], not args[{index}]", field)
            off = 16 + 8 * index
        elif field.text in _SECCOMP_DATA:
            off = _SECCOMP_DATA[field.text]
        else:
            raise self.error("struct seccomp_data has nr, arch, instruction_pointer, args[6]",
                             field)
        self.expect(")", "closing offsetof(...)")
        return off

    def sizeof(self, tok: _Tok) -> int:
        self.expect("(", "after sizeof")
        self.expect("struct", "(only sizeof(struct seccomp_data) is known)")
        self.expect("seccomp_data", "(only sizeof(struct seccomp_data) is known)")
        self.expect(")", "closing sizeof(...)")
        return 64


def _tokens(text: str, first_line: int, source: str | None) -> list[_Tok]:
    out, line, pos = [], first_line, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise LoadError(f"unexpected character {text[pos]!r} in a C array", source=source,
                            line=line)
        kind = m.lastgroup
        if kind == "nl":
            line += 1
        elif kind != "ws":
            out.append(_Tok(kind, m.group(), line))
        pos = m.end()
    return out


def _preprocess(text: str, source: str | None) -> tuple[str, dict, list[tuple[int, str]]]:
    """Blank out comments and directives; collect #defines; list other directives by line."""
    text = _COMMENT.sub(lambda m: m.group() if m.group().startswith('"')
                        else " " + "\n" * m.group().count("\n"), text)
    if "/*" in text:
        line = text.count("\n", 0, text.index("/*")) + 1
        raise LoadError("unterminated /* comment", source=source, line=line)
    defines: dict[str, list[_Tok] | None] = {}
    others: list[tuple[int, str]] = []

    def directive(m: re.Match) -> str:
        line = joined.count("\n", 0, m.start()) + joined.count("\x00", 0, m.start()) + 1
        name, rest = m.group(1), m.group(2).replace("\x00", " ")
        if name == "define":
            d = _DEFINE.fullmatch(rest.strip())
            if d:
                defines[d.group(1)] = None if d.group(2) else _tokens(d.group(3), line, source)
        elif name not in ("include", "pragma", "undef", "error", "warning", "line", ""):
            others.append((line, f"#{name}"))
        return "\n" * m.group().count("\x00")

    # join continuation lines of directives before reading them, keeping line numbers
    joined = re.sub(r"\\\n", lambda m: " \x00", text)
    stripped = _DIRECTIVE.sub(directive, joined)
    stripped = stripped.replace("\x00", "\n")
    return stripped, defines, others


def parse(text: str, *, source: str | None = None, arch: "str | Layout | None" = None) -> Program:
    """Read a C array of ``struct sock_filter`` (see the module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"c_array.parse() takes text (str), not {type(text).__name__}")
    try:
        lay = resolve_layout(arch if arch is not None else DEFAULT_ARCH)
    except UnknownArchError as exc:
        raise LoadError(str(exc), source=source) from None
    lines = text.splitlines()
    body, defines, directives = _preprocess(text, source)
    arrays = list(_ARRAY.finditer(body))
    if len(arrays) > 1:
        where = ", ".join(f"{m.group(1)} (line {body.count(chr(10), 0, m.start()) + 1})"
                          for m in arrays)
        raise LoadError(f"{len(arrays)} sock_filter arrays: {where}; keep one", source=source)
    start, first_line = 0, 1
    if arrays:
        start = arrays[0].end()
        first_line = body.count("\n", 0, start) + 1
    tokens = _tokens(body[start:], first_line, source)
    if arrays:
        depth = 1
        for i, tok in enumerate(tokens):
            depth += {"{": 1, "}": -1}.get(tok.text, 0)
            if depth == 0:
                tokens = tokens[:i]
                break
        else:
            raise LoadError(f"the array {arrays[0].group(1)} is never closed with '}}'",
                            source=source, line=first_line)
        last = tokens[-1].line if tokens else first_line
        for line, name in directives:
            if first_line <= line <= last:
                raise LoadError(f"preprocessor {name} inside the array: run the file through "
                                f"the C preprocessor (cc -E) first", source=source, line=line)
    elif directives:
        line, name = directives[0]
        raise LoadError(f"preprocessor {name} outside any 'struct sock_filter NAME[] = {{...}}': "
                        f"run the file through the C preprocessor (cc -E) first",
                        source=source, line=line)
    insns = _Parser(tokens, lay, defines, source, lines).elements()
    if not insns:
        raise LoadError("no instructions in the C array", source=source)
    return Program(insns, source=source)


def dump(program: Program) -> str:
    """``{ 0x20, 0, 0, 0x00000004 },`` one instruction per line, as ``bpf_asm -c`` prints."""
    return "".join(f"{{ 0x{i.code:02x}, {i.jt:2d}, {i.jf:2d}, 0x{i.k:08x} }},\n" for i in program)
