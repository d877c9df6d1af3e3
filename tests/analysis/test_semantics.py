"""bpfjit.analysis.semantics: the regions are exact.

Expected values come from the reference interpreter (directly, or through the
llvm backend, itself checked against the reference and the kernel): on every
real filter and on seeded generated programs, each input lies in exactly one
region, and that region's result is the program's return value. Witnesses of
opaque regions (z3) must take their path on the reference. Hand-made programs
pin down the readable conditions.
"""
from __future__ import annotations

import os
import random

import numpy as np
import pytest

import bpfjit
import bpfjit_reference as ref
from bpfjit.analysis import conditions as cd
from bpfjit.analysis.compare import record_of
from bpfjit.analysis.semantics import ARCH, NR, analyse, describe, result_text
from bpfjit.formats import asm
from bpfjit.seccomp import layouts, records, syscalls
from bpfjit.testing import inputs_for, realistic_program, valid_program
from corpora import real_filter_arch, real_filters

INPUTS = 1000
X86_64 = layouts.layout("x86_64")


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BPFJIT_CACHE_DIR", str(tmp_path_factory.mktemp("bpfjit-cache")))
        yield


def agree(prog, lay, rng, n=INPUTS, reference_sample=0) -> dict:
    """Check the analysis of ``prog`` on ``n`` constant-biased inputs; returns counters."""
    sem = analyse(bpfjit.check(prog), lay)
    assert sem.complete, "whole-program analysis abandoned"
    recs = inputs_for(prog, rng, n, layout=lay)
    want = bpfjit.compile(prog, backend="llvm", arch=lay).evaluate_batch(recs)
    words = records.words(recs, lay)
    got, count = sem.evaluate_words(words)
    bad = np.nonzero((count != 1) | (got != want))[0]
    assert not len(bad), (f"record {bad[0]}: {count[bad[0]]} regions, analysis "
                          f"{int(got[bad[0]]):#x}, program {int(want[bad[0]]):#x}\n"
                          f"{prog.disassemble()}\n{recs[bad[0]]}")
    insns = [tuple(i) for i in prog]
    for i in range(min(reference_sample, n)):
        r = recs[i]
        assert ref.run_seccomp(insns, int(r["nr"]), int(r["arch"]),
                               int(r["instruction_pointer"]), [int(a) for a in r["args"]],
                               lay.byteorder) == int(got[i])
    opaque = [p for p in sem.paths if not p.symbolic]
    for p in opaque[:8]:                               # the solver's witnesses are real
        w = p.witness()
        if isinstance(w, dict):
            wl = [w[i] for i in range(16)]
            assert p.matches(wl)
            rec = record_of(w, lay)
            assert ref.run_seccomp(insns, *rec, lay.byteorder) == cd.evaluate(p.result, wl)
    return {"paths": len(sem.paths), "opaque": len(opaque)}


@pytest.mark.parametrize("path", real_filters(), ids=lambda p: p.stem)
def test_real_filter_regions_agree_with_the_program(path):
    prog = bpfjit.load(path)
    agree(prog, layouts.layout(real_filter_arch(path)), random.Random(path.name),
          reference_sample=50)


def test_per_syscall_verdicts_agree_on_docker_for_every_abi():
    prog = bpfjit.load(real_filters()[0].parent / "docker-default.x86_64.bpf")
    sem = analyse(bpfjit.check(prog), X86_64)
    insns = [tuple(i) for i in prog]
    rng = random.Random(5)
    for abi in ("x86_64", "x32", "x86"):
        lay = layouts.layout(abi)
        for name, nr in sorted(syscalls.table(abi).items())[::7]:
            v = sem.verdict(lay.audit_arch, nr)
            assert v.complete and v.regions
            for _ in range(3):
                args = [rng.choice((0, 1, 0x27, 0x7e020000, rng.getrandbits(64))) for _ in range(6)]
                words = {NR: nr & 0xFFFFFFFF, ARCH: lay.audit_arch}
                for i, a in enumerate(args):
                    lo = X86_64.word_offset("args", i, "lo") // 4
                    words[lo], words[lo ^ 1] = a & 0xFFFFFFFF, a >> 32
                wl = [words.get(i, 0) for i in range(16)]
                hits = [r for r in v.regions if r.matches(wl)]
                assert len(hits) == 1
                want = ref.run_seccomp(insns, nr, lay.audit_arch, 0, args, "little")
                assert cd.evaluate(hits[0].result, wl) == want, (abi, name, args)


SAMPLE = int(os.environ.get("BPFJIT_SEMANTICS_PROGRAMS", "100"))


def _generated(seed: int, count: int):
    rng = random.Random(seed)
    for n in range(count):
        arch = rng.choice(["x86_64", "aarch64", "s390x"])
        if n % 2:
            yield "valid", valid_program(rng), layouts.layout(arch), rng
        else:
            yield "realistic", realistic_program(rng, arch=arch), layouts.layout(arch), rng


def _run_generated(seed: int, count: int) -> dict:
    totals = {"programs": 0, "inputs": 0, "opaque_programs": 0, "paths": 0}
    for _, prog, lay, rng in _generated(seed, count):
        got = agree(prog, lay, rng)
        totals["programs"] += 1
        totals["inputs"] += INPUTS
        totals["paths"] += got["paths"]
        totals["opaque_programs"] += bool(got["opaque"])
    return totals


def test_generated_programs_agree_with_the_program():
    totals = _run_generated(20261205, SAMPLE)
    print(totals)
    assert totals["programs"] == SAMPLE and totals["opaque_programs"] > 0


@pytest.mark.slow
def test_five_thousand_generated_programs_agree_with_the_program():
    totals = _run_generated(5000, 5000)
    print(totals)
    assert totals["programs"] == 5000


