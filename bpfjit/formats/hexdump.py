"""Text in and out: the raw ``struct sock_filter`` bytes written as hex digits.

Digits are bytes in the order written, two per byte, never numbers: ``20 00
00 00 04 00 00 00`` and ``0x20,0x00,...`` and ``2000000004000000`` are the
same instruction (little-endian ``ld [4]``). Tolerated: whitespace, commas,
colons, ``0x`` prefixes, ``#``/``;``/``//`` comments, and the output of
``xxd`` and ``hexdump -C`` (offset column and ASCII column are skipped).

The byte order is, in this order of precedence: the ``endian`` argument, a
``# endian: big`` (or ``little``) line (which :func:`dump` writes), or
detection from the opcodes as for raw files (:func:`bpfjit.formats.raw.detect_endian`).
An argument that contradicts the line is an error.
"""
from __future__ import annotations

import re

from ..errors import LoadError
from ..program import Program
from . import raw

_ENDIAN = re.compile(r"^\s*#\s*endian\s*:\s*(\w+)\s*$", re.IGNORECASE | re.MULTILINE)
_COMMENT = re.compile(r"(?:#|;|//).*$")
_XXD = re.compile(r"^\s*[0-9a-fA-F]{4,16}:\s")
_HEXDUMP_C = re.compile(r"^[0-9a-fA-F]{7,16}(?:\s\s.*\|.*\|)?\s*$")
_SEPARATORS = re.compile(r"[\s,:]+")
_HEX = re.compile(r"[0-9a-fA-F]+")


def _dump_style(lines: list[str]) -> str:
    """``xxd``, ``hexdump-C`` or ``plain``."""
    body = [ln for ln in lines if ln.strip()]
    if body and all(_XXD.match(ln) for ln in body):
        return "xxd"
    if body and all(_HEXDUMP_C.match(ln) or ln.strip() == "*" for ln in body) \
            and any("|" in ln for ln in body):
        return "hexdump-C"
    return "plain"


def decode(text: str, *, source: str | None = None) -> bytes:
    """The bytes the hex text spells (no byte-order decision yet)."""
    if not isinstance(text, str):
        raise TypeError(f"hexdump.decode() takes text (str), not {type(text).__name__}")
    lines = text.split("\n")
    style = _dump_style(lines)
    out = bytearray()
    for lineno, line in enumerate(lines, start=1):
        if style == "xxd":
            line = line.split(":", 1)[1] if ":" in line else ""
            line = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        elif style == "hexdump-C":
            if line.strip() == "*":
                raise LoadError("'*' means hexdump left out repeated lines; dump with "
                                "'hexdump -v -C'", source=source, line=lineno)
            line = line.split("|", 1)[0]
            line = line.strip().split(None, 1)[1] if len(line.split()) > 1 else ""
        else:
            line = _COMMENT.sub("", line)
        for token in _SEPARATORS.split(line.strip()):
            if not token:
                continue
            digits = token[2:] if token[:2] in ("0x", "0X") else token
            if not _HEX.fullmatch(digits):
                raise LoadError(f"{token[:40]!r} is not hex (expected pairs of hex digits, one "
                                f"pair per byte)", source=source, line=lineno)
            if len(digits) % 2:
                raise LoadError(f"{token[:40]!r} has an odd number of hex digits; each byte "
                                f"is two digits (write 0x05, not 0x5)", source=source,
                                line=lineno)
            out += bytes.fromhex(digits)
    return bytes(out)


def parse(text: str, *, endian: str | None = None, source: str | None = None) -> Program:
    """Read hex text into a Program (see the module docstring for the byte order)."""
    data = decode(text, source=source)
    declared = None
    m = _ENDIAN.search(text)
    if m:
        declared = m.group(1).lower()
        if declared not in ("little", "big"):
            line = text.count("\n", 0, m.start()) + 1
            raise LoadError(f"'# endian: {m.group(1)}': the byte order is little or big",
                            source=source, line=line)
    if endian is not None and declared is not None and endian != declared:
        raise LoadError(f"endian={endian!r} was asked for, but the text says "
                        f"'# endian: {declared}'", source=source)
    if not data:
        raise LoadError("no hex bytes in the text", source=source)
    return raw.load(data, endian or declared, source=source)


def dump(program: Program, *, endian: str | None = None) -> str:
    """One instruction per line, 8 hex bytes, after an ``# endian:`` line."""
    order = endian or program.endian
    data = program.to_bytes(order)
    lines = [f"# struct sock_filter[{len(program)}], code and k {order}-endian",
             f"# endian: {order}"]
    for i in range(0, len(data), 8):
        lines.append(" ".join(f"{b:02x}" for b in data[i:i + 8]))
    return "\n".join(lines) + "\n"


def looks_like_hex(text: str) -> bool:
    """True when ``text`` is xxd / hexdump -C output, or decodes as whole instructions of hex."""
    if _dump_style(text.split("\n")) != "plain":
        return True
    try:
        data = decode(text)
    except LoadError:
        return False
    return len(data) > 0 and len(data) % 8 == 0
