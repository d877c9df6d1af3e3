"""Decoding: strace's text for one call's arguments -> the raw register values, or unknown.

strace prints an argument as a number (``3``, ``-1``, ``0x7ffd5000``, ``0644``),
a flag or constant expression (``O_RDONLY|O_CLOEXEC``, ``AT_FDCWD``,
``SOCK_STREAM|SOCK_CLOEXEC``, ``21<<MAP_HUGE_SHIFT``), ``NULL``, or the
contents behind a pointer: a string ``"..."``, a struct ``{...}``, an array or
set ``[...]``/``~[...]``. The register held the pointer, which strace does not
show, so such an argument is *unknown* (``None``). Arguments strace does not
print at all (``openat`` without ``O_CREAT`` shows no mode; ``getpid()`` none)
are unknown too: the register held whatever the caller left there.

A negative value (``-1``, ``AT_FDCWD``) is known only in its low 32 bits. strace
prints an ``int`` argument as a C int, but the register is 64 bits wide and what
its upper half holds is up to the caller: glibc on x86_64 passes an ``int``
zero-extended (``strace -e raw=all`` shows ``AT_FDCWD`` as ``0xffffff9c`` and
the fd ``-1`` of ``mmap`` as ``0xffffffff``), a ``long`` argument such as an
``lseek`` offset is sign-extended. Such an argument is evaluated zero-extended and
its high word is marked unknown.

``clone`` is printed with named arguments in strace's own order; they are put
back in the register order of the arch (kernel/fork.c ``CONFIG_CLONE_BACKWARDS*``).
"""
from __future__ import annotations

import re

from . import constants

U64 = (1 << 64) - 1

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"(?:\.\.\.)?')
_COMMENT = re.compile(r"/\*.*?\*/")
_FD_PATH = re.compile(r"(?<=[0-9A-Z])<(?!<)[^<>]*(?:<[^<>]*>[^<>]*)*>")   # -y: 3</etc/passwd>
_RESUMING = re.compile(r"<\.\.\. [^>]*>")
_STRUCTURAL = re.compile(r"[()\[\]{},]")
_NUMBER = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|[1-9][0-9]*|0[0-7]*)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAMED = re.compile(r"([a-z_]+)=(.*)", re.S)

#: register index of each clone argument name strace prints, per register order
_CLONE_DEFAULT = {"flags": 0, "child_stack": 1, "stack": 1, "parent_tid": 2,
                  "parent_tidptr": 2, "tls": 3, "newtls": 3, "child_tidptr": 4, "child_tid": 4}
_CLONE_X86_64 = {"flags": 0, "child_stack": 1, "stack": 1, "parent_tid": 2,
                 "parent_tidptr": 2, "child_tidptr": 3, "child_tid": 3, "tls": 4, "newtls": 4}
_CLONE_S390 = {"child_stack": 0, "stack": 0, "flags": 1, "parent_tid": 2, "parent_tidptr": 2,
               "child_tidptr": 3, "child_tid": 3, "tls": 4, "newtls": 4}
CLONE_ORDER = {"x86_64": _CLONE_X86_64, "x32": _CLONE_X86_64, "s390x": _CLONE_S390,
               "s390": _CLONE_S390}


def collapse(text: str) -> str:
    """``text`` with strings, comments and fd paths reduced so commas and brackets are structure."""
    if '"' in text:
        text = _STRING.sub('""', text)
    if "/*" in text:
        text = _COMMENT.sub("", text)
    if "<" in text:
        text = _RESUMING.sub("?", _FD_PATH.sub("", text))
    return text


def split_call(text: str) -> tuple[list[str], str] | None:
    """(argument texts, text after the closing parenthesis) of ``args...) = ret``.

    ``text`` starts just after ``name(`` and was :func:`collapse`\\ d. None when the
    closing parenthesis is missing (a truncated line).
    """
    depth = 0
    start = 0
    parts: list[str] = []
    for m in _STRUCTURAL.finditer(text):
        c = m.group()
        if c == ",":
            if depth == 0:
                parts.append(text[start:m.start()].strip())
                start = m.end()
        elif c in "([{":
            depth += 1
        elif depth:
            depth -= 1
        elif c == ")":
            last = text[start:m.start()].strip()
            if last or parts:
                parts.append(last)
            return parts, text[m.end():]
    return None


def value(text: str, names: "dict[str, int] | None") -> int | None:
    """The raw register value an argument's text stands for, or None if it is not recorded."""
    text = text.strip()
    if not text:
        return None
    m = _NUMBER.fullmatch(text)
    if m:
        return _number(text)
    c = text[0]
    if c in '"[{~@' or text == "?" or text.endswith("..."):
        return None
    if names is None:
        return None
    if "|" in text or "<<" in text:
        total = 0
        for term in text.split("|"):
            v = _term(term.strip(), names)
            if v is None:
                return None
            total |= v
        return total & U64
    v = _term(text, names)
    return None if v is None else v & U64


def _number(text: str) -> int:
    neg = text.startswith("-")
    body = text[1:] if neg else text
    if body.startswith(("0x", "0X")):
        v = int(body, 16)
    elif len(body) > 1 and body[0] == "0":
        v = int(body, 8)
    else:
        v = int(body)
    return (-v if neg else v) & U64


