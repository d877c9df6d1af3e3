"""Fuzzing stage, the candidate protocol: how ``bpfjit fuzz`` talks to an evaluator in another process.

An evaluator written in any language (C, Go, Rust, ...) is fuzzed with
``bpfjit fuzz --candidate-cmd "CMD ARGS"``. The fuzzer starts the command
and speaks **protocol version 1** on its stdin and stdout: binary frames,
every integer little-endian, no text and no newlines. The candidate's
stderr is collected and quoted when it crashes; its exit status is reported.

Handshake, once after start::

    fuzzer -> candidate   "BPFJ"  u32 version (1)  u32 audit_arch  u32 flags
                          u32 name_len  name (utf-8, the layout: "x86_64", "aarch64", ...)
    candidate -> fuzzer   "BPFJ"  u32 version (1)  u32 capabilities

``flags`` bit 0 (FLAG_STACK): a stack run (``--stack``): every request
carries 1-8 programs, oldest first, and the answer is what the kernel's
``seccomp_run_filters`` returns for the stack. ``capabilities`` bit 0
(CAP_CHECK): the candidate answers CHECK requests, a pure checker deciding
accept/reject; bit 1 (CAP_VERDICTS_ONLY): it does not check programs, send
it valid programs only; bit 2 (CAP_CHECK_ONLY): a pure checker, it answers
CHECK requests only. A candidate that answers another version, or
anything else, is refused with a clear error.

Requests, one at a time; each gets exactly one response::

    u32 op (1 EVALUATE, 2 CHECK)  u32 nprograms
    nprograms x { u32 nbytes  nbytes of struct sock_filter, little-endian, 8 bytes an
                  instruction (garbage programs may not be a whole number of them) }
    EVALUATE only:  u32 nrecords  nrecords x 64-byte record

A record is ``struct seccomp_data`` as on x86_64, little-endian, holding
the *logical* values: ``s32 nr, u32 arch, u64 instruction_pointer, u64
args[6]``. The candidate emulates the layout named in the handshake (for a
big-endian layout, ``ld [16]`` is the high word of ``args[0]``).

Responses::

    u32 status 0 (ACCEPT)   EVALUATE: nrecords x u32 (the program's return value per record)
                            CHECK: nothing more
    u32 status 1 (REJECT)   u32 len  reason (utf-8): "Linux would refuse to install it"

The fuzzer closes the candidate's stdin at the end; the candidate then exits.

**Timeouts and crashes.** Each request must be answered within the batch
timeout (``--timeout``, 10 s by default). A candidate that does not, that
exits or dies (a segfault), or that breaks the framing, is killed and
reported as a ``hang``/``crash`` disagreement with the program and the
records of that request (and, for a crash, the single record that crashes
it when there is one); the run goes on with a fresh process.

Python candidates (``--candidate module:function``) are run by the CLI in a
worker process speaking this protocol (:mod:`bpfjit.testing.worker`), so
that a hanging or crashing Python evaluator is timed out and reported too.
``examples/candidates/c/`` holds a complete C candidate.
"""
from __future__ import annotations

import struct

import numpy as np

MAGIC = b"BPFJ"
VERSION = 1
FLAG_STACK = 1
CAP_CHECK = 1
CAP_VERDICTS_ONLY = 2
CAP_CHECK_ONLY = 4
OP_EVALUATE, OP_CHECK = 1, 2
ACCEPT, REJECT = 0, 1
RECORD_SIZE = 64
MAX_PROGRAMS = 64
MAX_PROGRAM_BYTES = 1 << 20
MAX_RECORDS = 1 << 20

#: a record on the wire: struct seccomp_data, little-endian, logical values
WIRE_RECORD = np.dtype([("nr", "<i4"), ("arch", "<u4"), ("instruction_pointer", "<u8"),
                        ("args", "<u8", (6,))])
assert WIRE_RECORD.itemsize == RECORD_SIZE

_U32 = struct.Struct("<I")


class ProtocolError(ValueError):
    """A frame that breaks the protocol (bad magic, version, sizes)."""


def hello(audit_arch: int, name: str, stack: bool) -> bytes:
    raw = name.encode()
    return MAGIC + struct.pack("<IIII", VERSION, audit_arch, FLAG_STACK if stack else 0,
                               len(raw)) + raw


def hello_reply(capabilities: int) -> bytes:
    return MAGIC + struct.pack("<II", VERSION, capabilities)


def request(op: int, programs: list[bytes], records: np.ndarray | None = None) -> bytes:
    parts = [struct.pack("<II", op, len(programs))]
    for p in programs:
        parts += [_U32.pack(len(p)), bytes(p)]
    if op == OP_EVALUATE:
        wire = np.zeros(len(records), dtype=WIRE_RECORD)
        for name in ("nr", "arch", "instruction_pointer", "args"):
            wire[name] = records[name]
        parts += [_U32.pack(len(wire)), wire.tobytes()]
    return b"".join(parts)


def accept_values(values: np.ndarray) -> bytes:
    return _U32.pack(ACCEPT) + np.ascontiguousarray(values, dtype="<u4").tobytes()


def reject(reason: str) -> bytes:
    raw = reason.encode("utf-8", "replace")[:4096]
    return _U32.pack(REJECT) + _U32.pack(len(raw)) + raw


def u32(data: bytes) -> int:
    return _U32.unpack(data)[0]
