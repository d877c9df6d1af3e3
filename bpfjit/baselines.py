"""Baselines (benchmark stage): what bpfjit's speed is compared with, measured on this machine.

Three yardsticks, each a small C loop built at run time with cffi (API mode,
``cc -O2``) and cached under ``$XDG_CACHE_HOME/bpfjit/baselines``:

- **memory streaming** (:func:`stream_seconds`): a C loop that reads every
  byte of the record array once (XOR of the eight 64-bit words of each
  64-byte record, vectorised). No evaluator that looks at every record can
  beat it on an array larger than the caches; ``rate / stream rate`` says how
  close to the memory-bandwidth bound a backend runs.
- **libpcap's interpreter** (:func:`pcap_seconds`): ``bpf_filter()`` from
  libpcap (Debian ``libpcap0.8-dev``), called once per record over the whole
  array — the classic-BPF interpreter everyone has. Its loads are big-endian
  (network order), so it is fed each record's 16 words byte-swapped
  (:func:`pcap_image`), which makes it see exactly what the kernel's ``ld``
  sees; :func:`pcap_evaluate` returns its results for cross-checking.
- **DPDK's classic-BPF JIT** (:func:`dpdk_seconds`): the program converted
  by ``rte_bpf_convert()``, loaded by ``rte_bpf_load()`` and compiled by
  DPDK's x86-64 eBPF JIT (Debian ``librte-bpf23``), its native function
  called once per record over the same byte-swapped image libpcap gets (a
  one-segment mbuf whose data pointer moves from record to record) — the
  nearest native classic-BPF JIT a user could pick instead of bpfjit.
  :func:`dpdk_evaluate` returns its results for cross-checking. DPDK's EAL
  is started in this process on first use (no hugepages, PCI or shared
  files; the CPU affinity it sets is undone).
- **the running kernel** (:func:`kernel_cost`): a forked child times a cheap
  system call in a loop (``syscall(2)``, vDSO clock) with and without the
  filters installed (``PR_SET_NO_NEW_PRIVS`` + ``seccomp(SET_MODE_FILTER,
  SPEC_ALLOW)`` so no speculation mitigation is switched on); the
  difference per call is the kernel's cost of running the filters on that
  call. Linux (>= 5.11) skips the filter for a syscall whose verdict it
  proved at attach time to be ALLOW whatever the arguments (the seccomp
  action cache), so :func:`kernel_calls` picks one cached call (``getppid``)
  and, when there is one, an allowed call whose path reads an argument (the
  filter really runs).

Each ``*_reason()`` returns None when that baseline can run here, else why not.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .program import Program
from .seccomp import records as _records
from .seccomp import syscalls
from .seccomp.actions import SECCOMP_RET_ALLOW
from .seccomp.layouts import Layout, layout as _layout

_SOCK_FILTER_CDEF = """
struct sock_filter { unsigned short code; unsigned char jt; unsigned char jf; uint32_t k; };
"""

_STREAM_CDEF = """
uint64_t stream_xor(const uint64_t *words, size_t n_records);
int kernel_syscall_ns(const struct sock_filter *insns, const unsigned short *lens,
                      int n_filters, long nr, const unsigned long *args, long iterations,
                      int install, double *ns_out);
"""

_STREAM_SRC = r"""
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

uint64_t stream_xor(const uint64_t *words, size_t n_records) {
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    for (size_t i = 0; i < n_records; i++) {
        const uint64_t *w = words + 8 * i;
        a0 ^= w[0]; a1 ^= w[1]; a2 ^= w[2]; a3 ^= w[3];
        a4 ^= w[4]; a5 ^= w[5]; a6 ^= w[6]; a7 ^= w[7];
    }
    return a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7;
}