def _term(term: str, names: dict[str, int]) -> int | None:
    if "<<" in term:
        left, _, right = term.partition("<<")
        a, b = _term(left.strip(), names), _term(right.strip(), names)
        if a is None or b is None or b > 63:
            return None
        return (a << b) & U64
    if _NUMBER.fullmatch(term):
        return _number(term)
    if _NAME.fullmatch(term):
        v = names.get(term)
        return None if v is None else v & U64
    return None


_CACHE: dict[tuple[str, str], int | None] = {}
_CACHE_MAX = 1 << 16


def _cached_value(text: str, arch: str, names: "dict[str, int] | None") -> int | None:
    key = (text, arch)
    try:
        return _CACHE[key]
    except KeyError:
        pass
    v = value(text, names)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = v
    return v


#: 32-bit ABIs: calls with 64-bit arguments that strace prints as ONE value although each
#: occupies two registers: name -> (how many arguments strace prints when it decodes them,
#: the printed positions of the 64-bit values). ``-e raw=all`` prints every register (more
#: arguments), which is exact and left alone.
WIDE_ARGS_32 = {
    "pread64": (4, (3,)), "pwrite64": (4, (3,)), "truncate64": (2, (1,)),
    "ftruncate64": (2, (1,)), "fadvise64": (4, (1,)), "fadvise64_64": (4, (1, 2)),
    "arm_fadvise64_64": (4, (2, 3)), "fallocate": (4, (2, 3)),
    "sync_file_range": (4, (1, 2)), "sync_file_range2": (4, (2, 3)),
    "arm_sync_file_range": (4, (2, 3)), "readahead": (3, (1,)), "_llseek": (4, (1,)),
    "lookup_dcookie": (3, (0,)), "preadv": (4, (3,)), "pwritev": (4, (3,)),
    "preadv2": (5, (3,)), "pwritev2": (5, (3,)), "fanotify_mark": (5, (2,)),
}
#: ... whose two halves the i386 ABI passes high word first (``_llseek(fd, offset_high,
#: offset_low, result, whence)``); every other ia32 entry point takes (low, high)
HIGH_FIRST_32 = frozenset({"_llseek"})


def registers_32(name: str, arch: str, values: list[int | None], high_unknown: int
                 ) -> list[int | None] | None:
    """The six registers of a 32-bit task's call that passes 64-bit arguments (see
    :data:`WIDE_ARGS_32`), from strace's printed ``values``; None when no value spans two.

    i386 (the ``x86`` layout: 32-bit tasks under x86_64 too) is exact: each 64-bit value is
    two consecutive registers, low word first (arch/x86/kernel/sys_ia32.c), except
    ``_llseek``. Other 32-bit ABIs align such pairs to an even register and some put the
    high word first; there every register from the first 64-bit value on is left unknown (a
    verdict that reads one says so) rather than guessed.
    """
    found = WIDE_ARGS_32.get(name)
    if found is None:
        return None
    arity, wide = found
    if arch != "x86":
        return list(values[:wide[0]]) + [None] * (6 - wide[0])
    regs: list[int | None] = []
    for i, v in enumerate(values[:arity]):
        if i not in wide:
            regs.append(v)
            continue
        lo = None if v is None else v & 0xFFFFFFFF
        hi = None if v is None or high_unknown >> i & 1 else v >> 32 & 0xFFFFFFFF
        regs.extend((hi, lo) if name in HIGH_FIRST_32 else (lo, hi))
    return (regs + [None] * 6)[:6]


def decode(name: str, texts: list[str], arch: str) -> tuple[list[int | None], int]:
    """(six register values, None = unknown; mask of args whose high word is unknown).

    An argument whose value is negative keeps its low 32 bits and gets its bit in
    the mask (see the module docstring).
    """
    names = constants.table(arch)
    out: list[int | None] = [None] * 6
    if name == "clone" and any("=" in t for t in texts):
        order = CLONE_ORDER.get(arch, _CLONE_DEFAULT)
        for t in texts:
            m = _NAMED.fullmatch(t)
            if m and m.group(1) in order:
                out[order[m.group(1)]] = value(m.group(2), names)
    else:
        for i, t in enumerate(texts[:6]):
            m = _NAMED.fullmatch(t) if "=" in t and t[:1].isalpha() else None
            if m and not t.startswith(("{", "[")):
                t = m.group(2)
            out[i] = _cached_value(t, arch, names)
    high_unknown = 0
    for i, v in enumerate(out):
        if v is not None and v >> 63 and not _is_positive_literal(texts[i] if i < len(texts)
                                                                   else ""):
            out[i] = v & 0xFFFFFFFF
            high_unknown |= 1 << i
    return out, high_unknown


def _is_positive_literal(text: str) -> bool:
    """A number strace printed unsigned (``-e raw=all`` hex): the whole register, exactly."""
    text = text.rpartition("=")[2].strip()
    return bool(_NUMBER.fullmatch(text)) and not text.startswith("-")
