"""The program model: immutable classic-BPF instructions, exactly as ``struct sock_filter`` holds them.

An :class:`Instruction` keeps the raw bits (``code, jt, jf, k``) even when they
are invalid, so the checker sees what the kernel would see and every format
round-trips byte for byte. A :class:`Program` is an immutable sequence of them.
Only :func:`bpfjit.check.check` turns a Program into a ``CheckedProgram``.
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, overload

from . import opcodes as op
from .errors import LoadError

if TYPE_CHECKING:  # pragma: no cover
    from .check import CheckedProgram
    from .seccomp.layouts import Layout

_STRUCT = {"little": struct.Struct("<HBBI"), "big": struct.Struct(">HBBI")}


class _Fields(NamedTuple):
    code: int
    jt: int
    jf: int
    k: int


class Instruction(_Fields):
    """One ``struct sock_filter``: ``code`` (u16), ``jt``, ``jf`` (u8), ``k`` (u32)."""

    __slots__ = ()

    def __new__(cls, code: int, jt: int = 0, jf: int = 0, k: int = 0) -> "Instruction":
        if (type(code) is int and type(jt) is int and type(jf) is int and type(k) is int
                and 0 <= code <= 0xFFFF and 0 <= jt <= 0xFF and 0 <= jf <= 0xFF
                and 0 <= k <= 0xFFFFFFFF):
            return tuple.__new__(cls, (code, jt, jf, k))
        for name, value, top in (("code", code, 0xFFFF), ("jt", jt, 0xFF), ("jf", jf, 0xFF),
                                 ("k", k, 0xFFFFFFFF)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"Instruction.{name} must be an int, not {type(value).__name__}")
            if not 0 <= value <= top:
                raise ValueError(f"Instruction.{name}={value} is outside 0..{top:#x}")
        return super().__new__(cls, code, jt, jf, k)

    # typed views (computed, never stored)
    @property
    def cls(self) -> int:
        return op.bpf_class(self.code)

    @property
    def name(self) -> str:
        """Kernel spelling of the code, e.g. ``BPF_JMP|BPF_JEQ|BPF_K``."""
        return op.code_name(self.code)

    @property
    def is_return(self) -> bool:
        return self.code in (op.BPF_RET | op.BPF_K, op.BPF_RET | op.BPF_A)

    @property
    def is_conditional_jump(self) -> bool:
        return self.code in op.CONDITIONAL_JUMPS

    def __repr__(self) -> str:
        return f"Instruction({self.name}, jt={self.jt}, jf={self.jf}, k={self.k:#x})"


def stmt(code: int, k: int = 0) -> Instruction:
    """``BPF_STMT(code, k)`` as in include/uapi/linux/filter.h."""
    return Instruction(code, 0, 0, k)


def jump(code: int, k: int, jt: int, jf: int) -> Instruction:
    """``BPF_JUMP(code, k, jt, jf)`` as in include/uapi/linux/filter.h."""
    return Instruction(code, jt, jf, k)


class Program(Sequence[Instruction]):
    """An immutable classic-BPF program.

    ``endian`` records the byte order the program was read in (``to_bytes()``
    writes it back the same way); ``source`` names where it came from.
    """

    __slots__ = ("_insns", "endian", "source", "_hash")

    def __init__(self, insns: Iterable[Instruction | tuple[int, int, int, int]], *,
                 endian: str = "little", source: str | None = None):
        if endian not in ("little", "big"):
            raise ValueError(f"endian must be 'little' or 'big', not {endian!r}")
        self._insns: tuple[Instruction, ...] = tuple(
            i if type(i) is Instruction else Instruction(*i) for i in insns)
        self.endian = endian
        self.source = source
        self._hash: int | None = None

    # --- sequence protocol ---
    def __len__(self) -> int:
        return len(self._insns)

    @overload
    def __getitem__(self, index: int) -> Instruction: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Instruction, ...]: ...

    def __getitem__(self, index):
        return self._insns[index]

    def __iter__(self) -> Iterator[Instruction]:
        return iter(self._insns)

    @property
    def instructions(self) -> tuple[Instruction, ...]:
        return self._insns

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Program):
            return self._insns == other._insns
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self._insns)
        return self._hash

    def __repr__(self) -> str:
        src = f", source={self.source!r}" if self.source else ""
        return f"{type(self).__name__}({len(self)} instructions{src})"

    # --- bytes ---
    def to_bytes(self, endian: str | None = None) -> bytes:
        """The ``struct sock_filter`` array; byte order defaults to the one it was read in."""
        packer = _STRUCT[endian or self.endian]
        return b"".join(packer.pack(*i) for i in self._insns)

    @classmethod
    def from_bytes(cls, data: bytes, endian: str = "little", *, source: str | None = None) -> "Program":
        """Decode a ``struct sock_filter`` array (8 bytes per instruction)."""
        data = bytes(data)
        if len(data) % 8:
            raise LoadError(f"{len(data)} bytes is not a whole number of 8-byte sock_filter "
                            f"instructions ({len(data) % 8} trailing bytes)",
                            source=source, offset=len(data) - len(data) % 8)
        if endian not in _STRUCT:
            raise ValueError(f"endian must be 'little' or 'big', not {endian!r}")
        unpack = _STRUCT[endian].iter_unpack
        new = tuple.__new__          # struct already bounds every field: no re-validation
        return cls((new(Instruction, fields) for fields in unpack(data)), endian=endian,
                   source=source)

    def digest(self) -> str:
        """SHA-256 of the little-endian bytes: a stable identity for caches and reports."""
        return hashlib.sha256(self.to_bytes("little")).hexdigest()

    def to_numpy(self):
        """The instructions as a numpy structured array (``code, jt, jf, k``), native order."""
        import numpy as np
        arr = np.zeros(len(self), dtype=INSTRUCTION_DTYPE)
        if len(self):
            arr[:] = list(self._insns)
        return arr

    # --- pipeline ---
    def check(self, *, kernel=None) -> "CheckedProgram":
        """Accept exactly what seccomp(SECCOMP_SET_MODE_FILTER) accepts; raise InvalidProgram otherwise.

        ``kernel`` (a name such as ``"linux-6.18-x86_64-jit-always-on"`` or
        ``"host"``): also refuse what that kernel's BPF JIT fails on (ENOTSUPP).
        """
        from .check import check
        return check(self, kernel=kernel)

    def disassemble(self, arch: "str | Layout | None" = None) -> str:
        """bpf_asm text with seccomp names (fields, syscalls for ``arch``, actions)."""
        from .formats.disasm import disassemble
        return disassemble(self, arch=arch)


INSTRUCTION_DTYPE = [("code", "u2"), ("jt", "u1"), ("jf", "u1"), ("k", "u4")]
