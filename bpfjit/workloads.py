"""Workloads (benchmark stage): the benchmark's filters and seeded ``SECCOMP_DATA`` record mixes.

Shared by ``bench/`` (pytest-benchmark) and ``bpfjit bench``. Every mix is a
pure function of ``(n, seed, arch)``: the same arguments give byte-identical
records on every machine (numpy's PCG64 ``default_rng``).

- :func:`realistic` — what a busy network server asks the kernel for: futex,
  epoll_wait, read/write, recvfrom/sendto, ... with server-like weights and
  plausible arguments (small fds, user-space pointers, page-sized lengths,
  ``AT_FDCWD``, ``MAP_PRIVATE|MAP_ANONYMOUS``...).
- :func:`uniform_nr` — ``nr`` uniform over the arch's whole syscall table.
- :func:`arg_dependent` — the calls whose verdict depends on their arguments
  in the Docker default profile: ``clone`` (flags masked with
  ``0x7e020000``), ``socket`` (domain < 38, == 39 or > 40), ``personality``
  (five allowed personas), and ``clone3`` (ENOSYS), with arguments around the
  profile's constants, high halves sometimes set.
- :func:`repeat` — one syscall ``n`` times (the kernel-cost comparison).

Arguments are what the kernel puts in ``seccomp_data.args``: 64-bit registers
on a 64-bit ABI (``-1`` is ``0xffffffffffffffff``), 32-bit values on a 32-bit
one. ``instruction_pointer`` is a plausible libc address.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .formats import load
from .program import Program
from .seccomp import syscalls
from .seccomp.layouts import Layout, layout
from .seccomp.records import SECCOMP_DATA

MIXES = ("realistic", "uniform_nr", "arg_dependent")

#: The benchmark matrix's filters: corpus names (``tests/corpus/real/filters``);
#: ``systemd-nspawn-252`` is the five-filter stack of one container payload.
BENCH_FILTERS = (
    "docker-default.x86_64",
    "docker-default.x86_64.opt",
    "podman-default.x86_64",
    "firecracker-vmm.x86_64",
    "chromium-156.renderer.x86_64",
    "systemd-nspawn-252",
)

MAX_RECORDS = 1 << 31

# --- argument generators: (rng, count, layout) -> uint64 array ---------------------------
Gen = Callable[[np.random.Generator, int, Layout], np.ndarray]


def _u(value: int) -> Gen:
    """A constant; negative values are two's complement of the ABI's register width."""
    def gen(rng, count, lay):
        return np.full(count, value & _mask(lay), dtype=np.uint64)
    return gen


def _one_of(*values: int, p: Sequence[float] | None = None) -> Gen:
    def gen(rng, count, lay):
        arr = np.array([v & _mask(lay) for v in values], dtype=np.uint64)
        return arr[rng.choice(len(arr), size=count, p=p)]
    return gen


def _range(lo: int, hi: int) -> Gen:
    """Uniform in [lo, hi)."""
    def gen(rng, count, lay):
        return rng.integers(lo, hi, size=count, dtype=np.uint64)
    return gen


def _mask(lay: Layout) -> int:
    return 0xFFFFFFFF if lay.bits == 32 or lay.name == "x32" else 0xFFFFFFFFFFFFFFFF


def _ptr(rng, count, lay):
    """A user-space pointer: heap/stack/mmap region, 16-byte aligned."""
    if _mask(lay) == 0xFFFFFFFF:
        base, span = 0x08000000, 0xF0000000 - 0x08000000
    else:
        base, span = 0x55D0_0000_0000, 0x7FFF_0000_0000 - 0x55D0_0000_0000
    return (np.uint64(base) + rng.integers(0, span, size=count, dtype=np.uint64)) \
        & np.uint64(~15 & 0xFFFFFFFFFFFFFFFF)


_FD = _range(3, 1024)
_FD_LOW = _range(0, 64)
_SIZE = _one_of(1, 8, 64, 512, 4096, 8192, 16384, 65536, p=(.05, .1, .1, .1, .35, .1, .1, .1))
_ZERO = _u(0)
_MSG_FLAGS = _one_of(0, 0x40, 0x4000, 0x4040, p=(.5, .3, .1, .1))   # MSG_DONTWAIT, MSG_NOSIGNAL
_TIMEOUT_MS = _one_of(-1, 0, 10, 100, 1000, 5000, p=(.4, .2, .1, .1, .1, .1))
_NO_ARGS: tuple[Gen, ...] = ()

# (alternative names, first that the ABI has wins), weight, argument generators
_REALISTIC: tuple[tuple[tuple[str, ...], float, tuple[Gen, ...]], ...] = (
    (("futex",), 14.0, (_ptr, _one_of(128, 129, 137, 0x8a, p=(.45, .45, .05, .05)),
                        _one_of(0, 1, 2, 0x7fffffff), _ZERO, _ZERO, _one_of(0, 0xffffffff))),
    (("epoll_wait", "epoll_pwait"), 10.0, (_FD_LOW, _ptr, _one_of(64, 128, 512, 1024),
                                          _TIMEOUT_MS, _ZERO, _ZERO)),
    (("read",), 12.0, (_FD, _ptr, _SIZE)),
    (("write",), 9.0, (_FD, _ptr, _SIZE)),
    (("recvfrom",), 7.0, (_FD, _ptr, _SIZE, _MSG_FLAGS, _ZERO, _ZERO)),
    (("sendto",), 6.0, (_FD, _ptr, _SIZE, _MSG_FLAGS, _ZERO, _ZERO)),
    (("recvmsg",), 3.0, (_FD, _ptr, _MSG_FLAGS)),
    (("sendmsg",), 3.0, (_FD, _ptr, _MSG_FLAGS)),
    (("writev",), 2.0, (_FD, _ptr, _range(1, 16))),
    (("epoll_ctl",), 2.0, (_FD_LOW, _one_of(1, 2, 3), _FD, _ptr)),
    (("accept4",), 1.0, (_FD_LOW, _ptr, _ptr, _one_of(0x800, 0x80800))),
    (("mmap", "mmap2"), 3.0, (_ZERO, _one_of(4096, 65536, 1 << 20, 8 << 20),
                              _one_of(3, 1, 0), _one_of(0x22, 0x2, 0x4022), _one_of(-1, 5, 7),
                              _ZERO)),
    (("munmap",), 2.0, (_ptr, _one_of(4096, 65536, 1 << 20, 8 << 20))),
    (("madvise",), 1.0, (_ptr, _one_of(4096, 1 << 20), _one_of(4, 8, 14))),
    (("brk",), 1.0, (_ptr,)),
    (("close",), 4.0, (_FD,)),
    (("openat",), 3.0, (_u(-100), _ptr, _one_of(0x80000, 0x80002, 0x80241, 0x90800),
                        _one_of(0, 0o644, 0o600))),
    (("fstat", "fstat64"), 2.0, (_FD, _ptr)),
    (("newfstatat", "fstatat64"), 2.0, (_one_of(-100, 3, 5, 7), _ptr, _ptr,
                                        _one_of(0, 0x100, 0x1000))),
    (("clock_gettime", "clock_gettime64"), 4.0, (_one_of(0, 1, 4, 7), _ptr)),
    (("poll", "ppoll"), 2.0, (_ptr, _range(1, 64), _TIMEOUT_MS)),
    (("ioctl",), 2.0, (_FD_LOW, _one_of(0x541B, 0x5401, 0x5421, 0x5413), _ptr)),
    (("lseek", "_llseek"), 2.0, (_FD, _range(0, 1 << 30), _one_of(0, 1, 2))),
    (("pread64",), 2.0, (_FD, _ptr, _SIZE, _range(0, 1 << 32))),
    (("getpid",), 1.0, _NO_ARGS),
    (("rt_sigprocmask",), 1.0, (_one_of(0, 1, 2), _ptr, _ptr, _u(8))),
    (("nanosleep", "clock_nanosleep"), 1.0, (_ptr, _ZERO)),
    (("fcntl", "fcntl64"), 1.0, (_FD, _one_of(1, 2, 3, 4), _one_of(0, 1, 0x800))),
    (("getrandom",), 0.5, (_ptr, _one_of(16, 32), _ZERO)),
    (("sched_yield",), 0.5, _NO_ARGS),
)


def _ip(rng: np.random.Generator, count: int, lay: Layout, base_shift: int) -> np.ndarray:
    """``instruction_pointer``: libc's text (one region per mix) plus a small offset."""
    base = 0xF7D0_0000 if _mask(lay) == 0xFFFFFFFF else 0x7F3A_C2E0_0000
    return np.uint64(base + base_shift) + rng.integers(0, 1 << 20, size=count, dtype=np.uint64)


