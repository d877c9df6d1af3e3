"""Kernel backend, native side: the C routine that installs filters in a throwaway child task.

The kernel is only asked through this code. One *job* is: start a child task
that shares our memory (``clone(CLONE_VM | SIGCHLD)``, all signals blocked,
no core dumps), let it set ``PR_SET_NO_NEW_PRIVS`` and install one or more
filters with the raw ``seccomp(SECCOMP_SET_MODE_FILTER, 0, &fprog)`` system
call, then optionally issue one system call per input from a single
designated ``syscall`` instruction (``bpfjit_site``), writing each raw return
value into a shared array. Between a ``seccomp()`` return and the write of
its result there is no system call: the child writes plain memory, marks the
job done and spins in user space; the parent sees the mark, SIGKILLs and
reaps it. A child that dies before reporting or makes no progress for
``timeout_ms`` is killed and reported, never waited for forever.

Why a ``CLONE_VM`` child and not ``fork()``: nothing is copied, so a job
costs tens of microseconds instead of the ~1 ms a fork of a Python process
with numpy and LLVM loaded costs. The child runs only this file's code with
raw ``syscall`` instructions (no libc, no errno, no TLS), so it cannot
disturb the parent's state.

The C source is compiled with the system C compiler on first use into a
per-user cache directory (``$BPFJIT_CACHE_DIR``, else
``$XDG_CACHE_HOME/bpfjit``, else ``~/.cache/bpfjit``) keyed by the source's
hash, and loaded with ctypes (calls release the GIL). x86_64 Linux only.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

C_SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#if !defined(__x86_64__)
#error "bpfjit kernel child: x86_64 only"
#endif

/* A raw system call: no libc, no errno (the child shares the parent's TLS). */
static inline long raw6(long n, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

/* The designated system call site. seccomp sees instruction_pointer ==
 * bpfjit_site_ret (the address after the syscall instruction); the
 * rewritten filters return ALLOW for every other address. */
__asm__(".text\n"
        ".globl bpfjit_site\n"
        ".hidden bpfjit_site\n"
        ".type bpfjit_site, @function\n"
        "bpfjit_site:\n"
        "    mov %rdi, %rax\n"
        "    mov %rsi, %rdi\n"
        "    mov %rdx, %rsi\n"
        "    mov %rcx, %rdx\n"
        "    mov %r8, %r10\n"
        "    mov %r9, %r8\n"
        "    mov 8(%rsp), %r9\n"
        "    syscall\n"
        ".globl bpfjit_site_ret\n"
        ".hidden bpfjit_site_ret\n"
        "bpfjit_site_ret:\n"
        "    ret\n"
        ".size bpfjit_site, .-bpfjit_site\n");
long bpfjit_site(long nr, long a0, long a1, long a2, long a3, long a4, long a5);
extern const char bpfjit_site_ret[];

uint64_t bpfjit_site_address(void) { return (uint64_t)(uintptr_t)bpfjit_site_ret; }

struct job {
    const struct sock_filter *insns;   /* all filters, concatenated */
    const uint32_t *lens;              /* instructions per filter */
    int32_t nfilters;                  /* installed oldest first */
    int32_t pad;
    const int32_t *nrs;                /* inputs: nr ... */
    const uint64_t *args;              /* ... and 6 args each */
    int64_t *results;                  /* raw return value per input */
    int64_t ninputs;
    /* written by the child */
    int32_t done;                      /* 1 when finished */
    int32_t error;                     /* errno of the failed install, 0 if none */
    int32_t failed_at;                 /* index of the failed install, -1 for prctl */
    int32_t installed;                 /* filters installed */
    int64_t progress;                  /* inputs done */
};

#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)

static __attribute__((noreturn)) void finish(struct job *j)
{
    STORE(&j->done, 1);
    /* No system call from here on: it would go through the new filters. */
    for (;;)
        __builtin_ia32_pause();
}

static int child_main(void *arg)
{
    struct job *j = arg;
    struct rlimit no_core = {0, 0};
    long r;
    int i;
    const struct sock_filter *p = j->insns;

    raw6(SYS_prlimit64, 0, RLIMIT_CORE, (long)&no_core, 0, 0, 0);
    r = raw6(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0);
    if (r < 0) {
        j->error = (int32_t)-r;
        j->failed_at = -1;
        finish(j);
    }
    for (i = 0; i < j->nfilters; i++) {
        struct sock_fprog fprog;
        fprog.len = (unsigned short)j->lens[i];
        fprog.filter = (struct sock_filter *)p;
        r = raw6(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, (long)&fprog, 0, 0, 0);
        if (r < 0) {
            j->error = (int32_t)-r;
            j->failed_at = i;
            finish(j);
        }
        j->installed = i + 1;
        p += j->lens[i];
    }
    for (int64_t k = 0; k < j->ninputs; k++) {
        const uint64_t *a = j->args + 6 * k;
        j->results[k] = bpfjit_site((long)j->nrs[k], (long)a[0], (long)a[1], (long)a[2],
                                    (long)a[3], (long)a[4], (long)a[5]);
        STORE(&j->progress, k + 1);
    }
    finish(j);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define STACK_SIZE (256 * 1024)

/* Run one job. Returns 0 when the child reported (see j->error), or
 *  -1 clone failed (errno in *detail), -2 child died before reporting
 *  (wait status in *detail), -3 no progress for timeout_ms (killed). */
static int run_job(struct job *j, char *stack, int timeout_ms, int *detail)
{
    sigset_t all, old;
    int status = 0, reaped = 0, rc = 0;
    long nap_ns = 20000;
    int64_t last_progress = 0;
    double deadline;
    pid_t pid;

    j->done = 0;
    j->error = 0;
    j->failed_at = 0;
    j->installed = 0;
    j->progress = 0;
    *detail = 0;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = clone(child_main, stack + STACK_SIZE, CLONE_VM | SIGCHLD, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        *detail = errno;
        return -1;
    }
    deadline = now_s() + timeout_ms / 1000.0;
    /* Poll with short sleeps, never a busy spin: the child usually lands on
     * this CPU's run queue and a spinning parent would starve it until the
     * next scheduler tick (milliseconds on a loaded machine). */
    for (;;) {
        struct timespec nap = {0, nap_ns};
        if (LOAD(&j->done))
            break;
        pid_t w = waitpid(pid, &status, WNOHANG | __WALL);
        if (w == pid) {
            reaped = 1;
            if (!LOAD(&j->done)) {
                *detail = status;
                rc = -2;
            }
            break;
        }
        int64_t pr = LOAD(&j->progress);
        double t = now_s();
        if (pr != last_progress) {
            last_progress = pr;
            deadline = t + timeout_ms / 1000.0;
        } else if (t > deadline) {
            rc = -3;
            break;
        }
        nanosleep(&nap, NULL);
        if (nap_ns < 500000)
            nap_ns += nap_ns / 2;
    }
    if (!reaped) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR)
            ;
    }
    return rc;
}

/* Install each program alone in its own child: results[i] = 0 or errno, or
 * a negative run_job code. Stops early and returns the index of a program
 * whose job failed (negative code) so the caller can retry; else returns n. */
int64_t bpfjit_accept_many(const struct sock_filter *insns, const uint32_t *lens, int64_t n,
                           int32_t *results, int timeout_ms, int32_t *detail)
{
    char *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    struct job j;
    int64_t i;
    if (stack == MAP_FAILED) {
        *detail = errno;
        return -1;
    }
    memset(&j, 0, sizeof j);
    j.nfilters = 1;
    for (i = 0; i < n; i++) {
        j.insns = insns;
        j.lens = lens + i;
        int rc = run_job(&j, stack, timeout_ms, detail);
        if (rc < 0) {
            results[i] = rc;
            break;
        }
        results[i] = j.error;
        insns += lens[i];
    }
    munmap(stack, STACK_SIZE);
    return i;
}

/* Install nfilters in order in one child, then run ninputs system calls from
 * the designated site. Returns the run_job code; *error, *failed_at and
 * *installed describe the installs, results[] the raw syscall returns. */
int bpfjit_run(const struct sock_filter *insns, const uint32_t *lens, int32_t nfilters,
               const int32_t *nrs, const uint64_t *args, int64_t *results, int64_t ninputs,
               int timeout_ms, int32_t *out /* error, failed_at, installed, detail */)
{
    char *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    struct job j;
    int detail = 0, rc;
    if (stack == MAP_FAILED) {
        out[3] = errno;
        return -1;
    }
    memset(&j, 0, sizeof j);
    j.insns = insns;
    j.lens = lens;
    j.nfilters = nfilters;
    j.nrs = nrs;
    j.args = args;
    j.results = results;
    j.ninputs = ninputs;
    rc = run_job(&j, stack, timeout_ms, &detail);
    out[0] = j.error;
    out[1] = j.failed_at;
    out[2] = j.installed;
    out[3] = detail;
    munmap(stack, STACK_SIZE);
    return rc;
}
"""

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_load_error: str | None = None


