"""``struct seccomp_data`` layouts: one per libseccomp architecture.

include/uapi/linux/seccomp.h::

    struct seccomp_data {
        int   nr;                    /* offset 0  */
        __u32 arch;                  /* offset 4  (AUDIT_ARCH_*) */
        __u64 instruction_pointer;   /* offset 8  */
        __u64 args[6];               /* offset 16 + 8*i */
    };

The kernel fills it in the task's byte order, so a 32-bit ``ld [k]`` sees, on a
little-endian layout, the low word of a 64-bit field at its offset and the
high word 4 bytes later; on a big-endian layout the other way round (the high
word of ``args[i]`` is at ``16 + 8*i``). ``nr`` and ``arch`` are whole words in
both. Records (:mod:`bpfjit.seccomp.records`) hold logical values; a Layout
decides which 32-bit word each offset shows.

AUDIT_ARCH values are ``EM_* | __AUDIT_ARCH_64BIT (0x80000000) |
__AUDIT_ARCH_LE (0x40000000)`` (include/uapi/linux/audit.h); the names are
libseccomp's (``scmp_arch_resolve_name``).
"""
from __future__ import annotations

import platform
from dataclasses import dataclass

from ..errors import UnknownArchError

AUDIT_ARCH_64BIT = 0x80000000
AUDIT_ARCH_LE = 0x40000000
AUDIT_ARCH_CONVENTION_MIPS64_N32 = 0x20000000
X32_SYSCALL_BIT = 0x40000000

SECCOMP_DATA_SIZE = 64
NR_OFFSET = 0
ARCH_OFFSET = 4
IP_OFFSET = 8
ARGS_OFFSET = 16


@dataclass(frozen=True)
class Layout:
    """One architecture's view of ``struct seccomp_data``.

    ``name``: libseccomp's arch name; ``audit_arch``: the value of
    ``seccomp_data.arch`` for its system calls; ``byteorder``: 'little' or
    'big'; ``syscall_abi``: the syscall table names resolve against.
    """

    name: str
    audit_arch: int
    byteorder: str
    bits: int
    syscall_abi: str
    nr_bit: int = 0   # OR'ed into syscall numbers (x32's __X32_SYSCALL_BIT)

    @property
    def big_endian(self) -> bool:
        return self.byteorder == "big"

    def word_offset(self, field: str, index: int = 0, half: str = "lo") -> int:
        """Byte offset of a 32-bit word: ``word_offset('args', 2, 'hi')``.

        ``field`` is ``nr``, ``arch``, ``instruction_pointer`` (or ``ip``) or
        ``args``; ``half`` is ``lo`` or ``hi`` for the 64-bit fields.
        """
        if field == "nr":
            return NR_OFFSET
        if field == "arch":
            return ARCH_OFFSET
        if field in ("instruction_pointer", "ip"):
            base = IP_OFFSET
        elif field == "args":
            if not 0 <= index < 6:
                raise ValueError(f"seccomp_data has args[0] to args[5], not args[{index}]")
            base = ARGS_OFFSET + 8 * index
        else:
            raise ValueError(f"seccomp_data has no field {field!r} "
                             f"(nr, arch, instruction_pointer, args)")
        if half not in ("lo", "hi"):
            raise ValueError(f"half must be 'lo' or 'hi', not {half!r}")
        high_first = self.big_endian
        return base + (4 if (half == "hi") != high_first else 0)

    def describe_offset(self, k: int) -> str | None:
        """Name of the 32-bit word a ``ld [k]`` reads: ``nr``, ``args[2].hi``...; None if invalid."""
        if k < 0 or k >= SECCOMP_DATA_SIZE or k % 4:
            return None
        if k == NR_OFFSET:
            return "nr"
        if k == ARCH_OFFSET:
            return "arch"
        base, second = (k & ~7), bool(k & 4)
        half = "lo" if second == self.big_endian else "hi"
        if base == IP_OFFSET:
            return f"instruction_pointer.{half}"
        return f"args[{(base - ARGS_OFFSET) // 8}].{half}"

    def __str__(self) -> str:
        return self.name


def _le(em: int, bits64: bool) -> int:
    return em | AUDIT_ARCH_LE | (AUDIT_ARCH_64BIT if bits64 else 0)


def _be(em: int, bits64: bool) -> int:
    return em | (AUDIT_ARCH_64BIT if bits64 else 0)