def _records(n: int, arch: "str | Layout") -> tuple[np.ndarray, Layout]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < MAX_RECORDS:
        raise ValueError(f"n must be an int in 0..{MAX_RECORDS - 1}, not {n!r}")
    lay = layout(arch)
    recs = np.zeros(int(n), dtype=SECCOMP_DATA)
    recs["arch"] = lay.audit_arch
    return recs, lay


def _first_present(abi: str, names: Sequence[str]) -> int | None:
    tbl = syscalls.table(abi)
    for name in names:
        if name in tbl:
            return tbl[name]
    return None


def _fill(recs: np.ndarray, lay: Layout, rng: np.random.Generator,
          spec: Sequence[tuple[tuple[str, ...], float, tuple[Gen, ...]]]) -> None:
    """Draw one syscall per record from ``spec``'s weights, then its arguments."""
    rows = [(nr, w, gens) for names, w, gens in spec
            if (nr := _first_present(lay.syscall_abi, names)) is not None]
    if not rows:
        raise ValueError(f"{lay.name}: none of the mix's syscalls exists on this ABI")
    weights = np.array([w for _, w, _ in rows], dtype=np.float64)
    which = rng.choice(len(rows), size=len(recs), p=weights / weights.sum())
    nr_col = np.array([nr for nr, _, _ in rows], dtype=np.int64)
    recs["nr"] = (nr_col[which] & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
    args = recs["args"]
    for j, (_, _, gens) in enumerate(rows):
        idx = np.flatnonzero(which == j)
        if not len(idx):
            continue
        for a, gen in enumerate(gens):
            args[idx, a] = gen(rng, len(idx), lay)


def realistic(n: int, seed: int = 0, arch: "str | Layout" = "x86_64") -> np.ndarray:
    """``n`` records of a server-like syscall mix (futex, epoll_wait, read, write, ...)."""
    recs, lay = _records(n, arch)
    rng = np.random.default_rng([seed, 1])
    _fill(recs, lay, rng, _REALISTIC)
    recs["instruction_pointer"] = _ip(rng, len(recs), lay, 0)
    return recs


def uniform_nr(n: int, seed: int = 0, arch: "str | Layout" = "x86_64") -> np.ndarray:
    """``n`` records with ``nr`` uniform over every number in the arch's syscall table.

    Each argument is 0 (1/4), a small int below 256 (1/4), a pointer (1/4) or
    64 random bits (1/4) — the ABI's register width on a 32-bit ABI.
    """
    recs, lay = _records(n, arch)
    rng = np.random.default_rng([seed, 2])
    numbers = np.array(sorted(set(syscalls.table(lay.syscall_abi).values())), dtype=np.int64)
    recs["nr"] = (numbers[rng.integers(0, len(numbers), size=len(recs))]
                  & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
    count = len(recs) * 6
    kind = rng.integers(0, 4, size=count)
    vals = np.zeros(count, dtype=np.uint64)
    small = kind == 1
    vals[small] = rng.integers(0, 256, size=int(small.sum()), dtype=np.uint64)
    ptr = kind == 2
    vals[ptr] = _ptr(rng, int(ptr.sum()), lay)
    rand = kind == 3
    vals[rand] = rng.integers(0, 1 << 64, size=int(rand.sum()), dtype=np.uint64,
                              endpoint=False) & np.uint64(_mask(lay))
    recs["args"] = vals.reshape(len(recs), 6)
    recs["instruction_pointer"] = _ip(rng, len(recs), lay, 0x100000)
    return recs


# Docker default profile (moby/profiles seccomp/default.json) argument rules
CLONE_NS_MASK = 0x7E020000          # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
SOCKET_DOMAIN_REFUSED = (38, 40)    # allowed: < 38, == 39, > 40

_CLONE_FLAGS = (
    0x003D0F00,   # pthread_create: VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT/CHILD_*
    0x01200011,   # fork(): CHILD_SETTID|CHILD_CLEARTID|SIGCHLD
    0x00004111,   # posix_spawn: VM|VFORK|SIGCHLD
    0x00020011,   # + CLONE_NEWNS
    0x10000011,   # + CLONE_NEWUSER
    0x40000011,   # + CLONE_NEWNET
    0x20000011,   # + CLONE_NEWPID
    0x04000011,   # + CLONE_NEWUTS
    0x08000011,   # + CLONE_NEWIPC
    0x02000011,   # + CLONE_NEWCGROUP
    0x7E020011,   # all of the above
    0x80000011,   # CLONE_IO (outside the mask)
)


def _near(values: Sequence[int], spread: int) -> Gen:
    """One of ``values`` plus an offset in [-spread, spread], 32-bit, high half set 1 in 16."""
    base = np.array(values, dtype=np.int64)

    def gen(rng, count, lay):
        v = base[rng.integers(0, len(base), size=count)] + rng.integers(-spread, spread + 1,
                                                                         size=count)
        out = (v & 0xFFFFFFFF).astype(np.uint64)
        if _mask(lay) != 0xFFFFFFFF:
            hi = rng.integers(0, 16, size=count) == 0
            out[hi] |= rng.integers(1, 1 << 32, size=int(hi.sum()), dtype=np.uint64) << \
                np.uint64(32)
        return out
    return gen


def _clone_flags(rng, count, lay):
    flags = np.array(_CLONE_FLAGS, dtype=np.uint64)
    out = flags[rng.integers(0, len(flags), size=count)]
    if _mask(lay) != 0xFFFFFFFF:
        hi = rng.integers(0, 16, size=count) == 0
        out[hi] |= np.uint64(1 << 32)
    return out


def arg_dependent(n: int, seed: int = 0, arch: "str | Layout" = "x86_64") -> np.ndarray:
    """``n`` records of the Docker profile's argument-dependent calls, args near its constants.

    clone 35 % (flags in args[0], args[1] on s390/s390x), socket 35 % (domain
    around 38..40), personality 25 % (around the five allowed values), clone3 5 %.
    """
    lay = layout(arch)
    flags_first = lay.name not in ("s390", "s390x")
    clone_args = (_clone_flags, _ptr) if flags_first else (_ptr, _clone_flags)
    spec = (
        (("clone",), 35.0, clone_args + (_ptr, _ptr, _ptr)),
        (("socket",), 35.0, (_near((1, 2, 10, 16, 17, 37, 38, 39, 40, 41, 44), 1),
                             _one_of(1, 2, 3, 0x80001, 0x80801), _one_of(0, 6, 17))),
        (("personality",), 25.0, (_near(PERSONALITIES + (0x40000, 0x400000), 1),)),
        (("clone3",), 5.0, (_ptr, _one_of(64, 88))),
    )
    recs, lay = _records(n, lay)
    rng = np.random.default_rng([seed, 3])
    _fill(recs, lay, rng, spec)
    recs["instruction_pointer"] = _ip(rng, len(recs), lay, 0x200000)
    return recs


def repeat(name: str, n: int, arch: "str | Layout" = "x86_64",
           args: Sequence[int] = ()) -> np.ndarray:
    """``n`` identical records of syscall ``name`` (e.g. the kernel baseline's ``getppid``)."""
    recs, lay = _records(n, arch)
    recs["nr"] = np.uint32(syscalls.number(lay.syscall_abi, name) & 0xFFFFFFFF).view(np.int32)
    if args:
        recs["args"][:, :len(args)] = [a & 0xFFFFFFFFFFFFFFFF for a in args]
    recs["instruction_pointer"] = 0xF7D0_1234 if _mask(lay) == 0xFFFFFFFF else 0x7F3A_C2E0_1234
    return recs


MIX_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "realistic": realistic, "uniform_nr": uniform_nr, "arg_dependent": arg_dependent,
}


def mix(name: str, n: int, seed: int = 0, arch: "str | Layout" = "x86_64") -> np.ndarray:
    """The record mix called ``name`` (one of :data:`MIXES`)."""
    try:
        fn = MIX_FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown record mix {name!r}; choose from {', '.join(MIXES)}") from None
    return fn(n, seed, arch)


# --- the corpus filters ------------------------------------------------------------------
def corpus_dir() -> Path | None:
    """``tests/corpus/real/filters`` of a source checkout (or ``$BPFJIT_CORPUS``), if present."""
    env = os.environ.get("BPFJIT_CORPUS")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parent.parent / "tests" / "corpus" / "real"
                      / "filters")
    for path in candidates:
        if path.is_dir():
            return path
    return None


