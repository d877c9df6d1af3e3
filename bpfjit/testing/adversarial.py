"""Testing: seeded generators of adversarial programs — shapes built to make the analyses explode.

A valid seccomp filter may come from anyone, so what the llvm backend does
before it generates code (:mod:`bpfjit.analysis`, the lowering) must stay
cheap for every program the kernel accepts (at most 4096 instructions), not
only for the filters compilers emit. Each shape here aims at one way an
analysis can blow up; every program is valid by construction:

- ``vector_ret_a``: A holds a function of ``nr`` (a vector over the verdict
  table's windows) and reaches ``ret a`` thousands of times, behind tests the
  analysis cannot decide (issue 14's first reproducer);
- ``chain_many_heads``: a long chain of ``jgt/jge/jeq #k`` whose nodes both lead
  on into it, entered from many heads (``jset; ja`` pairs) — every head is a
  dispatch region (the second reproducer);
- ``deep_tree``: a binary tree of tests on ``nr``, ``arch`` and argument words,
  laid out with ``ja`` so it can be as deep as the length allows;
- ``scratch_heavy``: undecidable splits that store different values (constants,
  functions of ``nr``) into the 16 scratch cells and merge again, so the
  abstract states at a merge point do not collapse;
- ``big_dispatch``: thousands of ``jeq #k`` on ``nr`` with distinct k, re-entered
  from outside at many places (every entry repeats the cases after it);
- ``many_arches``: the arch values the table analyses most, each with wide
  ``nr`` windows;
- ``maximal_random``: :func:`bpfjit.testing.valid_program` up to 4096 instructions.

:func:`adversarial_program` draws one; ``python -m bpfjit.testing.adversarial``
compiles them with the llvm backend for a given time and reports the slowest
compile (issue 14: every valid program compiles in <= 2 s).
"""
from __future__ import annotations

import random
from typing import Callable

from .. import opcodes as op
from ..program import Instruction, Program
from ..seccomp import actions as act
from .programs import random_action, valid_program

MAX_LEN = 4096
LD_ABS = op.BPF_LD | op.BPF_W | op.BPF_ABS
LD_IMM, LD_MEM, LDX_MEM = op.BPF_LD | op.BPF_IMM, op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM
ST, STX = op.BPF_ST, op.BPF_STX
TAX, TXA = op.BPF_MISC | op.BPF_TAX, op.BPF_MISC | op.BPF_TXA
JA = op.BPF_JMP | op.BPF_JA
RET_K, RET_A = op.BPF_RET | op.BPF_K, op.BPF_RET | op.BPF_A
ALLOW = act.SECCOMP_RET_ALLOW
ARG_WORDS = tuple(range(16, 64, 4))
#: ALU operations that keep a vector a vector (no division: a constant divisor must be non-zero)
VECTOR_ALU = (op.BPF_ADD, op.BPF_SUB, op.BPF_XOR, op.BPF_OR, op.BPF_MUL, op.BPF_AND)
AUDIT_ARCHES = (0xC000003E, 0x40000003, 0xC00000B7, 0x40000028, 0xC0000015, 0x80000016,
                0xC00000F3, 0x8000000F, 0xC0000008, 0x40000008)


def _i(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> Instruction:
    return Instruction(code, jt, jf, k)


def _jmp(jop: int, src: int = op.BPF_K) -> int:
    return op.BPF_JMP | jop | src


def _alu(aop: int, src: int = op.BPF_K) -> int:
    return op.BPF_ALU | aop | src


def _window_tests(rng: random.Random, windows: int, per_window: int) -> list[Instruction]:
    """``jeq #k`` (not taken either way) on nr, in clusters the verdict table makes windows of."""
    out = []
    for w in range(windows):
        base = rng.randrange(0x1000, 0x7FFF0000) if w else 0
        for j in range(per_window):
            out.append(_i(_jmp(op.BPF_JEQ), base + j * rng.randint(1, 250), 0, 0))
    return out


def vector_ret_a(rng: random.Random, length: int = MAX_LEN) -> Program:
    body = [_i(LD_ABS, rng.choice(ARG_WORDS)), _i(TAX), _i(LD_ABS, 0)]
    body += _window_tests(rng, rng.randint(1, 8), rng.randint(2, 16))
    for _ in range(rng.randint(1, 3)):
        body.append(_i(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 0xFFFF)))
    jop = rng.choice((op.BPF_JSET, op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE))
    src = op.BPF_X if rng.random() < 0.8 else op.BPF_K
    while len(body) + 3 <= length:
        body.append(_i(_jmp(jop, src), rng.getrandbits(32) if src == op.BPF_K else 0, 0, 1))
        body.append(_i(RET_A))
    body.append(_i(RET_K, ALLOW))
    return Program(body, source="adversarial:vector_ret_a")


