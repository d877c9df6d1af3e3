"""Records: ``struct seccomp_data`` as a numpy structured dtype holding logical values.

``SECCOMP_DATA`` has the C layout of ``struct seccomp_data`` in the host's byte
order (64 bytes, no padding). A record holds *logical* values; which 32-bit
word a ``ld [k]`` sees is decided by the filter's :class:`Layout`
(:func:`words`). Only this module validates record arrays.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from .layouts import Layout

SECCOMP_DATA = np.dtype([("nr", "=i4"), ("arch", "=u4"), ("instruction_pointer", "=u8"),
                         ("args", "=u8", (6,))], align=True)
assert SECCOMP_DATA.itemsize == 64

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF


def empty(n: int) -> np.ndarray:
    """``n`` zeroed records."""
    return np.zeros(n, dtype=SECCOMP_DATA)


def normalize_nr(nr: int) -> int:
    """A syscall number as the kernel's ``int nr``: accepts -2**31..2**32-1, returns signed."""
    if not isinstance(nr, (int, np.integer)) or isinstance(nr, bool):
        raise InputError(f"syscall number must be an int, not {type(nr).__name__}")
    nr = int(nr)
    if not -(1 << 31) <= nr <= U32:
        raise InputError(f"syscall number {nr} does not fit seccomp_data.nr (a 32-bit int)")
    return nr - (1 << 32) if nr >= (1 << 31) else nr


def normalize_u(value: int, bits: int, what: str) -> int:
    """An unsigned field; negative values are taken as two's complement of ``bits`` bits."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise InputError(f"{what} must be an int, not {type(value).__name__}")
    value = int(value)
    top = (1 << bits) - 1
    if not -(1 << (bits - 1)) <= value <= top:
        raise InputError(f"{what}={value} does not fit {bits} bits")
    return value & top


def normalize_args(args: Sequence[int] | None) -> tuple[int, ...]:
    """Up to six arguments, missing ones 0, each a u64 (negative ints as two's complement)."""
    if args is None:
        args = ()
    if isinstance(args, (int, np.integer)):
        raise InputError("args must be a sequence of up to 6 ints, e.g. args=(3, 0)")
    args = tuple(args)
    if len(args) > 6:
        raise InputError(f"seccomp_data has 6 arguments; got {len(args)}")
    out = tuple(normalize_u(a, 64, f"args[{i}]") for i, a in enumerate(args))
    return out + (0,) * (6 - len(out))


def make(nr: int, arch: int, instruction_pointer: int = 0,
         args: Sequence[int] | None = None) -> np.ndarray:
    """One record as a length-1 array."""
    rec = np.zeros(1, dtype=SECCOMP_DATA)
    rec["nr"] = normalize_nr(nr)
    rec["arch"] = normalize_u(arch, 32, "arch")
    rec["instruction_pointer"] = normalize_u(instruction_pointer, 64, "instruction_pointer")
    rec["args"][0] = normalize_args(args)
    return rec


def validate(records: object, what: str = "records") -> np.ndarray:
    """Return ``records`` if it is a 1-D, C-contiguous ``SECCOMP_DATA`` array; else InputError."""
    if not isinstance(records, np.ndarray):
        raise InputError(f"{what} must be a numpy array of bpfjit.SECCOMP_DATA, not "
                         f"{type(records).__name__}")
    if records.dtype != SECCOMP_DATA:
        raise InputError(f"{what} has dtype {records.dtype}; expected bpfjit.SECCOMP_DATA "
                         f"{SECCOMP_DATA} (build it with np.zeros(n, dtype=bpfjit.SECCOMP_DATA))")
    if records.ndim != 1:
        raise InputError(f"{what} must be 1-D; got shape {records.shape} "
                         f"(use records.reshape(-1))")
    if not records.flags.c_contiguous:
        raise InputError(f"{what} is not C-contiguous (a strided view?); "
                         f"pass np.ascontiguousarray({what})")
    return records


def validate_out(out: object, n: int) -> np.ndarray:
    """An output array: 1-D, C-contiguous, writable, uint32, length ``n``."""
    if not isinstance(out, np.ndarray):
        raise InputError(f"out must be a numpy uint32 array, not {type(out).__name__}")
    if out.dtype != np.uint32:
        raise InputError(f"out has dtype {out.dtype}; expected uint32")
    if out.ndim != 1 or out.shape[0] != n:
        raise InputError(f"out has shape {out.shape}; expected ({n},) to match the records")
    if not out.flags.c_contiguous:
        raise InputError("out is not C-contiguous")
    if not out.flags.writeable:
        raise InputError("out is read-only")
    return out


def words(records: np.ndarray, layout: Layout) -> np.ndarray:
    """The 16 32-bit words ``ld [4*i]`` sees for each record, as an (n, 16) uint32 array.

    For a layout of the host's byte order this is a view; otherwise the two
    halves of each 64-bit field trade places (``nr`` and ``arch`` stay).
    """
    flat = records.view(np.uint32).reshape(len(records), 16)
    if layout.byteorder == sys.byteorder:
        return flat
    swapped = flat.copy()
    swapped[:, 2::2], swapped[:, 3::2] = flat[:, 3::2], flat[:, 2::2]
    return swapped


def image(record: np.void | np.ndarray, layout: Layout) -> bytes:
    """The 64-byte ``struct seccomp_data`` the kernel of ``layout`` would build for one record."""
    rec = np.asarray(record, dtype=SECCOMP_DATA).reshape(1)
    order = "<" if layout.byteorder == "little" else ">"
    return rec.astype(SECCOMP_DATA.newbyteorder(order)).tobytes()
