"""Issue 14.4: the disk cache trusts nothing — hostile directories, planted FIFOs, forged entries.

Every scenario checks the results against the reference interpreter, that a
refused cache warns (:class:`CacheRefused`), and — with an alarm far above
any real compile — that nothing blocks. Wrong ownership uses ``chown`` to
another uid (the tests run as root; they skip otherwise); the read-only case
runs in a child under ``unshare -m`` with the cache bind-mounted read-only.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

import bpfjit
import bpfjit_reference as ref
from bpfjit import backends
from bpfjit.backends import llvm as llvm_backend
from bpfjit.backends.llvm import cache
from bpfjit.program import Instruction, Program

pytestmark = pytest.mark.skipif(backends.available()["llvm"] is not None,
                                reason=f"llvm backend unavailable: {backends.available()['llvm']}")
OTHER_UID = 65534


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    llvm_backend.BACKEND.cache.clear_memory()
    cache.forget_host_profile()
    yield
    llvm_backend.BACKEND.cache.clear_memory()
    cache.forget_host_profile()


@contextlib.contextmanager
def hang_guard(seconds: int = 120):
    def fail(*_):
        raise TimeoutError(f"compile() blocked for {seconds} s")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def program(k: int, verdict: int) -> Program:
    return Program([Instruction(0x20, 0, 0, 0), Instruction(0x15, 0, 1, k),
                    Instruction(0x06, 0, 0, verdict), Instruction(0x06, 0, 0, 0x7FFF0000)])


def compiled(p: Program) -> bpfjit.Filter:
    llvm_backend.BACKEND._cache = None                  # a new process: a new CodeCache
    cache.forget_host_profile()
    with hang_guard():
        return bpfjit.compile(p, backend="llvm", arch="x86_64")


def assert_correct(f: bpfjit.Filter) -> None:
    insns = [tuple(i) for i in f.program]
    for nr in (0, 1, 59, insns[1][3], -1):
        assert f.evaluate(nr) == ref.run_seccomp(insns, nr, 0xC000003E, 0, [0] * 6, "little")


def entries(directory) -> list:
    return sorted(directory.glob("llvm-*.bin"))


def test_a_fresh_user_cache_is_private(tmp_path):
    """No BPFJIT_CACHE_DIR: ~/.cache/bpfjit is created 0700 with a 0600 key, and used."""
    script = textwrap.dedent("""
        import json, bpfjit
        from bpfjit.program import Instruction, Program
        p = Program([Instruction(0x20, 0, 0, 0), Instruction(0x15, 0, 1, 59),
                     Instruction(0x06, 0, 0, 0x50001), Instruction(0x06, 0, 0, 0x7FFF0000)])
        f = bpfjit.compile(p, backend="llvm", arch="x86_64")
        print(json.dumps([f.evaluator.info["cache"], f.evaluate(59), f.evaluate(60)]))
    """)
    env = {k: v for k, v in os.environ.items() if k != "BPFJIT_CACHE_DIR"}
    env.update(HOME=str(tmp_path), PYTHONPATH=":".join(sys.path), PYTHONWARNINGS="error")
    runs = [json.loads(subprocess.run([sys.executable, "-c", script], env=env, check=True,
                                      capture_output=True, text=True, timeout=300).stdout)
            for _ in range(2)]
    assert runs == [["miss", 0x50001, 0x7FFF0000], ["disk", 0x50001, 0x7FFF0000]]
    where = tmp_path / ".cache" / "bpfjit"
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    assert stat.S_IMODE((where / cache.KEY_FILE).stat().st_mode) == 0o600
    assert (where / cache.KEY_FILE).stat().st_size == cache.KEY_SIZE


def test_an_own_readable_directory_is_made_private(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    monkeypatch.setenv("BPFJIT_CACHE_DIR", str(d))
    assert_correct(compiled(program(59, 0x50001)))
    assert stat.S_IMODE(d.stat().st_mode) == 0o700 and entries(d)


@pytest.mark.parametrize("hostility", ["other-owner", "mode-0777", "group-writable", "a-file",
                                       "key-other-owner", "key-0644", "key-fifo"])
def test_a_hostile_directory_is_refused_with_a_warning(tmp_path, monkeypatch, hostility):
    d = tmp_path / "cache"
    monkeypatch.setenv("BPFJIT_CACHE_DIR", str(d))
    compiled(program(59, 0x50001))                      # a good cache with an entry and a key
    assert entries(d)
    key = d / cache.KEY_FILE
    if hostility in ("other-owner", "key-other-owner"):
        if os.geteuid() != 0:
            pytest.skip("needs root to chown to another uid")
        os.chown(key if hostility.startswith("key") else d, OTHER_UID, -1)
    elif hostility == "mode-0777":
        d.chmod(0o777)
    elif hostility == "group-writable":
        d.chmod(0o770)
    elif hostility == "key-0644":
        key.chmod(0o644)
    elif hostility == "key-fifo":
        key.unlink()
        os.mkfifo(key, 0o600)
    else:
        shutil.rmtree(d)
        d.write_bytes(b"not a directory")
    before = [(p.name, p.stat().st_mtime_ns) for p in entries(d)] if d.is_dir() else []
    with pytest.warns(cache.CacheRefused, match="compile cache not used"):
        f = compiled(program(59, 0x50001))
    assert f.evaluator.info["cache"] == "miss"           # the entry was not trusted
    assert_correct(f)
    with pytest.warns(cache.CacheRefused):
        g = compiled(program(60, 0x50002))
    assert_correct(g)
    after = [(p.name, p.stat().st_mtime_ns) for p in entries(d)] if d.is_dir() else []
    assert after == before                               # nothing written there either


def test_a_fifo_in_place_of_an_entry_does_not_block(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("BPFJIT_CACHE_DIR", str(d))
    compiled(program(59, 0x50001))
    (entry,) = entries(d)
    entry.unlink()
    os.mkfifo(entry, 0o600)
    f = compiled(program(59, 0x50001))
    assert f.evaluator.info["cache"] == "miss"
    assert_correct(f)
    assert stat.S_ISREG(entry.lstat().st_mode)           # rebuilt as a regular file
    assert compiled(program(59, 0x50001)).evaluator.info["cache"] == "disk"


def test_a_symlinked_entry_is_not_followed(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("BPFJIT_CACHE_DIR", str(d))
    compiled(program(59, 0x50001))
    (entry,) = entries(d)
    real = tmp_path / "elsewhere.bin"
    entry.rename(real)
    entry.symlink_to(real)
    f = compiled(program(59, 0x50001))
    assert f.evaluator.info["cache"] == "miss"
    assert_correct(f)


def _forge(entry_bytes: bytes, new_key: str, secret: bytes | None) -> bytes:
    """Rewrite the header's key; recompute the trailer (plain SHA-256, or HMAC with ``secret``)."""
    body = entry_bytes[:-cache.DIGEST]
    head_len, payload_len = __import__("struct").unpack_from("<II", body, len(cache.MAGIC))
    start = len(cache.MAGIC) + 8
    header = cache._decode_header(body[start:start + head_len].decode())
    header["key"] = new_key
    payload = body[start + head_len:]
    if secret is None:
        forged = cache.pack(header, payload)[:-cache.DIGEST]
        return forged + hashlib.sha256(forged).digest()
    return cache.pack(header, payload, secret)


