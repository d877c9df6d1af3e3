"""The x86-64 BPF JIT's size passes on a converted seccomp program: does it converge?

Linux turns a seccomp filter into eBPF (net/core/filter.c ``bpf_convert_filter``,
after kernel/seccomp.c ``seccomp_check_filter`` rewrote ``ld [k]`` into the
``seccomp_data`` load and ``ld len`` into ``ld #64``) and, with
CONFIG_BPF_JIT_ALWAYS_ON, must compile it with the architecture's JIT
(``bpf_prog_select_runtime`` returns -ENOTSUPP otherwise). The x86-64 JIT
(arch/x86/net/bpf_jit_comp.c ``bpf_int_jit_compile``) sizes the program in
passes: ``addrs[]`` starts at 64 bytes per instruction; each pass of
``do_jit`` emits every instruction with the jump encodings the previous pass's
``addrs[]`` allow (a 2-byte jump when the offset is in [-128, 123], else 6 bytes
for a conditional, 5 for ``jmp``; a ``ja`` to the next instruction is dropped;
a later ``exit`` jumps back to the first one's epilogue) and records the new
``addrs[]``. When a pass's total equals the previous one the image is
allocated, and one more pass writes it, checking that every instruction
ends where the previous pass said ("bpf_jit: fatal error" otherwise). From
pass 15 (PADDING_PASSES) jumps that could shrink are padded with nops to
their previous size; a pad other than the expected 0/4 (conditional), 0/3
(``jmp``) or 0/2/5 (dropped ``ja``) bytes is an error too. No convergence in
20 passes (MAX_PASSES), or any of those errors, leaves the program
un-JITed: seccomp() fails with ENOTSUPP (524).

This module models exactly that on instruction *sizes*: :func:`bpf_convert_filter`
gives the shape of the converted program (each eBPF instruction's fixed size,
or its kind and jump target), :func:`bpf_int_jit_compile` replays the pass
loop (``do_jit``'s size decisions, the padding rule and both checks) and says
whether, and after how many passes, the JIT gives up.

Sizes (Linux 6.13-6.18; A = rax, X = r13, TMP = rsi, CTX = rbx, FP = rbp):
prologue ``xor eax,eax`` 2, ``xor r13d,r13d`` 3, ``mov rbx,rdi`` 3;
``ld [k]`` 3; ``ld #k``/``ldx #k`` 5/6 (2/3 for 0); ``ld M[]``/``st`` 3,
``ldx M[]``/``stx`` 4; ``tax``/``txa`` 3; ALU #k 3 (imm8) or 5, ALU x 3;
``mul #k`` 3/6, ``mul x`` 4; ``div #k`` 14, ``div x`` 7 after the X == 0 guard
(``mov r13d,r13d`` 3, ``test r13,r13`` 3 + jne, ``xor eax,eax`` 2, ``exit``);
shifts #1 2, #k 3, by x 5 (BMI2 ``shlx``) or 7; ``neg`` 2; ``ret #k`` 5 (2 for 0)
+ ``exit``; compares ``test rax,rax`` 3 (#0), ``cmp rax,imm8`` 4, imm32 7,
``test rax,imm32`` (jset) 7, register forms 3, and ``#k`` with bit 31 set
loads ``mov esi,k`` (5) first and compares registers; the first ``exit`` is
the epilogue (``pop r13; pop rbx; leave`` + ``ret`` or a 5-byte return thunk).

Other limits on the way cannot fail for seccomp programs: ``bpf_convert_filter``
rejects jump offsets outside s16 (at most 3 + 5 x 4096 eBPF instructions here),
``do_jit`` an instruction over BPF_MAX_INSN_SIZE (128 bytes; the largest here
is ``div #k``, 14). Allocation failures (ENOMEM) are not predicted, nor is
the attach-time path budget (:mod:`bpfjit.stack`).

Verified against Linux 6.18 (x86_64, AMD EPYC, root loader) on 1,000,000
generated programs and the cases pinned in tests/kernelcfg/jit_cases.json
(see README, "Kernel-exact acceptance").

Limits: x86-64 only; Linux >= 6.13 (``is_imm8_jmp_offset``: forward 2-byte
jumps up to 123; older kernels use 127 and fewer rules); no constant
blinding (bpf_jit_harden); the CPU/loader properties in
:class:`bpfjit.kernelcfg.KernelConfig` (a loader without CAP_SYS_ADMIN on an
Intel CPU with CLEAR_BHB_LOOP gets a longer epilogue: set ``bhb_barrier``).
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import opcodes as op
from ..program import Program
from . import KernelConfig

#: instruction kinds of a shape
FIXED, JCOND, JA, EXIT = 0, 1, 2, 3

_ALU_SIMPLE = (op.BPF_ADD, op.BPF_SUB, op.BPF_AND, op.BPF_OR, op.BPF_XOR)


def _imm8(v: int) -> bool:
    v = v - (1 << 32) if v & 0x80000000 else v
    return -128 <= v <= 127


@dataclass(frozen=True)
class Shape:
    """A converted program for the JIT: per eBPF instruction (kind, size or compare size, target).

    ``target`` is the ``addrs[]`` index of a jump's destination (``i + off``
    for the 1-based ``i`` of ``do_jit``), -1 otherwise. ``stack_depth`` is
    ``prog->aux->stack_depth`` (the deepest ``st``/``stx``).
    """

    kinds: tuple
    sizes: tuple
    targets: tuple
    stack_depth: int

    def __len__(self) -> int:
        return len(self.kinds)


def bpf_convert_filter(program: Program, config: KernelConfig) -> Shape:
    """The eBPF program net/core/filter.c makes of a *checked* seccomp program, as sizes."""
    insns = program.instructions
    n = len(insns)
    # first pass: eBPF start index of every classic instruction (3 prologue instructions)
    start = [0] * (n + 1)
    pos = 3
    for ci, (code, jt, jf, k) in enumerate(insns):
        start[ci] = pos
        if code == op.BPF_RET | op.BPF_K:
            pos += 2
        elif code == op.BPF_ALU | op.BPF_DIV | op.BPF_X:
            pos += 5
        elif code in op.CONDITIONAL_JUMPS:
            pos += 1 + (op.bpf_src(code) == op.BPF_K and bool(k & 0x80000000)) + \
                (jf != 0 and not (jt == 0 and op.bpf_op(code) != op.BPF_JSET))
        else:
            pos += 1
    start[n] = pos
    kinds = [FIXED, FIXED, FIXED]
    sizes = [2, 3, 3]
    targets = [-1, -1, -1]
    stack = 0

    def fixed(size: int) -> None:
        kinds.append(FIXED)
        sizes.append(size)
        targets.append(-1)

    def jump(kind: int, size: int, ci_target: int) -> None:
        # the jump's 1-based do_jit index is len(kinds) + 1; target addrs index = start of target
        kinds.append(kind)
        sizes.append(size)
        targets.append(start[ci_target])

    def exit_() -> None:
        kinds.append(EXIT)
        sizes.append(0)
        targets.append(-1)

    shift_x = 5 if config.bmi2 else 7
    for ci, (code, jt, jf, k) in enumerate(insns):
        cls = code & 0x07
        if code == op.BPF_LD | op.BPF_W | op.BPF_ABS:
            fixed(3)                                   # mov eax, [rbx + k]
        elif code in (op.BPF_LD | op.BPF_IMM, op.BPF_LD | op.BPF_W | op.BPF_LEN):
            k = 64 if code & op.BPF_LEN else k         # seccomp: ld len -> ld #64
            fixed(2 if k == 0 else 5)
        elif code in (op.BPF_LDX | op.BPF_IMM, op.BPF_LDX | op.BPF_W | op.BPF_LEN):
            k = 64 if code & op.BPF_LEN else k
            fixed(3 if k == 0 else 6)
        elif code == op.BPF_LD | op.BPF_MEM:
            fixed(3)
        elif code == op.BPF_LDX | op.BPF_MEM:
            fixed(4)
        elif code in (op.BPF_ST, op.BPF_STX):
            fixed(3 if code == op.BPF_ST else 4)
            stack = max(stack, 4 * k + 4)
        elif cls == op.BPF_MISC:
            fixed(3)                                   # tax / txa: mov r64, r64
        elif cls == op.BPF_RET:
            if code == op.BPF_RET | op.BPF_K:
                fixed(2 if k == 0 else 5)
            exit_()
        elif cls == op.BPF_ALU:
            alu = op.bpf_op(code)
            is_x = op.bpf_src(code) == op.BPF_X
            if alu == op.BPF_NEG:
                fixed(2)
            elif alu in _ALU_SIMPLE:
                fixed(3 if is_x or _imm8(k) else 5)
            elif alu == op.BPF_MUL:
                fixed(4 if is_x else (3 if _imm8(k) else 6))
            elif alu == op.BPF_DIV:
                if is_x:
                    fixed(3)                           # mov r13d, r13d
                    kinds.append(JCOND)                # test r13, r13; jne +2
                    sizes.append(3)
                    targets.append(len(kinds) + 2)
                    fixed(2)                           # xor eax, eax
                    exit_()
                    fixed(7)
                else:
                    fixed(14)
            elif alu in (op.BPF_LSH, op.BPF_RSH):
                fixed(shift_x if is_x else (2 if k == 1 else 3))
            else:
                raise ValueError(f"instruction {ci}: {op.code_name(code)} is not a seccomp ALU op")
        elif code == op.BPF_JMP | op.BPF_JA:
            jump(JA, 0, ci + 1 + k)
        elif code in op.CONDITIONAL_JUMPS:
            jop = op.bpf_op(code)
            if op.bpf_src(code) == op.BPF_K and k & 0x80000000:
                fixed(5)                               # mov esi, k
                cmp = 3
            elif op.bpf_src(code) == op.BPF_X:
                cmp = 3
            elif jop == op.BPF_JSET:
                cmp = 7
            else:
                cmp = 3 if k == 0 else (4 if k <= 127 else 7)
            if jf == 0:
                jump(JCOND, cmp, ci + 1 + jt)
            elif jt == 0 and jop != op.BPF_JSET:
                jump(JCOND, cmp, ci + 1 + jf)
            else:
                jump(JCOND, cmp, ci + 1 + jt)
                jump(JA, 0, ci + 1 + jf)
        else:
            raise ValueError(f"instruction {ci}: {op.code_name(code)} is not a seccomp instruction")
        if len(kinds) != start[ci + 1]:
            raise AssertionError(f"instruction {ci}: conversion length mismatch")  # pragma: no cover
    return Shape(tuple(kinds), tuple(sizes), tuple(targets), stack)


@dataclass(frozen=True)
class JitResult:
    """What ``bpf_int_jit_compile`` does with a program: JITed or not, after how many passes."""

    jited: bool
    passes: int          # do_jit passes run, the image pass included
    proglen: int         # the last pass's length in bytes (0 if a pass failed)
    reason: str = ""     # why it gave up: the kernel's pr_err text and where

    def message(self) -> str:
        return (f"refused by the x86-64 JIT (did not converge in {self.passes} passes: "
                f"{self.reason})")


class _Fail(Exception):
    pass


def _do_jit(shape: Shape, addrs: list, image: bool, oldproglen: int, padding: bool,
            prologue: int, epilogue: int, imm8_max: int) -> int:
    """One ``do_jit`` pass over sizes: updates ``addrs`` in place, returns proglen or raises _Fail."""
    kinds, sizes, targets = shape.kinds, shape.sizes, shape.targets
    proglen = prologue
    addrs[0] = proglen
    cleanup = -1
    seen_exit = False
    for i in range(1, len(kinds) + 1):
        kind = kinds[i - 1]
        if kind == FIXED:
            ilen = sizes[i - 1]
        elif kind == JCOND:
            cmp = sizes[i - 1]
            jo = addrs[targets[i - 1]] - addrs[i]
            if -128 <= jo <= imm8_max:
                ilen = cmp + 2
                if padding:
                    nops = addrs[i] - addrs[i - 1] - cmp - 2
                    if nops != 0 and nops != 4:
                        raise _Fail(f"unexpected jmp_cond padding: {nops} bytes at eBPF "
                                    f"instruction {i - 1}")
                    ilen += nops
            else:
                ilen = cmp + 6
        elif kind == EXIT and not seen_exit:
            seen_exit = True
            cleanup = proglen
            ilen = epilogue
        else:
            if kind == JA:
                jo = addrs[targets[i - 1]] - addrs[i]
                if jo == 0:
                    ilen = 0
                    if padding:
                        nops = addrs[i] - addrs[i - 1]
                        if nops != 0 and nops != 2 and nops != 5:
                            raise _Fail(f"unexpected nop jump padding: {nops} bytes at eBPF "
                                        f"instruction {i - 1}")
                        ilen = nops
                    if image and (proglen + ilen > oldproglen or proglen + ilen != addrs[i]):
                        raise _Fail(f"bpf_jit: fatal error at eBPF instruction {i - 1}")
                    proglen += ilen
                    addrs[i] = proglen
                    continue
            else:
                jo = cleanup - addrs[i]
            if -128 <= jo <= imm8_max:
                ilen = 2
                if padding:
                    nops = addrs[i] - addrs[i - 1] - 2
                    if nops != 0 and nops != 3:
                        raise _Fail(f"unexpected jump padding: {nops} bytes at eBPF "
                                    f"instruction {i - 1}")
                    ilen += nops
            else:
                ilen = 5
        if image and (proglen + ilen > oldproglen or proglen + ilen != addrs[i]):
            raise _Fail(f"bpf_jit: fatal error at eBPF instruction {i - 1} (the passes agreed "
                        f"on the length, {oldproglen} bytes, but not on this address)")
        proglen += ilen
        addrs[i] = proglen
    return proglen


def bpf_int_jit_compile(shape: Shape, config: KernelConfig) -> JitResult:
    """Replay arch/x86/net/bpf_jit_comp.c ``bpf_int_jit_compile``'s pass loop on ``shape``."""
    n = len(shape)
    addrs = [64 * (i + 1) for i in range(n + 1)]
    prologue = config.prologue_size(shape.stack_depth)
    epilogue = config.epilogue_size()
    imm8_max = config.imm8_jmp_max
    oldproglen = 0
    image = False
    padding = False
    pass_ = 0
    while pass_ < config.max_passes or image:
        if not padding and pass_ >= config.padding_passes:
            padding = True
        try:
            proglen = _do_jit(shape, addrs, image, oldproglen, padding, prologue, epilogue,
                              imm8_max)
        except _Fail as exc:
            return JitResult(False, pass_ + 1, 0, str(exc))
        if image:
            if proglen != oldproglen:      # pragma: no cover - the per-instruction check fires first
                return JitResult(False, pass_ + 1, proglen,
                                 f"bpf_jit: proglen={proglen} != oldproglen={oldproglen}")
            return JitResult(True, pass_ + 1, proglen)
        if proglen == oldproglen:
            image = True
        oldproglen = proglen
        pass_ += 1
    return JitResult(False, pass_, oldproglen,
                     f"the length still changed in pass {pass_} (MAX_PASSES)")


def jit_result(program: Program, config: KernelConfig) -> JitResult:
    """Convert a checked seccomp program and replay the JIT's passes for ``config``."""
    return bpf_int_jit_compile(bpf_convert_filter(program, config), config)


__all__ = ["Shape", "JitResult", "bpf_convert_filter", "bpf_int_jit_compile", "jit_result",
           "FIXED", "JCOND", "JA", "EXIT"]
