"""backend="llvm": kernel semantics, byte orders, entry points, loaders, threads, inputs, memory safety.

Expected values come from ``bpfjit_reference`` (or are worked out by hand from
the kernel's rules), never from the backend itself.
"""
from __future__ import annotations

import random
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bpfjit
import bpfjit_reference as ref
from bpfjit import backends, opcodes as op
from bpfjit.backends import llvm as llvm_backend
from bpfjit.backends.llvm import image
from bpfjit.backends.llvm.cache import CodeCache
from bpfjit.errors import InputError
from bpfjit.program import Instruction, Program
from bpfjit.seccomp import layouts, records
from bpfjit.testing.inputs import inputs_for
from corpora import real_filter_arch, real_filters

pytestmark = pytest.mark.skipif(backends.available()["llvm"] is not None,
                                reason=f"llvm backend unavailable: {backends.available()['llvm']}")

LD = op.BPF_LD | op.BPF_W | op.BPF_ABS
LD_IMM, LDX_IMM = op.BPF_LD | op.BPF_IMM, op.BPF_LDX | op.BPF_IMM
RET_A, RET_K = op.BPF_RET | op.BPF_A, op.BPF_RET | op.BPF_K
TAX, TXA = op.BPF_MISC | op.BPF_TAX, op.BPF_MISC | op.BPF_TXA
ALLOW = 0x7FFF0000
DOCKER = next(p for p in real_filters() if p.stem == "docker-default.x86_64")


def I(code, k=0, jt=0, jf=0):  # noqa: E743
    return Instruction(code, jt, jf, k)


def alu(o, src=op.BPF_K):
    return op.BPF_ALU | o | src


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BPFJIT_CACHE_DIR", str(tmp_path_factory.mktemp("bpfjit-cache")))
        yield


def reference(program: Program, recs: np.ndarray, lay: layouts.Layout) -> list[int]:
    insns = [tuple(i) for i in program]
    return [ref.run_seccomp(insns, int(r["nr"]), int(r["arch"]), int(r["instruction_pointer"]),
                            r["args"].tolist(), lay.byteorder) for r in recs]


def run(insns, arch="x86_64", nr=0, args=(), ip=0, audit=None):
    """(llvm batch, llvm single call, reference) for one record."""
    prog = Program(insns)
    lay = layouts.layout(arch)
    f = bpfjit.compile(prog, backend="llvm", arch=arch)
    audit = lay.audit_arch if audit is None else audit
    rec = records.make(nr, audit, ip, args)
    want = ref.run_seccomp([tuple(i) for i in prog], records.normalize_nr(nr), audit, ip,
                           list(records.normalize_args(args)), lay.byteorder)
    return int(f.evaluate_batch(rec)[0]), f.evaluate(nr, args, audit, ip), want


def same(insns, **kw):
    batch, single, want = run(insns, **kw)
    assert batch == single == want, (hex(batch), hex(single), hex(want))
    return want


# --- kernel semantics -----------------------------------------------------------------------

def test_division_by_x_zero_returns_zero_from_the_program():
    prog = [I(LD_IMM, 7), I(LDX_IMM, 0), I(alu(op.BPF_DIV, op.BPF_X)), I(RET_K, ALLOW)]
    assert same(prog) == 0
    prog = [I(LD, 16), I(TAX), I(LD_IMM, 100), I(alu(op.BPF_DIV, op.BPF_X)), I(RET_A)]
    assert same(prog, args=(0,)) == 0
    assert same(prog, args=(7,)) == 14
    assert same(prog, args=(1 << 32 | 3,)) == 33           # only the low word is loaded


@pytest.mark.parametrize("shift", [op.BPF_LSH, op.BPF_RSH])
@pytest.mark.parametrize("amount", [0, 1, 31, 32, 33, 63, 0xFFFFFFFF])
def test_shifts_by_x_use_the_low_five_bits(shift, amount):
    prog = [I(LD, 16), I(TAX), I(LD_IMM, 0x80000001), I(alu(shift, op.BPF_X)), I(RET_A)]
    a, n = 0x80000001, amount & 31
    want = (a << n) & 0xFFFFFFFF if shift == op.BPF_LSH else a >> n
    assert same(prog, args=(amount,)) == want


