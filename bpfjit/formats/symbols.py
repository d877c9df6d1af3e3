"""Text formats, shared vocabulary: the symbolic names assembler and C text may use for numbers.

One table per kind of name, each with the kernel's spelling:

- ``AUDIT_ARCH_*`` (include/uapi/linux/audit.h, every architecture the kernel
  names), plus ``AUDIT_ARCH_<LAYOUT>`` for bpfjit layout names the kernel
  does not spell (``AUDIT_ARCH_X86``, ``AUDIT_ARCH_X32``, ``AUDIT_ARCH_SHEB``).
  Where the two disagree the kernel wins: ``AUDIT_ARCH_SH`` is the
  big-endian EM_SH value, as in audit.h (libseccomp's little-endian ``sh``
  layout is ``AUDIT_ARCH_SHEL``).
- ``SECCOMP_RET_*`` (include/uapi/linux/seccomp.h) and action names.
- ``struct seccomp_data`` word names (``nr``, ``arch``, ``args[2].hi``...),
  resolved through a :class:`~bpfjit.seccomp.layouts.Layout` because the
  byte order decides which half of a 64-bit field sits at which offset.
- syscall names (``openat``, ``__NR_openat``, ``SYS_openat``) for a layout's ABI.
- errno names for ``ERRNO(n)``: only where the number is the same on the
  target (1..34, asm-generic/errno-base.h, everywhere; the rest of
  asm-generic/errno.h only for layouts that use it — not MIPS or PA-RISC).
- ``SKF_AD_*`` ancillary loads that bpf_asm spells ``#proto``, ``#len``...
"""
from __future__ import annotations

import re

from ..errors import UnknownArchError, UnknownSyscallError
from ..seccomp import actions
from ..seccomp.layouts import (AUDIT_ARCH_64BIT, AUDIT_ARCH_CONVENTION_MIPS64_N32, AUDIT_ARCH_LE,
                               LAYOUTS, X32_SYSCALL_BIT, Layout)

_LE, _64, _N32 = AUDIT_ARCH_LE, AUDIT_ARCH_64BIT, AUDIT_ARCH_CONVENTION_MIPS64_N32

#: include/uapi/linux/audit.h (Linux 6.x), with EM_* from include/uapi/linux/elf-em.h.
KERNEL_AUDIT_ARCHES: dict[str, int] = {
    "AUDIT_ARCH_AARCH64": 183 | _64 | _LE,
    "AUDIT_ARCH_ALPHA": 0x9026 | _64 | _LE,
    "AUDIT_ARCH_ARCOMPACT": 93 | _LE,
    "AUDIT_ARCH_ARCOMPACTBE": 93,
    "AUDIT_ARCH_ARCV2": 195 | _LE,
    "AUDIT_ARCH_ARCV2BE": 195,
    "AUDIT_ARCH_ARM": 40 | _LE,
    "AUDIT_ARCH_ARMEB": 40,
    "AUDIT_ARCH_C6X": 140 | _LE,
    "AUDIT_ARCH_C6XBE": 140,
    "AUDIT_ARCH_CRIS": 76 | _LE,
    "AUDIT_ARCH_CSKY": 252 | _LE,
    "AUDIT_ARCH_FRV": 0x5441,
    "AUDIT_ARCH_H8300": 46,
    "AUDIT_ARCH_HEXAGON": 164,
    "AUDIT_ARCH_I386": 3 | _LE,
    "AUDIT_ARCH_IA64": 50 | _64 | _LE,
    "AUDIT_ARCH_M32R": 88,
    "AUDIT_ARCH_M68K": 4,
    "AUDIT_ARCH_MICROBLAZE": 189,
    "AUDIT_ARCH_MIPS": 8,
    "AUDIT_ARCH_MIPSEL": 8 | _LE,
    "AUDIT_ARCH_MIPS64": 8 | _64,
    "AUDIT_ARCH_MIPS64N32": 8 | _64 | _N32,
    "AUDIT_ARCH_MIPSEL64": 8 | _64 | _LE,
    "AUDIT_ARCH_MIPSEL64N32": 8 | _64 | _LE | _N32,
    "AUDIT_ARCH_NDS32": 167 | _LE,
    "AUDIT_ARCH_NDS32BE": 167,
    "AUDIT_ARCH_NIOS2": 113 | _LE,
    "AUDIT_ARCH_OPENRISC": 92,
    "AUDIT_ARCH_PARISC": 15,
    "AUDIT_ARCH_PARISC64": 15 | _64,
    "AUDIT_ARCH_PPC": 20,
    "AUDIT_ARCH_PPC64": 21 | _64,
    "AUDIT_ARCH_PPC64LE": 21 | _64 | _LE,
    "AUDIT_ARCH_RISCV32": 243 | _LE,
    "AUDIT_ARCH_RISCV64": 243 | _64 | _LE,
    "AUDIT_ARCH_S390": 22,
    "AUDIT_ARCH_S390X": 22 | _64,
    "AUDIT_ARCH_SH": 42,
    "AUDIT_ARCH_SHEL": 42 | _LE,
    "AUDIT_ARCH_SH64": 42 | _64,
    "AUDIT_ARCH_SHEL64": 42 | _64 | _LE,
    "AUDIT_ARCH_SPARC": 2,
    "AUDIT_ARCH_SPARC64": 43 | _64,
    "AUDIT_ARCH_TILEGX": 191 | _64 | _LE,
    "AUDIT_ARCH_TILEGX32": 191 | _LE,
    "AUDIT_ARCH_TILEPRO": 188 | _LE,
    "AUDIT_ARCH_UNICORE": 110 | _LE,
    "AUDIT_ARCH_X86_64": 62 | _64 | _LE,
    "AUDIT_ARCH_XTENSA": 94,
    "AUDIT_ARCH_LOONGARCH32": 258 | _LE,
    "AUDIT_ARCH_LOONGARCH64": 258 | _64 | _LE,
}


