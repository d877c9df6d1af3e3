"""Lowering stage: a checked program and a layout become an LLVM IR module (llvmlite.ir only).

The module defines the four native entry points of :mod:`.abi` (all ``i32``
results are the program's 32-bit return value)::

    i32  bpfjit_one(ptr rec)                       one 64-byte record
    void bpfjit_batch(ptr recs, i64 n, ptr out)    out[i] = bpfjit_one(recs + 64*i)
    i32  bpfjit_args(i32 nr, i32 arch, i64 ip, i64 a0 .. a5)
    i32  bpfjit_nr(i32 nr)                         the layout's arch, ip and args 0

Records hold logical values in the host's byte order (see
:mod:`bpfjit.seccomp.records`); when the layout's byte order differs from the
host's, the word ``ld [k]`` sees for ``k >= 8`` is the host word at ``k ^ 4``.
Every record load is at one of the checked offsets 0..60; nothing else in
memory is read, and only ``out[i]`` is written.

The program body is built directly in SSA form: jumps only go forward, so
when a block is reached all its predecessors are done and A, X and M[0..15]
at its entry are either one value or a phi of the values on each incoming
edge. Recognised dispatch regions (chains and trees of ``jeq/jgt/jge #k`` on
one value, :mod:`bpfjit.analysis.dispatch`) become one ``switch`` each, with a
binary search over intervals when values outside the cases do not all go to
one place; the constant-verdict table
(:mod:`bpfjit.analysis.verdicts`) is a constant array consulted by
``bpfjit_one`` before the body runs. Machine semantics are the kernel's:
u32 arithmetic that wraps, ``udiv``, shifts by ``X & 31``, division by
``X == 0`` returns 0 from the program.
"""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
from llvmlite import ir

from ... import opcodes as op
from ...analysis import cfg as cfgmod
from ...analysis.dispatch import Dispatch
from ...analysis.verdicts import VerdictTable
from ...program import Instruction
from ...seccomp.layouts import ARCH_OFFSET, NR_OFFSET, SECCOMP_DATA_SIZE, Layout
from .abi import ENTRY_ARGS, ENTRY_BATCH, ENTRY_NR, ENTRY_ONE

BODY = "bpfjit_program"
LOOKUP = "bpfjit_lookup"
TABLE = "bpfjit_verdicts"

I1 = ir.IntType(1)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()

_ALU_NAMES = {op.BPF_ADD: "add", op.BPF_SUB: "sub", op.BPF_MUL: "mul", op.BPF_OR: "or",
              op.BPF_AND: "and", op.BPF_XOR: "xor", op.BPF_LSH: "shl", op.BPF_RSH: "lshr",
              op.BPF_DIV: "udiv"}
_JMP_PREDICATES = {op.BPF_JEQ: "==", op.BPF_JGT: ">", op.BPF_JGE: ">="}

NREGS = 2 + op.BPF_MEMWORDS        # A, X, M[0..15]
REG_A, REG_X = 0, 1


def host_offset(k: int, layout: Layout) -> int:
    """Byte offset in a host-order record of the word ``ld [k]`` sees under ``layout``."""
    if layout.byteorder != sys.byteorder and k >= 8:
        return k ^ 4
    return k


class _Constants:
    """One ir.Constant per value, so identical constants are the same object."""

    def __init__(self) -> None:
        self._i32: dict[int, ir.Constant] = {}

    def __call__(self, value: int) -> ir.Constant:
        c = self._i32.get(value)
        if c is None:
            c = self._i32[value] = ir.Constant(I32, value)
        return c


