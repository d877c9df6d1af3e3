"""Backend stage for stacks: a whole :class:`~bpfjit.Stack` as one native batch function.

:mod:`.lower_stack` builds the IR (every filter inlined, the kernel's
precedence in registers); this module builds and loads it through the same
engine, image loader and cache as single programs
(:meth:`LlvmBackend.compile_stack <bpfjit.backends.llvm.LlvmBackend.compile_stack>`),
and binds the entry point::

    void bpfjit_stack_batch(const struct seccomp_data *recs, int64_t n,
                            uint32_t *out, int32_t *match /* or NULL */);
"""
from __future__ import annotations

import ctypes
import struct
import time
from typing import Any, Sequence

import numpy as np

from ...check import CheckedProgram
from ...errors import InputError
from ...seccomp.layouts import Layout
from ...seccomp.records import SECCOMP_DATA

STACK_ENTRY = "bpfjit_stack_batch"
STACK_ENTRIES = (STACK_ENTRY,)
STACK_PROTOTYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                                   ctypes.c_void_p)


def stack_bytes(programs: Sequence[bytes]) -> bytes:
    """The programs' bytes, each prefixed by its length: one unambiguous cache-key input."""
    return b"".join(struct.pack("<I", len(p)) + p for p in programs)


def build_stack(programs: Sequence[CheckedProgram], layout: Layout,
                loader: str) -> tuple[Any, dict, bytes]:
    """Analyse each program, lower the stack, optimise, generate and load."""
    from ...analysis import dispatch, stack_verdicts, verdicts
    from . import _generate
    from .lower_stack import lower_stack
    t0 = time.perf_counter()
    tables = [verdicts.build(p, layout) for p in programs]
    regions = [dispatch.find_dispatches(p) for p in programs]
    front = stack_verdicts.build(programs, layout)
    t1 = time.perf_counter()
    ir_text = str(lower_stack(programs, layout, dispatches=regions, tables=tables, front=front))
    info: dict[str, Any] = {"filters": len(programs),
                            "stack_table_entries": front.table.entries,
                            "stack_table_known": front.table.known,
                            "table_entries": sum(t.entries for t in tables),
                            "switches": sum(len(r) for r in regions)}
    return _generate(ir_text, loader, STACK_ENTRIES, info, t0, t1)


class LlvmStackEvaluator:
    """Native code for one (stack, layout): ``evaluate_batch(records, out, match=None)``."""

    releases_gil = True

    def __init__(self, code: Any, programs: tuple[CheckedProgram, ...], layout: Layout,
                 info: dict[str, Any]):
        address = code.addresses.get(STACK_ENTRY)
        if not address:
            raise RuntimeError(f"native code lacks the entry point {STACK_ENTRY}")
        self._code = code                      # owns the executable memory / the MCJIT engine
        self._batch = STACK_PROTOTYPE(address)
        self.programs = programs
        self.layout = layout
        self.info = info

    def evaluate_batch(self, records: np.ndarray, out: np.ndarray,
                       match: np.ndarray | None = None) -> None:
        """``out[i]``: the stack's retval; ``match[i]`` (int32, optional): the filter that won."""
        n = len(records)
        if (records.dtype != SECCOMP_DATA or not records.flags.c_contiguous or records.ndim != 1
                or out.dtype != np.uint32 or out.shape != (n,) or not out.flags.c_contiguous
                or not out.flags.writeable
                or (match is not None and (match.dtype != np.int32 or match.shape != (n,)
                                           or not match.flags.c_contiguous
                                           or not match.flags.writeable))):
            raise InputError("LlvmStackEvaluator.evaluate_batch needs a 1-D contiguous "
                             "SECCOMP_DATA array and writable uint32 (and int32 match) arrays "
                             "of the same length (Stack.evaluate_batch checks and explains)")
        if n:
            self._batch(records.ctypes.data, n, out.ctypes.data,
                        None if match is None else match.ctypes.data)
