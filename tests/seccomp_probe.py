"""Test support: a throw-away C probe that installs seccomp filters and makes one system call,
and a reader for the audit records (type 1326, AUDIT_SECCOMP) the kernel writes about it.

The probe (built once with cc) takes ``[options] NR FLAGS:HEX ...``: each filter is
the hex of its ``struct sock_filter`` array and the flags it is installed with;
a lone ``+`` forks, and the filters after it are installed by the child (which
inherited everything before). It prints one line per event:

    I <index> <return value> <errno>     a seccomp(SECCOMP_SET_MODE_FILTER) call
    S <return value> <errno>             the system call NR (args 0), if the probe survives it
    G <signo> <code> <errno> <syscall> <arch>   a SIGSYS caught by the -s handler
    N <nr>                               a notification received by the -l listener thread
    T alive                              -t: the main thread outlived the calling thread

Options: -N no PR_SET_NO_NEW_PRIVS; -u drop to uid/gid 65534 first (no CAP_SYS_ADMIN);
-c close every listener fd right after its install; -s catch SIGSYS (SA_SIGINFO);
-t make the call from a second thread; -l INDEX serve filter INDEX's listener from a
thread (answers EPERM); -T PTRACE_TRACEME + SIGSTOP first (the caller traces);
-d allow core dumps (RLIMIT_CORE); -e execve the probe itself (no filters on its command line)
before the call, to show that filters survive execve; -a ACTION: seccomp(SECCOMP_GET_ACTION_AVAIL, FLAGS)
instead (prints ``A <ret> <errno>``; FLAGS from -F).

Audit records: the NETLINK_AUDIT multicast group AUDIT_NLGRP_READLOG receives every
record without the printk rate limit (10 per 5 s) that /dev/kmsg suffers when no auditd
runs; a "barrier" probe whose LOG record must arrive last makes each batch complete
and deterministic (kauditd delivers in order).
"""
from __future__ import annotations

import ctypes
import errno as errno_mod
import hashlib
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

C_SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *fmt, ...) {
    char buf[256]; va_list ap; va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap); va_end(ap);
    if (n > 0) { ssize_t w = write(1, buf, (size_t)n); (void)w; }
}

static void on_sigsys(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    say("G %d %d %d %d %u\n", sig, si->si_code, si->si_errno, si->si_syscall, si->si_arch);
}

static long nr_call;
static void *call(void *arg) {
    (void)arg;
    errno = 0;
    long r = syscall(nr_call, 0, 0, 0, 0, 0, 0);
    say("S %ld %d\n", r, r < 0 ? errno : 0);
    return NULL;
}

