"""Issue 14.4 for the kernel backend's native helper: its cached shared object trusts nothing either.

The helper (:mod:`bpfjit.backends.kernel_child`) is native code loaded into
the process, kept in the same per-user cache directory as llvm's code. A
*planted* library — an ``.so`` with a constructor that leaves a marker file
and a fake ``bpfjit_site_address`` — is put everywhere an attacker could put
it: under the old ``.so`` name, as the entry forged with another key, as an
entry claiming another source, behind a symlink, and in directories that are
group/other-writable or owned by another user. The marker must never appear
and the loaded library must be the real one (its ``bpfjit_site_address`` is
inside the loaded object, never the fake's 0xdead). The ``_open()`` under
test is the loader itself, called afresh each time (``library()`` caches
its result per process).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import warnings

import pytest

from bpfjit.backends import kernel_child
from bpfjit.backends.llvm import cache

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() not in ("x86_64", "amd64")
    or kernel_child._compiler() is None,
    reason="the kernel child is built with a C compiler, for x86_64 Linux only")
FAKE_ADDRESS = 0xDEAD
OTHER_UID = 65534


@contextlib.contextmanager
def hang_guard(seconds: int = 120):
    def fail(*_):
        raise TimeoutError(f"loading the kernel child blocked for {seconds} s")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(bytes of a hostile .so, the marker file its constructor creates)."""
    d = tmp_path_factory.mktemp("planted")
    marker = d / "PWNED"
    src = d / "evil.c"
    src.write_text(textwrap.dedent(f"""
        #include <stdio.h>
        #include <stdint.h>
        __attribute__((constructor)) static void pwn(void) {{
            FILE *f = fopen("{marker}", "w");
            if (f) {{ fputs("planted library loaded", f); fclose(f); }}
        }}
        uint64_t bpfjit_site_address(void) {{ return {FAKE_ADDRESS}; }}
    """))
    out = d / "evil.so"
    subprocess.run([kernel_child._compiler(), "-shared", "-fPIC", "-o", str(out), str(src)],
                   check=True, capture_output=True, timeout=120)
    return out.read_bytes(), marker


def load(expect_refused: bool = False) -> ctypes.CDLL:
    with warnings.catch_warnings(record=True) as seen, hang_guard():
        warnings.simplefilter("always")
        lib = kernel_child._open()
    refused = [w for w in seen if issubclass(w.category, cache.CacheRefused)]
    assert bool(refused) == expect_refused, [str(w.message) for w in seen]
    return lib


def assert_genuine(lib: ctypes.CDLL, marker) -> None:
    assert not marker.exists(), "the planted library was loaded"
    lib.bpfjit_site_address.restype = ctypes.c_uint64
    address = lib.bpfjit_site_address()
    assert address not in (0, FAKE_ADDRESS)
    # the real routine's syscall site lies inside the real object's code
    lib.bpfjit_run.restype = ctypes.c_int
    assert abs(address - ctypes.cast(lib.bpfjit_run, ctypes.c_void_p).value) < 1 << 20


def entry(d):
    return d / kernel_child.ENTRY_NAME


def legacy_so(d):
    return d / f"kernel_child-{kernel_child.SOURCE_SHA256[:16]}.so"


def test_fresh_directory_private_entry_authenticated_and_reused(tmp_path, monkeypatch, planted):
    d = tmp_path / "cache"
    monkeypatch.setenv("BPFJIT_CACHE_DIR", str(d))
    assert_genuine(load(), planted[1])
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry(d).stat().st_mode) == 0o600
    assert not list(d.glob("*.so"))                     # never a loadable file in the cache
    header, payload = cache.unpack(entry(d).read_bytes(), (d / cache.KEY_FILE).read_bytes())
    assert header == {"kind": "kernel_child", "source": kernel_child.SOURCE_SHA256}
    assert payload.startswith(b"\x7fELF")

    def no_compiler(cc):
        raise AssertionError("rebuilt although an authenticated entry was there")
    monkeypatch.setattr(kernel_child, "_compile", no_compiler)
    assert_genuine(load(), planted[1])


@pytest.mark.parametrize("how", ["legacy-so", "forged-another-key", "checksum-only",
                                 "our-key-other-source", "symlink", "fifo"])
