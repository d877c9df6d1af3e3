"""numba backend: bit-identical to the reference interpreter everywhere, cached on disk, thread-safe.

Every expected value comes from the reference interpreter (``backend="reference"``)
or, for the libseccomp vectors, from the vector file as well; nothing is taken
from the code under test.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import bpfjit
from bpfjit import opcodes as op
from bpfjit.errors import BackendUnavailable
from bpfjit.program import Instruction, Program, jump, stmt
from bpfjit.seccomp.records import SECCOMP_DATA
from bpfjit.testing.inputs import inputs_for
from bpfjit.testing.programs import realistic_program, valid_program

from corpora import VECTORS, real_filter_arch, real_filters
from expect import assert_same

numba_jit = pytest.importorskip("bpfjit.backends.numba_jit")
if numba_jit.BACKEND.unavailable_reason():
    pytest.skip(numba_jit.BACKEND.unavailable_reason(), allow_module_level=True)

U32 = 0xFFFFFFFF
SPECIAL = (0, 1, 2, 31, 32, 33, 63, 64, 0x7FFFFFFF, 0x80000000, 0x40000000, U32)


# ---------------------------------------------------------------- helpers

def compile_both(program: Program, arch: str):
    return (bpfjit.compile(program, backend="numba", arch=arch),
            bpfjit.compile(program, backend="reference", arch=arch))


def word_pools(program: Program) -> list[list[int]]:
    """For each of the 16 words ``ld`` can see, the constants the program compares it with.

    A straight-line guess: A is taken to hold the word the last ``ld [k]`` read
    (ALU operations on it included) until something else is loaded into A.
    """
    pools: list[set[int]] = [set() for _ in range(16)]
    source = None
    for insn in program:
        code = insn.code
        if code == op.BPF_LD | op.BPF_W | op.BPF_ABS:
            source = insn.k // 4
        elif code & 0x07 == op.BPF_LD or code in (op.BPF_MISC | op.BPF_TXA,):
            source = None
        elif code in op.CONDITIONAL_JUMPS and not code & op.BPF_X and source is not None:
            pools[source].add(insn.k)
    return [sorted(p) for p in pools]


def biased_records(program: Program, layout: bpfjit.Layout, n: int,
                   rng: np.random.Generator) -> np.ndarray:
    """``n`` records whose words are mostly constants the program compares them with (or ±1).

    Per word: its own constants (1/2), one of them ±1 (1/10), any constant of the
    program or an edge value (1/5), 0 (1/10), 32 random bits (1/10); ``nr`` is
    sometimes a small syscall number and ``arch`` mostly the layout's.
    """
    every = sorted(set(SPECIAL) | {i.k for i in program})
    words = rng.integers(0, 1 << 32, size=(n, 16), dtype=np.uint64).astype(np.uint32)
    for w, own in enumerate(word_pools(program)):
        pick = rng.random(n)
        if own:
            exact = pick < 0.5
            words[exact, w] = rng.choice(own, size=int(exact.sum()))
            near = (pick >= 0.5) & (pick < 0.6)
            base = rng.choice(np.array(own, dtype=np.uint64), size=int(near.sum()))
            words[near, w] = (base + rng.choice(np.array([1, U32], dtype=np.uint64),
                                                size=len(base))) & np.uint64(U32)
        other = (pick >= 0.6) & (pick < 0.8)
        words[other, w] = rng.choice(every, size=int(other.sum()))
        words[(pick >= 0.8) & (pick < 0.9), w] = 0
    small = rng.random(n) < 0.2
    words[small, 0] = rng.integers(0, 500, size=int(small.sum()))
    words[rng.random(n) < 0.75, 1] = layout.audit_arch
    if layout.byteorder != sys.byteorder:     # ld sees the halves of 64-bit fields swapped
        words[:, 2:] = words[:, 2:].reshape(n, 7, 2)[:, :, ::-1].reshape(n, 14)
    recs = np.zeros(n, dtype=SECCOMP_DATA)
    recs.view(np.uint32).reshape(n, 16)[:] = words
    return recs


def evaluate_each(filt, recs: np.ndarray) -> np.ndarray:
    """The single-record paths (Filter.evaluate: evaluate_packed, evaluate_nr), one by one."""
    return np.array([filt.evaluate(int(r["nr"]), [int(a) for a in r["args"]], arch=int(r["arch"]),
                                   instruction_pointer=int(r["instruction_pointer"]))
                     for r in recs], dtype=np.uint32)


# ---------------------------------------------------------------- libseccomp vectors

def test_every_libseccomp_vector(vectors):
    groups = defaultdict(list)
    for v in vectors:
        groups[(v["filter"], v["arch_name"], v["endian"])].append(v)
    seen_arches, seen_endians, total = set(), set(), 0
    for (name, arch, endian), cases in groups.items():
        prog = Program.from_bytes((VECTORS / "filters" / name).read_bytes(), endian)
        fast, ref = compile_both(prog, arch)
        recs = np.zeros(len(cases), dtype=SECCOMP_DATA)
        recs["nr"] = [c["nr"] for c in cases]
        recs["arch"] = [c["arch"] for c in cases]
        recs["instruction_pointer"] = [c["ip"] for c in cases]
        recs["args"] = np.array([c["args"] for c in cases], dtype=np.uint64)
        expect = np.array([c["expect"] for c in cases], dtype=np.uint32)
        want = ref.evaluate_batch(recs)
        assert_same(want, expect, recs, f"reference vs vectors on {name}/{arch}")
        assert_same(fast.evaluate_batch(recs), want, recs, f"{name} {arch} batch")
        assert_same(evaluate_each(fast, recs), want, recs, f"{name} {arch} evaluate")
        seen_arches.add(arch)
        seen_endians.add(endian)
        total += len(cases)
    assert total == len(vectors) == 9490
    assert len(seen_arches) == 23 and seen_endians == {"little", "big"}


# ---------------------------------------------------------------- real filters

REAL = real_filters()


@pytest.mark.parametrize("path", REAL, ids=[p.stem for p in REAL])
def test_real_filter_matches_reference(path: Path):
    prog = Program.from_bytes(path.read_bytes(), source=str(path))
    arch = real_filter_arch(path)
    fast, ref = compile_both(prog, arch)
    seed = int.from_bytes(path.name.encode()[:8], "little")
    recs = np.concatenate([biased_records(prog, fast.layout, 10_000, np.random.default_rng(seed)),
                           inputs_for(prog, random.Random(seed), 10_000, layout=fast.layout)])
    want = ref.evaluate_batch(recs)
    assert_same(fast.evaluate_batch(recs), want, recs, path.name)
    assert_same(evaluate_each(fast, recs[:300]), want[:300], recs[:300], path.name + " evaluate")
    assert len(np.unique(want)) >= 2, "the records should reach more than one return"


def _table_programs():
    for path in REAL:
        yield path.stem, Program.from_bytes(path.read_bytes()), real_filter_arch(path)
    seen = set()
    for line in (VECTORS / "vectors.jsonl").read_text().splitlines():
        v = json.loads(line)
        key = (v["filter"], v["arch_name"])
        if key not in seen:
            seen.add(key)
            data = (VECTORS / "filters" / v["filter"]).read_bytes()
            yield f"{v['filter']}-{v['arch_name']}", Program.from_bytes(data, v["endian"]), \
                v["arch_name"]


def leaf_paths(evaluator, limit: int = 1500) -> list[tuple[tuple, tuple]]:
    """``(constraints, leaf)`` for root-to-leaf paths of the decision DAG; a constraint
    ``(word, mask, lo, hi)`` says ``words[word] & mask`` is in ``lo..hi`` (one per word and
    mask: a path asking two disjoint intervals of the same value is left out)."""
    dag = evaluator.decisions
    found, stack = [], [(dag.root, {})]
    while stack and len(found) < limit:
        child, path = stack.pop()
        if child[0] != "node":
            found.append((tuple((w, m, lo, hi) for (w, m), (lo, hi) in path.items()), child))
            continue
        node = dag.nodes[child[1]]
        old_lo, old_hi = path.get((node.word, node.mask), (0, U32))
        for lo, hi, kid in node.parts:
            lo, hi = max(lo, old_lo), min(hi, old_hi)
            if lo <= hi:
                stack.append((kid, {**path, (node.word, node.mask): (lo, hi)}))
    return found


def satisfying_words(path: tuple, base: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """``base`` (16 host-order words) changed to meet every constraint of ``path``; None if
    no value tried does (a path through values no record can hold)."""
    words = base.copy()
    for w in {c[0] for c in path}:
        rules = [c[1:] for c in path if c[0] == w]
        tries = [v for _, lo, hi in rules for v in (lo, hi, int(rng.integers(lo, hi + 1)))]
        tries = [v | (int(rng.integers(0, 1 << 32)) & ~m & U32) for v in tries for m, _, _ in rules]
        good = [v for v in tries if all(lo <= v & m <= hi for m, lo, hi in rules)]
        if not good:
            return None
        words[w] = good[0]
    return words


def test_decision_leaves_are_exact():
    """Records steered down each path of the DAG: a fixed-value leaf gives that value for
    the reference too, and every leaf agrees with the reference."""
    rng = np.random.default_rng(7)
    fixed = steered = 0
    for name, prog, arch in _table_programs():
        fast, ref = compile_both(prog, arch)
        paths = leaf_paths(fast.evaluator)
        base = biased_records(prog, fast.layout, 2 * len(paths), rng)
        rows, leaves = [], []
        for j, (path, leaf) in enumerate(paths * 2):
            words = satisfying_words(path, base[j:j + 1].view(np.uint32), rng)
            if words is not None:
                rows.append(words)
                leaves.append(leaf)
        recs = np.zeros(len(rows), dtype=SECCOMP_DATA)
        recs.view(np.uint32).reshape(-1, 16)[:] = rows
        want = ref.evaluate_batch(recs)
        for i, leaf in enumerate(leaves):
            if leaf[0] == "ret":
                assert int(want[i]) == leaf[1], (name, leaf, recs[i])
                fixed += 1
        assert_same(fast.evaluate_batch(recs), want, recs, name + " steered records")
        assert_same(evaluate_each(fast, recs[:100]), want[:100], recs[:100], name + " evaluate")
        steered += len(rows)
    assert fixed > 5_000 and steered > 10_000, (fixed, steered)


def test_docker_is_all_decisions():
    """docker-default x86_64: arch, nr and the argument checks all become binary searches."""
    path = next(p for p in REAL if p.name == "docker-default.x86_64.bpf")
    fast = bpfjit.compile(Program.from_bytes(path.read_bytes()), backend="numba", arch="x86_64")
    kids = [kid for node in fast.evaluator.decisions.nodes for _, _, kid in node.parts]
    assert kids and not [k for k in kids if k[0] == "resume"]
    assert fast.evaluator.decisions.nodes[0].word == 1          # arch first
    assert fast.evaluator.dispatches >= 1
    assert "decision nodes" in fast.evaluator.describe()["decisions"]


# ---------------------------------------------------------------- random programs

ALU_K_LIMIT = {op.BPF_ALU | op.BPF_DIV | op.BPF_K: (1, U32),
               op.BPF_ALU | op.BPF_LSH | op.BPF_K: (0, 31),
               op.BPF_ALU | op.BPF_RSH | op.BPF_K: (0, 31)}
BODY_CODES = sorted(op.SECCOMP_CODES)


def random_program(rng: np.random.Generator, length: int) -> Program:
    """A program the checker accepts, drawn from every seccomp opcode."""
    pool = [int(v) for v in rng.choice(np.array(SPECIAL + (59, 0xC000003E, 0x40000003),
                                                 dtype=np.uint64), 4)]
    pool += [int(v) for v in rng.integers(0, 1 << 32, 3, dtype=np.uint64)]
    cells = sorted({int(c) for c in rng.integers(0, 16, int(rng.integers(0, 5)))})
    insns: list[Instruction] = []
    for c in cells:     # written before any jump: readable everywhere below
        insns += [stmt(op.BPF_LD | op.BPF_IMM, int(rng.choice(pool))), stmt(op.BPF_ST, c)]
    if rng.random() < 0.5:
        insns.append(stmt(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0))
    while len(insns) < length - 1:
        left = length - len(insns) - 2      # the furthest forward jump offset allowed
        code = int(rng.choice(BODY_CODES))
        k = int(rng.choice(pool)) if rng.random() < 0.7 else int(rng.integers(0, 1 << 32))
        if code == op.BPF_LD | op.BPF_W | op.BPF_ABS:
            k = 4 * int(rng.integers(0, 16))
        elif code in (op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM):
            if not cells:
                continue
            k = int(rng.choice(cells))
        elif code in (op.BPF_ST, op.BPF_STX):
            k = int(rng.integers(0, 16))
        elif code in ALU_K_LIMIT:
            lo, hi = ALU_K_LIMIT[code]
            k = k if lo <= k <= hi else int(rng.integers(lo, hi + 1))
        elif code == op.BPF_JMP | op.BPF_JA:
            if left < 0:
                continue
            k = int(rng.integers(0, min(left, 8) + 1))
        elif code in op.CONDITIONAL_JUMPS:
            if left < 0:
                continue
            jt, jf = (int(v) for v in rng.integers(0, min(left, 12) + 1, 2))
            insns.append(jump(code, k, jt, jf))
            continue
        insns.append(stmt(code, k))
    insns.append(stmt(op.BPF_RET | (op.BPF_A if rng.random() < 0.5 else op.BPF_K),
                      int(rng.choice(pool))))
    return Program(insns)


@pytest.mark.parametrize("arch", ["x86_64", "s390x", "x86", "mips64n32", "ppc"])
def test_random_programs_match_reference(arch: str):
    rng = np.random.default_rng(sum(map(ord, arch)))
    layout = bpfjit.layout(arch)
    used: set[int] = set()
    for _ in range(150):
        prog = random_program(rng, int(rng.integers(2, 48)))
        used.update(i.code for i in prog)
        fast, ref = compile_both(prog, arch)
        recs = biased_records(prog, layout, 120, rng)
        want = ref.evaluate_batch(recs)
        assert_same(fast.evaluate_batch(recs), want, recs, f"random program {list(prog)}")
        assert_same(evaluate_each(fast, recs[:20]), want[:20], recs[:20], "evaluate_one")
    assert used >= op.SECCOMP_CODES, [op.code_name(c) for c in op.SECCOMP_CODES - used]


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "s390x", "x86", "ppc64"])
def test_shared_generators_match_reference(arch: str):
    """Programs and records from bpfjit.testing (written apart from this backend)."""
    rng = random.Random(f"numba-{arch}")
    programs = [valid_program(rng) for _ in range(150)]
    programs += [realistic_program(rng, arch=arch) for _ in range(25)]
    for prog in programs:
        fast, ref = compile_both(prog, arch)
        recs = inputs_for(prog, rng, 150, layout=arch)
        want = ref.evaluate_batch(recs)
        assert_same(fast.evaluate_batch(recs), want, recs, f"{prog.source}: {list(prog)}")
        assert_same(evaluate_each(fast, recs[:15]), want[:15], recs[:15], "single calls")


@pytest.mark.parametrize("budget", [0, 9, 40])
def test_walks_starved_or_off(monkeypatch, budget: int):
    """Every cap hit (walk budget, nodes, jset pieces, value splitting, dispatch) still gives
    exact results; with budget 0 every record runs in the interpreter from instruction 0."""
    monkeypatch.setattr(numba_jit.decisions, "WALK_BUDGET", budget)
    monkeypatch.setattr(numba_jit.decisions, "MAX_NODES", 2)
    monkeypatch.setattr(numba_jit.decisions, "SPLIT_VALUES", 0)
    monkeypatch.setattr(numba_jit.values, "JSET_PIECES", 1)
    monkeypatch.setattr(numba_jit.decode, "DISPATCH_BUDGET", 5 * budget)
    rng = np.random.default_rng(11 + budget)
    programs = [random_program(rng, int(rng.integers(2, 40))) for _ in range(80)]
    programs += [Program.from_bytes(p.read_bytes()) for p in REAL[::5]]
    for prog in programs:
        fast, ref = compile_both(prog, "s390x" if budget == 40 else "x86_64")
        if budget == 0:
            assert fast.evaluator.decisions.root == ("resume", 0, 0, 0, (0,) * 16)
        recs = biased_records(prog, fast.layout, 300, rng)
        want = ref.evaluate_batch(recs)
        assert_same(fast.evaluate_batch(recs), want, recs, f"starved walks ({budget})")
        assert_same(evaluate_each(fast, recs[:10]), want[:10], recs[:10], "starved, single")


# ---------------------------------------------------------------- kernel semantics, one by one

A = op.BPF_ALU
LDW = op.BPF_LD | op.BPF_W | op.BPF_ABS
RET_A = stmt(op.BPF_RET | op.BPF_A)

SEMANTICS = {
    "div by X == 0 returns 0": [stmt(op.BPF_LD | op.BPF_IMM, 7), stmt(op.BPF_LDX | op.BPF_IMM, 0),
                                stmt(A | op.BPF_DIV | op.BPF_X), stmt(op.BPF_RET | op.BPF_K, 5)],
    "div by X (nr)": [stmt(LDW, 0), stmt(op.BPF_MISC | op.BPF_TAX), stmt(op.BPF_LD | op.BPF_IMM, U32),
                      stmt(A | op.BPF_DIV | op.BPF_X), RET_A],
    "lsh by X uses X & 31": [stmt(LDW, 16), stmt(op.BPF_MISC | op.BPF_TAX), stmt(LDW, 0),
                             stmt(A | op.BPF_LSH | op.BPF_X), RET_A],
    "rsh by X uses X & 31": [stmt(LDW, 20), stmt(op.BPF_MISC | op.BPF_TAX), stmt(LDW, 0),
                             stmt(A | op.BPF_RSH | op.BPF_X), RET_A],
    "ld len is 64": [stmt(op.BPF_LD | op.BPF_W | op.BPF_LEN), stmt(op.BPF_LDX | op.BPF_W | op.BPF_LEN),
                     stmt(A | op.BPF_ADD | op.BPF_X), RET_A],
    "mul wraps": [stmt(LDW, 16), stmt(A | op.BPF_MUL | op.BPF_K, 0x9E3779B9), RET_A],
    "sub and neg wrap": [stmt(LDW, 0), stmt(A | op.BPF_SUB | op.BPF_K, 5), stmt(A | op.BPF_NEG), RET_A],
    "ret A is nr": [stmt(LDW, 0), RET_A],
    "jset on nr": [stmt(LDW, 0), jump(op.BPF_JMP | op.BPF_JSET | op.BPF_K, 0x40000001, 0, 1),
                   stmt(op.BPF_RET | op.BPF_K, 1), stmt(op.BPF_RET | op.BPF_K, 2)],
    "and on nr then jeq": [stmt(LDW, 0), stmt(A | op.BPF_AND | op.BPF_K, 0x40000000),
                           jump(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 0, 0, 1),
                           stmt(op.BPF_RET | op.BPF_K, 1), stmt(op.BPF_RET | op.BPF_K, 2)],
    "x compared with nr": [stmt(LDW, 16), stmt(op.BPF_MISC | op.BPF_TAX), stmt(LDW, 0),
                           jump(op.BPF_JMP | op.BPF_JGT | op.BPF_X, 0, 0, 1), RET_A,
                           stmt(op.BPF_RET | op.BPF_K, 3)],
    "nr against nr": [stmt(LDW, 0), stmt(op.BPF_MISC | op.BPF_TAX),
                      jump(op.BPF_JMP | op.BPF_JSET | op.BPF_X, 0, 0, 1),
                      stmt(op.BPF_RET | op.BPF_K, 1), stmt(op.BPF_RET | op.BPF_K, 2)],
    "scratch carries nr": [stmt(LDW, 0), stmt(op.BPF_ST, 3), stmt(LDW, 24),
                           jump(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 0, 0, 1),
                           stmt(op.BPF_LD | op.BPF_MEM, 3), RET_A],
    "every word": [stmt(LDW, 4 * w) for w in range(16)] + [RET_A],
}


@pytest.mark.parametrize("name", sorted(SEMANTICS))
@pytest.mark.parametrize("arch", ["x86_64", "s390x"])
def test_semantics(name: str, arch: str):
    prog = Program(SEMANTICS[name])
    fast, ref = compile_both(prog, arch)
    rng = np.random.default_rng(3)
    recs = biased_records(prog, fast.layout, 2000, rng)
    recs["nr"][:8] = [0, -1, 1, 0x40000000, 0x40000001, -0x80000000, 33, 64]
    want = ref.evaluate_batch(recs)
    assert_same(fast.evaluate_batch(recs), want, recs, name)
    assert_same(evaluate_each(fast, recs[:50]), want[:50], recs[:50], name + " evaluate")


def test_known_values():
    """Spot values the kernel gives (stated facts, not taken from either implementation)."""
    f = bpfjit.compile(Program(SEMANTICS["div by X == 0 returns 0"]), backend="numba", arch="x86_64")
    assert f.evaluate(0) == 0
    f = bpfjit.compile(Program(SEMANTICS["ld len is 64"]), backend="numba", arch="x86_64")
    assert f.evaluate(0) == 128
    f = bpfjit.compile(Program(SEMANTICS["lsh by X uses X & 31"]), backend="numba", arch="x86_64")
    assert f.evaluate(3, args=[33]) == 6
    f = bpfjit.compile(Program(SEMANTICS["every word"][:-1] + [stmt(LDW, 16), RET_A]),
                       backend="numba", arch="s390x")
    assert f.evaluate(0, args=[0x11111111_22222222]) == 0x11111111    # the high word first
    f = bpfjit.compile(Program([stmt(LDW, 16), RET_A]), backend="numba", arch="x86_64")
    assert f.evaluate(0, args=[0x11111111_22222222]) == 0x22222222


# ---------------------------------------------------------------- API, arrays, threads, cache

def _docker():
    path = next(p for p in REAL if p.name == "docker-default.x86_64.bpf")
    return Program.from_bytes(path.read_bytes())


def test_single_call_paths_match_reference():
    """evaluate(nr) (remembered answers), evaluate(nr, args), evaluate_one: against the reference."""
    prog = _docker()
    fast, ref = compile_both(prog, "x86_64")
    nrs = list(range(-3, 460)) + [0x40000000 + n for n in range(0, 550, 7)] + [0x7FFFFFFF, U32]
    want = [ref.evaluate(nr) for nr in nrs]
    for _ in range(2):          # the second round answers from memory
        assert [fast.evaluate(nr) for nr in nrs] == want
    for nr, args in [(56, (0x10000,)), (56, (0x7E020000,)), (41, (39,)), (41, (40,)),
                     (135, (8,)), (135, (0xFFFFFFFF,)), (135, (1 << 40,)), (1000, (1, 2, 3))]:
        expect = ref.evaluate(nr, args=args)
        assert fast.evaluate(nr, args=args) == expect
        assert fast.evaluator.evaluate_one(nr, 0xC000003E, 0, args + (0,) * (6 - len(args))) == expect


def test_read_only_and_sliced_records():
    prog = _docker()
    fast, ref = compile_both(prog, "x86_64")
    recs = biased_records(prog, fast.layout, 3000, np.random.default_rng(5))
    want = ref.evaluate_batch(recs)
    frozen = recs.copy()
    frozen.flags.writeable = False
    assert_same(fast.evaluate_batch(frozen), want, recs, "read-only records")
    out = np.zeros(4000, dtype=np.uint32)
    fast.evaluate_batch(recs[1000:2000], out[2000:3000])
    assert (out[2000:3000] == want[1000:2000]).all() and not out[:2000].any()


def test_threads_give_identical_results():
    prog = _docker()
    fast = bpfjit.compile(prog, backend="numba", arch="x86_64")
    assert fast.evaluator.releases_gil
    recs = biased_records(prog, fast.layout, 3 * (1 << 16) + 17, np.random.default_rng(9))
    one = fast.evaluate_batch(recs)
    assert (fast.evaluate_batch(recs, threads=2) == one).all()
    assert (fast.evaluate_batch(recs, threads=3) == one).all()
    sample = recs[:400]
    want = evaluate_each(fast, sample)
    results: dict[int, np.ndarray] = {}

    def worker(t: int) -> None:
        results[t] = evaluate_each(fast, sample)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all((r == want).all() for r in results.values()) and len(results) == 4
    assert (want == one[:400]).all()


def test_backend_api_and_unavailability(monkeypatch):
    assert numba_jit.BACKEND.name == "numba"
    assert bpfjit.backends.available()["numba"] is None
    with pytest.raises(TypeError, match="CheckedProgram"):
        numba_jit.BACKEND.compile(Program([stmt(op.BPF_RET | op.BPF_K, 0)]), bpfjit.layout("x86_64"))
    monkeypatch.setattr(numba_jit, "IMPORT_ERROR", "numba cannot be imported: ImportError: test")
    assert "ImportError: test" in numba_jit.BACKEND.unavailable_reason()
    with pytest.raises(BackendUnavailable, match="numba cannot be imported"):
        bpfjit.compile(Program([stmt(op.BPF_RET | op.BPF_K, 0)]), backend="numba", arch="x86_64")


CACHE_PROBE = """
import json, time
t0 = time.perf_counter()
from numba.core import event
with event.install_recorder("numba:compile") as rec:
    import numpy as np, bpfjit
    from bpfjit.backends import numba_jit
    prog = bpfjit.Program.from_bytes(open(%r, "rb").read())
    f = bpfjit.compile(prog, backend="numba", arch="x86_64")
    recs = np.zeros(4, dtype=bpfjit.SECCOMP_DATA)
    recs["nr"] = [0, 56, 1000, -1]
    recs["arch"] = [0xC000003E, 0xC000003E, 0xC000003E, 3]
    out = f.evaluate_batch(recs)
    first = time.perf_counter() - t0
print(json.dumps({"compiles": len(rec.buffer), "seconds": first, "out": out.tolist(),
                  "hits": sum(numba_jit.interpreter.run_batch.stats.cache_hits.values())}))
"""


def test_disk_cache_means_a_new_process_compiles_nothing():
    path = next(p for p in REAL if p.name == "docker-default.x86_64.bpf")
    code = CACHE_PROBE % str(path)
    runs = []
    for _ in range(2):   # the first run may fill the cache; the second must only load it
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    second = runs[1]
    assert second["compiles"] == 0 and second["hits"] >= 1, runs
    ref = bpfjit.compile(_docker(), backend="reference", arch="x86_64")
    assert second["out"] == [ref.evaluate(0), ref.evaluate(56), ref.evaluate(1000),
                             ref.evaluate(-1, arch=3)]
    print(f"numba: time to first result in a fresh process: {second['seconds']:.3f} s")