struct shared { volatile int done; volatile int err; double ns; };

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);          /* vDSO: no system call */
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* 0 and *ns_out = nanoseconds per call, or a negative code */
int kernel_syscall_ns(const struct sock_filter *insns, const unsigned short *lens,
                      int n_filters, long nr, const unsigned long *args, long iterations,
                      int install, double *ns_out) {
    struct shared *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                             -1, 0);
    if (sh == MAP_FAILED) return -1;
    sh->done = 0; sh->err = 0;
    pid_t pid = fork();
    if (pid < 0) { munmap(sh, 4096); return -2; }
    if (pid == 0) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) { sh->err = -3; _exit(3); }
        if (install) {
            const struct sock_filter *p = insns;
            for (int f = 0; f < n_filters; f++) {
                struct sock_fprog prog = { lens[f], (struct sock_filter *)p };
                if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                            SECCOMP_FILTER_FLAG_SPEC_ALLOW, &prog)) { sh->err = -4; _exit(4); }
                p += lens[f];
            }
        }
        for (long i = 0; i < 1000; i++)
            syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]);
        double t0 = now_ns();
        for (long i = 0; i < iterations; i++)
            syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]);
        double t1 = now_ns();
        sh->ns = (t1 - t0) / (double)iterations;
        sh->done = 1;
        _exit(0);                      /* exit_group may be filtered: the result is in already */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int rc = sh->done ? 0 : (sh->err ? sh->err : -5);
    *ns_out = sh->ns;
    munmap(sh, 4096);
    return rc;
}
"""

_PCAP_CDEF = """
void pcap_batch(const unsigned char *insns, const unsigned char *image, size_t n,
                uint32_t *out);
"""

_PCAP_SRC = r"""
#include <stdint.h>
#include <stddef.h>
#include <pcap/bpf.h>

void pcap_batch(const unsigned char *insns, const unsigned char *image, size_t n,
                uint32_t *out) {
    const struct bpf_insn *pc = (const struct bpf_insn *)insns;
    for (size_t i = 0; i < n; i++)
        out[i] = bpf_filter(pc, image + 64 * i, 64, 64);
}
"""

_DPDK_CDEF = """
const char *dpdk_start(void);
void *dpdk_jit_load(const unsigned char *insns, unsigned n, char *why, size_t size);
void dpdk_jit_batch(void *handle, const unsigned char *image, size_t n, uint32_t *out);
void dpdk_jit_free(void *handle);
"""

_DPDK_SRC = r"""
#include <stdlib.h>
#include "rte_bpf_abi.h"

static FILE *dpdk_log;
static char start_why[256];
static int started;

const char *dpdk_start(void) {
    if (started)
        return started > 0 ? NULL : start_why;
    started = -1;
    dpdk_log = tmpfile();
    if (dpdk_log == NULL) {
        snprintf(start_why, sizeof start_why, "tmpfile() failed");
        return start_why;
    }
    if (rte_bpf_abi_eal_start(dpdk_log, start_why, sizeof start_why) ||
        rte_bpf_abi_check(start_why, sizeof start_why))
        return start_why;
    started = 1;
    return NULL;
}

struct jitted { struct rte_bpf *bpf; uint64_t (*func)(void *); struct fake_mbuf mb; };

void *dpdk_jit_load(const unsigned char *insns, unsigned n, char *why, size_t size) {
    struct bpf_insn *copy = malloc(8 * (size_t)(n ? n : 1));
    struct rte_bpf_jit jit = {0, 0};
    struct jitted *h;
    if (copy == NULL) {
        snprintf(why, size, "out of memory");
        return NULL;
    }
    memcpy(copy, insns, 8 * (size_t)n);
    /* what DPDK refuses in programs Linux installs (dead code, unused k), removed */
    if (rte_bpf_abi_drop_dead_code(copy, &n)) {
        free(copy);
        snprintf(why, size, "out of memory");
        return NULL;
    }
    rte_bpf_abi_clear_unused_k(copy, n);
    struct bpf_program prog = {n, copy};
    struct rte_bpf_prm *prm = rte_bpf_convert(&prog);
    free(copy);
    if (prm == NULL) {
        snprintf(why, size, "rte_bpf_convert() refuses it (rte_errno %d)", per_lcore__rte_errno);
        return NULL;
    }
    struct rte_bpf *bpf = rte_bpf_load(prm);
    rte_free(prm);
    if (bpf == NULL) {
        snprintf(why, size, "rte_bpf_load() refuses it (rte_errno %d)", per_lcore__rte_errno);
        return NULL;
    }
    if (rte_bpf_get_jit(bpf, &jit) != 0 || jit.func == NULL) {
        snprintf(why, size, "DPDK's JIT produced no code");
        rte_bpf_destroy(bpf);
        return NULL;
    }
    if (posix_memalign((void **)&h, 64, sizeof *h)) {
        rte_bpf_destroy(bpf);
        snprintf(why, size, "out of memory");
        return NULL;
    }
    h->bpf = bpf;
    h->func = jit.func;
    rte_bpf_abi_mbuf(&h->mb, NULL, 64);
    return h;
}

