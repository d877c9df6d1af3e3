"""The LLVM compile cache: memory and disk hits, a new process without LLVM, corruption, bad directories."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import bpfjit
import bpfjit_reference as ref
from bpfjit import backends
from bpfjit.backends import llvm as llvm_backend
from bpfjit.backends.llvm import cache, engine
from bpfjit.program import Instruction, Program
from bpfjit.seccomp import layouts
from corpora import real_filters

pytestmark = pytest.mark.skipif(backends.available()["llvm"] is not None,
                                reason=f"llvm backend unavailable: {backends.available()['llvm']}")

DOCKER = next(p for p in real_filters() if p.stem == "docker-default.x86_64")
X86_64 = layouts.layout("x86_64")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFJIT_CACHE_DIR", str(tmp_path / "cache"))
    llvm_backend.BACKEND.cache.clear_memory()
    cache.forget_host_profile()
    yield tmp_path / "cache"
    cache.forget_host_profile()


def secret(directory) -> bytes:
    return (directory / cache.KEY_FILE).read_bytes()


def new_process() -> None:
    """What a fresh process has: nothing in memory."""
    llvm_backend.BACKEND.cache.clear_memory()
    cache.forget_host_profile()


def entries(directory) -> list:
    return sorted(directory.glob("llvm-*.bin"))


def program(seed: int = 0) -> Program:
    k = random.Random(seed).getrandbits(31)
    return Program([Instruction(0x20, 0, 0, 0), Instruction(0x15, 0, 1, k),
                    Instruction(0x06, 0, 0, 0x50001), Instruction(0x06, 0, 0, 0x7FFF0000)])


def assert_correct(f: bpfjit.Filter) -> None:
    insns = [tuple(i) for i in f.program]
    for nr in (0, 1, 59, insns[1][3], -1):
        want = ref.run_seccomp(insns, nr, f.layout.audit_arch, 0, [0] * 6, f.layout.byteorder)
        assert f.evaluate(nr) == want


def forbid_llvm(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("LLVM was asked to compile although the cache holds the code")
    for name in ("optimize", "emit_object", "mcjit", "host"):
        monkeypatch.setattr(engine, name, refuse)


def test_memory_then_disk_hits(cache_dir, monkeypatch):
    f1 = bpfjit.compile(program(), backend="llvm", arch="x86_64")
    assert f1.evaluator.info["cache"] == "miss"
    assert len(entries(cache_dir)) == 1 and list(cache_dir.glob("host-*.profile"))
    f2 = bpfjit.compile(program(), backend="llvm", arch="x86_64")
    assert f2.evaluator.info["cache"] == "memory"
    new_process()
    forbid_llvm(monkeypatch)
    f3 = bpfjit.compile(program(), backend="llvm", arch="x86_64")
    assert f3.evaluator.info["cache"] == "disk"
    for f in (f1, f2, f3):
        assert_correct(f)


def test_key_covers_program_layout_and_host(cache_dir):
    bpfjit.compile(program(1), backend="llvm", arch="x86_64")
    bpfjit.compile(program(2), backend="llvm", arch="x86_64")
    bpfjit.compile(program(1), backend="llvm", arch="aarch64")
    bpfjit.compile(program(1), backend="llvm", arch="s390x")
    assert len(entries(cache_dir)) == 4
    host = engine.host().as_dict()
    base = cache.entry_key(b"x", {"name": "x86_64"}, "llvm/image", host, "0.1.0")
    for field in host:
        other = dict(host, **{field: host[field] + "-other"})
        assert cache.entry_key(b"x", {"name": "x86_64"}, "llvm/image", other, "0.1.0") != base
    assert cache.entry_key(b"x", {"name": "x86_64"}, "llvm/image", host, "0.2.0") != base
    assert cache.entry_key(b"x", {"name": "x86_64"}, "llvm/mcjit", host, "0.1.0") != base
    assert cache.entry_key(b"y", {"name": "x86_64"}, "llvm/image", host, "0.1.0") != base


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage", "other-key"])
def test_a_corrupt_entry_is_detected_and_rebuilt(cache_dir, damage, monkeypatch):
    bpfjit.compile(program(7), backend="llvm", arch="x86_64")
    bpfjit.compile(program(8), backend="llvm", arch="x86_64")
    path = entries(cache_dir)[0]
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "flip":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(flipped))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(random.Random(len(data)).randbytes(len(data)))   # seeded
    else:
        path.write_bytes(entries(cache_dir)[1].read_bytes())   # a valid entry, wrong name
    new_process()
    before = dict(llvm_backend.BACKEND.cache.stats)
    f7 = bpfjit.compile(program(7), backend="llvm", arch="x86_64")
    f8 = bpfjit.compile(program(8), backend="llvm", arch="x86_64")
    infos = {f7.evaluator.info["cache"], f8.evaluator.info["cache"]}
    assert infos == {"miss", "disk"}
    assert llvm_backend.BACKEND.cache.stats["corrupt"] == before["corrupt"] + 1
    assert_correct(f7)
    assert_correct(f8)
    cache.unpack(path.read_bytes(), secret(cache_dir))      # rewritten, valid again
    new_process()
    forbid_llvm(monkeypatch)
    assert bpfjit.compile(program(7), backend="llvm", arch="x86_64").evaluator.info["cache"] == "disk"


def test_a_corrupt_host_profile_is_rebuilt(cache_dir):
    bpfjit.compile(program(9), backend="llvm", arch="x86_64")
    profile = next(cache_dir.glob("host-*.profile"))
    profile.write_bytes(profile.read_bytes()[:-5])
    new_process()
    f = bpfjit.compile(program(9), backend="llvm", arch="x86_64")
    assert f.evaluator.info["cache"] == "disk"              # same key: LLVM re-describes the host
    header, _ = cache.unpack(profile.read_bytes(), secret(cache_dir))
    assert header["host"] == engine.host().as_dict()


def test_unwritable_cache_dir_is_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("BPFJIT_CACHE_DIR", str(blocker / "cache"))
    new_process()
    with pytest.warns(cache.CacheRefused, match="cannot create"):
        f = bpfjit.compile(program(10), backend="llvm", arch="x86_64")
    assert f.evaluator.info["cache"] == "miss"
    assert llvm_backend.BACKEND.cache.stats["refused"] == 1
    assert_correct(f)
    assert bpfjit.compile(program(10), backend="llvm", arch="x86_64").evaluator.info["cache"] == "memory"


def test_read_only_cache_dir_still_serves_entries(cache_dir, monkeypatch):
    bpfjit.compile(program(11), backend="llvm", arch="x86_64")
    new_process()

    def cannot_write(path, data):
        return False
    monkeypatch.setattr(cache, "_write", cannot_write)
    assert bpfjit.compile(program(11), backend="llvm", arch="x86_64").evaluator.info["cache"] == "disk"
    f = bpfjit.compile(program(12), backend="llvm", arch="x86_64")
    assert f.evaluator.info["cache"] == "miss"
    assert_correct(f)


def test_empty_cache_dir_setting_disables_the_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFJIT_CACHE_DIR", "")
    assert cache.cache_dir() is None
    new_process()
    f = bpfjit.compile(program(13), backend="llvm", arch="x86_64")
    assert f.evaluator.info["cache"] == "miss"
    new_process()
    assert bpfjit.compile(program(13), backend="llvm", arch="x86_64").evaluator.info["cache"] == "miss"
    monkeypatch.delenv("BPFJIT_CACHE_DIR")
    assert str(cache.cache_dir()).endswith(os.path.join(".cache", "bpfjit"))


def test_memory_cache_is_bounded():
    store = cache.CodeCache(None, entries=2)
    for k in "abc":
        store.remember(k, k)
    assert store.recall("a") is None and store.recall("c") == "c"


def test_pack_unpack_round_trip_and_checks():
    header = {"kind": "image", "exec_size": 4096, "symbols": {"f": 0, "g": 16},
              "info": {"ms": 1.5, "name": "x=y"}}
    data = cache.pack(header, b"payload")
    assert cache.unpack(data) == (header, b"payload")
    for bad in (b"", data[:10], b"XXXXXXXX" + data[8:], data[:-1] + bytes([data[-1] ^ 1])):
        with pytest.raises(cache.Corrupt):
            cache.unpack(bad)


def test_concurrent_compiles_of_one_program(cache_dir):
    results = []

    def work():
        f = bpfjit.compile(bpfjit.load(DOCKER), backend="llvm", arch="x86_64")
        results.append(f.evaluate_batch(np.zeros(4, dtype=bpfjit.SECCOMP_DATA)).tolist())
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r == results[0] for r in results)


WARM = textwrap.dedent("""
    import json, sys, time
    import bpfjit
    p = bpfjit.load(sys.argv[1])
    f = bpfjit.compile(p, backend="llvm", arch="x86_64")
    print(json.dumps({"cache": f.evaluator.info["cache"], "execve": f.evaluate("execve"),
                      "llvm_loaded": "llvmlite.binding" in sys.modules,
                      "llvmlite_ir_loaded": "llvmlite.ir" in sys.modules}))
