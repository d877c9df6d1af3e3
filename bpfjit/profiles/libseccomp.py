"""A ctypes binding to the system's libseccomp (``libseccomp.so.2``): just what profile compilation needs.

Only the calls container runtimes make are bound: ``seccomp_init``,
``seccomp_arch_add``/``_remove``/``_exist``, ``seccomp_attr_set``,
``seccomp_syscall_resolve_name``, ``seccomp_rule_add_array``, ``seccomp_merge``
and ``seccomp_export_bpf`` (the program libseccomp would hand to the kernel).
Nothing is loaded into the kernel here. Constants are spelled as in
``<seccomp.h>`` (libseccomp 2.5).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import os
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import BackendUnavailable

# enum scmp_filter_attr
SCMP_FLTATR_ACT_DEFAULT = 1
SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_NNP = 3
SCMP_FLTATR_CTL_TSYNC = 4
SCMP_FLTATR_API_TSKIP = 5
SCMP_FLTATR_CTL_LOG = 6
SCMP_FLTATR_CTL_SSB = 7
SCMP_FLTATR_CTL_OPTIMIZE = 8
SCMP_FLTATR_API_SYSRAWRC = 9

# enum scmp_compare
SCMP_CMP = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
            "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}

# actions
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_NOTIFY = 0x7FC00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000


def SCMP_ACT_ERRNO(x: int) -> int:  # noqa: N802 - the C macro's name
    return 0x00050000 | (x & 0xFFFF)


def SCMP_ACT_TRACE(x: int) -> int:  # noqa: N802
    return 0x7FF00000 | (x & 0xFFFF)


__NR_SCMP_ERROR = -1


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp"""
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


@dataclass(frozen=True)
class Condition:
    """One ``struct scmp_arg_cmp``: argument ``arg``, operator ``op`` (SCMP_CMP_* value), data."""
    arg: int
    op: int
    datum_a: int
    datum_b: int = 0


class LibseccompError(BackendUnavailable):
    """libseccomp is missing or refused a call (the negative errno it returned is ``errno``)."""

    def __init__(self, message: str, errno: int | None = None):
        self.errno = errno
        super().__init__(message)


_lib = None


def library() -> ctypes.CDLL:
    """The loaded ``libseccomp.so.2`` (raises LibseccompError when it is not installed)."""
    global _lib
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise LibseccompError(f"libseccomp is not available ({exc}); install Debian's libseccomp2") \
            from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.restype = None
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    for fn in ("seccomp_arch_add", "seccomp_arch_remove", "seccomp_arch_exist"):
        getattr(lib, fn).restype = ctypes.c_int
        getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_arch_native.argtypes = []
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_attr_set.restype = ctypes.c_int
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_rule_add_exact_array.restype = ctypes.c_int
    lib.seccomp_rule_add_exact_array.argtypes = lib.seccomp_rule_add_array.argtypes
    lib.seccomp_merge.restype = ctypes.c_int
    lib.seccomp_merge.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.seccomp_export_bpf.restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    lib.seccomp_version.argtypes = []
    _lib = lib
    return lib


def available() -> bool:
    try:
        library()
    except LibseccompError:
        return False
    return True


def version() -> tuple[int, int, int]:
    v = library().seccomp_version().contents
    return (v.major, v.minor, v.micro)


def arch_token(name: str) -> int:
    """``seccomp_arch_resolve_name``: the AUDIT_ARCH token of a libseccomp arch name (0: unknown)."""
    return library().seccomp_arch_resolve_name(name.encode())


def native_arch() -> int:
    return library().seccomp_arch_native()


def resolve_syscall(name: str, arch: int | None = None) -> int:
    """The syscall number libseccomp gives ``name`` (native arch unless ``arch``); -1 if unknown.

    Names a native arch lacks get libseccomp's negative pseudo-numbers, which
    rules translate to the other arches of a filter.
    """
    lib = library()
    raw = name.encode()
    if arch is None:
        return lib.seccomp_syscall_resolve_name(raw)
    return lib.seccomp_syscall_resolve_name_arch(arch, raw)


def _check(rc: int, what: str) -> None:
    if rc < 0:
        err = -rc
        raise LibseccompError(f"libseccomp {what} failed: {os.strerror(err)} "
                              f"({_errno.errorcode.get(err, err)})", errno=err)


class FilterContext:
    """A ``scmp_filter_ctx``: released when closed or garbage-collected."""

    def __init__(self, default_action: int):
        self._lib = library()
        self._ctx = self._lib.seccomp_init(default_action)
        if not self._ctx:
            raise LibseccompError(f"seccomp_init({default_action:#x}) failed: invalid default action")

    def close(self) -> None:
        if self._ctx:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None

    def __del__(self):
        self.close()

    def __enter__(self) -> "FilterContext":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def arch_exist(self, token: int) -> bool:
        rc = self._lib.seccomp_arch_exist(self._ctx, token)
        if rc == -_errno.EEXIST:
            return False
        _check(rc, f"seccomp_arch_exist({token:#x})")
        return True

    def arch_add(self, token: int) -> None:
        """Add an arch unless present (libseccomp-golang's AddArch does the same check)."""
        if not self.arch_exist(token):
            _check(self._lib.seccomp_arch_add(self._ctx, token), f"seccomp_arch_add({token:#x})")

    def arch_remove(self, token: int) -> None:
        _check(self._lib.seccomp_arch_remove(self._ctx, token), f"seccomp_arch_remove({token:#x})")

    def attr_set(self, attr: int, value: int) -> None:
        _check(self._lib.seccomp_attr_set(self._ctx, attr, value),
               f"seccomp_attr_set({attr}, {value})")

    def rule_add(self, action: int, syscall: int, conditions: Sequence[Condition] = (),
                 exact: bool = False) -> None:
        """``seccomp_rule_add_array`` (or ``_exact_array``); raises LibseccompError on refusal."""
        arr = (_ArgCmp * max(1, len(conditions)))(
            *[_ArgCmp(c.arg, c.op, c.datum_a & 0xFFFFFFFFFFFFFFFF, c.datum_b & 0xFFFFFFFFFFFFFFFF)
              for c in conditions])
        fn = self._lib.seccomp_rule_add_exact_array if exact else self._lib.seccomp_rule_add_array
        _check(fn(self._ctx, action, syscall, len(conditions), arr),
               f"seccomp_rule_add_array(action={action:#x}, syscall={syscall})")

    def merge(self, other: "FilterContext") -> None:
        """``seccomp_merge``: libseccomp releases ``other`` on success."""
        _check(self._lib.seccomp_merge(self._ctx, other._ctx), "seccomp_merge")
        other._ctx = None

    def export_bpf(self) -> bytes:
        """The program exactly as ``seccomp_export_bpf`` writes it (the filter's byte order)."""
        fd = os.memfd_create("bpfjit-seccomp-export")
        try:
            _check(self._lib.seccomp_export_bpf(self._ctx, fd), "seccomp_export_bpf")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
