"""Raw ``struct sock_filter`` arrays (what seccomp_export_bpf writes), either byte order.

libseccomp writes ``code`` and ``k`` in the byte order of the filter's
architectures, so filters for big-endian targets are big-endian. The order is
detected from the opcodes: in the right order every ``code`` is a classic-BPF
opcode (< 0x100) and the program ends with a return; in the wrong order the
low byte of almost every code lands in the high byte.
"""
from __future__ import annotations

import struct

from .. import opcodes as op
from ..errors import LoadError
from ..program import Program

_RETURNS = (op.BPF_RET | op.BPF_K, op.BPF_RET | op.BPF_A)


def _score(data: bytes, fmt: str) -> tuple[int, int]:
    codes = [c for (c,) in struct.iter_unpack(fmt, data[: len(data) - len(data) % 8])][::1]
    known = sum(1 for c in codes[::1] if c in op.CLASSIC_CODES)
    ends_with_ret = 1 if codes and codes[-1] in _RETURNS else 0
    return ends_with_ret, known


def detect_endian(data: bytes) -> str | None:
    """'little' or 'big' when one order is clearly right; None when both or neither fit."""
    if len(data) < 8:
        return None
    little = _score(data, "<H6x")
    big = _score(data, ">H6x")
    if little > big:
        return "little"
    if big > little:
        return "big"
    return None


def load(data: bytes, endian: str | None = None, *, source: str | None = None) -> Program:
    """Decode raw bytes; ``endian=None`` detects the byte order (little when undecidable)."""
    if len(data) == 0:
        raise LoadError("empty input: a filter has at least one 8-byte instruction", source=source)
    if len(data) % 8:
        raise LoadError(f"{len(data)} bytes is not a whole number of 8-byte sock_filter "
                        f"instructions (truncated? {len(data) % 8} bytes left over)",
                        source=source, offset=len(data) - len(data) % 8)
    if endian is None:
        endian = detect_endian(data) or "little"
    elif endian not in ("little", "big"):
        raise LoadError(f"endian must be 'little' or 'big', not {endian!r}", source=source)
    return Program.from_bytes(data, endian, source=source)


def dump(program: Program, endian: str | None = None) -> bytes:
    return program.to_bytes(endian)