def _audit_arches() -> dict[str, int]:
    names = dict(KERNEL_AUDIT_ARCHES)
    for lay in LAYOUTS.values():
        names.setdefault(f"AUDIT_ARCH_{lay.name.upper()}", lay.audit_arch)
    return names


#: every AUDIT_ARCH_* name the text formats accept -> value
AUDIT_ARCHES: dict[str, int] = _audit_arches()

#: value -> the name the disassembler writes (the kernel's, first in audit.h order)
AUDIT_ARCH_NAMES: dict[int, str] = {}
for _name, _value in AUDIT_ARCHES.items():
    AUDIT_ARCH_NAMES.setdefault(_value, _name)

#: SECCOMP_RET_* of include/uapi/linux/seccomp.h
SECCOMP_RET: dict[str, int] = {
    "SECCOMP_RET_KILL_PROCESS": actions.SECCOMP_RET_KILL_PROCESS,
    "SECCOMP_RET_KILL_THREAD": actions.SECCOMP_RET_KILL_THREAD,
    "SECCOMP_RET_KILL": actions.SECCOMP_RET_KILL,
    "SECCOMP_RET_TRAP": actions.SECCOMP_RET_TRAP,
    "SECCOMP_RET_ERRNO": actions.SECCOMP_RET_ERRNO,
    "SECCOMP_RET_USER_NOTIF": actions.SECCOMP_RET_USER_NOTIF,
    "SECCOMP_RET_TRACE": actions.SECCOMP_RET_TRACE,
    "SECCOMP_RET_LOG": actions.SECCOMP_RET_LOG,
    "SECCOMP_RET_ALLOW": actions.SECCOMP_RET_ALLOW,
    "SECCOMP_RET_ACTION_FULL": actions.SECCOMP_RET_ACTION_FULL,
    "SECCOMP_RET_ACTION": actions.SECCOMP_RET_ACTION,
    "SECCOMP_RET_DATA": actions.SECCOMP_RET_DATA,
}

#: ancillary loads bpf_asm names (tools/bpf/bpf_exp.l); k = SKF_AD_OFF + value
SKF_AD = {"proto": 0, "type": 4, "ifidx": 8, "nla": 12, "nlan": 16, "mark": 20, "queue": 24,
          "hatype": 28, "rxhash": 32, "cpu": 36, "vlan_tci": 44, "vlan_avail": 48,
          "vlan_pr": 48, "poff": 52, "rand": 56, "vlan_tpid": 60}
SKF_AD_OFF = 0xFFFFF000
#: k -> the bpf_asm extension name the disassembler writes
SKF_AD_NAMES = {SKF_AD_OFF + v: n for n, v in reversed(list(SKF_AD.items()))}

#: asm-generic/errno-base.h: identical on every Linux architecture
ERRNO_BASE = ("EPERM ENOENT ESRCH EINTR EIO ENXIO E2BIG ENOEXEC EBADF ECHILD EAGAIN ENOMEM "
              "EACCES EFAULT ENOTBLK EBUSY EEXIST EXDEV ENODEV ENOTDIR EISDIR EINVAL ENFILE "
              "EMFILE ENOTTY ETXTBSY EFBIG ENOSPC ESPIPE EROFS EMLINK EPIPE EDOM ERANGE").split()
#: asm-generic/errno.h beyond the base (35..), the commonest in seccomp policies
ERRNO_GENERIC = {"EDEADLK": 35, "ENAMETOOLONG": 36, "ENOLCK": 37, "ENOSYS": 38, "ENOTEMPTY": 39,
                 "ELOOP": 40, "ENODATA": 61, "ENOTSOCK": 88, "EPROTONOSUPPORT": 93,
                 "EOPNOTSUPP": 95, "ENOTSUP": 95, "EAFNOSUPPORT": 97, "EADDRINUSE": 98,
                 "ECONNREFUSED": 111}