def _cache_dir() -> Path:
    env = os.environ.get("BPFJIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "bpfjit"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _build(target: Path, cc: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bpfjit-kernel-") as tmp:
        src = Path(tmp) / "kernel_child.c"
        src.write_text(C_SOURCE)
        out = Path(tmp) / target.name
        proc = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-Wall", "-o", str(out), str(src)],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise OSError(f"{cc} failed to build the kernel child:\n{proc.stderr.strip()}")
        tmp_target = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(out, tmp_target)
        os.replace(tmp_target, target)   # atomic: concurrent builders agree


def _open() -> ctypes.CDLL:
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        raise OSError(f"the kernel child is implemented for x86_64 Linux only "
                      f"(this is {sys.platform}/{platform.machine()})")
    cc = _compiler()
    digest = hashlib.sha256(C_SOURCE.encode()).hexdigest()[:16]
    name = f"kernel_child-{digest}.so"
    candidates = [_cache_dir(), Path(tempfile.gettempdir()) / f"bpfjit-{os.getuid()}"]
    errors = []
    for directory in candidates:
        target = directory / name
        try:
            if not target.exists():
                if cc is None:
                    raise OSError("no C compiler (cc, gcc or clang) on PATH to build it")
                _build(target, cc)
            return ctypes.CDLL(str(target))
        except (OSError, subprocess.SubprocessError) as exc:
            errors.append(f"{target}: {exc}")
    raise OSError("cannot build or load the kernel child: " + "; ".join(errors))


def library() -> ctypes.CDLL:
    """The compiled native routine (built on first use); OSError says why not."""
    global _lib, _load_error
    with _lock:
        if _lib is not None:
            return _lib
        if _load_error is not None:
            raise OSError(_load_error)
        try:
            lib = _open()
        except OSError as exc:
            _load_error = str(exc)
            raise
        p = ctypes.c_void_p
        lib.bpfjit_site_address.restype = ctypes.c_uint64
        lib.bpfjit_site_address.argtypes = []
        lib.bpfjit_accept_many.restype = ctypes.c_int64
        lib.bpfjit_accept_many.argtypes = [p, p, ctypes.c_int64, p, ctypes.c_int, p]
        lib.bpfjit_run.restype = ctypes.c_int
        lib.bpfjit_run.argtypes = [p, p, ctypes.c_int32, p, p, p, ctypes.c_int64, ctypes.c_int, p]
        _lib = lib
        return lib
