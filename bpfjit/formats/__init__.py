"""Loading and writing filters: raw bytes, bpf_asm text, C arrays, hex, seccomp profiles; format detection.

``load()`` is the single entry point (``bpfjit.load``): it takes a path, bytes
or text, detects the format (``raw``, ``asm``, ``c``, ``hex``; and the
profiles ``oci``, ``firecracker``, ``lxc``, compiled by libseccomp through
:mod:`bpfjit.profiles`) and, for raw bytes, the byte order; ``dump()`` writes
the filter formats.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LoadError
from ..program import Program
from . import raw

if TYPE_CHECKING:  # pragma: no cover
    from ..seccomp.layouts import Layout

FORMATS = ("raw", "asm", "c", "hex")                # read and written
PROFILE_FORMATS = ("oci", "firecracker", "lxc")     # read only: compiled by libseccomp
MAX_INPUT_BYTES = 64 << 20   # no sane filter text is larger; refuse before parsing

_C_ELEMENT = re.compile(r"\{\s*(?:(?:0[xX][0-9a-fA-F]+|\d+)[uUlL]*\s*,\s*){3}"
                        r"(?:0[xX][0-9a-fA-F]+|\d+)[uUlL]*\s*,?\s*\}|\{\s*\.code\s*=")
_C_MARKERS = re.compile(r"\bBPF_(?:STMT|JUMP)\s*\(|\b(?:sock_filter|bpf_insn)\s+\w+\s*\[|^\s*\{",
                        re.MULTILINE)
_ANY_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*|;[^\n]*|^[ \t]*#[^\n]*", re.DOTALL | re.MULTILINE)
_PATHLIKE = re.compile(r"[\w./~+@=-]+")


def _looks_like_text(data: bytes) -> bool:
    if not data:
        return False
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\r\n\f\v" for c in text)


def detect_format(data: bytes, name: str | None = None) -> str:
    """Guess ``raw``, ``c``, ``hex``, ``asm`` or a profile format for the bytes of a filter file.

    Binary (not printable UTF-8) is ``raw``. A JSON object is a profile
    (``firecracker`` or ``oci``; so is anything in a ``.json`` file), an LXC
    policy header (``2`` then ``denylist``...) is ``lxc``. Text is ``c`` when, comments
    aside, it has a ``{ n, n, n, n }`` element, a line starting with ``{``,
    ``BPF_STMT(``/``BPF_JUMP(`` or a ``sock_filter NAME[`` declaration; ``hex`` when it is nothing but hex
    bytes (a whole number of 8-byte instructions); ``asm`` otherwise.
    """
    if name and name.lower().endswith(".json"):
        return _detect_profile(data, name) or "oci"
    if not _looks_like_text(data):
        return "raw"
    profile = _detect_profile(data, name)
    if profile:
        return profile
    text = data.decode("utf-8-sig")
    if "{" in text or "BPF_" in text or "sock_filter" in text:
        bare = _ANY_COMMENT.sub(" ", text)
        if _C_ELEMENT.search(bare) or _C_MARKERS.search(bare):
            return "c"
    from .hexdump import looks_like_hex
    if looks_like_hex(text):
        return "hex"
    return "asm"


def _detect_profile(data: bytes, name: str | None) -> str | None:
    """``oci``/``firecracker`` for a JSON object (or any ``.json`` file), ``lxc`` for an LXC policy."""
    from ..profiles import detect
    is_json_file = bool(name) and name.lower().endswith(".json")
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
        import json
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return "oci" if is_json_file else None      # let the profile reader name the error
        return detect(data) if isinstance(doc, dict) else ("oci" if is_json_file else None)
    if is_json_file:
        return "oci"
    from ..profiles.lxc import looks_like
    return "lxc" if looks_like(data) else None


def _is_file(text: str) -> bool:
    if "\n" in text or len(text) >= 4096:
        return False
    try:
        return Path(text).is_file()
    except (OSError, ValueError):   # too long a name, NUL bytes: text, not a path
        return False


def _means_a_path(text: str) -> bool:
    """Whether a one-line string that names no file was meant as a path, not as filter text.

    A user who types one word means a file: no filter is a single assembler
    word (a program ends with ``ret`` and an operand), so one token that is not
    a bpf_asm mnemonic and not hex digits is a path. Text with spaces, braces,
    ``#`` or ``:`` is filter text (a path with spaces that does not exist is
    reported as text, with a hint: see :func:`load`).
    """
    token = text.strip()
    if not token or "\n" in text or not _PATHLIKE.fullmatch(token):
        return False
    if token.startswith(("/", "./", "../", "~")) or os.sep in token:
        return True
    from .asm import MNEMONICS
    if token.lower() in MNEMONICS:
        return False
    return not re.fullmatch(r"(?:0[xX])?[0-9a-fA-F]+", token)


def _read(source: "str | bytes | os.PathLike") -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    if isinstance(source, str) and source.strip() and "\n" not in source and len(source) < 4096:
        try:
            is_dir = Path(source).is_dir()
        except (OSError, ValueError):
            is_dir = False
        if is_dir:
            raise LoadError("is a directory", source=source)
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _is_file(source)):
        path = Path(source)
        if path.is_dir():
            raise LoadError("is a directory", source=str(path))
        try:
            size = path.stat().st_size
            if size > MAX_INPUT_BYTES:
                raise LoadError(f"file is {size} bytes; a filter is at most 32 KiB raw "
                                f"(refusing anything over {MAX_INPUT_BYTES} bytes)", source=str(path))
            return path.read_bytes(), str(path)
        except FileNotFoundError:
            raise LoadError("no such file", source=str(path)) from None
        except OSError as exc:
            raise LoadError(f"cannot read: {exc.strerror or exc}", source=str(path)) from exc
    if isinstance(source, str):
        if _means_a_path(source):
            raise LoadError("no such file", source=source.strip())
        return source.encode("utf-8"), "<text>"
    raise TypeError(f"load() takes a path, bytes or text, not {type(source).__name__}")


def load(source: "str | bytes | os.PathLike", format: str | None = None,
         endian: str | None = None, arch: "str | Layout | None" = None, *,
         caps=None, kernel=None, profile_arch: str | None = None, optimize: "int | str" = 1,
         thread: str | None = None, runtime: str = "crun") -> Program:
    """Read a filter from a path, bytes or text.

    ``format``: None (detect), ``raw``, ``asm``, ``c``, ``hex``, or a profile
    format (``oci``, ``firecracker``, ``lxc``) compiled by libseccomp.
    ``endian``: byte order of raw/hex data (None: detect). ``arch``: which
    syscall table and layout assembler names (``ld [args[1].hi]``, ``jeq
    #openat``) use. For profiles, ``caps``, ``kernel``, ``profile_arch``
    (default: ``arch``'s main architecture — x86_64 for x86/x32 — else the
    host), ``optimize``, ``runtime`` and ``thread`` (or ``path.json#thread``) are passed
    to :func:`bpfjit.profiles.compile_profile`; its warnings are issued as
    :class:`bpfjit.profiles.ProfileWarning`.
    """
    from ..profiles import split_thread
    source, path_thread = split_thread(source) if isinstance(source, str) else (source, None)
    thread = thread or path_thread
    data, name = _read(source)
    if len(data) > MAX_INPUT_BYTES:
        raise LoadError(f"input is {len(data)} bytes; refusing anything over {MAX_INPUT_BYTES}",
                        source=name)
    if format is None:
        format = detect_format(data, name)
    if format not in FORMATS + PROFILE_FORMATS:
        raise LoadError(f"unknown format {format!r}; choose from "
                        f"{', '.join(FORMATS + PROFILE_FORMATS)}", source=name)
    if format in PROFILE_FORMATS:
        from ..profiles import load_profile
        return load_profile(data, format, name=name, arch=arch, profile_arch=profile_arch,
                            caps=caps, kernel=kernel, optimize=optimize, thread=thread,
                            runtime=runtime)
    if endian not in (None, "little", "big"):
        raise LoadError(f"endian must be 'little' or 'big', not {endian!r}", source=name)
    if format == "raw":
        return raw.load(data, endian, source=name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); for a binary "
                        f"filter use format='raw'", source=name, offset=exc.start) from None
    if format == "asm":
        from .asm import parse
        try:
            return parse(text, arch=arch, source=name)
        except LoadError as exc:
            if name == "<text>" and "\n" not in text.strip():
                raise LoadError(f"{exc.reason} (read as assembler text: no file named "
                                f"{text.strip()!r} exists)", source=name, line=exc.line) from None
            raise
    if format == "c":
        from .c_array import parse
        return parse(text, source=name, arch=arch)
    from .hexdump import parse
    return parse(text, endian=endian, source=name)


def dump(program: Program, format: str = "raw", endian: str | None = None,
         arch: "str | Layout | None" = None) -> bytes:
    """Write ``program`` as ``raw`` bytes or ``asm``/``c``/``hex`` text (UTF-8 bytes)."""
    if format == "raw":
        return raw.dump(program, endian)
    if format == "asm":
        from .disasm import disassemble
        return disassemble(program, arch=arch).encode()
    if format == "c":
        from .c_array import dump as dump_c
        return dump_c(program).encode()
    if format == "hex":
        from .hexdump import dump as dump_hex
        return dump_hex(program, endian=endian).encode()
    raise ValueError(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")