class _BodyBuilder:
    """Builds ``bpfjit_program(ptr rec) -> i32`` from the program, block by block, in SSA form."""

    def __init__(self, program: Sequence[Instruction], layout: Layout,
                 dispatches: dict[int, Dispatch], fn: ir.Function, const: _Constants):
        self.program = program
        self.layout = layout
        self.dispatches = dispatches
        self.fn = fn
        self.const = const
        self.graph = cfgmod.build(program)
        self.blocks: dict[int, ir.Block] = {}
        self.incoming: dict[int, list[tuple[ir.Block, tuple]]] = {}
        self._ret0: ir.Block | None = None

    # --- graph of the lowered code: a dispatch head's edges go where its region leaves ---
    def _successors(self, start: int) -> tuple[int, ...]:
        end = self.graph.blocks[start].end
        region = self.dispatches.get(end)
        if region is not None:
            return region.targets()
        return self.graph.blocks[start].successors

    def _live_blocks(self) -> list[int]:
        live = {0}
        for start in sorted(self.graph.blocks):
            if start in live:
                live.update(self._successors(start))
        return sorted(live)

    def _edge(self, src: ir.Block, target: int, state: tuple) -> ir.Block:
        self.incoming[target].append((src, state))
        return self.blocks[target]

    def _return_zero(self) -> ir.Block:
        if self._ret0 is None:
            self._ret0 = self.fn.append_basic_block("div_by_zero")
            ir.IRBuilder(self._ret0).ret(self.const(0))
        return self._ret0

    def _entry_state(self, start: int, b: ir.IRBuilder) -> list:
        edges = self.incoming[start]
        state = []
        for r in range(NREGS):
            first = edges[0][1][r]
            if all(e[1][r] is first for e in edges):
                state.append(first)
                continue
            phi = b.phi(I32, name=_reg_name(r, start))
            for src, st in edges:
                phi.add_incoming(st[r], src)
            state.append(phi)
        return state

    def build(self) -> None:
        fn, const = self.fn, self.const
        rec = fn.args[0]
        entry = fn.append_basic_block("entry")
        live = self._live_blocks()
        for start in live:
            self.blocks[start] = fn.append_basic_block(f"L{start}")
            self.incoming[start] = []
        b = ir.IRBuilder(entry)
        words = self._load_words(b, rec)
        zero = const(0)
        b.branch(self.blocks[0])
        self.incoming[0].append((entry, (zero,) * NREGS))
        for start in live:
            self._lower_block(start, words)

    def _load_words(self, b: ir.IRBuilder, rec) -> dict[int, ir.Value]:
        """One load per distinct ``ld [k]`` offset, in the entry block (they dominate everything)."""
        offsets = sorted({insn.k for insn in self.program
                          if insn.code == op.BPF_LD | op.BPF_W | op.BPF_ABS})
        invariant = self.fn.module.add_metadata([])
        words = {}
        for k in offsets:
            if k >= SECCOMP_DATA_SIZE or k % 4:
                raise ValueError(f"ld [{k}] is not a checked seccomp_data offset")
            ptr = b.gep(rec, [ir.Constant(I64, host_offset(k, self.layout))],
                        inbounds=True, source_etype=ir.IntType(8))
            load = b.load(ptr, name=_word_name(k, self.layout), align=4, typ=I32)
            load.set_metadata("invariant.load", invariant)
            words[k] = load
        return words

    def _lower_block(self, start: int, words: dict[int, ir.Value]) -> None:
        const, program = self.const, self.program
        block = self.graph.blocks[start]
        llblock = self.blocks[start]
        b = ir.IRBuilder(llblock)
        s = self._entry_state(start, b)
        for pc in range(start, block.end + 1):
            insn = program[pc]
            code, k = insn.code, insn.k
            cls = op.bpf_class(code)
            if code == op.BPF_LD | op.BPF_W | op.BPF_ABS:
                s[REG_A] = words[k]
            elif code == op.BPF_LD | op.BPF_W | op.BPF_LEN:
                s[REG_A] = const(SECCOMP_DATA_SIZE)
            elif code == op.BPF_LDX | op.BPF_W | op.BPF_LEN:
                s[REG_X] = const(SECCOMP_DATA_SIZE)
            elif code == op.BPF_LD | op.BPF_IMM:
                s[REG_A] = const(k)
            elif code == op.BPF_LDX | op.BPF_IMM:
                s[REG_X] = const(k)
            elif code == op.BPF_LD | op.BPF_MEM:
                s[REG_A] = s[2 + k]
            elif code == op.BPF_LDX | op.BPF_MEM:
                s[REG_X] = s[2 + k]
            elif code == op.BPF_ST:
                s[2 + k] = s[REG_A]
            elif code == op.BPF_STX:
                s[2 + k] = s[REG_X]
            elif code == op.BPF_MISC | op.BPF_TAX:
                s[REG_X] = s[REG_A]
            elif code == op.BPF_MISC | op.BPF_TXA:
                s[REG_A] = s[REG_X]
            elif code == op.BPF_ALU | op.BPF_NEG:
                s[REG_A] = b.sub(const(0), s[REG_A], name=f"neg{pc}")
            elif cls == op.BPF_ALU:
                b = self._alu(b, pc, insn, s)
            elif cls == op.BPF_RET:
                b.ret(const(k) if code == op.BPF_RET | op.BPF_K else s[REG_A])
                return
            elif cls == op.BPF_JMP:
                self._jump(b, pc, insn, tuple(s))
                return
            else:
                raise ValueError(f"instruction {pc}: {op.code_name(code)} is not a seccomp "
                                 f"instruction (backends take checked programs only)")
        b.branch(self._edge(b.block, block.end + 1, tuple(s)))

    def _alu(self, b: ir.IRBuilder, pc: int, insn: Instruction, s: list) -> ir.IRBuilder:
        aop = op.bpf_op(insn.code)
        by_x = op.bpf_src(insn.code) == op.BPF_X
        if aop not in _ALU_NAMES:
            raise ValueError(f"instruction {pc}: {op.code_name(insn.code)} is not allowed in "
                             f"seccomp filters")
        a = s[REG_A]
        if by_x:
            operand = s[REG_X]
            if aop == op.BPF_DIV:
                # bpf_convert_filter: "if (X == 0) return 0" before every BPF_DIV|BPF_X
                is_zero = b.icmp_unsigned("==", operand, self.const(0), name=f"x_is_0_{pc}")
                go_on = self.fn.append_basic_block(f"div{pc}")
                b.cbranch(is_zero, self._return_zero(), go_on)
                b = ir.IRBuilder(go_on)
            elif aop in (op.BPF_LSH, op.BPF_RSH):
                operand = b.and_(operand, self.const(31), name=f"amount{pc}")   # SHT(): X & 31
        else:
            operand = self.const(insn.k)        # the checker bounds shifts (< 32) and divisors (!= 0)
        s[REG_A] = getattr(b, _ALU_NAMES[aop] if aop not in (op.BPF_AND, op.BPF_OR)
                           else _ALU_NAMES[aop] + "_")(a, operand, name=f"a{pc}")
        return b

    def _jump(self, b: ir.IRBuilder, pc: int, insn: Instruction, state: tuple) -> None:
        code = insn.code
        here = b.block
        if code == op.BPF_JMP | op.BPF_JA:
            b.branch(self._edge(here, pc + 1 + insn.k, state))
            return
        taken, fallen = pc + 1 + insn.jt, pc + 1 + insn.jf
        if taken == fallen:
            b.branch(self._edge(here, taken, state))
            return
        region = self.dispatches.get(pc)
        a = state[REG_A]
        if region is not None:
            self._switch(b, pc, region, a, state)
            return
        jop = op.bpf_op(code)
        operand = state[REG_X] if op.bpf_src(code) == op.BPF_X else self.const(insn.k)
        if jop == op.BPF_JSET:
            bits = b.and_(a, operand, name=f"bits{pc}")
            cond = b.icmp_unsigned("!=", bits, self.const(0), name=f"c{pc}")
        else:
            cond = b.icmp_unsigned(_JMP_PREDICATES[jop], a, operand, name=f"c{pc}")
        b.cbranch(cond, self._edge(here, taken, state), self._edge(here, fallen, state))

    def _switch(self, b: ir.IRBuilder, pc: int, region: Dispatch, a, state: tuple) -> None:
        """``switch`` on A over the region's cases; other values: its default or ranges."""
        here = b.block
        if region.default is not None:
            other = self._edge(here, region.default, state)
        else:
            other = self.fn.append_basic_block(f"ranges{pc}")
        sw = b.switch(a, other)
        for k, target in region.cases:
            sw.add_case(self.const(k), self._edge(here, target, state))
        if region.default is None:
            self._search(ir.IRBuilder(other), pc, list(region.ranges), a, state)

    def _search(self, b: ir.IRBuilder, pc: int, ranges: list, a, state: tuple) -> None:
        """Binary search over sorted, disjoint intervals that cover every value reaching here."""
        if len(ranges) == 1:
            b.branch(self._edge(b.block, ranges[0][2], state))
            return
        mid = len(ranges) // 2
        low = self.fn.append_basic_block(f"ranges{pc}_lt{ranges[mid][0]:x}")
        high = self.fn.append_basic_block(f"ranges{pc}_ge{ranges[mid][0]:x}")
        cond = b.icmp_unsigned("<", a, self.const(ranges[mid][0]), name=f"r{pc}")
        b.cbranch(cond, low, high)
        self._search(ir.IRBuilder(low), pc, ranges[:mid], a, state)
        self._search(ir.IRBuilder(high), pc, ranges[mid:], a, state)