def chain_many_heads(rng: random.Random, length: int = MAX_LEN) -> Program:
    heads = rng.randint(1, (length - 3) // 4)
    chain = length - 3 - 2 * heads
    body = [_i(LD_ABS, 0)]
    start = 1 + 2 * heads
    for h in range(heads):
        pc = len(body)
        body.append(_i(_jmp(op.BPF_JSET), 1 << rng.randrange(32), 0, 1))
        target = start + rng.randrange(chain)
        body.append(_i(JA, target - (pc + 2)))
    ks = rng.sample(range(0, 1 << 20, rng.randint(1, 64)), chain)
    if rng.random() < 0.5:
        ks.sort(reverse=rng.random() < 0.5)
    ops = [rng.choice((op.BPF_JGT, op.BPF_JGE, op.BPF_JEQ))] if rng.random() < 0.7 else \
        [op.BPF_JGT, op.BPF_JGE, op.BPF_JEQ]
    for j, k in enumerate(ks):
        room = chain - 1 - j                       # instructions of the chain after this one
        jt = min(room + 1, rng.choice((1, 1, 2, 3)))
        jf = 0 if jt else 1
        body.append(_i(_jmp(rng.choice(ops)), k, jt, jf))
    body.append(_i(RET_K, random_action(rng)))
    body.append(_i(RET_K, ALLOW))
    return Program(body, source="adversarial:chain_many_heads")


def deep_tree(rng: random.Random, length: int = MAX_LEN) -> Program:
    """Nodes ``jxx #k, 0, 1; ja L; ja R``: any depth, whatever the distance to the subtrees."""
    nodes = max(1, (length - 2) // 4)
    while True:
        body = _tree(rng, nodes)
        if len(body) <= length:
            return Program(body, source="adversarial:deep_tree")
        nodes = nodes * length // len(body) - 1


def _tree(rng: random.Random, nodes: int) -> list[Instruction]:
    body: list[Instruction] = [_i(LD_ABS, 0)]

    def tree(count: int) -> None:
        if count <= 0:
            body.append(_i(RET_A) if rng.random() < 0.2 else _i(RET_K, random_action(rng)))
            return
        if rng.random() < 0.15:
            body.append(_i(LD_ABS, rng.choice((0, 4) + ARG_WORDS)))
        jop = rng.choice((op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE, op.BPF_JSET))
        k = rng.choice((rng.randrange(512), rng.getrandbits(32)))
        node = len(body)
        body.append(_i(_jmp(jop), k, 0, 1))
        body.append(_i(JA))                    # to the left subtree, patched below
        body.append(_i(JA))                    # to the right subtree
        left = rng.randint(0, count - 1)
        start_left = len(body)
        tree(left)
        start_right = len(body)
        tree(count - 1 - left)
        body[node + 1] = _i(JA, start_left - (node + 2))
        body[node + 2] = _i(JA, start_right - (node + 3))

    import sys
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 3 * nodes + 100))
    try:
        tree(nodes)
    finally:
        sys.setrecursionlimit(old)
    return body


def scratch_heavy(rng: random.Random, length: int = MAX_LEN) -> Program:
    """Segments ``jset; <A = one value>; ja +n; <A = another>; st M[i]``, then uses of the cells."""
    body = [_i(LD_ABS, rng.choice(ARG_WORDS)), _i(TAX)]
    written: list[int] = []
    while len(body) + 16 < length:
        cell = rng.randrange(16)
        choices = [[_i(LD_IMM, rng.getrandbits(32))],
                   [_i(LD_ABS, 0), _i(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 1 << 16))],
                   [_i(LD_ABS, rng.choice((0, 4) + ARG_WORDS))]]
        if written:
            choices.append([_i(LD_MEM, rng.choice(written)),
                            _i(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 255))])
        first, second = rng.choice(choices), rng.choice(choices)
        src = op.BPF_X if rng.random() < 0.5 else op.BPF_K
        body.append(_i(_jmp(op.BPF_JSET, src), rng.getrandbits(32), 0, len(first) + 1))
        body += first
        body.append(_i(JA, len(second)))
        body += second
        body.append(_i(ST, cell))
        written.append(cell)
        if rng.random() < 0.1 and len(written) > 1:
            body += [_i(LDX_MEM, rng.choice(written)), _i(LD_MEM, rng.choice(written)),
                     _i(_alu(rng.choice(VECTOR_ALU), op.BPF_X)), _i(_jmp(op.BPF_JGT), 100, 0, 1),
                     _i(RET_A)]
    if written:
        body += [_i(LD_MEM, rng.choice(written)), _i(LDX_MEM, rng.choice(written)),
                 _i(_alu(op.BPF_ADD, op.BPF_X))]
    body.append(_i(RET_A))
    return Program(body, source="adversarial:scratch_heavy")