@pytest.mark.parametrize("forger", ["checksum-recomputed", "hmac-with-another-key",
                                    "hmac-with-the-key-other-program"])
def test_a_forged_entry_is_rejected(tmp_path, monkeypatch, forger):
    """Program A's code stored under program B's key: B must still get B's verdicts."""
    d = tmp_path / "cache"
    monkeypatch.setenv("BPFJIT_CACHE_DIR", str(d))
    a, b = program(59, 0x50001), program(59, 0x50002)
    compiled(a)
    (entry_a,) = entries(d)
    compiled(b)
    (entry_b,) = [e for e in entries(d) if e != entry_a]
    key_b = entry_b.name[len("llvm-"):-len(".bin")]
    secret = {"checksum-recomputed": None, "hmac-with-another-key": os.urandom(cache.KEY_SIZE),
              "hmac-with-the-key-other-program": (d / cache.KEY_FILE).read_bytes()}[forger]
    entry_b.write_bytes(_forge(entry_a.read_bytes(), key_b, secret))
    f = compiled(b)
    assert f.evaluator.info["cache"] == "miss"
    assert llvm_backend.BACKEND.cache.stats["corrupt"] == 1
    assert f.evaluate(59) == 0x50002
    assert_correct(f)


READ_ONLY_CHILD = textwrap.dedent("""
    import json, sys, warnings
    import bpfjit
    from bpfjit.program import Instruction, Program
    def p(k, v):
        return Program([Instruction(0x20, 0, 0, 0), Instruction(0x15, 0, 1, k),
                        Instruction(0x06, 0, 0, v), Instruction(0x06, 0, 0, 0x7FFF0000)])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        old = bpfjit.compile(p(59, 0x50001), backend="llvm", arch="x86_64")
        new = bpfjit.compile(p(60, 0x50002), backend="llvm", arch="x86_64")
    print(json.dumps({"old": [old.evaluator.info["cache"], old.evaluate(59), old.evaluate(60)],
                      "new": [new.evaluator.info["cache"], new.evaluate(60), new.evaluate(59)],
                      "warnings": [str(w.message) for w in seen]}))
""")


@pytest.mark.parametrize("with_key", [True, False])
def test_a_read_only_cache(tmp_path, with_key):
    """Bind-mounted read-only: entries still served; without a key it is refused (warning)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a read-only bind mount")
    d = tmp_path / "cache"
    env = dict(os.environ, BPFJIT_CACHE_DIR=str(d), PYTHONPATH=":".join(sys.path))
    if with_key:
        subprocess.run([sys.executable, "-c", READ_ONLY_CHILD], env=env, check=True,
                       capture_output=True, timeout=300)
        entries(d)[1].unlink()                                # one entry gone: a miss
    else:
        d.mkdir(mode=0o700)
    script = (f"mount --bind {d} {d} && mount -o remount,bind,ro {d} && "
              f"exec {sys.executable} -c \"$CHILD\"")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], env=dict(env, CHILD=READ_ONLY_CHILD),
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "mount" in proc.stderr:
        pytest.skip(f"cannot bind-mount read-only here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["old"][1:] == [0x50001, 0x7FFF0000] and out["new"][1:] == [0x50002, 0x7FFF0000]
    if with_key:
        assert sorted([out["old"][0], out["new"][0]]) == ["disk", "miss"]
        assert out["warnings"] == []
    else:
        assert out["old"][0] == out["new"][0] == "miss"
        assert any("compile cache not used" in w for w in out["warnings"])