static int listener_fd = -1;
static void *serve(void *arg) {
    (void)arg;
    struct seccomp_notif req; struct seccomp_notif_resp resp;
    memset(&req, 0, sizeof req);
    if (ioctl(listener_fd, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0) {
        say("N %d\n", req.data.nr);
        memset(&resp, 0, sizeof resp);
        resp.id = req.id; resp.error = -EPERM;
        ioctl(listener_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
    return NULL;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int main(int argc, char **argv) {
    int nnp = 1, drop = 0, close_l = 0, catch_sys = 0, thread = 0, serve_idx = -1, trace = 0;
    int core = 0, avail = 0, reexec = 0; unsigned avail_flags = 0; unsigned long avail_action = 0;
    int opt;
    alarm(10);
    while ((opt = getopt(argc, argv, "+Nucstl:TdaeA:F:")) != -1) {
        switch (opt) {
        case 'N': nnp = 0; break;
        case 'u': drop = 1; break;
        case 'c': close_l = 1; break;
        case 's': catch_sys = 1; break;
        case 't': thread = 1; break;
        case 'l': serve_idx = atoi(optarg); break;
        case 'T': trace = 1; break;
        case 'd': core = 1; break;
        case 'a': avail = 1; break;
        case 'e': reexec = 1; break;
        case 'A': avail_action = strtoul(optarg, NULL, 0); break;
        case 'F': avail_flags = (unsigned)strtoul(optarg, NULL, 0); break;
        default: return 64;
        }
    }
    if (avail) {
        uint32_t action = (uint32_t)avail_action;
        errno = 0;
        long r = syscall(__NR_seccomp, SECCOMP_GET_ACTION_AVAIL, avail_flags, &action);
        say("A %ld %d\n", r, r < 0 ? errno : 0);
        return 0;
    }
    if (optind >= argc) return 64;
    nr_call = strtol(argv[optind++], NULL, 0);
    if (core) { struct rlimit rl = {1 << 24, 1 << 24}; setrlimit(RLIMIT_CORE, &rl); }
    if (trace) { ptrace(PTRACE_TRACEME, 0, 0, 0); raise(SIGSTOP); }
    if (drop) {
        if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)) return 65;
    }
    if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return 66;
    if (catch_sys) {
        struct sigaction sa; memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigsys; sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSYS, &sa, NULL);
    }
    int index = 0;
    for (; optind < argc; optind++) {
        char *spec = argv[optind];
        if (strcmp(spec, "+") == 0) {
            pid_t child = fork();
            if (child < 0) return 67;
            if (child > 0) { int st; waitpid(child, &st, 0); return 0; }
            continue;
        }
        char *colon = strchr(spec, ':');
        if (!colon) return 64;
        unsigned flags = (unsigned)strtoul(spec, NULL, 0);
        size_t hexlen = strlen(colon + 1);
        size_t nbytes = hexlen / 2;
        unsigned char *bytes = malloc(nbytes + 8);
        for (size_t i = 0; i < nbytes; i++)
            bytes[i] = (unsigned char)(hexval(colon[1 + 2 * i]) * 16 + hexval(colon[2 + 2 * i]));
        struct sock_fprog prog = { .len = (unsigned short)(nbytes / 8),
                                   .filter = (struct sock_filter *)bytes };
        errno = 0;
        long r = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
        say("I %d %ld %d\n", index, r, r < 0 ? errno : 0);
        if (r > 0 && (flags & SECCOMP_FILTER_FLAG_NEW_LISTENER)) {
            if (index == serve_idx) listener_fd = (int)r;
            else if (close_l) close((int)r);
        }
        index++;
    }
    if (reexec) {
        char nrbuf[32]; snprintf(nrbuf, sizeof nrbuf, "%ld", nr_call);
        char *args[] = {argv[0], nrbuf, NULL};
        execv("/proc/self/exe", args);
        return 68;
    }
    pthread_t server;
    if (listener_fd >= 0) pthread_create(&server, NULL, serve, NULL);
    if (thread) {
        pthread_t t;
        pthread_create(&t, NULL, call, NULL);
        pthread_join(t, NULL);
        say("T alive\n");
    } else {
        call(NULL);
    }
    /* no join: a notification is printed before it is answered, so before the call
       returned; a listener that got none would wait forever */
    return 0;
}
"""

SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000
#: the system call every probe makes (getppid: harmless, never made by the probe otherwise)
PROBE_NR = 110
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_CONT = 7
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000
PTRACE_EVENT_SECCOMP = 7


def probe_path() -> Path:
    """Build (once per source version) and return the probe executable."""
    digest = hashlib.sha256(C_SOURCE.encode()).hexdigest()[:16]
    directory = Path(tempfile.gettempdir()) / f"bpfjit-probe-{os.getuid()}"
    target = directory / f"seccomp_probe-{digest}"
    if target.exists():
        return target
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise OSError("no C compiler to build the seccomp probe")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(C_SOURCE)
        out = Path(tmp) / "probe"
        proc = subprocess.run([cc, "-O1", "-Wall", "-pthread", "-o", str(out), str(src)],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode:
            raise OSError(f"building the seccomp probe failed:\n{proc.stderr}")
        tmp_target = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(out, tmp_target)
        os.chmod(tmp_target, 0o755)
        os.replace(tmp_target, target)
    return target


def guarded(retval: int, nr: int = PROBE_NR) -> bytes:
    """``ld [nr]; jeq #nr, 0, 1; ret #retval; ret ALLOW`` as sock_filter bytes."""
    return b"".join(struct.pack("=HBBI", *i) for i in [
        (0x20, 0, 0, 0), (0x15, 0, 1, nr), (0x06, 0, 0, retval), (0x06, 0, 0, SECCOMP_RET_ALLOW)])


@dataclass
class ProbeResult:
    pid: int
    status: int
    installs: list[tuple[int, int]] = field(default_factory=list)     # (return value, errno)
    syscall: tuple[int, int] | None = None                            # (return value, errno)
    sigsys: tuple[int, int, int, int, int] | None = None
    notified: list[int] = field(default_factory=list)
    thread_survivor: bool = False
    avail: tuple[int, int] | None = None
    ptrace_messages: list[int] = field(default_factory=list)
    output: str = ""

    @property
    def killed_by(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None

    @property
    def core_dumped(self) -> bool:
        return os.WIFSIGNALED(self.status) and os.WCOREDUMP(self.status)


def run_probe(filters: list[tuple[int, bytes]] | list, *, nr: int = PROBE_NR, options=(),
              trace: bool = False, cwd: str | None = None) -> ProbeResult:
    """Run the probe: ``filters`` is a list of (flags, sock_filter bytes) or the string ``"+"``."""
    argv = [str(probe_path()), *options]
    if trace:
        argv.append("-T")
    argv.append(str(nr))
    for item in filters:
        argv.append("+" if item == "+" else f"{item[0]}:{item[1].hex()}")
    r, w = os.pipe()
    old = os.getcwd()
    try:
        if cwd:
            os.chdir(cwd)
        pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin"},
                             file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
    finally:
        os.chdir(old)
        os.close(w)
    messages: list[int] = []
    try:
        status = _wait(pid, trace, messages)
        chunks = []
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
    text = b"".join(chunks).decode()
    res = ProbeResult(pid, status, output=text, ptrace_messages=messages)
    for line in text.splitlines():
        parts = line.split()
        if parts[0] == "I":
            res.installs.append((int(parts[2]), int(parts[3])))
        elif parts[0] == "S":
            res.syscall = (int(parts[1]), int(parts[2]))
        elif parts[0] == "G":
            res.sigsys = tuple(int(p) for p in parts[1:6])
        elif parts[0] == "N":
            res.notified.append(int(parts[1]))
        elif parts[0] == "T":
            res.thread_survivor = True
        elif parts[0] == "A":
            res.avail = (int(parts[1]), int(parts[2]))
    return res


def _wait(pid: int, trace: bool, messages: list[int]) -> int:
    if not trace:
        return os.waitpid(pid, 0)[1]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    _, status = os.waitpid(pid, 0)              # the SIGSTOP after PTRACE_TRACEME
    if not os.WIFSTOPPED(status):
        return status
    libc.ptrace(PTRACE_SETOPTIONS, pid, None,
                ctypes.c_void_p(PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL))
    libc.ptrace(PTRACE_CONT, pid, None, None)
    while True:
        _, status = os.waitpid(pid, 0)
        if not os.WIFSTOPPED(status):
            return status
        sig = os.WSTOPSIG(status)
        if status >> 8 == (5 | (PTRACE_EVENT_SECCOMP << 8)):
            msg = ctypes.c_ulong()
            libc.ptrace(PTRACE_GETEVENTMSG, pid, None, ctypes.byref(msg))
            messages.append(msg.value)
            sig = 0
        libc.ptrace(PTRACE_CONT, pid, None, ctypes.c_void_p(sig))


# --- audit records --------------------------------------------------------------------------

AUDIT_SECCOMP = 1326
NETLINK_AUDIT = 9
AUDIT_NLGRP_READLOG = 1
_RECORD = re.compile(r"pid=(\d+) .*?sig=(\d+) arch=([0-9a-f]+) syscall=(-?\d+) .*code=(0x[0-9a-f]+)")


@dataclass(frozen=True)
class AuditRecord:
    pid: int
    sig: int
    arch: int
    syscall: int
    code: int


class AuditReader:
    """Type-1326 records from the NETLINK_AUDIT multicast group (no printk rate limit)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)     # SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((0, 1 << (AUDIT_NLGRP_READLOG - 1)))
        self.records: dict[int, list[AuditRecord]] = {}
        self.overruns = 0

    def close(self) -> None:
        self.sock.close()

    def drain(self, timeout: float = 0.0) -> list[AuditRecord]:
        got = []
        while select.select([self.sock], [], [], timeout)[0]:
            timeout = 0.0
            try:
                data = self.sock.recv(1 << 16)
            except OSError as exc:
                if exc.errno == errno_mod.ENOBUFS:
                    self.overruns += 1
                    continue
                raise
            while len(data) >= 16:
                length, kind = struct.unpack_from("=IH", data)
                body = data[16:length].decode(errors="replace")
                if kind == AUDIT_SECCOMP:
                    m = _RECORD.search(body)
                    if m:
                        rec = AuditRecord(int(m.group(1)), int(m.group(2)), int(m.group(3), 16),
                                          int(m.group(4)), int(m.group(5), 16))
                        self.records.setdefault(rec.pid, []).append(rec)
                        got.append(rec)
                data = data[(length + 3) & ~3:] if length else b""
        return got

    def barrier(self, timeout: float = 10.0) -> None:
        """Return once every record of the probes run so far has arrived (a LOG probe's
        record, logged under the default actions_logged, comes after them)."""
        res = run_probe([(0, guarded(SECCOMP_RET_LOG))])
        deadline = time.monotonic() + timeout
        while res.pid not in self.records:
            if time.monotonic() > deadline:
                raise TimeoutError("the barrier's audit record never arrived (is 'log' missing "
                                   "from actions_logged, or audit disabled?)")
            self.drain(0.05)

    def of(self, pid: int) -> list[AuditRecord]:
        return self.records.get(pid, [])


def audit_unavailable_reason() -> str | None:
    try:
        reader = AuditReader()
    except OSError as exc:
        return f"cannot join the audit multicast group: {exc}"
    try:
        reader.barrier(timeout=5.0)
    except (TimeoutError, OSError) as exc:
        return str(exc)
    finally:
        reader.close()
    return None
