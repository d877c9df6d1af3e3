"""Kernel backend, native side: the C routine that installs filters in a throwaway child task.

The kernel is only asked through this code. One *job* is: start a child task
that shares our memory (``clone(CLONE_VM | SIGCHLD)``, all signals blocked,
no core dumps), let it set ``PR_SET_NO_NEW_PRIVS`` and install one or more
filters with the raw ``seccomp(SECCOMP_SET_MODE_FILTER, flags, &fprog)`` system
call (flags 0 unless a job gives each filter its own), then optionally issue one system call per input from a single
designated ``syscall`` instruction (``bpfjit_site``), writing each raw return
value into a shared array. Between a ``seccomp()`` return and the write of
its result there is no system call: the child writes plain memory, marks the
job done and spins in user space; the parent sees the mark, SIGKILLs and
reaps it. A child that dies before reporting or makes no progress for
``timeout_ms`` is killed and reported, never waited for forever; a child
whose parent dies is killed by the kernel (``PR_SET_PDEATHSIG``).

Why a ``CLONE_VM`` child and not ``fork()``: nothing is copied, so a job
costs tens of microseconds instead of the ~1 ms a fork of a Python process
with numpy and LLVM loaded costs. The child runs only this file's code with
raw ``syscall`` instructions (no libc, no errno, no TLS), so it cannot
disturb the parent's state.

The C source is compiled with the system C compiler on first use (in a fresh
private temporary directory) and loaded with ctypes (calls release the GIL).
x86_64 Linux only. The shared object is native code that runs in this
process, so it is kept under the same rules as the llvm code cache
(:mod:`bpfjit.backends.llvm.cache`, the README's threat model): in the same
per-user directory (``$BPFJIT_CACHE_DIR``, else ``~/.cache/bpfjit``), which
is created ``0700`` and refused — a :class:`~bpfjit.backends.llvm.cache.CacheRefused`
warning — when it is owned by someone else or writable by group or others; as
one entry ``kernel_child-<source hash>.bin`` authenticated with the
directory's per-user HMAC key, its header naming the SHA-256 of the C source;
read ``O_NONBLOCK | O_NOFOLLOW`` from a regular file only. The library is
never loaded from a path in that directory: the authenticated bytes are
copied into an anonymous memory file (``memfd_create``) and loaded from there,
so nothing another user plants (an ``.so``, a symlink, a FIFO, a forged or
swapped entry) is ever mapped. A refused, read-only or missing directory
only means the object is rebuilt (in a private temporary directory) by each
process that needs it.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

from .llvm.cache import (CacheRefused, Corrupt, _Refused, _read, _write, cache_dir, open_private,
                         pack, unpack)

log = logging.getLogger("bpfjit")

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
#include <unistd.h>
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
    const uint32_t *flags;             /* SECCOMP_FILTER_FLAG_* per filter, or NULL (all 0) */
    int32_t nfilters;                  /* installed oldest first */
    int32_t parent;                    /* our pid: the child dies if it changes */
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
    /* threaded jobs: the filters are installed by a second thread, the worker */
    int32_t threaded;
    int32_t worker_alive;              /* 1 until the worker exits (CLONE_CHILD_CLEARTID) */
    char *worker_stack;                /* top of the worker's stack */
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

static int install_and_run(void *arg)
{
    struct job *j = arg;
    long r;
    int i;
    const struct sock_filter *p = j->insns;

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
        r = raw6(SYS_seccomp, SECCOMP_SET_MODE_FILTER, j->flags ? (long)j->flags[i] : 0,
                 (long)&fprog, 0, 0, 0);
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

/* The worker thread's entry: a raw clone(CLONE_THREAD) lands here on its own stack. */
static __attribute__((noreturn, used)) void worker_entry(struct job *j)
{
    install_and_run(j);
    for (;;)
        __builtin_ia32_pause();
}

/* raw clone for the worker thread: no libc (the child task shares the parent's TLS).
 * rdi = flags, rsi = new stack top, rdx = ctid, rcx = job. The new thread starts on
 * its stack with the job in rdi and calls worker_entry, which never returns. */
__asm__(".text\n"
        ".globl bpfjit_spawn_worker\n"
        ".hidden bpfjit_spawn_worker\n"
        ".type bpfjit_spawn_worker, @function\n"
        "bpfjit_spawn_worker:\n"
        "    mov %rcx, %r9\n"          /* job, kept in r9 across the syscall */
        "    mov %rdx, %r10\n"         /* ctid */
        "    xor %edx, %edx\n"         /* ptid */
        "    xor %r8d, %r8d\n"         /* tls */
        "    mov $56, %eax\n"          /* SYS_clone */
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jnz 1f\n"
        "    xor %ebp, %ebp\n"
        "    mov %r9, %rdi\n"
        "    and $-16, %rsp\n"
        "    call worker_entry\n"
        "    ud2\n"
        "1:  ret\n"
        ".size bpfjit_spawn_worker, .-bpfjit_spawn_worker\n");
long bpfjit_spawn_worker(unsigned long flags, char *stack, int32_t *ctid, struct job *j);

/* The child task. Unthreaded jobs install and run here. Threaded jobs hand both
 * to a second thread, so that a filter returning KILL_THREAD (0: a division by
 * zero) ends only that thread, without a core dump (the kernel dumps core only
 * when the last thread of a process is killed): the parent sees worker_alive
 * cleared with the job not done, and knows the input at `progress` was killed. */
static int child_main(void *arg)
{
    struct job *j = arg;
    struct rlimit no_core = {0, 0};

    /* Die with the parent: a child left behind would spin forever with every
     * signal blocked. Checked after the prctl, in case the parent died first. */
    raw6(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0, 0);
    if (raw6(SYS_getppid, 0, 0, 0, 0, 0, 0) != j->parent)
        raw6(SYS_exit_group, 0, 0, 0, 0, 0, 0);
    raw6(SYS_prlimit64, 0, RLIMIT_CORE, (long)&no_core, 0, 0, 0);
    if (!j->threaded)
        return install_and_run(j);
    long r = bpfjit_spawn_worker(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
                                 CLONE_THREAD | CLONE_SYSVSEM | CLONE_CHILD_CLEARTID,
                                 j->worker_stack, &j->worker_alive, j);
    if (r < 0) {
        j->error = (int32_t)-r;
        j->failed_at = -2;
        STORE(&j->worker_alive, 0);
        finish(j);
    }
    /* Sleep until the parent kills this process (every signal is blocked, so pause()
     * never returns; this thread has no filter). Spinning here would take a CPU from the
     * worker. */
    for (;;)
        raw6(SYS_pause, 0, 0, 0, 0, 0, 0);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define STACK_SIZE (256 * 1024)
#define MAX_WINDOW 16

/* One running child. */
struct slot {
    struct job j;
    char *stack;
    pid_t pid;
    int64_t index;         /* which program (accept_many) */
    int64_t last_progress;
    double deadline;
};

static int slot_start(struct slot *s, int timeout_ms, int *detail)
{
    sigset_t all, old;
    s->j.done = 0;
    s->j.error = 0;
    s->j.failed_at = 0;
    s->j.installed = 0;
    s->j.progress = 0;
    s->j.worker_alive = 1;
    s->last_progress = 0;
    s->j.parent = getpid();
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    s->pid = clone(child_main, s->stack + STACK_SIZE, CLONE_VM | SIGCHLD, &s->j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (s->pid < 0) {
        *detail = errno;
        return -1;
    }
    s->deadline = now_s() + timeout_ms / 1000.0;
    return 0;
}

/* 0: still running; 1: reported (see s->j.error); -2: died before reporting
 * (wait status in *detail); -3: no progress for timeout_ms; -4: the worker
 * thread of a threaded job was killed by its filter (KILL_THREAD) while it
 * handled input `progress`. The child is killed and reaped unless 0 is
 * returned. */
static int slot_poll(struct slot *s, int timeout_ms, double now, int *detail)
{
    int status = 0, rc;
    if (LOAD(&s->j.done)) {
        rc = 1;
    } else {
        pid_t w = waitpid(s->pid, &status, WNOHANG | __WALL);
        if (w == s->pid) {
            if (LOAD(&s->j.done))
                return 1;
            *detail = status;
            return -2;
        }
        if (s->j.threaded && !LOAD(&s->j.worker_alive)) {
            rc = -4;
        } else {
            int64_t pr = LOAD(&s->j.progress);
            if (pr != s->last_progress) {
                s->last_progress = pr;
                s->deadline = now + timeout_ms / 1000.0;
                return 0;
            }
            if (now <= s->deadline)
                return 0;
            rc = -3;
        }
    }
    kill(s->pid, SIGKILL);
    while (waitpid(s->pid, &status, __WALL) < 0 && errno == EINTR)
        ;
    /* The leader only dies from our SIGKILL: any other death was a crash of the
     * whole process, which also clears worker_alive. */
    if (rc == -4 && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
        *detail = status;
        rc = -2;
    }
    return rc;
}

/* Sleep between polls, never busy-spin: a child usually lands on this CPU's
 * run queue, and a spinning parent would starve it until the next scheduler
 * tick (milliseconds on a loaded machine). */
static void nap(long *ns)
{
    struct timespec ts = {0, *ns};
    nanosleep(&ts, NULL);
    if (*ns < 500000)
        *ns += *ns / 2;
}

/* Install each program alone in its own child, up to `window` children at a
 * time: results[i] = 0 or the errno of the refused install, or a negative
 * slot code (-1 clone failed, -2 died before reporting, -3 timeout) for a job
 * that said nothing about the program. Returns 0, or -1 if no stack could be
 * mapped (errno in *detail). */
int bpfjit_accept_many(const struct sock_filter *insns, const uint32_t *lens, int64_t n,
                       int32_t *results, int timeout_ms, int window, int32_t *detail)
{
    struct slot slots[MAX_WINDOW];
    int active[MAX_WINDOW] = {0};
    int nactive = 0, i, d = 0;
    int64_t next = 0;
    const struct sock_filter *cursor = insns;
    long ns = 20000;

    if (window < 1)
        window = 1;
    if (window > MAX_WINDOW)
        window = MAX_WINDOW;
    memset(slots, 0, sizeof slots);
    for (i = 0; i < window; i++) {
        slots[i].stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (slots[i].stack == MAP_FAILED) {
            *detail = errno;
            while (i-- > 0)
                munmap(slots[i].stack, STACK_SIZE);
            return -1;
        }
        slots[i].j.nfilters = 1;
    }
    while (next < n || nactive) {
        for (i = 0; i < window && next < n; i++) {
            if (active[i])
                continue;
            slots[i].j.insns = cursor;
            slots[i].j.lens = lens + next;
            slots[i].index = next;
            cursor += lens[next];
            next++;
            if (slot_start(&slots[i], timeout_ms, &d) < 0) {
                results[slots[i].index] = -1;
                continue;
            }
            active[i] = 1;
            nactive++;
        }
        nap(&ns);
        double now = now_s();
        for (i = 0; i < window; i++) {
            if (!active[i])
                continue;
            int rc = slot_poll(&slots[i], timeout_ms, now, &d);
            if (rc == 0)
                continue;
            results[slots[i].index] = rc == 1 ? slots[i].j.error : rc;
            active[i] = 0;
            nactive--;
            ns = 20000;
        }
    }
    for (i = 0; i < window; i++)
        munmap(slots[i].stack, STACK_SIZE);
    return 0;
}

/* What results[] holds for an input whose filter killed the worker thread. */
#define KILLED INT64_MIN

/* Install nfilters in order in one child, then run ninputs system calls from
 * the designated site. A filter that kills the calling thread (KILL_THREAD)
 * leaves KILLED in that input's result, and a new child carries on with the
 * next input. Returns 0 (reported), -1, -2 or -3 as above; out[] = {errno of
 * the failed install or 0, its index (-1: prctl), filters installed, detail,
 * inputs killed}; results[] holds the raw return of each system call. */
int bpfjit_run_flags(const struct sock_filter *insns, const uint32_t *lens,
                     const uint32_t *flags, int32_t nfilters, const int32_t *nrs,
                     const uint64_t *args, int64_t *results, int64_t ninputs, int timeout_ms,
                     int32_t *out);

int bpfjit_run(const struct sock_filter *insns, const uint32_t *lens, int32_t nfilters,
               const int32_t *nrs, const uint64_t *args, int64_t *results, int64_t ninputs,
               int timeout_ms, int32_t *out)
{
    return bpfjit_run_flags(insns, lens, NULL, nfilters, nrs, args, results, ninputs,
                            timeout_ms, out);
}

/* bpfjit_run with each filter installed with its own flags (a listener fd stays open in
 * the child until it is killed; TSYNC also gives the child's idle leader thread the filter,
 * which never makes another system call). */
int bpfjit_run_flags(const struct sock_filter *insns, const uint32_t *lens,
                     const uint32_t *flags, int32_t nfilters, const int32_t *nrs,
                     const uint64_t *args, int64_t *results, int64_t ninputs, int timeout_ms,
                     int32_t *out)
{
    struct slot s;
    int detail = 0, rc;
    int64_t offset = 0, killed = 0;

    memset(&s, 0, sizeof s);
    s.stack = mmap(NULL, 2 * STACK_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (s.stack == MAP_FAILED) {
        out[3] = errno;
        return -1;
    }
    s.j.insns = insns;
    s.j.lens = lens;
    s.j.flags = flags;
    s.j.nfilters = nfilters;
    s.j.threaded = 1;
    s.j.worker_stack = s.stack + 2 * STACK_SIZE;
    for (;;) {
        long ns = 20000;
        s.j.nrs = nrs + offset;
        s.j.args = args + 6 * offset;
        s.j.results = results + offset;
        s.j.ninputs = ninputs - offset;
        rc = slot_start(&s, timeout_ms, &detail);
        while (rc == 0) {
            nap(&ns);
            rc = slot_poll(&s, timeout_ms, now_s(), &detail);
        }
        if (rc != -4)
            break;
        offset += LOAD(&s.j.progress);
        results[offset++] = KILLED;
        killed++;
        if (offset >= ninputs) {
            rc = 1;
            break;
        }
    }
    out[0] = s.j.error;
    out[1] = s.j.failed_at;
    out[2] = s.j.installed;
    out[3] = detail;
    out[4] = (int32_t)killed;
    munmap(s.stack, 2 * STACK_SIZE);
    return rc == 1 ? 0 : rc;
}
"""

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_load_error: str | None = None