""")


def test_a_new_process_with_a_warm_cache_does_not_load_llvm(cache_dir):
    env = dict(os.environ, BPFJIT_CACHE_DIR=str(cache_dir), PYTHONPATH=":".join(sys.path))
    runs = [json.loads(subprocess.run([sys.executable, "-c", WARM, str(DOCKER)], env=env,
                                      capture_output=True, text=True, check=True,
                                      timeout=300).stdout)
            for _ in range(2)]
    assert runs[0]["cache"] == "miss" and runs[0]["llvm_loaded"]
    assert runs[1] == {"cache": "disk", "execve": runs[0]["execve"], "llvm_loaded": False,
                       "llvmlite_ir_loaded": False}
    insns = [tuple(i) for i in bpfjit.load(DOCKER)]
    assert runs[1]["execve"] == ref.run_seccomp(insns, 59, X86_64.audit_arch, 0, [0] * 6, "little")


def test_mcjit_objects_are_cached_and_reloaded(tmp_path):
    checked = bpfjit.check(bpfjit.load(DOCKER))
    first = llvm_backend.LlvmBackend(loader="mcjit", cache=cache.CodeCache(tmp_path / "m"))
    ev1 = first.compile(checked, X86_64)
    assert (ev1.info["kind"], ev1.info["cache"]) == ("mcjit", "miss")
    second = llvm_backend.LlvmBackend(loader="mcjit", cache=cache.CodeCache(tmp_path / "m"))
    ev2 = second.compile(checked, X86_64)
    assert (ev2.info["kind"], ev2.info["cache"]) == ("mcjit", "disk")
    recs = np.zeros(600, dtype=bpfjit.SECCOMP_DATA)
    recs["nr"] = np.arange(-50, 550)
    recs["arch"] = X86_64.audit_arch
    outs = [np.empty(600, dtype=np.uint32) for _ in range(2)]
    ev1.evaluate_batch(recs, outs[0])
    ev2.evaluate_batch(recs, outs[1])
    insns = [tuple(i) for i in checked]
    want = [ref.run_seccomp(insns, int(nr), X86_64.audit_arch, 0, [0] * 6, "little")
            for nr in recs["nr"]]
    assert outs[0].tolist() == outs[1].tolist() == want
    assert "bpfjit_batch" in ev2.describe()["asm"]


def test_a_cached_program_is_not_checked_again_but_an_invalid_one_always_is(monkeypatch):
    """Warm start: an authenticated entry of these exact bytes vouches for the program (only
    checked programs are ever compiled and stored), so compile() skips check(); a program
    with no entry is checked (and an invalid one refused) as always."""
    import bpfjit.filter as filter_module
    from bpfjit.errors import InvalidProgram
    first = bpfjit.compile(program(11), backend="llvm", arch="x86_64")
    assert first.evaluator.info["cache"] == "miss"
    new_process()
    calls = []
    real_check = filter_module.check
    monkeypatch.setattr(filter_module, "check", lambda p: calls.append(p) or real_check(p))
    for backend in ("llvm", "auto"):
        again = bpfjit.compile(program(11), backend=backend, arch="x86_64")
        assert again.evaluator.info["cache"] in ("disk", "memory") and again.backend == "llvm"
        assert isinstance(again.program, bpfjit.CheckedProgram)
        assert_correct(again)
    assert calls == []
    other = bpfjit.compile(program(12), backend="llvm", arch="x86_64")     # no entry: checked
    assert len(calls) == 1 and other.evaluator.info["cache"] == "miss"
    bad = Program([Instruction(0x20, 0, 0, 2)] + list(program(11).instructions[1:]))
    with pytest.raises(InvalidProgram, match="not 4-byte aligned"):
        bpfjit.compile(bad, backend="llvm", arch="x86_64")
    stats = dict(llvm_backend.BACKEND.cache.stats)
    new_process()
    bpfjit.compile(program(13), backend="llvm", arch="x86_64")   # a miss is looked up once
    assert llvm_backend.BACKEND.cache.stats["misses"] - stats["misses"] <= 1