void dpdk_jit_batch(void *handle, const unsigned char *image, size_t n, uint32_t *out) {
    struct jitted *h = handle;
    for (size_t i = 0; i < n; i++) {
        h->mb.buf_addr = (void *)(image + 64 * i);
        out[i] = (uint32_t)h->func(&h->mb);
    }
}

void dpdk_jit_free(void *handle) {
    struct jitted *h = handle;
    rte_bpf_destroy(h->bpf);
    free(h);
}
"""

_lock = threading.Lock()
_modules: dict[str, object] = {}
_failures: dict[str, str] = {}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bpfjit" / "baselines"


def _build(name: str, cdef: str, src: str, libraries: Sequence[str],
           include_dir: Path | None = None):
    """Import (building once, then from the cache) the cffi extension ``name``; None on failure."""
    with _lock:
        if name in _modules:
            return _modules[name]
        if name in _failures:
            return None
        try:
            import cffi
        except ImportError as exc:
            _failures[name] = f"cffi is not installed ({exc})"
            return None
        if shutil.which(os.environ.get("CC", "cc")) is None:
            _failures[name] = "no C compiler (cc) on PATH"
            return None
        headers = "".join(p.read_text() for p in sorted(include_dir.glob("*.h"))) \
            if include_dir is not None else ""
        key = hashlib.sha256("\0".join([cdef, src, headers, *libraries, sys.version,
                                        cffi.__version__, platform.machine()]
                                       ).encode()).hexdigest()[:16]
        modname = f"_bpfjit_{name}_{key}"
        target = cache_dir() / key
        suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
        so_path = target / (modname + suffix)
        try:
            if not so_path.is_file():
                target.mkdir(parents=True, exist_ok=True)
                ffi = cffi.FFI()
                ffi.cdef(cdef)
                ffi.set_source(modname, src, libraries=list(libraries),
                               include_dirs=[str(include_dir)] if include_dir else [],
                               extra_compile_args=["-O2", "-march=native"])
                with tempfile.TemporaryDirectory(dir=target) as tmp:
                    built = ffi.compile(tmpdir=tmp, verbose=False)
                    os.replace(built, so_path)
            spec = importlib.util.spec_from_file_location(modname, so_path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - a compiler/linker error means: unavailable
            text = str(exc).strip().splitlines()
            _failures[name] = f"building the {name} C loop failed: " + \
                (text[-1] if text else type(exc).__name__)
            return None
        _modules[name] = module
        return module


def _stream():
    return _build("stream", _SOCK_FILTER_CDEF + _STREAM_CDEF, _STREAM_SRC, ())


def _pcap():
    return _build("pcap", _PCAP_CDEF, _PCAP_SRC, ("pcap",))


def _dpdk():
    from .testing import peers
    if platform.machine() not in ("x86_64", "AMD64"):
        _failures["dpdk"] = f"DPDK's JIT baseline is x86-64 only (this is {platform.machine()})"
        return None
    libs = [flag[2:] for flag in peers.dpdk_libraries()] + ["pcap"]     # ":librte_bpf.so.23"
    mod = _build("dpdk", _DPDK_CDEF, _DPDK_SRC, libs, include_dir=peers.ABI_HEADER.parent)
    if mod is None:
        return None
    with _lock:
        why = mod.lib.dpdk_start()
        if why != mod.ffi.NULL:
            _failures["dpdk"] = "starting DPDK's EAL: " + mod.ffi.string(why).decode()
            return None
    return mod


def dpdk_reason() -> str | None:
    if _dpdk() is None:
        why = _failures.get("dpdk", "")
        return why + " (DPDK's librte_bpf and libpcap's headers: apt-get install librte-bpf23 " \
            "libpcap0.8-dev)"
    return None


def stream_reason() -> str | None:
    return None if _stream() is not None else _failures.get("stream")


def pcap_reason() -> str | None:
    if _pcap() is None:
        why = _failures.get("pcap", "")
        return why + " (libpcap's headers and library: apt-get install libpcap0.8-dev)"
    return None


def kernel_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"needs Linux (this is {sys.platform})"
    if _stream() is None:
        return _failures.get("stream")
    return None


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# --- memory streaming ----------------------------------------------------------------
def stream_seconds(recs: np.ndarray, repeat: int = 3) -> float:
    """Best wall time of one C pass reading all 64 bytes of every record."""
    mod = _stream()
    if mod is None:
        raise RuntimeError(_failures.get("stream"))
    recs = _records.validate(recs)
    ptr = mod.ffi.cast("const uint64_t *", recs.ctypes.data)
    n = len(recs)
    return _best(lambda: mod.lib.stream_xor(ptr, n), repeat)


# --- libpcap ----------------------------------------------------------------------------
def pcap_image(recs: np.ndarray, lay: "str | Layout") -> np.ndarray:
    """The records as libpcap must see them: every 32-bit word byte-swapped (big-endian loads)."""
    words = _records.words(_records.validate(recs), _layout(lay))
    return np.ascontiguousarray(words).byteswap()


def _program_bytes(program: Program) -> np.ndarray:
    return np.frombuffer(program.to_bytes(sys.byteorder), dtype=np.uint8)


def pcap_evaluate(program: Program, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """libpcap ``bpf_filter()``'s result for each record of a :func:`pcap_image`."""
    mod = _pcap()
    if mod is None:
        raise RuntimeError(pcap_reason())
    image = np.ascontiguousarray(image, dtype=np.uint32).reshape(-1, 16)
    n = len(image)
    out = np.empty(n, dtype=np.uint32) if out is None else out
    code = _program_bytes(program)
    ffi = mod.ffi
    mod.lib.pcap_batch(ffi.cast("const unsigned char *", code.ctypes.data),
                       ffi.cast("const unsigned char *", image.ctypes.data), n,
                       ffi.cast("uint32_t *", out.ctypes.data))
    return out