@pytest.mark.parametrize("o,k,a,want", [
    (op.BPF_ADD, 0xFFFFFFFF, 2, 1), (op.BPF_SUB, 3, 1, 0xFFFFFFFE),
    (op.BPF_MUL, 0x10001, 0xFFFF0001, 0x00000001), (op.BPF_DIV, 0x80000000, 0xFFFFFFFF, 1),
    (op.BPF_OR, 0xF0, 0x0F, 0xFF), (op.BPF_AND, 0xF0, 0xFF, 0xF0), (op.BPF_XOR, 0xFF, 0x0F, 0xF0),
    (op.BPF_LSH, 31, 3, 0x80000000), (op.BPF_RSH, 31, 0x80000000, 1)])
def test_alu_k_wraps_at_32_bits(o, k, a, want):
    assert same([I(LD_IMM, a), I(alu(o), k), I(RET_A)]) == want
    assert same([I(LD_IMM, a), I(LDX_IMM, k), I(alu(o, op.BPF_X)), I(RET_A)]) == want


def test_neg_len_and_register_moves():
    assert same([I(LD_IMM, 5), I(alu(op.BPF_NEG)), I(RET_A)]) == 0xFFFFFFFB
    assert same([I(op.BPF_LD | op.BPF_W | op.BPF_LEN), I(RET_A)]) == 64
    assert same([I(op.BPF_LDX | op.BPF_W | op.BPF_LEN), I(TXA), I(RET_A)]) == 64
    assert same([I(LD_IMM, 9), I(TAX), I(LD_IMM, 1), I(TXA), I(RET_A)]) == 9


@pytest.mark.parametrize("jop", [op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE, op.BPF_JSET])
@pytest.mark.parametrize("a", [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])
def test_jumps_compare_unsigned(jop, a):
    for k in (0, 1, 0x80000000, 0xFFFFFFFF):
        for src in (op.BPF_K, op.BPF_X):
            prog = [I(LDX_IMM, k), I(LD, 16), I(op.BPF_JMP | jop | src, k, 0, 1),
                    I(RET_K, 1), I(RET_K, 2)]
            same(prog, args=(a,))


def test_scratch_cells_merge_across_paths():
    prog = [I(LD, 16), I(op.BPF_JMP | op.BPF_JSET | op.BPF_K, 1, 0, 3),
            I(LD_IMM, 10), I(op.BPF_ST, 5), I(op.BPF_JMP | op.BPF_JA, 2),
            I(LD_IMM, 20), I(op.BPF_ST, 5),
            I(op.BPF_LDX | op.BPF_MEM, 5), I(TXA), I(alu(op.BPF_ADD), 1), I(RET_A)]
    assert same(prog, args=(1,)) == 11
    assert same(prog, args=(2,)) == 21