def big_dispatch(rng: random.Random, length: int = MAX_LEN) -> Program:
    """Runs of ``jeq #k`` (each run ends at a few returns), entered again from outside often."""
    body = [_i(LD_ABS, 0)]
    ks = iter(rng.sample(range(1 << 16), length))
    while len(body) + 40 < length:
        rets = rng.randint(1, 4)
        run = min(rng.randint(8, 200), length - len(body) - rets - 2)
        for j in range(run):
            if rng.random() < 0.05:                       # a jump into the middle of the run
                body.append(_i(_jmp(op.BPF_JSET), 1 << rng.randrange(32), 0, 0))
                continue
            to_rets = run - 1 - j                          # instructions left in the run
            body.append(_i(_jmp(op.BPF_JEQ), next(ks), to_rets + rng.randrange(rets), 0))
        body += [_i(RET_K, random_action(rng)) for _ in range(rets)]
        body.append(_i(LD_ABS, 0))
    body.append(_i(RET_K, ALLOW))
    return Program(body, source="adversarial:big_dispatch")


def many_arches(rng: random.Random, length: int = MAX_LEN) -> Program:
    arches = rng.sample(AUDIT_ARCHES, rng.randint(2, len(AUDIT_ARCHES)))
    per = (length - 1) // len(arches) - 3
    body: list[Instruction] = []
    for arch in arches:
        body.append(_i(LD_ABS, 4))
        inner = [_i(LD_ABS, 0)]
        inner += _window_tests(rng, rng.randint(1, 8), rng.randint(2, 8))
        while len(inner) + 5 < per:
            inner += [_i(_jmp(rng.choice((op.BPF_JGT, op.BPF_JSET))), rng.getrandbits(12), 0, 1),
                      _i(RET_K, random_action(rng)),
                      _i(_alu(rng.choice(VECTOR_ALU)), rng.randint(1, 9))]
        inner.append(_i(RET_A))
        body.append(_i(_jmp(op.BPF_JEQ), arch, 1, 0))
        body.append(_i(JA, len(inner)))
        body += inner
    body.append(_i(RET_K, random_action(rng)))
    return Program(body, source="adversarial:many_arches")


def maximal_random(rng: random.Random, length: int = MAX_LEN) -> Program:
    return valid_program(rng, max_len=length)


def reproducer_vector_ret_a() -> Program:
    """Issue 14's first reproducer (4,095 instructions; 601 s in the verdict table before budgets).

    X = an argument word; A = nr, tested by 128 ``jeq`` in 8 wide windows, plus 1;
    then 1,981 times ``jset x, +0, +1; ret a``.
    """
    body = [_i(LD_ABS, 16), _i(TAX), _i(LD_ABS, 0)]
    body += [_i(_jmp(op.BPF_JEQ), 100000 * (w + 1) + 250 * i) for w in range(8) for i in range(16)]
    body.append(_i(_alu(op.BPF_ADD), 1))
    while len(body) + 3 <= MAX_LEN:
        body += [_i(_jmp(op.BPF_JSET, op.BPF_X), 0, 0, 1), _i(RET_A)]
    body.append(_i(RET_K, ALLOW))
    return Program(body, source="issue 14: vector A through ret a")


