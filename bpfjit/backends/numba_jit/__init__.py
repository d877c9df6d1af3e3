"""Backend stage (numba): a decision DAG over record words, then a generic cached interpreter.

An independent implementation of seccomp's classic BPF (it shares nothing with
the llvm backend or the reference interpreter). Compiling a program costs no
numba compilation: the program is

1. decoded into small opcode rows (:mod:`.decode`: host-order word indices
   for ``ld [k]``, absolute jump targets; ``jeq`` chains and trees become
   binary searches, ``ld`` + jump one step);
2. walked into a decision DAG (:mod:`.decisions`): for ``arch``, ``nr`` and
   any argument word the program compares, the intervals of values that
   lead to the same place, down to a fixed return value or a point where the
   interpreter takes over;

and both are flattened into arrays for :func:`.interpreter.run_batch`, compiled
once with ``@njit(cache=True, nogil=True)`` and shared by every program. Single
calls walk the same DAG in Python and call numba only when the interpreter must
finish the job.
"""
from __future__ import annotations

import struct
import threading
from bisect import bisect_right

import numpy as np

from ...check import CheckedProgram
from ...errors import BackendUnavailable
from ...seccomp.layouts import Layout
from . import decisions, decode
from .interpreter import DENSE, IMPORT_ERROR, run_batch

U32 = 0xFFFFFFFF
DENSE_MIN_PARTS = 16     # nodes with this many parts or more get a dense table below DENSE ...
DENSE_NODES = 64         # ... up to this many such tables per program
NR_MEMO = 1 << 16        # evaluate_nr remembers this many answers


class NumbaEvaluator:
    """A program decoded and walked into the arrays :func:`run_batch` takes."""

    releases_gil = True

    def __init__(self, program: CheckedProgram, layout: Layout):
        ins, kk = decode.decode(program, layout)
        self.decisions = decisions.build(ins, kk)
        run, run_k, dispatch = decode.runnable(ins, kk)
        self.dispatches = len(dispatch[0]) - 1
        leaf_ids: dict[tuple, int] = {}
        l_pc, l_val, l_word = [], [], []

        def code(child: tuple) -> int:
            if child[0] == "node":
                return child[1]
            if child not in leaf_ids:
                leaf_ids[child] = len(l_pc)
                regs = (child[1],) + (0,) * 17 if child[0] == "ret" else child[2:4] + child[4]
                l_pc.append(-1 if child[0] == "ret" else child[1])
                l_val.append([r if type(r) is int else r[1] for r in regs])
                l_word.append([-1 if type(r) is int else r[0] for r in regs])
            return -leaf_ids[child] - 1

        nodes = self.decisions.nodes
        n_off, n_key, n_kid, n_dense, dense = [0], [], [], [], []
        for node in nodes:
            n_key.extend(lo for lo, _, _ in node.parts)
            n_kid.extend(code(kid) for _, _, kid in node.parts)
            n_off.append(len(n_key))
            if len(node.parts) >= DENSE_MIN_PARTS and len(dense) < DENSE_NODES * DENSE:
                first = np.searchsorted(n_key[n_off[-2]:], np.arange(DENSE), side="right") - 1
                n_dense.append(len(dense))
                dense.extend(np.array(n_kid[n_off[-2]:], np.int64)[first].tolist())
            else:
                n_dense.append(-1)
        root = code(self.decisions.root)
        self._py = [(node.word, node.mask, n_key[n_off[c]:n_off[c + 1]], n_kid[n_off[c]:n_off[c + 1]])
                    for c, node in enumerate(nodes)]
        self._py_root = root
        self._leaves = [(pc, val[0]) for pc, val in zip(l_pc, l_val)]
        i64, u64 = np.int64, np.uint64
        reads_mem = bool(np.isin(ins[:, 0], (decode.OP_LD_MEM, decode.OP_LDX_MEM)).any())
        self._args = (run, run_k, *dispatch, root,
                      np.array([n.word for n in nodes], i64), np.array([n.mask for n in nodes], u64),
                      np.array(n_off, i64), np.array(n_dense, i64), np.array(n_key, u64),
                      np.array(n_kid, i64), np.array(dense, i64), np.array(l_pc, i64),
                      np.array(l_val, u64).reshape(-1, 18), np.array(l_word, i64).reshape(-1, 18),
                      16 if reads_mem else 0)
        self._local = threading.local()
        self._arch = layout.audit_arch
        self._by_nr: dict[int, int] = {}

    def evaluate_batch(self, records: np.ndarray, out: np.ndarray) -> None:
        run_batch(*self._args, records.view(np.uint32).reshape(len(records), 16), out)

    def evaluate_one(self, nr: int, arch: int, instruction_pointer: int, args) -> int:
        return self.evaluate_packed(_RECORD.pack(nr, arch, instruction_pointer, *args))

    def evaluate_nr(self, nr: int) -> int:
        """The layout's arch, instruction_pointer and args 0 (answers remembered)."""
        nr &= U32
        value = self._by_nr.get(nr)
        if value is None:
            value = self.evaluate_packed(_RECORD.pack(nr - ((nr & 0x80000000) << 1), self._arch,
                                                      0, *_NO_ARGS))
            if len(self._by_nr) < NR_MEMO:
                self._by_nr[nr] = value
        return value

    def evaluate_packed(self, record: bytes) -> int:
        """One record as the 64 bytes of ``struct seccomp_data`` in host order."""
        c = self._py_root
        if c >= 0:                       # walk the DAG in Python: no numba call for most calls
            words = _WORDS.unpack(record)
            while c >= 0:
                word, mask, keys, kids = self._py[c]
                c = kids[bisect_right(keys, words[word] & mask) - 1]
        pc, value = self._leaves[-c - 1]
        if pc < 0:
            return value
        try:
            buffer, out = self._local.buffers
        except AttributeError:
            self._local.buffers = np.zeros((1, 16), np.uint32), np.zeros(1, np.uint32)
            buffer, out = self._local.buffers
        buffer[0] = np.frombuffer(record, np.uint32)
        run_batch(*self._args, buffer, out)
        return int(out[0])

    def describe(self) -> dict[str, str]:
        nodes = self.decisions.nodes
        rets = resumes = 0
        for node in nodes:
            for _, _, kid in node.parts:
                rets += kid[0] == "ret"
                resumes += kid[0] == "resume"
        return {"decisions": f"{len(nodes)} decision nodes, {sum(len(n.parts) for n in nodes)} "
                             f"intervals: {rets} fixed return values, {resumes} resume the "
                             f"interpreter\n{self.dispatches} jump runs dispatched by binary search"}


_RECORD = struct.Struct("=iIQ6Q")       # struct seccomp_data, host order
_WORDS = struct.Struct("=16I")           # the same 64 bytes as 16 host-order words (node.word)
_NO_ARGS = (0,) * 6


class NumbaBackend:
    name = "numba"

    @staticmethod
    def unavailable_reason() -> str | None:
        return IMPORT_ERROR

    def compile(self, program: CheckedProgram, layout: Layout) -> NumbaEvaluator:
        if IMPORT_ERROR is not None:
            raise BackendUnavailable(IMPORT_ERROR)
        if not isinstance(program, CheckedProgram):
            raise TypeError(f"the numba backend compiles a CheckedProgram (see bpfjit.check), "
                            f"not {type(program).__name__}")
        return NumbaEvaluator(program, layout)


BACKEND = NumbaBackend()