def _reg_name(r: int, start: int) -> str:
    return f"{'A' if r == REG_A else 'X' if r == REG_X else f'M{r - 2}_'}{start}"


def _word_name(k: int, layout: Layout) -> str:
    name = layout.describe_offset(k) or f"w{k}"
    return name.replace("[", "").replace("]", "").replace(".", "_")


def _nounwind(fn: ir.Function) -> None:
    fn.attributes.add("nounwind")
    fn.attributes.add("norecurse")


def _record_arg(arg: ir.Argument) -> None:
    arg.attributes.add("noalias")
    arg.attributes.add("nonnull")
    arg.attributes.add("noundef")
    arg.attributes.dereferenceable = SECCOMP_DATA_SIZE
    arg.attributes.align = 4


def _table_global(module: ir.Module, table: VerdictTable,
                  name: str = TABLE) -> tuple[ir.GlobalVariable, int] | None:
    values, sentinel = table.flat()
    if not len(values):
        return None
    # one byte-string constant in host order: far cheaper to print and parse than N i32s
    ty = ir.ArrayType(ir.IntType(8), 4 * len(values))
    g = ir.GlobalVariable(module, ty, name)
    g.initializer = ir.Constant(ty, bytearray(values.astype(np.uint32).tobytes()))
    g.global_constant = True
    g.linkage = "internal"
    g.unnamed_addr = True
    g.align = 64
    return g, sentinel