@pytest.mark.parametrize("arch", ["x86_64", "s390x", "ppc64", "aarch64", "mips"])
def test_every_offset_in_both_byte_orders(arch):
    lay = layouts.layout(arch)
    rng = random.Random(arch)
    recs = np.zeros(64, dtype=bpfjit.SECCOMP_DATA)
    recs["nr"] = [rng.getrandbits(31) for _ in recs]
    recs["arch"] = [rng.getrandbits(32) for _ in recs]
    recs["instruction_pointer"] = [rng.getrandbits(64) for _ in recs]
    recs["args"] = [[rng.getrandbits(64) for _ in range(6)] for _ in recs]
    seen = records.words(recs, lay)
    for k in range(0, 64, 4):
        prog = Program([I(LD, k), I(RET_A)])
        got = bpfjit.compile(prog, backend="llvm", arch=arch).evaluate_batch(recs)
        assert got.tolist() == reference(prog, recs, lay) == seen[:, k // 4].tolist(), k
        name = lay.describe_offset(k)
        if name.startswith("args[2]."):                     # spot-check the layout by hand
            field = int(recs["args"][0][2])
            assert int(got[0]) == (field >> 32 if name.endswith("hi") else field & 0xFFFFFFFF)


# --- entry points ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def docker():
    return bpfjit.compile(bpfjit.load(DOCKER), backend="llvm", arch="x86_64")


def test_single_call_paths_agree_with_the_reference(docker):
    insns = [tuple(i) for i in docker.program]
    x86_64 = layouts.layout("x86_64").audit_arch
    rng = random.Random(5)
    for nr in list(range(-3, 520)) + [0x40000000 + i for i in range(0, 600, 7)] + [2**31 - 1]:
        want = ref.run_seccomp(insns, nr, x86_64, 0, [0] * 6, "little")
        assert docker.evaluate(nr) == want
        assert docker.evaluator.evaluate_nr(nr) == want
        assert docker.evaluate(nr & 0xFFFFFFFF) == want     # u32 spelling of a negative nr
        args = [rng.getrandbits(64) for _ in range(6)]
        ip = rng.getrandbits(64)
        want = ref.run_seccomp(insns, nr, 0x40000003, ip, args, "little")
        assert docker.evaluate(nr, args, arch="x86", instruction_pointer=ip) == want
        rec = records.make(nr, 0x40000003, ip, args)
        assert docker.evaluator.evaluate_record(rec) == want
    assert docker.evaluate("read") == docker.evaluate(0)
    with pytest.raises(InputError):
        docker.evaluate(2**32)
    with pytest.raises(InputError):
        docker.evaluate(True)


def test_describe_shows_ir_optimised_ir_and_assembly(docker):
    d = docker.describe()
    assert {"ir", "optimized_ir", "asm"} <= set(d)
    assert "switch i32" in d["ir"] and "@bpfjit_verdicts" in d["ir"].replace('"', "")
    assert "define void @bpfjit_batch" in d["optimized_ir"].replace('"', "")
    assert "bpfjit_batch:" in d["asm"]
    # loads only at checked seccomp_data offsets 0..60
    offsets = {int(m) for m in re.findall(r'getelementptr inbounds i8, ptr %"rec", i64 (\d+)', d["ir"])}
    assert offsets and offsets <= set(range(0, 64, 4))


@pytest.mark.parametrize("path", real_filters(), ids=lambda p: p.stem)
def test_mcjit_and_flat_image_loaders_agree(path):
    if not image.supported():
        pytest.skip("the flat-image loader is for Linux x86-64")
    program = bpfjit.load(path)
    arch = real_filter_arch(path)
    lay = layouts.layout(arch)
    checked = bpfjit.check(program)
    recs = inputs_for(program, random.Random(path.name), 400, layout=lay)
    want = reference(program, recs, lay)
    for loader in ("image", "mcjit"):
        ev = llvm_backend.LlvmBackend(loader=loader, cache=CodeCache(None)).compile(checked, lay)
        assert ev.info["kind"] == loader
        out = np.empty(len(recs), dtype=np.uint32)
        ev.evaluate_batch(recs, out)
        assert out.tolist() == want, loader


# --- threads and input arrays ---------------------------------------------------------------

def test_threads_split_the_batch_and_agree_with_one_thread(docker, monkeypatch):
    recs = inputs_for(docker.program, random.Random(9), 300_000, layout="x86_64")
    one = docker.evaluate_batch(recs, threads=1)
    calls = []
    real = docker.evaluator.evaluate_batch
    monkeypatch.setattr(docker.evaluator, "evaluate_batch",
                        lambda r, o: (calls.append(len(r)), real(r, o))[1])
    many = docker.evaluate_batch(recs, threads=4)
    assert docker.evaluator.releases_gil is True
    assert len(calls) >= 2 and sum(calls) == len(recs)
    assert np.array_equal(one, many)
    sample = slice(0, 3000)
    assert one[sample].tolist() == reference(docker.program, recs[sample], docker.layout)


def test_bad_arrays_give_clear_errors(docker):
    recs = np.zeros(8, dtype=bpfjit.SECCOMP_DATA)
    with pytest.raises(InputError, match="dtype"):
        docker.evaluate_batch(np.zeros(8, dtype=np.uint64))
    with pytest.raises(InputError, match="numpy array"):
        docker.evaluate_batch([0, 1])
    with pytest.raises(InputError, match="C-contiguous"):
        docker.evaluate_batch(recs[::2])
    with pytest.raises(InputError, match="1-D"):
        docker.evaluate_batch(recs.reshape(2, 4))
    with pytest.raises(InputError, match="read-only"):
        out = np.zeros(8, dtype=np.uint32)
        out.flags.writeable = False
        docker.evaluate_batch(recs, out)
    with pytest.raises(InputError, match="shape"):
        docker.evaluate_batch(recs, np.zeros(7, dtype=np.uint32))
    with pytest.raises(InputError, match="dtype"):
        docker.evaluate_batch(recs, np.zeros(8, dtype=np.int64))
    with pytest.raises(InputError, match="threads"):
        docker.evaluate_batch(recs, threads=0)
    with pytest.raises(InputError, match="threads"):
        docker.evaluate_batch(recs, threads=True)
    huge = np.lib.stride_tricks.as_strided(recs[:1], shape=(1 << 40,), strides=(0,))
    with pytest.raises(InputError, match="C-contiguous"):
        docker.evaluate_batch(huge)
    with pytest.raises(InputError):
        docker.evaluator.evaluate_batch(recs, np.zeros(7, dtype=np.uint32))
    assert docker.evaluate_batch(np.zeros(0, dtype=bpfjit.SECCOMP_DATA)).shape == (0,)


def test_misaligned_and_overlapping_arrays_give_correct_results(docker):
    recs = inputs_for(docker.program, random.Random(2), 257, layout="x86_64")
    want = docker.evaluate_batch(recs)
    raw = np.zeros(257 * 64 + 1, dtype=np.uint8)
    shifted = np.frombuffer(raw.data, dtype=bpfjit.SECCOMP_DATA, count=257, offset=1)
    shifted[:] = recs
    assert not shifted.flags.aligned
    assert np.array_equal(docker.evaluate_batch(shifted), want)
    out_raw = np.zeros(257 * 4 + 1, dtype=np.uint8)
    out = np.frombuffer(out_raw.data, dtype=np.uint32, count=257, offset=1)
    assert np.array_equal(docker.evaluate_batch(recs, out), want) and np.array_equal(out, want)
    # out aliasing the records' own memory: results as if computed first
    copy = recs.copy()
    alias = copy.view(np.uint32)[:257]
    docker.evaluate_batch(copy, alias)
    assert np.array_equal(alias, want)


# --- memory safety --------------------------------------------------------------------------

SAFETY_SCRIPT = textwrap.dedent(r"""
    import ctypes, mmap, random, sys
    import numpy as np
    import bpfjit
    from bpfjit.testing.inputs import inputs_for
    from bpfjit.testing.programs import valid_program
    from corpora import real_filters, real_filter_arch

    PAGE = mmap.PAGESIZE
    libc = ctypes.CDLL(None)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    # [guard][page: 64-byte record at its start ... 4-byte out slot at its end][guard]
    base = libc.mmap(None, 3 * PAGE, 3, 0x22, -1, 0)
    assert libc.mprotect(base, PAGE, 0) == 0 and libc.mprotect(base + 2 * PAGE, PAGE, 0) == 0
    first, last = base + PAGE, base + 2 * PAGE - 64
    out_slot = base + 2 * PAGE - 4

    progs = [(bpfjit.load(p), real_filter_arch(p)) for p in real_filters()]
    rng = random.Random(11)
    progs += [(valid_program(rng, max_len=64), "x86_64") for _ in range(60)]
    checked = 0
    for program, arch in progs:
        f = bpfjit.compile(program, backend="llvm", arch=arch)
        ev = f.evaluator
        recs = inputs_for(program, rng, 16, layout=arch)
        want = f.evaluate_batch(recs)
        for rec, w in zip(recs, want):
            for where in (first, last):
                ctypes.memmove(where, rec.tobytes(), 64)
                assert ev._one(where) == w
                ev._batch(where, 1, out_slot)
                assert ctypes.c_uint32.from_address(out_slot).value == w
                checked += 1
    print("ok", checked)
""")


def test_generated_code_touches_only_the_record_and_the_output_slot(tmp_path):
    """Records pressed against PROT_NONE guard pages: any stray access kills the child."""
    env = {"BPFJIT_CACHE_DIR": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    done = subprocess.run([sys.executable, "-c", SAFETY_SCRIPT], capture_output=True, text=True,
                          env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ")


@pytest.mark.parametrize("backend", ["llvm", "reference"])
def test_single_call_arguments_are_normalised_or_refused(backend):
    prog = Program([I(LD, 16), I(alu(op.BPF_ADD, op.BPF_K), 0), I(op.BPF_ST, 0), I(LD, 20),
                    I(alu(op.BPF_XOR, op.BPF_K), 0x1234), I(op.BPF_LDX | op.BPF_MEM, 0),
                    I(alu(op.BPF_ADD, op.BPF_X)), I(RET_A)])
    f = bpfjit.compile(prog, backend=backend, arch="x86_64")

    def want(a0):
        return ((a0 & 0xFFFFFFFF) + ((a0 >> 32) ^ 0x1234)) & 0xFFFFFFFF
    assert f.evaluate(0, (5,)) == want(5)
    assert f.evaluate(0, [2**64 - 1]) == want(2**64 - 1)
    assert f.evaluate(0, (-1,)) == want(2**64 - 1)              # two's complement
    assert f.evaluate(0, (np.uint64(7), np.int8(-2))) == want(7)
    assert f.evaluate(0, (np.uint64(7),), instruction_pointer=np.uint64(3)) == want(7)
    assert f.evaluate(0, range(3)) == want(0)
    assert f.evaluate("read", (9,)) == want(9)
    assert f.evaluate(0, (9,), arch="x86_64") == f.evaluate(0, (9,), arch=0xC000003E) == want(9)
    for bad in [(2**64,), (-(2**63) - 1,), (True,), (1.5,), ("3",), (0,) * 7]:
        with pytest.raises(InputError):
            f.evaluate(0, bad)
    for bad_ip in (2**64, 1.0, True, -(2**63) - 1):
        with pytest.raises(InputError):
            f.evaluate(0, (1,), instruction_pointer=bad_ip)
    with pytest.raises(InputError):
        f.evaluate(0, 5)
    with pytest.raises(bpfjit.UnknownSyscallError):
        f.evaluate("no_such_syscall")
    with pytest.raises(bpfjit.UnknownArchError):
        f.evaluate(0, arch="vax")


def _largest_programs() -> list[Program]:
    """4096-instruction programs of awkward shapes (the kernel's BPF_MAXINSNS)."""
    n = op.BPF_MAXINSNS
    rng = random.Random(4096)
    ja_run = [I(op.BPF_JMP | op.BPF_JA, 0)] * (n - 6) + [
        I(LD, 0), I(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 59, 0, 1), I(RET_K, 0),
        I(LD, 16), I(alu(op.BPF_ADD), 1), I(RET_A)]
    chain = [I(LD, 0)]                  # jeq #k, 0, 1; ja allow  (libseccomp's long jumps)
    for k in range((n - 4) // 2):
        chain += [I(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, 3 * k, 0, 1),
                  I(op.BPF_JMP | op.BPF_JA, n - 1 - (len(chain) + 2))]
    chain += [I(RET_K, 0x50001)] * (n - 1 - len(chain)) + [I(RET_K, ALLOW)]
    diamonds = []                       # argument tests whose paths all meet again
    for i in range((n - 2) // 2):
        diamonds += [I(LD, 16 + 4 * (i % 12)),
                     I(op.BPF_JMP | op.BPF_JSET | op.BPF_K, 1 << (i % 32), 0, 0)]
    diamonds = diamonds[:n - 2] + [I(LD, 0), I(RET_A)]
    stores = []                         # every scratch cell and register rewritten again and again
    for i in range(n - 1):
        stores.append(rng.choice([I(op.BPF_ST, i % 16), I(op.BPF_STX, (i * 7) % 16),
                                  I(alu(op.BPF_XOR), rng.getrandbits(32)), I(TAX),
                                  I(alu(op.BPF_ADD, op.BPF_X)), I(LD, 4 * (i % 16))]))
    stores.append(I(RET_A))
    return [Program(p) for p in (ja_run, chain, diamonds, stores)]


def test_the_largest_programs_compile_and_agree():
    for prog in _largest_programs():
        assert len(prog) == op.BPF_MAXINSNS
        lay = layouts.layout("x86_64")
        f = bpfjit.compile(prog, backend="llvm", arch="x86_64")
        recs = inputs_for(prog, random.Random(1), 64, layout=lay)
        assert f.evaluate_batch(recs).tolist() == reference(prog, recs, lay)