# EM_* numbers from include/uapi/linux/elf-em.h
EM_386, EM_68K, EM_MIPS, EM_PARISC, EM_PPC, EM_PPC64, EM_S390, EM_ARM, EM_SH = \
    3, 4, 8, 15, 20, 21, 22, 40, 42
EM_X86_64, EM_AARCH64, EM_RISCV, EM_LOONGARCH = 62, 183, 243, 258

_ALL = [
    Layout("x86_64", _le(EM_X86_64, True), "little", 64, "x86_64"),
    Layout("x86", _le(EM_386, False), "little", 32, "x86"),
    Layout("x32", _le(EM_X86_64, True), "little", 64, "x32", nr_bit=X32_SYSCALL_BIT),
    Layout("aarch64", _le(EM_AARCH64, True), "little", 64, "aarch64"),
    Layout("arm", _le(EM_ARM, False), "little", 32, "arm"),
    Layout("riscv64", _le(EM_RISCV, True), "little", 64, "riscv64"),
    Layout("loongarch64", _le(EM_LOONGARCH, True), "little", 64, "loongarch64"),
    Layout("s390x", _be(EM_S390, True), "big", 64, "s390x"),
    Layout("s390", _be(EM_S390, False), "big", 32, "s390"),
    Layout("ppc64", _be(EM_PPC64, True), "big", 64, "ppc64"),
    Layout("ppc64le", _le(EM_PPC64, True), "little", 64, "ppc64le"),
    Layout("ppc", _be(EM_PPC, False), "big", 32, "ppc"),
    Layout("mips", _be(EM_MIPS, False), "big", 32, "mips"),
    Layout("mipsel", _le(EM_MIPS, False), "little", 32, "mipsel"),
    Layout("mips64", _be(EM_MIPS, True), "big", 64, "mips64"),
    Layout("mipsel64", _le(EM_MIPS, True), "little", 64, "mipsel64"),
    Layout("mips64n32", _be(EM_MIPS, True) | AUDIT_ARCH_CONVENTION_MIPS64_N32, "big", 64,
           "mips64n32"),
    Layout("mipsel64n32", _le(EM_MIPS, True) | AUDIT_ARCH_CONVENTION_MIPS64_N32, "little", 64,
           "mipsel64n32"),
    Layout("parisc", _be(EM_PARISC, False), "big", 32, "parisc"),
    Layout("parisc64", _be(EM_PARISC, True), "big", 64, "parisc64"),
    Layout("m68k", _be(EM_68K, False), "big", 32, "m68k"),
    Layout("sh", _le(EM_SH, False), "little", 32, "sh"),
    Layout("sheb", _be(EM_SH, False), "big", 32, "sheb"),
]

LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in _ALL}

ALIASES = {
    "amd64": "x86_64", "x86-64": "x86_64", "i386": "x86", "i686": "x86", "ia32": "x86",
    "arm64": "aarch64", "armhf": "arm", "armel": "arm", "riscv": "riscv64",
    "loong64": "loongarch64", "powerpc": "ppc", "powerpc64": "ppc64", "ppc64el": "ppc64le",
    "mips64el": "mipsel64", "hppa": "parisc",
}


def layout(arch: "str | Layout | None" = None) -> Layout:
    """The Layout for a libseccomp arch name (or alias); ``None`` means the host."""
    if isinstance(arch, Layout):
        return arch
    if arch is None:
        return host_layout()
    if not isinstance(arch, str):
        raise UnknownArchError(f"arch must be a name such as 'x86_64', not {arch!r}")
    key = arch.strip().lower()
    key = ALIASES.get(key, key)
    try:
        return LAYOUTS[key]
    except KeyError:
        known = ", ".join(LAYOUTS)
        raise UnknownArchError(f"unknown architecture {arch!r}; known: {known}") from None


def host_layout() -> Layout:
    machine = platform.machine().lower()
    return layout({"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64",
                   "arm64": "aarch64", "riscv64": "riscv64", "s390x": "s390x",
                   "ppc64le": "ppc64le", "ppc64": "ppc64"}.get(machine, machine))


def by_audit_arch(value: int) -> list[Layout]:
    """Every layout whose ``seccomp_data.arch`` is ``value`` (x86_64 and x32 share one)."""
    return [lay for lay in _ALL if lay.audit_arch == value]


def audit_arch_name(value: int) -> str | None:
    """``x86_64`` for 0xc000003e: the first layout with that AUDIT_ARCH value, or None."""
    found = by_audit_arch(value)
    return found[0].name if found else None