#: the SHA-256 of the C source: names the cache entry and is checked in its header
SOURCE_SHA256 = hashlib.sha256(C_SOURCE.encode()).hexdigest()
ENTRY_NAME = f"kernel_child-{SOURCE_SHA256[:16]}.bin"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _compile(cc: str) -> bytes:
    """The shared object's bytes, built in a fresh private (0700) temporary directory."""
    with tempfile.TemporaryDirectory(prefix="bpfjit-kernel-") as tmp:
        src = Path(tmp) / "kernel_child.c"
        src.write_text(C_SOURCE)
        out = Path(tmp) / "kernel_child.so"
        proc = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-Wall", "-o", str(out), str(src)],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise OSError(f"{cc} failed to build the kernel child:\n{proc.stderr.strip()}")
        return out.read_bytes()


def _dlopen_bytes(payload: bytes) -> ctypes.CDLL:
    """Load a shared object from bytes: an anonymous memory file, else a private temporary one."""
    try:
        fd = os.memfd_create("bpfjit-kernel-child", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        with tempfile.TemporaryDirectory(prefix="bpfjit-kernel-") as tmp:
            path = Path(tmp) / "kernel_child.so"
            path.write_bytes(payload)
            return ctypes.CDLL(str(path))
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        return ctypes.CDLL(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _cached(directory: Path, secret: bytes) -> bytes | None:
    """The authenticated shared object stored in ``directory``, or None (absent or not ours)."""
    path = directory / ENTRY_NAME
    data = _read(path)
    if data is None:
        return None
    try:
        header, payload = unpack(data, secret)
        if header.get("kind") != "kernel_child" or header.get("source") != SOURCE_SHA256:
            raise Corrupt("entry was built from another C source")
    except Corrupt as exc:
        log.debug("bpfjit: kernel child %s is not usable (%s); rebuilding", path, exc)
        return None
    return payload


def _open() -> ctypes.CDLL:
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        raise OSError(f"the kernel child is implemented for x86_64 Linux only "
                      f"(this is {sys.platform}/{platform.machine()})")
    disk: tuple[Path, bytes] | None = None
    directory = cache_dir()
    if directory is not None:
        try:
            disk = (directory, open_private(directory))
        except _Refused as exc:
            warnings.warn(f"bpfjit: kernel child not cached: {exc}", CacheRefused, stacklevel=4)
    payload = _cached(*disk) if disk else None
    if payload is None:
        cc = _compiler()
        if cc is None:
            raise OSError("no C compiler (cc, gcc or clang) on PATH to build the kernel child")
        try:
            payload = _compile(cc)
        except subprocess.SubprocessError as exc:
            raise OSError(f"cannot build the kernel child: {exc}") from exc
        if disk:
            _write(disk[0] / ENTRY_NAME,
                   pack({"kind": "kernel_child", "source": SOURCE_SHA256}, payload, disk[1]))
    return _dlopen_bytes(payload)


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
        lib.bpfjit_accept_many.restype = ctypes.c_int
        lib.bpfjit_accept_many.argtypes = [p, p, ctypes.c_int64, p, ctypes.c_int, ctypes.c_int, p]
        lib.bpfjit_run.restype = ctypes.c_int
        lib.bpfjit_run.argtypes = [p, p, ctypes.c_int32, p, p, p, ctypes.c_int64, ctypes.c_int, p]
        lib.bpfjit_run_flags.restype = ctypes.c_int
        lib.bpfjit_run_flags.argtypes = [p, p, p, ctypes.c_int32, p, p, p, ctypes.c_int64,
                                         ctypes.c_int, p]
        _lib = lib
        return lib