#: layouts whose errno numbers are not asm-generic beyond errno-base
_OWN_ERRNO = ("mips", "parisc")


def errno_table(lay: Layout | None) -> dict[str, int]:
    """errno name -> number valid for ``lay`` (None: errno-base only)."""
    table = {name: n for n, name in enumerate(ERRNO_BASE, start=1)}
    if lay is not None and not lay.syscall_abi.startswith(_OWN_ERRNO):
        table.update(ERRNO_GENERIC)
    return table


def errno_name(value: int, lay: Layout | None) -> str | None:
    """The errno name for ``value`` on ``lay`` when it is unambiguous there, else None."""
    for name, n in errno_table(lay).items():
        if n == value and name != "ENOTSUP":
            return name
    return None


def audit_arch(name: str) -> int | None:
    """Value of ``AUDIT_ARCH_X86_64`` and friends (case-insensitive), or None."""
    return AUDIT_ARCHES.get(name.upper())


# --- struct seccomp_data word names ---
_FIELD = re.compile(r"\s*(nr|arch|instruction_pointer|ip|args\s*\[\s*(\d+)\s*\])"
                    r"\s*(?:\.\s*(lo|hi))?\s*", re.IGNORECASE)


def field_offset(text: str, lay: Layout) -> int | None:
    """Offset of ``nr``, ``arch``, ``ip.lo``, ``instruction_pointer.hi``, ``args[2].hi`` on ``lay``.

    None when ``text`` is not a field name; ValueError when it names a field
    badly (``args[7].lo``, ``args[1]`` without ``.lo``/``.hi``, ``nr.hi``).
    """
    m = _FIELD.fullmatch(text)
    if not m:
        return None
    field = m.group(1).lower()
    half = m.group(3).lower() if m.group(3) else None
    if field in ("nr", "arch"):
        if half:
            raise ValueError(f"seccomp_data.{field} is a 32-bit word; it has no .{half}")
        return lay.word_offset(field)
    if half is None:
        raise ValueError(f"{field!s} is 64 bits wide: say {field}.lo or {field}.hi "
                         f"(which 32-bit half to load)")
    if field.startswith("args"):
        return lay.word_offset("args", int(m.group(2)), half)
    return lay.word_offset("instruction_pointer", 0, half)


def field_name(k: int, lay: Layout) -> str | None:
    """The name ``ld [k]`` gets in text: ``nr``, ``arch``, ``args[2].hi``, ``ip.lo``; None if none."""
    name = lay.describe_offset(k)
    if name and name.startswith("instruction_pointer"):
        return "ip" + name[len("instruction_pointer"):]
    return name


# --- syscalls ---
_SYSCALL_PREFIXES = ("__NR_", "SYS_")


def syscall_number(name: str, lay: Layout) -> int:
    """The number of syscall ``name`` (``openat``, ``__NR_openat``, ``SYS_openat``) on ``lay``.

    Raises :class:`~bpfjit.errors.UnknownSyscallError` or
    :class:`~bpfjit.errors.UnknownArchError` with the syscall table's message.
    """
    from ..seccomp import syscalls
    for prefix in _SYSCALL_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return syscalls.number(lay.syscall_abi, name)


def syscall_name(nr: int, lay: Layout) -> str | None:
    """The syscall named by ``nr`` on ``lay``, or None (no table, no such number)."""
    from ..seccomp import syscalls
    try:
        return syscalls.name(lay.syscall_abi, nr)
    except (UnknownArchError, UnknownSyscallError):
        return None


def constant(name: str, lay: Layout) -> int:
    """Value of a named constant in an assembler operand (``#AUDIT_ARCH_X86_64``, ``#openat``).

    Order: AUDIT_ARCH_*, SECCOMP_RET_*, ``X32_SYSCALL_BIT``, then a syscall
    name for ``lay``. Raises ValueError with a message naming what was tried.
    """
    value = audit_arch(name)
    if value is not None:
        return value
    if name.upper() in SECCOMP_RET:
        return SECCOMP_RET[name.upper()]
    if name in ("X32_SYSCALL_BIT", "__X32_SYSCALL_BIT"):
        return X32_SYSCALL_BIT
    if name.upper().startswith("AUDIT_ARCH_"):
        raise ValueError(f"unknown architecture constant {name!r} (audit.h names, e.g. "
                       f"AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386)")
    try:
        return syscall_number(name, lay)
    except (UnknownSyscallError, UnknownArchError) as exc:
        raise ValueError(f"{name!r} is not a known constant (AUDIT_ARCH_*, SECCOMP_RET_*) "
                       f"nor a syscall: {exc}") from None
