"""Lowering stage for stacks: several checked programs become ONE native batch function.

The module defines one entry point (see :data:`ENTRY_STACK`)::

    void bpfjit_stack_batch(ptr recs, i64 n, ptr out, ptr match)

``out[i]`` is what kernel/seccomp.c ``seccomp_run_filters`` returns for record
``i``; ``match`` (an ``i32`` array, or null) receives the index (0 = oldest,
installation order) of the filter that returned it. First the whole stack's
constant-verdict table (:mod:`bpfjit.analysis.stack_verdicts`: retval and
matching filter for (arch, nr) where every filter's verdict is constant);
otherwise every program, lowered by :func:`.lower.lower_verdict` (its own
verdict table + body) and inlined, runs and the precedence lives in three
registers per record::

    ret = SECCOMP_RET_ALLOW; key = ACTION_ONLY(ret); match = newest
    for f newest .. oldest:                 # the kernel's f = f->prev walk
        cur = f(rec)
        if (s32)(cur & SECCOMP_RET_ACTION_FULL) < key:   # strict: ties keep the newer
            ret, key, match = cur, ACTION_ONLY(cur), f

The matching filter is therefore the newest filter that returned the winning
action; when every filter allows, it is the newest one (the kernel leaves its
``match`` NULL there, but nothing depends on it for ALLOW).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from llvmlite import ir

from ...analysis.dispatch import Dispatch
from ...analysis.stack_verdicts import StackTable
from ...analysis.verdicts import VerdictTable
from ...program import Instruction
from ...seccomp.actions import SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ALLOW
from ...seccomp.layouts import SECCOMP_DATA_SIZE, Layout
from .lower import (I32, I64, PTR, VOID, _Constants, _nounwind, _nr_and_arch, _record_arg,
                    _window_switch, lower_verdict)

ENTRY_STACK = "bpfjit_stack_batch"
ENTRIES = (ENTRY_STACK,)


def _table_bytes(module: ir.Module, name: str, values: np.ndarray) -> ir.GlobalVariable:
    ty = ir.ArrayType(ir.IntType(8), 4 * len(values))
    g = ir.GlobalVariable(module, ty, name)
    g.initializer = ir.Constant(ty, bytearray(values.astype(np.uint32).tobytes()))
    g.global_constant = True
    g.linkage = "internal"
    g.unnamed_addr = True
    g.align = 64
    return g


def _lower_eval(module: ir.Module, lookups: list[ir.Function], front: StackTable | None,
                const: _Constants) -> ir.Function:
    """``i64 bpfjit_stack_eval(ptr rec)``: ``match << 32 | retval`` (internal, inlined).

    The stack's verdict table first (one lookup decides every filter at once);
    else every filter runs, newest first, and the precedence picks.
    """
    slow = ir.Function(module, ir.FunctionType(I64, [PTR]), "bpfjit_stack_run")
    slow.linkage = "internal"
    _nounwind(slow)
    slow.attributes.add("noinline")            # keeps the table path of the loop small
    _record_arg(slow.args[0])
    rb = ir.IRBuilder(slow.append_basic_block("entry"))
    ret, key, which = const(SECCOMP_RET_ALLOW), const(SECCOMP_RET_ALLOW), const(len(lookups) - 1)
    for index in reversed(range(len(lookups))):           # newest first, as the kernel walks
        cur = rb.call(lookups[index], [slow.args[0]], name=f"f{index}")
        cur_key = rb.and_(cur, const(SECCOMP_RET_ACTION_FULL), name=f"key{index}")
        wins = rb.icmp_signed("<", cur_key, key, name=f"wins{index}")
        ret = rb.select(wins, cur, ret, name=f"ret{index}")
        key = rb.select(wins, cur_key, key, name=f"best{index}")
        which = rb.select(wins, const(index), which, name=f"match{index}")
    rb.ret(_pack(rb, ret, which))

    fn = ir.Function(module, ir.FunctionType(I64, [PTR]), "bpfjit_stack_eval")
    fn.linkage = "internal"
    _nounwind(fn)
    fn.attributes.add("alwaysinline")
    rec = fn.args[0]
    rec.name = "rec"
    _record_arg(rec)
    entry = fn.append_basic_block("entry")
    run = fn.append_basic_block("run_filters")
    rb = ir.IRBuilder(run)
    rb.ret(rb.call(slow, [rec], name="combined"))
    b = ir.IRBuilder(entry)
    values, sentinel = front.table.flat() if front is not None else (np.zeros(0), 0)
    if not len(values):
        b.branch(run)
        return fn
    verdicts = _table_bytes(module, "bpfjit_stack_verdicts", values)
    matches = _table_bytes(module, "bpfjit_stack_matches", front.flat_matches())
    invariant = module.add_metadata([])
    nr, arch = _nr_and_arch(b, rec, invariant)
    hit = fn.append_basic_block("table_hit")
    hb = ir.IRBuilder(hit)
    index = hb.phi(I64, name="index")
    value = hb.load(hb.gep(verdicts, [index], inbounds=True, source_etype=I32),
                    name="cached", align=4, typ=I32)
    value.set_metadata("invariant.load", invariant)
    done = fn.append_basic_block("table_verdict")
    hb.cbranch(hb.icmp_unsigned("!=", value, const(sentinel), name="known"), done, run)
    db = ir.IRBuilder(done)
    m = db.load(db.gep(matches, [index], inbounds=True, source_etype=I32),
                name="cached_match", align=4, typ=I32)
    m.set_metadata("invariant.load", invariant)
    db.ret(_pack(db, value, m))
    _window_switch(fn, b, front.table.windows, nr, arch, hit, index, run, const)
    return fn


def _pack(b: ir.IRBuilder, ret, which):
    high = b.shl(b.zext(which, I64), ir.Constant(I64, 32))
    return b.or_(high, b.zext(ret, I64), name="packed")


def _loop(fn: ir.Function, entry_next: ir.Block, evaluate: ir.Function, recs, n, out,
          match, tag: str) -> ir.Block:
    """Append the record loop (storing ``match`` unless it is None); returns its first block."""
    loop = fn.append_basic_block(f"loop_{tag}")
    lb = ir.IRBuilder(loop)
    i = lb.phi(I64, name="i")
    i.add_incoming(ir.Constant(I64, 0), entry_next)
    rec = lb.gep(recs, [lb.mul(i, ir.Constant(I64, SECCOMP_DATA_SIZE), name="at")],
                 inbounds=True, source_etype=ir.IntType(8), name="rec")
    packed = lb.call(evaluate, [rec], name="packed")
    lb.store(lb.trunc(packed, I32), lb.gep(out, [i], inbounds=True, source_etype=I32,
                                           name="slot"), align=4)
    if match is not None:
        which = lb.trunc(lb.lshr(packed, ir.Constant(I64, 32)), I32, name="which")
        lb.store(which, lb.gep(match, [i], inbounds=True, source_etype=I32, name="mslot"),
                 align=4)
    nxt = lb.add(i, ir.Constant(I64, 1), name="next")
    i.add_incoming(nxt, lb.block)
    done = fn.append_basic_block(f"done_{tag}")
    lb.cbranch(lb.icmp_signed("<", nxt, n), loop, done)
    ir.IRBuilder(done).ret_void()
    return loop


def lower_stack(programs: Sequence[Sequence[Instruction]], layout: Layout, *,
                dispatches: Sequence[dict[int, Dispatch]] | None = None,
                tables: Sequence[VerdictTable | None] | None = None,
                front: StackTable | None = None,
                name: str = "bpfjit_stack") -> ir.Module:
    """The IR module of a stack (programs OLDEST first) with the entry point :data:`ENTRY_STACK`.

    ``tables``: each program's verdict table; ``front``: the whole stack's
    (:mod:`bpfjit.analysis.stack_verdicts`), consulted before any filter runs.
    """
    if not programs:
        raise ValueError("cannot lower an empty stack")
    module = ir.Module(name=name)
    const = _Constants()
    dispatches = list(dispatches) if dispatches is not None else [None] * len(programs)
    tables = list(tables) if tables is not None else [None] * len(programs)
    lookups = [lower_verdict(module, prog, layout, const, dispatches=dispatches[i],
                             table=tables[i], prefix=f"f{i}_", inline_body=True)
               for i, prog in enumerate(programs)]
    evaluate = _lower_eval(module, lookups, front, const)
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, PTR, PTR]), ENTRY_STACK)
    _nounwind(fn)
    recs, n, out, match = fn.args
    recs.name, n.name, out.name, match.name = "records", "count", "out", "match"
    for arg in (recs, out, match):
        arg.attributes.add("noalias")
    entry = fn.append_basic_block("entry")
    choose = fn.append_basic_block("choose")
    b = ir.IRBuilder(entry)
    empty = fn.append_basic_block("empty")
    ir.IRBuilder(empty).ret_void()
    b.cbranch(b.icmp_signed(">", n, ir.Constant(I64, 0)), choose, empty)
    without = _loop(fn, choose, evaluate, recs, n, out, None, "retval")
    with_match = _loop(fn, choose, evaluate, recs, n, out, match, "match")
    cb = ir.IRBuilder(choose)
    cb.cbranch(cb.icmp_unsigned("==", match, ir.Constant(PTR, None)), without, with_match)
    return module