# --- hand-made programs: what the conditions look like ---------------------------------------

def _sem(text: str, arch: str = "x86_64"):
    prog = asm.parse(text) if hasattr(asm, "parse") else bpfjit.load(text.encode(), format="asm")
    lay = layouts.layout(arch)
    return analyse(bpfjit.check(prog), lay), lay


CLONE = """
    ld [4]
    jeq #0xc000003e, good
    ret KILL_PROCESS
good:
    ld [0]
    jeq #56, clone
    ret ALLOW
clone:
    ld [16]
    and #0x7e020000
    jeq #0, ok
    ret ERRNO(1)
ok:
    ret ALLOW
"""


def test_masked_equality_reads_as_one_condition():
    sem, lay = _sem(CLONE)
    v = sem.verdict(lay.audit_arch, 56)
    assert v.symbolic and v.constant is None
    shown = {result_text(r.result, lay): describe(r, lay) for r in v.regions}
    assert shown == {"ALLOW": ["args[0].lo & 0x7e020000 == 0"],
                     "ERRNO(1)": ["args[0].lo & 0x7e020000 != 0"]}
    assert sem.verdict(lay.audit_arch, 57).constant == 0x7FFF0000
    assert sem.verdict(0x40000003, 56).constant == 0x80000000


def test_big_endian_names_the_halves_by_the_layout():
    sem, lay = _sem(CLONE, "s390x")
    v = sem.verdict(0xc000003e, 56)
    assert any("args[0].hi" in c for r in v.regions for c in describe(r, lay))


def test_ret_a_of_a_loaded_word_is_flagged_and_exact():
    sem, lay = _sem("ld [16]\nadd #1\nret a\n")
    v = sem.verdict(lay.audit_arch, 0)
    assert not v.symbolic and len(v.regions) == 1
    assert result_text(v.regions[0].result, lay) == "the value of (args[0].lo + 1)"


def test_comparison_of_two_words_goes_to_the_solver():
    sem, lay = _sem("ld [16]\ntax\nld [24]\njgt x, big\nret ERRNO(1)\nbig: ret ALLOW\n")
    v = sem.verdict(lay.audit_arch, 0)
    assert not v.symbolic and len(v.regions) == 2
    insns = [tuple(i) for i in sem.program]
    for r in v.regions:
        w = r.witness()
        assert isinstance(w, dict)
        w = {**w, NR: 0, ARCH: lay.audit_arch}
        assert ref.run_seccomp(insns, *record_of(w, lay), "little") == r.result
    assert describe(v.regions[0], lay) in (["args[1].lo > args[0].lo"],
                                          ["args[1].lo <= args[0].lo"])


def test_division_by_a_zero_x_is_its_own_region():
    sem, lay = _sem("ld [16]\ntax\nld #100\ndiv x\nret a\n")
    v = sem.verdict(lay.audit_arch, 0)
    zero = [r for r in v.regions if r.result == 0 and describe(r, lay) == ["args[0].lo == 0"]]
    assert len(zero) == 1


def test_contradictory_branches_are_pruned():
    sem, _ = _sem("ld [16]\njeq #5, a\nret #1\na: jeq #6, b\nret #2\nb: ret #3\n")
    assert sorted(p.result for p in sem.paths) == [1, 2]


# --- WordSet is exact: brute force over small windows ---------------------------------------

@pytest.mark.parametrize("seed", range(40))
def test_wordset_emptiness_and_witness_match_brute_force(seed):
    rng = random.Random(seed)
    base = rng.choice((0, 0x40000000, 0xFFFFF000, rng.getrandbits(32) & ~0xFFF))
    s = cd.WordSet().refine("ge", base).refine("le", base + 0xFFF)
    members = list(range(base, base + 0x1000))
    for _ in range(rng.randrange(1, 12)):
        kind = rng.choice(("eq", "ne", "ne", "ge", "le"))
        if kind in ("eq", "ne"):
            mask = rng.choice((cd.U32, 0xF, 0xF0, 0x3, 0x100, rng.getrandbits(12)))
            args = (mask, rng.getrandbits(32) & mask)
            holds = (lambda v, m=args[0], x=args[1], k=kind: ((v & m) == x) == (k == "eq"))
        else:
            args = (base + rng.randrange(0x1000),)
            holds = (lambda v, a=args[0], k=kind: v >= a if k == "ge" else v <= a)
        members = [v for v in members if holds(v)]
        s = s.refine(kind, *args)
        if s is None:
            assert not members, "refine said empty, but brute force finds members"
            return
        assert [v for v in range(base, base + 0x1000) if s.contains(v)] == members
        assert members, "refine kept an empty set"
        assert s.find() in members


def test_an_abandoned_whole_program_analysis_falls_back_per_syscall():
    prog = bpfjit.check(bpfjit.load(real_filters()[0].parent / "docker-default.x86_64.opt.bpf"))
    small = analyse(prog, X86_64, max_paths=10)
    full = analyse(prog, X86_64)
    assert not small.complete and full.complete
    with pytest.raises(Exception, match="abandoned"):
        small.evaluate_words(np.zeros((1, 16), dtype=np.uint32))
    for arch in (X86_64.audit_arch, 0x40000003):
        for nr in (0, 41, 56, 135, 435, 1000, 0x40000038, -1):
            a, b = small.verdict(arch, nr), full.verdict(arch, nr)
            assert a.complete
            assert [(p.result, describe(p, X86_64)) for p in a.regions] == \
                [(p.result, describe(p, X86_64)) for p in b.regions]
    from bpfjit.analysis.compare import compare
    result = compare(small, full)
    assert not result.differences and result.undecided and not result.equal