def _lower_lookup(module: ir.Module, body: ir.Function, layout: Layout,
                  table: VerdictTable | None, const: _Constants, name: str = LOOKUP,
                  table_name: str = TABLE) -> ir.Function:
    """The verdict table for known (arch, nr), else the program body (inlined where used)."""
    fn = ir.Function(module, ir.FunctionType(I32, [PTR]), name)
    fn.linkage = "internal"
    _nounwind(fn)
    fn.attributes.add("alwaysinline")
    rec = fn.args[0]
    rec.name = "rec"
    _record_arg(rec)
    entry = fn.append_basic_block("entry")
    run = fn.append_basic_block("run_program")
    rb = ir.IRBuilder(run)
    call = rb.call(body, [rec], name="verdict")
    rb.ret(call)
    found = _table_global(module, table, table_name) if table is not None else None
    b = ir.IRBuilder(entry)
    if found is None:
        b.branch(run)
        return fn
    glob, sentinel = found
    invariant = module.add_metadata([])
    nr, arch = _nr_and_arch(b, rec, invariant)
    hit = fn.append_basic_block("table_hit")
    hb = ir.IRBuilder(hit)
    index = hb.phi(I64, name="index")
    value = hb.load(hb.gep(glob, [index], inbounds=True, source_etype=I32),
                    name="cached", align=4, typ=I32)
    value.set_metadata("invariant.load", invariant)
    known = hb.icmp_unsigned("!=", value, const(sentinel), name="known")
    done = fn.append_basic_block("table_verdict")
    hb.cbranch(known, done, run)
    ir.IRBuilder(done).ret(value)
    _window_switch(fn, b, table.windows, nr, arch, hit, index, run, const)
    return fn