def reproducer_chain() -> Program:
    """Issue 14's second reproducer (4,003 instructions; 176 s in ``find_dispatches`` before).

    1,000 ``jset #bit, +0, +1; ja chain[2i]`` pairs into a chain of 2,000
    ``jgt #k, +1, +0`` with distinct, decreasing k.
    """
    heads, chain = 1000, 2000
    body = [_i(LD_ABS, 0)]
    for h in range(heads):
        pc = len(body)
        body += [_i(_jmp(op.BPF_JSET), 1 << (h % 32), 0, 1),
                 _i(JA, 1 + 2 * heads + h * chain // heads - (pc + 2))]
    for j in range(chain):
        body.append(_i(_jmp(op.BPF_JGT), 10 * (chain - j), 1 if j < chain - 2 else 0, 0))
    body += [_i(RET_K, act.SECCOMP_RET_KILL_PROCESS), _i(RET_K, ALLOW)]
    return Program(body, source="issue 14: 1000 heads into a 2000-long jgt chain")


SHAPES: dict[str, Callable[..., Program]] = {
    "vector_ret_a": vector_ret_a, "chain_many_heads": chain_many_heads, "deep_tree": deep_tree,
    "scratch_heavy": scratch_heavy, "big_dispatch": big_dispatch, "many_arches": many_arches,
    "maximal_random": maximal_random,
}


def adversarial_program(rng: random.Random, shape: str | None = None,
                        length: int | None = None) -> tuple[str, Program]:
    """(shape name, program): ``shape`` drawn when not given; ``length`` mostly the maximum."""
    if shape is None:
        shape = rng.choice(sorted(SHAPES))
    if shape not in SHAPES:
        raise ValueError(f"unknown adversarial shape {shape!r} (one of {', '.join(SHAPES)})")
    if length is None:
        length = MAX_LEN if rng.random() < 0.7 else rng.randint(64, MAX_LEN)
    return shape, SHAPES[shape](rng, length)


# --- the long run: compile adversarial programs with llvm, report the slowest ---------------

def run(seconds: float, seed: int = 0, *, programs: int | None = None, check_inputs: int = 4,
        report=None) -> dict:
    """Compile adversarial programs with the llvm backend (no cache) for ``seconds``.

    Each compiled filter is compared with the reference interpreter on
    ``check_inputs`` records biased to its constants. Returns ``programs``,
    ``slowest_s`` (wall) with its shape, seed index and the backend's split,
    ``slowest_cpu_s`` (the process's CPU time for that compile: on a shared
    or niced machine the wall time mostly measures waiting), the slowest per
    shape, and ``mismatches`` (a list; empty when all agree).
    """
    import time

    import numpy as np

    from ..backends.llvm import LlvmBackend
    from ..backends.llvm.cache import CodeCache
    from ..backends.reference import ReferenceBackend
    from ..check import check
    from ..seccomp.layouts import layout
    from .inputs import inputs_for

    lay = layout("x86_64")
    reference = ReferenceBackend()
    rng = random.Random(seed)
    stats: dict = {"programs": 0, "slowest_s": 0.0, "slowest": None, "slowest_cpu_s": 0.0,
                   "slowest_cpu": None, "per_shape": {}, "mismatches": []}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (programs is None or stats["programs"] < programs):
        index = stats["programs"]
        shape, program = adversarial_program(rng)
        checked = check(program)
        t0, c0 = time.perf_counter(), time.process_time()
        evaluator = LlvmBackend(cache=CodeCache(None)).compile(checked, lay)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        stats["programs"] += 1
        row = {"shape": shape, "index": index, "insns": len(program), "seconds": round(took, 3),
               "cpu_seconds": round(cpu, 3),
               **{k: evaluator.info.get(k) for k in ("analysis_ms", "lower_ms", "optimize_ms",
                                                     "codegen_ms", "codegen", "switches")}}
        best = stats["per_shape"].get(shape)
        if best is None or took > best["seconds"]:
            stats["per_shape"][shape] = row
        if took > stats["slowest_s"]:
            stats["slowest_s"], stats["slowest"] = took, row
        if cpu > stats["slowest_cpu_s"]:
            stats["slowest_cpu_s"], stats["slowest_cpu"] = cpu, row
        records = inputs_for(program, rng, check_inputs, layout=lay)
        got = np.zeros(len(records), dtype=np.uint32)
        evaluator.evaluate_batch(records, got)
        want = np.zeros(len(records), dtype=np.uint32)
        reference.compile(checked, lay).evaluate_batch(records, want)
        if not np.array_equal(got, want):
            stats["mismatches"].append({"shape": shape, "index": index,
                                        "program": program.to_bytes("little").hex()})
        if report is not None:
            report(row)
    return stats


def replay(seed: int, indices: "set[int]", check_inputs: int = 4) -> "dict[int, tuple[str, Program]]":
    """The programs :func:`run` drew at ``indices`` for ``seed`` (to re-time the slowest)."""
    from .inputs import inputs_for
    rng = random.Random(seed)
    found = {}
    index = 0
    while len(found) < len(indices):
        shape, program = adversarial_program(rng)
        if index in indices:
            found[index] = (shape, program)
        inputs_for(program, rng, check_inputs, layout="x86_64")    # what run() draws next
        index += 1
    return found


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m bpfjit.testing.adversarial",
                                     description="compile adversarial programs with llvm for a "
                                                 "while; report the slowest compile")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args(argv)

    def report(row):
        print(json.dumps(row), file=sys.stderr, flush=True)

    stats = run(args.minutes * 60, args.seed, report=report)
    text = json.dumps(stats, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print(text)
    return 1 if stats["mismatches"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
