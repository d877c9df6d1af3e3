"""Fuzzing stage, the Python worker: serves a ``module:function`` candidate over the candidate protocol.

``python -m bpfjit.testing.worker MODULE:FUNCTION [--checker]`` reads
protocol-version-1 requests (:mod:`bpfjit.testing.protocol`) on stdin and
answers on stdout, calling the candidate as the in-process fuzzer would
(:mod:`bpfjit.testing.candidates`). The fuzzer runs Python candidates this
way so that one that hangs is killed after the batch timeout and one that
crashes the interpreter is reported, and the run goes on. A candidate that
breaks the Python protocol (wrong shape or type) ends the worker with the
message on stderr, which the fuzzer quotes.
"""
from __future__ import annotations

import struct
import sys

import numpy as np

from ..errors import BpfjitError
from ..seccomp.records import SECCOMP_DATA
from . import protocol as proto
from .candidates import Rejected, load


def _read(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        if not data:
            raise EOFError
        raise proto.ProtocolError(f"truncated frame: {len(data)} of {n} bytes")
    return data


def _u32(stream) -> int:
    return proto.u32(_read(stream, 4))


def serve(spec: str, checker_only: bool, inp, out) -> int:
    head = _read(inp, 20)
    if head[:4] != proto.MAGIC:
        raise proto.ProtocolError(f"bad magic {head[:4]!r}")
    version, _audit_arch, flags, name_len = struct.unpack("<IIII", head[4:])
    if version != proto.VERSION:
        raise proto.ProtocolError(f"protocol version {version}; this worker speaks "
                                  f"{proto.VERSION}")
    arch = _read(inp, name_len).decode()
    stack = bool(flags & proto.FLAG_STACK)
    cand = load(spec, layout=arch, checker_only=checker_only)
    if cand.stack != stack:
        raise BpfjitError(f"candidate {spec!r} is {'' if cand.stack else 'not '}a stack "
                          f"evaluator, but this is {'a' if stack else 'not a'} stack run")
    caps = (proto.CAP_CHECK if cand.check is not None else 0) | \
        (proto.CAP_VERDICTS_ONLY if cand.verdicts_only else 0) | \
        (proto.CAP_CHECK_ONLY if not cand.evaluates else 0)
    out.write(proto.hello_reply(caps))
    out.flush()
    while True:
        try:
            op = _u32(inp)
        except EOFError:
            return 0
        programs = [_read(inp, _u32(inp)) for _ in range(_u32(inp))]
        arg = programs if stack else programs[0]
        if op == proto.OP_CHECK:
            verdict = cand.accepts(arg)
            out.write(proto.accept_values(np.zeros(0, np.uint32)) if verdict is True
                      else proto.reject(str(verdict)))
        elif op == proto.OP_EVALUATE:
            n = _u32(inp)
            wire = np.frombuffer(_read(inp, n * proto.RECORD_SIZE), dtype=proto.WIRE_RECORD)
            records = np.zeros(n, dtype=SECCOMP_DATA)
            for field in ("nr", "arch", "instruction_pointer", "args"):
                records[field] = wire[field]
            got = cand.answer(arg, records)
            if got is None:
                got = Rejected("the candidate cannot evaluate this program")
            out.write(proto.reject(got.reason) if isinstance(got, Rejected)
                      else proto.accept_values(got))
        else:
            raise proto.ProtocolError(f"unknown op {op}")
        out.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("-"):
        print("usage: python -m bpfjit.testing.worker MODULE:FUNCTION [--checker]",
              file=sys.stderr)
        return 2
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr            # a candidate's print() must not corrupt the frames
    try:
        return serve(args[0], "--checker" in args[1:], inp, out)
    except (BpfjitError, proto.ProtocolError, ValueError) as exc:
        print(f"bpfjit worker: {exc}", file=sys.stderr)
        return 3
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