def _nr_and_arch(b: ir.IRBuilder, rec, invariant) -> tuple:
    """``nr`` and ``arch`` of the record, loaded once (invariant loads)."""
    nr = b.load(b.gep(rec, [ir.Constant(I64, NR_OFFSET)], inbounds=True,
                      source_etype=ir.IntType(8)), name="nr", align=4, typ=I32)
    arch = b.load(b.gep(rec, [ir.Constant(I64, ARCH_OFFSET)], inbounds=True,
                        source_etype=ir.IntType(8)), name="arch", align=4, typ=I32)
    nr.set_metadata("invariant.load", invariant)
    arch.set_metadata("invariant.load", invariant)
    return nr, arch


def _window_switch(fn: ir.Function, b: ir.IRBuilder, windows, nr, arch, hit: ir.Block,
                   index, run: ir.Block, const: "_Constants") -> None:
    """Switch on arch, then test each of its verdict-table windows (nr - base < size): a hit
    jumps to ``hit`` with the flat table position in the ``index`` phi, else to ``run``."""
    by_arch: dict[int, list] = {}
    offset = 0
    for w in windows:
        by_arch.setdefault(w.arch, []).append((w.base, w.size, offset))
        offset += w.size
    sw = b.switch(arch, run)
    for arch_value, wins in by_arch.items():
        check = fn.append_basic_block(f"arch_{arch_value:08x}")
        sw.add_case(const(arch_value), check)
        cb = ir.IRBuilder(check)
        for base, size, start in wins:
            rel = cb.sub(nr, const(base), name="rel")
            inside = cb.icmp_unsigned("<", rel, const(size), name="inside")
            pos = cb.add(cb.zext(rel, I64), ir.Constant(I64, start), name="pos")
            nxt = fn.append_basic_block("next_window")
            cb.cbranch(inside, hit, nxt)
            index.add_incoming(pos, cb.block)
            cb = ir.IRBuilder(nxt)
        cb.branch(run)


def _lower_one(module: ir.Module, lookup: ir.Function) -> ir.Function:
    """``bpfjit_one``; single calls reach it through ``bpfjit_args`` too (one copy, not two)."""
    fn = ir.Function(module, ir.FunctionType(I32, [PTR]), ENTRY_ONE)
    _nounwind(fn)
    fn.args[0].name = "rec"
    _record_arg(fn.args[0])
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(b.call(lookup, [fn.args[0]], name="verdict"))
    return fn


def _lower_batch(module: ir.Module, one: ir.Function) -> None:
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, PTR]), ENTRY_BATCH)
    _nounwind(fn)
    recs, n, out = fn.args
    recs.name, n.name, out.name = "records", "count", "out"
    for arg in (recs, out):
        arg.attributes.add("noalias")
    entry = fn.append_basic_block("entry")
    loop = fn.append_basic_block("loop")
    done = fn.append_basic_block("done")
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(I64, 0)), loop, done)
    lb = ir.IRBuilder(loop)
    i = lb.phi(I64, name="i")
    i.add_incoming(ir.Constant(I64, 0), entry)
    rec = lb.gep(recs, [lb.mul(i, ir.Constant(I64, SECCOMP_DATA_SIZE), name="at")],
                 inbounds=True, source_etype=ir.IntType(8), name="rec")
    value = lb.call(one, [rec], name="v")
    lb.store(value, lb.gep(out, [i], inbounds=True, source_etype=I32, name="slot"), align=4)
    nxt = lb.add(i, ir.Constant(I64, 1), name="next")
    i.add_incoming(nxt, loop)
    lb.cbranch(lb.icmp_signed("<", nxt, n), loop, done)
    ir.IRBuilder(done).ret_void()


