"""Fuzzing tests, planted bugs: deliberately wrong seccomp evaluators and checkers the fuzzer must catch.

``make(bug)`` returns a candidate ``f(program_bytes, records)`` following
the protocol of :mod:`bpfjit.testing.candidates`: a small interpreter of its
own (sharing nothing with bpfjit's backends) that is right except for the
one named bug. Accept/reject is bpfjit.check's, except for the
``scratch_rule`` checker, which forgets ``check_load_and_stores``.
"""
from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np

import bpfjit_reference as ref
from bpfjit.errors import InvalidProgram
from bpfjit.program import Program

checker = importlib.import_module("bpfjit.check")   # the module (bpfjit.check is also a function)

U32 = 0xFFFFFFFF
BUGS = ("signed_jgt", "unmasked_shift", "div0_continues", "swapped_args", "stack_unsigned",
        "scratch_rule")


def _words(rec, swap_args: bool) -> list[int]:
    """The 16 little-endian words ld [4*i] sees (x86_64), optionally with args' halves swapped."""
    w = [int(rec["nr"]) & U32, int(rec["arch"]), int(rec["instruction_pointer"]) & U32,
         int(rec["instruction_pointer"]) >> 32]
    for a in rec["args"].tolist():
        lo, hi = a & U32, a >> 32
        w += [hi, lo] if swap_args else [lo, hi]
    return w


_ALU = {0x00: lambda a, b: a + b, 0x10: lambda a, b: a - b, 0x20: lambda a, b: a * b,
        0x30: lambda a, b: a // b, 0x40: lambda a, b: a | b, 0x50: lambda a, b: a & b,
        0x60: lambda a, b: a << b, 0x70: lambda a, b: a >> b, 0xA0: lambda a, b: a ^ b}


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def interpret(insns, words, bug: str | None) -> int:
    A = X = 0
    M = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 7
        if code == 0x20:
            A = words[k // 4]
        elif code == 0x80:
            A = 64
        elif code == 0x81:
            X = 64
        elif code == 0x00:
            A = k
        elif code == 0x01:
            X = k
        elif code == 0x60:
            A = M[k]
        elif code == 0x61:
            X = M[k]
        elif code == 0x02:
            M[k] = A
        elif code == 0x03:
            M[k] = X
        elif code == 0x07:
            X = A
        elif code == 0x87:
            A = X
        elif code == 0x84:
            A = -A & U32
        elif cls == 4:
            operation, b = code & 0xF0, (X if code & 8 else k)
            if operation == 0x30 and b == 0:
                if bug == "div0_continues":
                    A = 0
                    continue
                return 0
            if operation in (0x60, 0x70):
                if bug != "unmasked_shift":
                    b &= 31
                elif b >= 32:           # the bug: shifted out entirely, as a naive C/JIT does
                    A = 0
                    continue
            A = _ALU[operation](A, b) & U32
        elif code == 0x05:
            pc += k
        elif cls == 5:
            operation, b = code & 0xF0, (X if code & 8 else k)
            a = A
            if bug == "signed_jgt" and operation == 0x20:
                a, b = _s32(a), _s32(b)
            taken = {0x10: a == b, 0x20: a > b, 0x30: a >= b, 0x40: (a & b) != 0}[operation]
            pc += jt if taken else jf
        elif code == 0x06:
            return k
        elif code == 0x16:
            return A
        else:
            raise ValueError(f"opcode {code:#x}")


def _program(data: bytes) -> list[tuple[int, int, int, int]]:
    prog = Program.from_bytes(data)
    checker.check(prog)                     # raise = reject, as the protocol says
    return [tuple(i) for i in prog]


def make(bug: str):
    """The candidate with ``bug`` planted (see BUGS)."""
    if bug not in BUGS:
        raise ValueError(f"unknown bug {bug!r}")
    if bug == "stack_unsigned":
        def evaluate_stack(programs, records):
            progs = [_program(p) for p in programs]
            out = []
            for rec in records:
                words = _words(rec, False)
                ret = 0x7FFF0000
                for cur in reversed([interpret(p, words, None) for p in progs]):
                    if cur & 0x7FFF0000 < ret & 0x7FFF0000:   # the bug: sign bit dropped
                        ret = cur
                out.append(ret)
            return np.array(out, dtype=np.uint32)
        evaluate_stack.stack = True
        evaluate_stack.__name__ = evaluate_stack.__qualname__ = bug
        return evaluate_stack

    if bug == "scratch_rule":
        def check(data: bytes) -> bool:
            if len(data) % 8:
                return False
            prog = Program.from_bytes(data)
            try:
                checker.bpf_check_basics_ok(prog)
                for pc, insn in enumerate(prog):   # bpf_check_classic without its last step,
                    checker._classic_instruction(pc, insn, len(prog))   # the bug:
                if not prog[len(prog) - 1].is_return:   # check_load_and_stores forgotten
                    return False
                checker.seccomp_check_filter(prog)
            except InvalidProgram:
                return False
            return True
        return SimpleNamespace(check=check)    # an object with check only: a pure checker

    def evaluate(data: bytes, records: np.ndarray) -> np.ndarray:
        insns = _program(data)
        return np.array([interpret(insns, _words(r, bug == "swapped_args"), bug)
                         for r in records], dtype=np.uint32)
    evaluate.__name__ = evaluate.__qualname__ = bug
    return evaluate


def correct(data: bytes, records: np.ndarray) -> np.ndarray:
    """A right candidate: the planted interpreter with no bug."""
    insns = _program(data)
    return np.array([interpret(insns, _words(r, False), None) for r in records], dtype=np.uint32)


def reference_candidate(data: bytes, records: np.ndarray) -> np.ndarray:
    """What a user would write: a thin wrapper over bpfjit_reference."""
    insns = _program(data)
    return np.array([ref.run_seccomp(insns, int(r["nr"]), int(r["arch"]),
                                     int(r["instruction_pointer"]), r["args"].tolist(), "little")
                     for r in records], dtype=np.uint32)