def pcap_seconds(programs: Sequence[Program], image: np.ndarray, repeat: int = 1) -> float:
    """Best wall time for libpcap to run every program (a stack: each one) over the image."""
    out = np.empty(len(image), dtype=np.uint32)
    return _best(lambda: [pcap_evaluate(p, image, out) for p in programs], repeat)


# --- DPDK's JIT -------------------------------------------------------------------------
_jitted: dict[bytes, object] = {}


def _dpdk_handle(program: Program):
    mod = _dpdk()
    if mod is None:
        raise RuntimeError(dpdk_reason())
    code = program.to_bytes(sys.byteorder)
    with _lock:
        handle = _jitted.get(code)
        if handle is None:
            buf = mod.ffi.new("unsigned char[]", code)
            why = mod.ffi.new("char[256]")
            handle = mod.lib.dpdk_jit_load(buf, len(program), why, 256)
            if handle == mod.ffi.NULL:
                raise RuntimeError("DPDK: " + mod.ffi.string(why).decode())
            _jitted[code] = handle       # kept for the process: a benchmark reuses it
    return mod, handle


def dpdk_evaluate(program: Program, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """DPDK's JIT-compiled program's result for each record of a :func:`pcap_image`."""
    mod, handle = _dpdk_handle(program)
    image = np.ascontiguousarray(image, dtype=np.uint32).reshape(-1, 16)
    n = len(image)
    out = np.empty(n, dtype=np.uint32) if out is None else out
    ffi = mod.ffi
    mod.lib.dpdk_jit_batch(handle, ffi.cast("const unsigned char *", image.ctypes.data), n,
                           ffi.cast("uint32_t *", out.ctypes.data))
    return out


def dpdk_seconds(programs: Sequence[Program], image: np.ndarray, repeat: int = 1) -> float:
    """Best wall time for DPDK's JIT to run every program (a stack: each one) over the image."""
    out = np.empty(len(image), dtype=np.uint32)
    for p in programs:
        _dpdk_handle(p)                  # convert and compile outside the timing
    return _best(lambda: [dpdk_evaluate(p, image, out) for p in programs], repeat)


# --- the kernel -------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelCall:
    """A system call the kernel baseline times: ``cached`` if the kernel skips the filter."""

    name: str
    nr: int
    args: tuple[int, ...]
    cached: bool


#: cheap calls whose ALLOW verdict rarely depends on arguments (kernel action cache)
CACHED_CANDIDATES = (("getppid", ()), ("getpid", ()), ("gettid", ()), ("getuid", ()),
                     ("geteuid", ()), ("getgid", ()), ("sched_yield", ()))
#: cheap calls whose path often reads an argument (the filter runs on every call)
RUN_CANDIDATES = (("personality", (0xFFFFFFFF,)), ("prctl", (3,)), ("fcntl", (0, 1)),
                  ("lseek", (0, 0, 1)), ("getpriority", (0, 0)), ("sched_getscheduler", (0,)))


def kernel_calls(programs: Sequence[Program], arch: "str | Layout" = "x86_64") -> list[KernelCall]:
    """Up to two calls to time: one the kernel caches as ALLOW, one the filters must run for.

    Verdicts and "reads an argument" come from the reference interpreter's
    trace of every filter on the call (an ``ld`` of offset >= 8 on the path).
    """
    import bpfjit_reference as ref
    lay = _layout(arch)
    found: dict[bool, KernelCall] = {}
    for candidates in (CACHED_CANDIDATES, RUN_CANDIDATES):
        for name, args in candidates:
            try:
                nr = syscalls.number(lay.syscall_abi, name)
            except Exception:  # noqa: BLE001 - not on this ABI
                continue
            full = tuple(args) + (0,) * (6 - len(args))
            reads_args = False
            verdicts = []
            for prog in programs:
                insns = [tuple(i) for i in prog]
                image = ref.seccomp_data_image(nr, lay.audit_arch, 0, full, lay.byteorder)

                def step(i, code, jt, jf, k, a, x):
                    nonlocal reads_args
                    if code == 0x20 and k >= 8:      # BPF_LD|BPF_W|BPF_ABS
                        reads_args = True
                verdicts.append(ref.run(insns, image, byteorder=lay.byteorder, on_step=step))
            if ref.run_stack(verdicts) != SECCOMP_RET_ALLOW:
                continue
            cached = not reads_args
            if cached not in found:
                found[cached] = KernelCall(name, nr, full, cached)
        if len(found) == 2:
            break
    return [found[c] for c in (True, False) if c in found]


def kernel_cost(programs: Sequence[Program], call: KernelCall, iterations: int = 200_000,
                repeat: int = 5) -> dict[str, float]:
    """ns per call of ``call`` without and with the filters installed, and the difference.

    Each figure is the best of ``repeat`` forked children (runs alternate).
    """
    mod = _stream()
    if mod is None:
        raise RuntimeError(_failures.get("stream"))
    ffi = mod.ffi
    flat = b"".join(p.to_bytes(sys.byteorder) for p in programs)
    insns = ffi.new("struct sock_filter[]", max(1, len(flat) // 8))
    ffi.memmove(insns, flat, len(flat))
    lens = ffi.new("unsigned short[]", [len(p) for p in programs])
    args = ffi.new("unsigned long[6]", list(call.args))
    res = ffi.new("double *")
    best = {0: float("inf"), 1: float("inf")}
    for _ in range(max(1, repeat)):
        for install in (0, 1):
            rc = mod.lib.kernel_syscall_ns(insns, lens, len(programs), call.nr, args,
                                           iterations, install, res)
            if rc != 0:
                what = {-3: "prctl(PR_SET_NO_NEW_PRIVS) failed",
                        -4: "seccomp(SECCOMP_SET_MODE_FILTER) refused the filter",
                        -5: "the child died before reporting (the call is not allowed?)"}
                raise RuntimeError(f"kernel baseline, {call.name}: "
                                   f"{what.get(rc, f'error {rc}')}")
            best[install] = min(best[install], res[0])
    return {"without_ns": best[0], "with_ns": best[1], "filter_ns": best[1] - best[0]}