def _lower_args(module: ir.Module, one: ir.Function, layout: Layout, const: _Constants) -> None:
    """``bpfjit_args`` (a record from scalars on the stack) and ``bpfjit_nr`` (nr only)."""
    fields = [I32, I32, I64] + [I64] * 6
    offsets = [0, 4, 8] + [16 + 8 * i for i in range(6)]
    names = ["nr", "arch", "ip"] + [f"arg{i}" for i in range(6)]
    # fill(ptr, fields...) takes the record as an opaque pointer argument, so the stores
    # type-check whether llvmlite.ir runs with typed or opaque pointers; it is inlined.
    fill = ir.Function(module, ir.FunctionType(VOID, [PTR] + fields), "bpfjit_fill")
    fill.linkage = "internal"
    _nounwind(fill)
    fill.attributes.add("alwaysinline")
    fb = ir.IRBuilder(fill.append_basic_block("entry"))
    dest = fill.args[0]
    for arg, off, name in zip(fill.args[1:], offsets, names):
        arg.name = name
        slot = fb.gep(dest, [ir.Constant(I64, off)], inbounds=True, source_etype=ir.IntType(8))
        fb.store(arg, slot, align=4 if off < 8 else 8)
    fb.ret_void()

    fn = ir.Function(module, ir.FunctionType(I32, fields), ENTRY_ARGS)
    _nounwind(fn)
    for arg, name in zip(fn.args, names):
        arg.name = name
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    record = b.alloca(ir.ArrayType(I64, SECCOMP_DATA_SIZE // 8), name="record")
    record.align = 8
    b.call(fill, [record] + list(fn.args))
    b.ret(b.call(one, [record], name="verdict"))

    nr_fn = ir.Function(module, ir.FunctionType(I32, [I32]), ENTRY_NR)
    _nounwind(nr_fn)
    nr_fn.args[0].name = "nr"
    nb = ir.IRBuilder(nr_fn.append_basic_block("entry"))
    zero64 = ir.Constant(I64, 0)
    nb.ret(nb.call(fn, [nr_fn.args[0], const(layout.audit_arch), zero64] + [zero64] * 6))


def lower_verdict(module: ir.Module, program: Sequence[Instruction], layout: Layout,
                  const: _Constants, *, dispatches: dict[int, Dispatch] | None = None,
                  table: VerdictTable | None = None, prefix: str = "",
                  inline_body: bool = False) -> ir.Function:
    """Add ``<prefix>bpfjit_program`` and its verdict-table front ``<prefix>bpfjit_lookup``
    (``i32 (ptr rec)``, internal, always inlined) to ``module``; returns the latter.

    The body is kept out of line for one filter (its table path stays small) and
    inlined when ``inline_body`` (a stack: :mod:`.lower_stack`).
    """
    body = ir.Function(module, ir.FunctionType(I32, [PTR]), prefix + BODY)
    body.linkage = "internal"
    _nounwind(body)
    body.attributes.add("alwaysinline" if inline_body else "noinline")
    body.args[0].name = "rec"
    _record_arg(body.args[0])
    _BodyBuilder(program, layout, dispatches or {}, body, const).build()
    return _lower_lookup(module, body, layout, table, const, prefix + LOOKUP, prefix + TABLE)


def lower(program: Sequence[Instruction], layout: Layout, *,
          dispatches: dict[int, Dispatch] | None = None,
          table: VerdictTable | None = None, name: str = "bpfjit") -> ir.Module:
    """The IR module for a checked program (see the module docstring for its entry points)."""
    if not len(program):
        raise ValueError("cannot lower an empty program")
    module = ir.Module(name=name)
    const = _Constants()
    lookup = lower_verdict(module, program, layout, const, dispatches=dispatches, table=table)
    _lower_batch(module, lookup)
    _lower_args(module, _lower_one(module, lookup), layout, const)
    return module


def size(module: ir.Module) -> tuple[int, int]:
    """(instructions + phi incomings + switch cases, basic blocks) of a lowered module.

    The backend compiles a module above :data:`LEAN_UNITS` or :data:`LEAN_BLOCKS`
    in LLVM's lean mode (:mod:`.engine`): every real filter is far below
    (at most 1,760 units and 379 blocks in the corpus), and LLVM's full
    pipeline stays under about 0.3 s up to these sizes on the shapes of
    :mod:`bpfjit.testing.adversarial`.
    """
    units = blocks = 0
    for fn in module.functions:
        for block in fn.blocks:
            blocks += 1
            for insn in block.instructions:
                units += 1
                if insn.opname == "phi":
                    units += len(insn.incomings)
                elif insn.opname == "switch":
                    units += len(insn.cases)
    return units, blocks


#: modules larger than this (see :func:`size`) are compiled in LLVM's lean mode
LEAN_UNITS = 2560
LEAN_BLOCKS = 768
