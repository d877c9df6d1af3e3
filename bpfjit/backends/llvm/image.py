"""Image stage: a relocatable ELF object becomes a flat, position-independent image, then executable memory.

Loading object code through llvmlite means loading LLVM itself (tens of
milliseconds in a fresh process). The code :mod:`.lower` generates needs none
of that at run time: it calls nothing outside itself, so once its sections are
laid out one after another, every relocation (``R_X86_64_PC32``/``PLT32``/
``PC64``) is an offset between two places in the same image and can be applied
once, when the image is made. The result is plain bytes that run at any
address: the compile cache stores them, and loading is ``mmap``, ``memcpy``
and ``mprotect`` (code pages read+execute, data pages read-only).

Anything else — another CPU, a writable section, an undefined symbol, an
absolute relocation — raises :class:`Unsupported`, and the backend uses LLVM's
MCJIT instead.
"""
from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys
import weakref

EM_X86_64 = 62
ET_REL = 1
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 1, 2, 3, 4, 8, 9
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHN_UNDEF, SHN_LORESERVE = 0, 0xFF00
STB_GLOBAL = 1
R_X86_64_NONE, R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_PC64 = 0, 2, 4, 24

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# <sys/mman.h> on Linux (the only OS this loader runs on); the mmap module costs an import
PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")


class Unsupported(Exception):
    """This object (or this machine) is outside what the flat-image loader handles."""


def supported() -> bool:
    """True on the machines the loader knows: Linux on x86-64."""
    return sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")


class Image:
    """Position-independent machine code: ``code[:exec_size]`` executable, the rest read-only.

    ``symbols`` maps entry-point names to offsets in ``code``.
    """

    __slots__ = ("code", "exec_size", "symbols")

    def __init__(self, code: bytes, exec_size: int, symbols: dict[str, int]):
        if not 0 <= exec_size <= len(code) or exec_size % PAGE:
            raise Unsupported(f"executable part {exec_size} does not fit {len(code)} bytes of code")
        for name, offset in symbols.items():
            if not 0 <= offset < exec_size:
                raise Unsupported(f"entry point {name} at {offset} is outside the code")
        self.code = code
        self.exec_size = exec_size
        self.symbols = symbols


class _Section:
    __slots__ = ("index", "name", "type", "flags", "offset", "size", "link", "info", "align",
                 "place")

    def __init__(self, index: int, name: str, type_: int, flags: int, offset: int, size: int,
                 link: int, info: int, align: int):
        self.index, self.name, self.type, self.flags = index, name, type_, flags
        self.offset, self.size, self.link, self.info, self.align = offset, size, link, info, align
        self.place = -1


def _cstr(table: bytes, at: int) -> str:
    end = table.index(b"\0", at)
    return table[at:end].decode("ascii", "replace")