def test_a_planted_library_is_never_loaded(tmp_path, monkeypatch, planted, how):
    evil, marker = planted
    d = tmp_path / "cache"
    monkeypatch.setenv("BPFJIT_CACHE_DIR", str(d))
    d.mkdir(mode=0o700)
    secret = cache.open_private(d)
    header = {"kind": "kernel_child", "source": kernel_child.SOURCE_SHA256}
    if how == "legacy-so":
        legacy_so(d).write_bytes(evil)
    elif how == "forged-another-key":
        entry(d).write_bytes(cache.pack(header, evil, os.urandom(cache.KEY_SIZE)))
    elif how == "checksum-only":
        entry(d).write_bytes(cache.pack(header, evil))
    elif how == "our-key-other-source":
        entry(d).write_bytes(cache.pack(dict(header, source="0" * 64), evil, secret))
    elif how == "symlink":
        elsewhere = tmp_path / "elsewhere.bin"
        elsewhere.write_bytes(cache.pack(header, evil, secret))
        entry(d).symlink_to(elsewhere)
    else:
        os.mkfifo(entry(d), 0o600)
    assert_genuine(load(), marker)
    # the entry is rebuilt: a regular file the next process can use
    assert stat.S_ISREG(entry(d).lstat().st_mode)
    assert cache.unpack(entry(d).read_bytes(), secret)[1] != evil


@pytest.mark.parametrize("hostile", ["mode-0777", "mode-0775", "other-owner", "not-a-directory"])
def test_a_hostile_directory_is_refused_and_left_alone(tmp_path, monkeypatch, planted, hostile):
    evil, marker = planted
    d = tmp_path / "cache"
    monkeypatch.setenv("BPFJIT_CACHE_DIR", str(d))
    if hostile == "not-a-directory":
        d.write_bytes(evil)
    else:
        d.mkdir()
        other_key = os.urandom(cache.KEY_SIZE)
        (d / cache.KEY_FILE).write_bytes(other_key)       # the attacker's key, and an entry with it
        entry(d).write_bytes(cache.pack({"kind": "kernel_child",
                                         "source": kernel_child.SOURCE_SHA256}, evil, other_key))
        legacy_so(d).write_bytes(evil)
        if hostile == "other-owner":
            if os.geteuid() != 0:
                pytest.skip("chown to another uid needs root")
            for p in (d, *d.iterdir()):
                os.chown(p, OTHER_UID, OTHER_UID)
            os.chmod(d, 0o755)
        else:
            os.chmod(d, int(hostile[-4:], 8))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in d.iterdir()) if d.is_dir() else None
    assert_genuine(load(expect_refused=True), marker)
    after = sorted((p.name, p.stat().st_mtime_ns) for p in d.iterdir()) if d.is_dir() else None
    assert after == before                               # nothing written into a refused directory


def test_no_cache_directory_still_loads(monkeypatch, planted):
    monkeypatch.setenv("BPFJIT_CACHE_DIR", "")
    assert_genuine(load(), planted[1])


READ_ONLY_CHILD = textwrap.dedent("""
    import ctypes, warnings
    from bpfjit.backends import kernel_child
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        lib = kernel_child._open()
    lib.bpfjit_site_address.restype = ctypes.c_uint64
    print(hex(lib.bpfjit_site_address()), len(seen))
""")


@pytest.mark.parametrize("with_entry", [True, False])
def test_a_read_only_directory(tmp_path, with_entry):
    """Read-only bind mount: a stored entry is used (no compiler needed); without one, a rebuild."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a read-only bind mount")
    d = tmp_path / "cache"
    env = dict(os.environ, BPFJIT_CACHE_DIR=str(d), PYTHONPATH=":".join(sys.path))
    subprocess.run([sys.executable, "-c", READ_ONLY_CHILD], env=env, check=True,
                   capture_output=True, timeout=300)
    if with_entry:
        env["CC"] = shutil.which("false")                 # a rebuild would fail
    else:
        entry(d).unlink()
    script = (f"mount --bind {d} {d} && mount -o remount,bind,ro {d} && "
              f"exec {sys.executable} -c \"$CHILD\"")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script],
                          env=dict(env, CHILD=READ_ONLY_CHILD),
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "mount" in proc.stderr:
        pytest.skip(f"cannot bind-mount read-only here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    address, warned = proc.stdout.split()
    assert int(address, 16) not in (0, FAKE_ADDRESS) and warned == "0"
    assert entry(d).exists() == with_entry                 # nothing could be written