def corpus_filter(spec: str) -> tuple[list[Program], str]:
    """(programs oldest first, native arch) for a corpus name, a stack name or a file path.

    A stack name (``systemd-nspawn-252``) is the prefix of corpus files whose
    provenance JSON has a ``stack`` entry. Its ``index`` is the
    PTRACE_SECCOMP_GET_FILTER number, and the kernel's ``get_nth_filter``
    numbers from the first installed filter: index 0 is the OLDEST (measured
    here, see :mod:`bpfjit.formats.live`; the JSON's ``index_order`` text
    says the opposite and is wrong).
    A path is one filter file (raw, asm, C or hex), native arch x86_64 unless
    a ``.json`` beside it says otherwise.
    """
    path = Path(spec)
    if path.suffix == ".bpf" or os.sep in spec or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"no such filter file: {spec}")
        return [load(path)], _native_arch(path.with_suffix(".json"))
    root = corpus_dir()
    if root is None:
        raise FileNotFoundError(f"filter {spec!r}: no corpus directory (tests/corpus/real/filters "
                                f"of a source checkout, or set BPFJIT_CORPUS); pass a file path")
    single = root / f"{spec}.bpf"
    if single.is_file():
        return [load(single)], _native_arch(single.with_suffix(".json"))
    members = []
    for meta_path in sorted(root.glob(f"{spec}.*.json")):
        meta = json.loads(meta_path.read_text())
        if meta.get("stack"):
            members.append((meta["stack"]["index"], meta_path))
    if not members:
        known = sorted(p.stem for p in root.glob("*.bpf"))
        raise FileNotFoundError(f"filter {spec!r} is neither a corpus filter nor a stack in "
                                f"{root}; known: {', '.join(known)}")
    members.sort()                                              # index 0 = oldest: first
    programs = [load(p.with_suffix(".bpf")) for _, p in members]
    meta = json.loads(members[0][1].read_text())
    return programs, meta.get("native_arch") or "x86_64"


def _native_arch(meta_path: Path) -> str:
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        arches = meta.get("arches_in_filter") or []
        if len(arches) == 1:
            return arches[0]
        return meta.get("native_arch") or "x86_64"
    return "x86_64"


def compile_subject(programs: Sequence[Program], backend: str, arch: "str | Layout"):
    """A :class:`~bpfjit.Filter` for one program, a :class:`~bpfjit.Stack` (oldest first) for more."""
    from .filter import compile
    from .stack import Stack
    if len(programs) == 1:
        return compile(programs[0], backend=backend, arch=arch)
    return Stack(list(programs), backend=backend, arch=arch)