def link(obj: bytes, entries: tuple[str, ...]) -> Image:
    """Lay out the allocated sections of an ELF64 x86-64 object and apply its relocations."""
    if len(obj) < _EHDR.size or obj[:4] != b"\x7fELF":
        raise Unsupported("not an ELF object")
    (ident, etype, machine, _v, _entry, _phoff, shoff, _flags, _ehsize, _phentsize, _phnum,
     shentsize, shnum, shstrndx) = _EHDR.unpack_from(obj, 0)
    if ident[4] != 2 or ident[5] != 1:
        raise Unsupported("not a little-endian 64-bit ELF object")
    if etype != ET_REL or machine != EM_X86_64:
        raise Unsupported(f"ELF type {etype}, machine {machine}: only x86-64 relocatable objects")
    if shentsize != _SHDR.size or shoff + shnum * shentsize > len(obj):
        raise Unsupported("malformed section header table")
    raw = [_SHDR.unpack_from(obj, shoff + i * shentsize) for i in range(shnum)]
    names = obj[raw[shstrndx][4]:raw[shstrndx][4] + raw[shstrndx][5]]
    sections = [_Section(i, _cstr(names, r[0]), r[1], r[2], r[4], r[5], r[6], r[7], max(1, r[8]))
                for i, r in enumerate(raw)]

    alloc = [s for s in sections if s.flags & SHF_ALLOC and s.size]
    for s in alloc:
        if s.flags & SHF_WRITE:
            raise Unsupported(f"writable section {s.name}")
        if s.type not in (SHT_PROGBITS, SHT_NOBITS):
            raise Unsupported(f"section {s.name} of type {s.type}")
    pos = 0
    for s in [s for s in alloc if s.flags & SHF_EXECINSTR]:
        pos += -pos % s.align
        s.place, pos = pos, pos + s.size
    exec_size = pos + (-pos % PAGE)
    pos = exec_size
    for s in [s for s in alloc if not s.flags & SHF_EXECINSTR]:
        pos += -pos % s.align
        s.place, pos = pos, pos + s.size
    image = bytearray(pos)
    for s in alloc:
        if s.type == SHT_PROGBITS:
            image[s.place:s.place + s.size] = obj[s.offset:s.offset + s.size]

    symtabs = [s for s in sections if s.type == SHT_SYMTAB]
    if len(symtabs) != 1:
        raise Unsupported("expected exactly one symbol table")
    symtab = symtabs[0]
    strtab = obj[sections[symtab.link].offset:sections[symtab.link].offset + sections[symtab.link].size]
    symbols = []
    for i in range(symtab.size // _SYM.size):
        st_name, st_info, _other, shndx, value, _size = _SYM.unpack_from(obj, symtab.offset + i * _SYM.size)
        symbols.append((_cstr(strtab, st_name), st_info >> 4, shndx, value))

    def address(sym_index: int) -> int:
        name, _bind, shndx, value = symbols[sym_index]
        if shndx == SHN_UNDEF or shndx >= SHN_LORESERVE:
            raise Unsupported(f"relocation against external or absolute symbol {name!r}")
        target = sections[shndx]
        if target.place < 0:
            raise Unsupported(f"relocation against non-loaded section {target.name}")
        return target.place + value

    for rel in sections:
        if rel.type == SHT_REL:
            raise Unsupported(f"REL section {rel.name}")
        if rel.type != SHT_RELA:
            continue
        patched = sections[rel.info]
        if patched.place < 0:
            continue                      # relocations of debug info and other unloaded sections
        for j in range(rel.size // _RELA.size):
            r_offset, r_info, addend = _RELA.unpack_from(obj, rel.offset + j * _RELA.size)
            rtype, sym = r_info & 0xFFFFFFFF, r_info >> 32
            if rtype == R_X86_64_NONE:
                continue
            where = patched.place + r_offset
            value = address(sym) + addend - where
            if rtype in (R_X86_64_PC32, R_X86_64_PLT32):
                if not -(1 << 31) <= value < (1 << 31):
                    raise Unsupported(f"PC32 relocation out of range at {where:#x}")
                struct.pack_into("<i", image, where, value)
            elif rtype == R_X86_64_PC64:
                struct.pack_into("<q", image, where, value)
            else:
                raise Unsupported(f"relocation type {rtype} in {rel.name}")

    found = {}
    for name, bind, shndx, value in symbols:
        if name in entries and bind == STB_GLOBAL and 0 < shndx < SHN_LORESERVE:
            found[name] = sections[shndx].place + value
    missing = [e for e in entries if e not in found]
    if missing:
        raise Unsupported(f"entry points missing from the object: {', '.join(missing)}")
    return Image(bytes(image), exec_size, found)


# --- executable memory ------------------------------------------------------------------------

_libc = None


def _c():
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _libc = libc
    return _libc


class Mapped:
    """An image in executable memory; ``addresses`` are its entry points. Unmapped when collected."""

    def __init__(self, image: Image):
        if not supported():
            raise Unsupported(f"no flat-image loader for {platform.machine()} {sys.platform}")
        libc = _c()
        size = max(PAGE, len(image.code) + (-len(image.code) % PAGE))
        base = libc.mmap(None, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if base is None or base == ctypes.c_void_p(-1).value:
            raise OSError(ctypes.get_errno(), "mmap failed for the JIT image")
        self._finalizer = weakref.finalize(self, libc.munmap, base, size)
        ctypes.memmove(base, image.code, len(image.code))
        if image.exec_size and libc.mprotect(base, image.exec_size,
                                             PROT_READ | PROT_EXEC) != 0:
            raise OSError(ctypes.get_errno(), "mprotect(PROT_EXEC) failed for the JIT image")
        if size > image.exec_size and libc.mprotect(base + image.exec_size, size - image.exec_size,
                                                    PROT_READ) != 0:
            raise OSError(ctypes.get_errno(), "mprotect(PROT_READ) failed for the JIT image")
        self.base = base
        self.size = size
        self.addresses = {name: base + offset for name, offset in image.symbols.items()}
