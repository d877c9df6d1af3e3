"""Kernel backend: the running Linux kernel accepts, refuses and evaluates programs (the oracle).

Two services, both through :mod:`bpfjit.backends.kernel_child` (a native
routine that installs filters in a throwaway ``CLONE_VM`` child task):

**Acceptance.** :func:`kernel_accepts` installs a program with
``seccomp(SECCOMP_SET_MODE_FILTER, 0, &fprog)`` after
``prctl(PR_SET_NO_NEW_PRIVS, 1)`` and returns 0 or the errno (EINVAL, ENOMEM,
and ENOTSUPP = 524 when the BPF JIT fails on a valid program, which x86-64
Linux 6.18 does for about 1 in 80,000 generated programs);
:func:`kernel_accepts_many` does it for many programs, one child each;
:func:`kernel_accepts_stack` installs several in order in one child (the
ENOMEM path budget). The programs are installed exactly as given.

**Evaluation** (``backend="kernel"``). The kernel runs a *rewritten* program
so that no system call of the child ever really executes. The filter is
installed by a worker thread of the child, which after the install makes no
system call but the inputs' ones, from one designated ``syscall``
instruction (``bpfjit_site`` in the native routine); the child's other
thread makes none at all. Instructions keep their places one for one, so
jumps keep their offsets:

- every ``ret #k`` becomes ``ret ERRNO(id)``, ids 1..2046 numbering the
  program's distinct return constants; a program with more than 2046 of them
  is run once per group of 2046, constants of other groups returning
  ``ERRNO(2047)`` (ERRNO data is capped at 4095);
- every ``ret a`` becomes ``ja`` to a 4-instruction tail returning
  ``ERRNO(2048 + ((A >> s) & 0x7ff))``; inputs that reach it run again with
  s = 11 and s = 22 to recover all 32 bits;
- ``div x`` is left alone: a division by zero makes the kernel return 0 from
  the program, SECCOMP_RET_KILL_THREAD, which kills the worker thread (no
  core dump: its process has another thread); the native routine observes
  the kill, records it as the value 0 for that input and carries on in a new
  child with the next input;
- ``ld [4]`` (arch) and ``ld [8]``/``ld [12]`` (instruction_pointer) become
  ``ld #value`` of the wanted input, so any arch and ip can be evaluated:
  inputs are grouped by the (arch, ip) words the program reads, one child
  per group and pass;
- ``nr`` and the six arguments are real: one system call per input from the
  designated site, nr in rax and the arguments in registers, in a native
  loop; the returned ``-data`` maps back to the exact 32-bit value.

What it observes: the program's 32-bit return value for any record on any
little-endian layout (only the byte order matters to ``ld [k]``, and arch/ip
are substituted, so x86_64, x86, x32, aarch64... layouts all work on an
x86_64 host). Exceptions, handled so the result is still the kernel's: on
x86_64 Linux >= 6.11 the system calls 335 (uretprobe) and 336 (uprobe) never
reach seccomp filters, so inputs with those nr are issued as nr 39 (getpid)
and the program's ``ld [0]`` is substituted by ``ld #335``/``#336``.
What it cannot do (BackendUnavailable): big-endian layouts; programs of more
than 4092 instructions that contain ``ret a`` (the tail would not fit in
4096); a rewritten program the BPF JIT refuses (ENOTSUPP, about 1 in 80,000
generated programs, as for the original). Not at all: hosts other than
x86_64 Linux, and processes already under seccomp (their filters would take
part in every result).

Stacks: ``bpfjit.Stack(programs, backend="kernel")`` runs each filter with the
kernel separately and combines the values with the kernel's rule
(``seccomp_run_filters``, in :mod:`bpfjit.stack`); the rewritten filters all
return ERRNO, so installing them together would only show the newest one.
The ENOMEM budget of a stack is checked by :func:`kernel_accepts_stack`.
"""
from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import sys
import threading
from collections.abc import Iterable, Sequence

import numpy as np

from .. import opcodes as op
from ..check import CheckedProgram
from ..errors import BackendUnavailable, BpfjitError
from ..program import Program
from ..seccomp.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO
from ..seccomp.layouts import Layout
from . import kernel_child

#: include/linux/errno.h ENOTSUPP (kernel-internal): with CONFIG_BPF_JIT_ALWAYS_ON, what
#: seccomp() returns for a program the BPF JIT fails to compile
ENOTSUPP = 524
#: how long a child may make no progress before it is killed and reported
TIMEOUT_MS = 20_000
#: x86_64 system calls that bypass seccomp (Linux >= 6.11), and the stand-in issued for them
BYPASS_NRS = (335, 336)
STAND_IN_NR = 39
#: ERRNO data in a pass: 1..GROUP_IDS number the ``ret #k`` constants of the pass's group,
#: OTHER_GROUP says "a constant of another group", RET_A_BASE + 11 bits is a ``ret a`` chunk
GROUP_IDS = 2046
OTHER_GROUP = 2047
RET_A_BASE = 2048
CHUNK_BITS = 11
SHIFTS = (0, 11, 22)
#: children installing programs at the same time in kernel_accepts_many. 1: a child that
#: has reported spins (it may make no system call) until killed, and measured on a 2-CPU
#: machine, 2 or 4 concurrent children starve the polling parent (10x slower, not faster)
WINDOW = 1

_SOCK_FILTER = np.dtype([("code", "<u2"), ("jt", "u1"), ("jf", "u1"), ("k", "<u4")])
_LD_ABS = op.BPF_LD | op.BPF_W | op.BPF_ABS
_LD_IMM = op.BPF_LD | op.BPF_IMM
_RET_K = op.BPF_RET | op.BPF_K
_RET_A = op.BPF_RET | op.BPF_A
_JA = op.BPF_JMP | op.BPF_JA


class KernelOracleError(BpfjitError, RuntimeError):
    """The kernel child failed in a way that says nothing about the program (crash, timeout)."""


# --------------------------------------------------------------------------- availability

_reason_lock = threading.Lock()
_reason: list[str | None] = []


def _seccomp_status() -> tuple[int | None, int | None]:
    mode = filters = None
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("Seccomp:"):
                mode = int(line.split()[1])
            elif line.startswith("Seccomp_filters:"):
                filters = int(line.split()[1])
    return mode, filters


def _probe() -> str | None:
    if sys.platform != "linux":
        return f"the kernel backend needs Linux (this is {sys.platform})"
    try:
        mode, filters = _seccomp_status()
    except OSError as exc:
        return f"cannot read /proc/self/status: {exc}"
    if mode is None:
        return "this kernel has no seccomp (no 'Seccomp:' line in /proc/self/status)"
    if mode != 0 or filters:
        return (f"this process is already under seccomp (mode {mode}, {filters} filters); "
                f"its filters would take part in every install and result")
    try:
        kernel_child.library()
    except OSError as exc:
        return str(exc)
    try:
        ok = _accept_many_raw([_ret(SECCOMP_RET_ALLOW)])[0]
        empty = _accept_many_raw([b""])[0]
    except KernelOracleError as exc:
        return f"installing a probe filter failed: {exc}"
    if ok != 0:
        return f"seccomp(SECCOMP_SET_MODE_FILTER) refused 'ret #ALLOW' with {_errname(ok)}"
    if empty != errno_mod.EINVAL:
        return f"seccomp() returned {_errname(empty)} for an empty program, expected EINVAL"
    return None


def kernel_unavailable_reason() -> str | None:
    """None when this kernel can install seccomp filters for us; else why not (cached)."""
    with _reason_lock:
        if not _reason:
            _reason.append(_probe())
        return _reason[0]


def _require() -> None:
    reason = kernel_unavailable_reason()
    if reason is not None:
        raise BackendUnavailable(f"the kernel backend is unavailable: {reason}")


def _errname(code: int) -> str:
    if code == ENOTSUPP:
        return "ENOTSUPP"
    return errno_mod.errorcode.get(code, str(code)) if code >= 0 else str(code)


def _ret(k: int) -> bytes:
    return np.array([(_RET_K, 0, 0, k)], dtype=_SOCK_FILTER).tobytes()


# --------------------------------------------------------------------------- acceptance

def _as_bytes(program: "bytes | bytearray | memoryview | Program", what: str) -> bytes:
    if isinstance(program, Program):
        return program.to_bytes(sys.byteorder)   # the kernel reads host byte order
    if not isinstance(program, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be sock_filter bytes or a Program, not "
                        f"{type(program).__name__}")
    data = bytes(program)
    if len(data) % 8:
        raise ValueError(f"{what}: {len(data)} bytes is not a whole number of 8-byte "
                         f"sock_filter instructions")
    if len(data) // 8 > 0xFFFF:
        raise ValueError(f"{what}: {len(data) // 8} instructions do not fit sock_fprog.len "
                         f"(an unsigned short); the kernel cannot even be asked")
    return data


def _describe_failure(code: int, detail: int) -> str:
    if code == -1:
        return f"clone() failed: {os.strerror(detail)}"
    if code == -2:
        if not detail:
            return "the child died before reporting"
        if os.WIFSIGNALED(detail):
            return f"the child died from signal {os.WTERMSIG(detail)} before reporting"
        return f"the child exited (status {detail:#x}) before reporting"
    if code == -3:
        return f"the child made no progress for {TIMEOUT_MS} ms and was killed"
    return f"native error {code}"


def _accept_many_raw(programs: list[bytes], window: int | None = None) -> list[int]:
    """0/errno per program; jobs that fail for reasons unrelated to the program are retried once."""
    lib = kernel_child.library()
    window = WINDOW if window is None else window
    results = np.zeros(len(programs), dtype=np.int32)
    detail = np.zeros(1, dtype=np.int32)
    todo = list(range(len(programs)))
    for attempt in range(2):
        chunk = [programs[i] for i in todo]
        lens = np.array([len(p) // 8 for p in chunk], dtype=np.uint32)
        buf = ctypes.create_string_buffer(b"".join(chunk), max(1, int(lens.sum()) * 8))
        out = np.zeros(len(chunk), dtype=np.int32)
        rc = lib.bpfjit_accept_many(buf, lens.ctypes.data, len(chunk), out.ctypes.data,
                                    TIMEOUT_MS, window, detail.ctypes.data)
        if rc < 0:
            raise KernelOracleError(f"cannot map a child stack: {os.strerror(int(detail[0]))}")
        results[todo] = out
        todo = [i for i in todo if results[i] < 0]
        if not todo:
            return results.tolist()
    i = todo[0]
    raise KernelOracleError(f"program {i}: {_describe_failure(int(results[i]), 0)} "
                            f"(twice; {len(todo)} programs failed)")


def kernel_accepts_many(programs: Iterable["bytes | Program"]) -> list[int]:
    """For each program (little-endian sock_filter bytes): 0 if seccomp() accepts it, else the errno."""
    _require()
    data = [_as_bytes(p, f"programs[{i}]") for i, p in enumerate(programs)]
    return _accept_many_raw(data) if data else []


def kernel_accepts(program: "bytes | Program") -> int:
    """0 if ``seccomp(SECCOMP_SET_MODE_FILTER, 0, &fprog)`` accepts ``program``, else the errno."""
    return kernel_accepts_many([program])[0]


def _flag_array(flags: "Sequence[int] | None", n: int) -> "np.ndarray | None":
    if flags is None:
        return None
    arr = np.array([int(f) for f in flags], dtype=np.uint32)
    if len(arr) != n:
        raise ValueError(f"{n} filters but {len(arr)} flag values")
    return arr


def _run(filters: Sequence[bytes], nrs: np.ndarray | None = None,
         args: np.ndarray | None = None, flags: "Sequence[int] | None" = None
         ) -> tuple[np.ndarray, int, int, int]:
    """One child: install ``filters`` in order (each with its ``flags``, default 0), then issue
    the inputs. Retries once."""
    lib = kernel_child.library()
    flag_arr = _flag_array(flags, len(filters))
    lens = np.array([len(f) // 8 for f in filters], dtype=np.uint32)
    buf = ctypes.create_string_buffer(b"".join(filters), max(1, int(lens.sum()) * 8))
    n = 0 if nrs is None else len(nrs)
    results = np.zeros(n, dtype=np.int64)
    nrs_c = np.ascontiguousarray(nrs, dtype=np.int32) if n else np.zeros(1, np.int32)
    args_c = np.ascontiguousarray(args, dtype=np.uint64) if n else np.zeros((1, 6), np.uint64)
    out = np.zeros(5, dtype=np.int32)
    for attempt in range(2):
        rc = lib.bpfjit_run_flags(buf, lens.ctypes.data,
                                  flag_arr.ctypes.data if flag_arr is not None else None,
                                  len(filters), nrs_c.ctypes.data, args_c.ctypes.data,
                                  results.ctypes.data if n else None, n, TIMEOUT_MS,
                                  out.ctypes.data)
        if rc == 0:
            return results, int(out[0]), int(out[1]), int(out[2])
    raise KernelOracleError(_describe_failure(rc, int(out[3])))


def kernel_accepts_stack(programs: Sequence["bytes | Program"]) -> int:
    """Install ``programs`` (oldest first) in one child: 0, or the errno of the first refused install.

    Every program but the last must let the child's next ``seccomp()`` call
    run (ALLOW or LOG for nr 317 from the native routine): an earlier filter
    that kills or fails it would be reported instead of the install's verdict.
    """
    _require()
    data = [_as_bytes(p, f"programs[{i}]") for i, p in enumerate(programs)]
    if not data:
        raise ValueError("kernel_accepts_stack needs at least one program")
    _, error, _failed_at, _installed = _run(data)
    return error


def kernel_stack_installs(programs: Sequence["bytes | Program"],
                          flags: "Sequence[int] | None" = None) -> tuple[int, int]:
    """(errno or 0, how many filters were installed) for :func:`kernel_accepts_stack`'s job;
    ``flags``: the SECCOMP_FILTER_FLAG_* bits of each install (default 0). A listener
    (NEW_LISTENER) stays open until the child ends."""
    _require()
    data = [_as_bytes(p, f"programs[{i}]") for i, p in enumerate(programs)]
    _, error, _failed_at, installed = _run(data, flags=flags)
    return error, installed


#: the raw result of an input whose filter killed the calling thread (KILL_THREAD), in
#: :func:`kernel_syscalls` and evaluation: the child carries on with the next input
KILLED = -(1 << 63)

#: system calls kernel_syscalls may let run for real: the child shares our memory, so only
#: calls that change nothing (getpid, getppid, getuid, gettid)
HARMLESS_NRS = frozenset({39, 110, 102, 186})


def site_address() -> int:
    """The instruction_pointer seccomp sees for system calls issued by :func:`kernel_syscalls`."""
    return int(kernel_child.library().bpfjit_site_address())


def kernel_syscalls(filters: Sequence["bytes | Program"], nrs: Sequence[int],
                    args: "np.ndarray | None" = None) -> tuple[np.ndarray, int]:
    """Install ``filters`` (oldest first) in one child, then issue each system call in ``nrs``.

    Returns (the raw return value of each call, 0 or the errno of a refused
    install). The calls come from :func:`site_address`; a filter that allows
    one really runs it in a task sharing our memory, so only the harmless
    calls in HARMLESS_NRS are accepted. For observing the kernel's own
    treatment of return values (precedence, ERRNO capping), not programs.
    """
    _require()
    bad = sorted({int(n) for n in nrs} - HARMLESS_NRS)
    if bad:
        raise ValueError(f"kernel_syscalls issues only harmless system calls "
                         f"({sorted(HARMLESS_NRS)}), not {bad}")
    data = [_as_bytes(p, f"filters[{i}]") for i, p in enumerate(filters)]
    nr_arr = np.asarray(nrs, dtype=np.int32)
    arg_arr = np.zeros((len(nr_arr), 6), dtype=np.uint64) if args is None else \
        np.ascontiguousarray(args, dtype=np.uint64).reshape(len(nr_arr), 6)
    raw, error, _, _ = _run(data, nr_arr, arg_arr)
    return raw, error


def kernel_syscall_outcome(filters: Sequence["bytes | Program"], nr: int,
                           args: Sequence[int] = (0,) * 6,
                           flags: "Sequence[int] | None" = None) -> tuple[str, int]:
    """Install ``filters`` (oldest first) in one child and issue one harmless system call.

    Returns what happened to the caller: ``("returned", raw value)``,
    ``("killed_thread", 0)`` (the filters' verdict killed the calling thread),
    ``("died", signal)`` (the whole child was killed: KILL_PROCESS, or a TRAP's
    SIGSYS, which every blocked signal turns into a kill), or ``("refused",
    errno)`` when an install failed. ``flags``: each filter's SECCOMP_FILTER_FLAG_* bits
    (default 0; a USER_NOTIF verdict of a filter with a listener would wait for it: the
    caller must not ask that). For checking the kernel's combination of stacked verdicts
    (:mod:`bpfjit.testing.stacks`).
    """
    _require()
    if nr not in HARMLESS_NRS:
        raise ValueError(f"kernel_syscall_outcome issues only harmless system calls "
                         f"({sorted(HARMLESS_NRS)}), not {nr}")
    data = [_as_bytes(p, f"filters[{i}]") for i, p in enumerate(filters)]
    lib = kernel_child.library()
    lens = np.array([len(f) // 8 for f in data], dtype=np.uint32)
    flag_arr = _flag_array(flags, len(data))
    buf = ctypes.create_string_buffer(b"".join(data), max(1, int(lens.sum()) * 8))
    nrs = np.array([nr], dtype=np.int32)
    arg = np.array([list(args)], dtype=np.uint64)
    raw = np.zeros(1, dtype=np.int64)
    out = np.zeros(5, dtype=np.int32)
    rc = lib.bpfjit_run_flags(buf, lens.ctypes.data,
                              flag_arr.ctypes.data if flag_arr is not None else None, len(data),
                              nrs.ctypes.data, arg.ctypes.data, raw.ctypes.data, 1, TIMEOUT_MS,
                              out.ctypes.data)
    if rc == -2 and os.WIFSIGNALED(int(out[3])):
        return "died", os.WTERMSIG(int(out[3]))
    if rc != 0:
        raise KernelOracleError(_describe_failure(rc, int(out[3])))
    if out[0]:
        return "refused", int(out[0])
    if raw[0] == KILLED:
        return "killed_thread", 0
    return "returned", int(raw[0])


# --------------------------------------------------------------------------- evaluation

_TAIL = -1                     # label of the ``ret a`` tail


class _Rewrite:
    """A checked program laid out for the kernel once; :meth:`build` patches in one pass's values.

    Instructions keep their places one for one (``ret #k`` -> ``ret
    ERRNO(id)``, ``ret a`` -> ``ja`` to the tail, ``ld [4]``/``[8]``/``[12]``
    -> ``ld #value``), so jumps keep their offsets; only the ``ret a`` tail
    is appended. Return constants are numbered in groups of ``GROUP_IDS``:
    in the pass for group g, a constant of another group returns
    ``ERRNO(OTHER_GROUP)``.
    """

    def __init__(self, program: CheckedProgram):
        insns = list(program)
        consts = sorted({i.k for i in insns if i.code == _RET_K})
        self.values = np.array(consts, dtype=np.uint64)           # constant index -> retval
        index = {k: i for i, k in enumerate(consts)}
        self.groups = max(1, -(-len(consts) // GROUP_IDS))
        self.has_ret_a = any(i.code == _RET_A for i in insns)
        tags = {4: "arch", 8: "ip_lo", 12: "ip_hi"}
        units: list = []
        ret_index: list[int] = []
        for pc, insn in enumerate(insns):
            units.append(pc)
            code, k = insn.code, insn.k
            if code == _RET_K:
                units.append((_RET_K, 0, None, None, "ret"))
                ret_index.append(index[k])
            elif code == _RET_A:
                units.append((_JA, 0, _TAIL))
            elif code == _LD_ABS and k in tags:
                units.append((_LD_IMM, 0, None, None, tags[k]))
            elif code == _LD_ABS and k == 0:
                units.append((_LD_ABS, 0, None, None, "nr"))
            elif code == _JA:
                units.append((_JA, 0, pc + 1 + k))
            elif code in op.CONDITIONAL_JUMPS:
                units.append((code, k, pc + 1 + insn.jt, pc + 1 + insn.jf))
            else:
                units.append((code, k))
        if self.has_ret_a:
            units += [_TAIL, (op.BPF_ALU | op.BPF_RSH | op.BPF_K, 0, None, None, "shift"),
                      (op.BPF_ALU | op.BPF_AND | op.BPF_K, (1 << CHUNK_BITS) - 1),
                      (op.BPF_ALU | op.BPF_OR | op.BPF_K, SECCOMP_RET_ERRNO | RET_A_BASE),
                      (_RET_A, 0)]
        self.template, self.slots = _lay_out(units)
        self.ret_index = np.array(ret_index, dtype=np.int64)
        if len(self.template) > op.BPF_MAXINSNS:
            raise BackendUnavailable(
                f"the program has {len(insns)} instructions and returns A; with the 4 "
                f"instructions that report A it would have {len(self.template)}, more than the "
                f"kernel's {op.BPF_MAXINSNS}")

    def reads(self, offset: int) -> bool:
        return len(self.slots[{0: "nr", 4: "arch", 8: "ip_lo", 12: "ip_hi"}[offset]]) > 0

    def build(self, arch: int, ip: int, nr: int | None, shift: int, group: int = 0) -> bytes:
        prog = self.template.copy()
        k = prog["k"]
        k[self.slots["arch"]] = arch
        k[self.slots["ip_lo"]] = ip & 0xFFFFFFFF
        k[self.slots["ip_hi"]] = ip >> 32
        k[self.slots["shift"]] = shift
        mine = self.ret_index // GROUP_IDS == group
        k[self.slots["ret"]] = SECCOMP_RET_ERRNO | np.where(
            mine, self.ret_index % GROUP_IDS + 1, OTHER_GROUP)
        if nr is not None:
            prog["code"][self.slots["nr"]] = _LD_IMM
            k[self.slots["nr"]] = nr & 0xFFFFFFFF
        return prog.tobytes()


def _lay_out(units: list) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels and ``(code, k[, jt_label, jf_label[, tag]])`` units -> sock_filter array, tag slots.

    For ``ja`` the third field is the target. A label of None means the next
    instruction. Jumps only go forward, so one backward pass sizes everything.
    """
    n = len(units)
    where = {u: i for i, u in enumerate(units) if not isinstance(u, tuple)}
    end = [0] * (n + 1)
    far = [False] * n
    for i in range(n - 1, -1, -1):
        u = units[i]
        size = 0
        if isinstance(u, tuple):
            size = 1
            if u[0] in op.CONDITIONAL_JUMPS:
                for label in u[2:4]:
                    if label is not None and end[i + 1] - end[where[label]] > 255:
                        far[i] = True
                        size = 3
        end[i] = end[i + 1] + size
    total = end[0]
    out = np.zeros(total, dtype=_SOCK_FILTER)
    slots: dict[str, list[int]] = {t: [] for t in ("nr", "arch", "ip_lo", "ip_hi", "shift",
                                                  "ret")}

    def dist(label, src: int, default: int = 0) -> int:
        return default if label is None else (total - end[where[label]]) - src - 1

    for i, u in enumerate(units):
        if not isinstance(u, tuple):
            continue
        at = total - end[i]
        code, k = u[0], u[1]
        if code == _JA:
            out[at] = (_JA, 0, 0, dist(u[2], at))
        elif code in op.CONDITIONAL_JUMPS and far[i]:
            out[at] = (code, 0, 1, k)
            out[at + 1] = (_JA, 0, 0, dist(u[2], at + 1, 1))
            out[at + 2] = (_JA, 0, 0, dist(u[3], at + 2, 0))
        elif code in op.CONDITIONAL_JUMPS:
            out[at] = (code, dist(u[2], at), dist(u[3], at), k)
        else:
            out[at] = (code, 0, 0, k)
            if len(u) == 5:
                slots[u[4]].append(at)
    return out, {t: np.array(v, dtype=np.int64) for t, v in slots.items()}


class KernelEvaluator:
    """Evaluates one checked program on record arrays with the running kernel."""

    releases_gil = False

    def __init__(self, program: CheckedProgram, layout: Layout):
        self.program = program
        self.layout = layout
        self._site = int(kernel_child.library().bpfjit_site_address())
        self._rw = _Rewrite(program)

    def describe(self) -> dict[str, str]:
        sample = Program.from_bytes(self._rw.build(self.layout.audit_arch, 0, None, 0))
        return {"rewritten": "\n".join(f"{i:4d}: {insn!r}" for i, insn in enumerate(sample)),
                "site": f"{self._site:#x}"}

    def _pass(self, records: np.ndarray, shift: int, group: int) -> np.ndarray:
        """ERRNO data (1..4095), or 0 where the kernel killed the thread; one child per group
        of (arch, ip, bypass-nr) and per killed input."""
        rw = self._rw
        n = len(records)
        nr = records["nr"].astype(np.int64)
        key = np.zeros((n, 4), dtype=np.int64)
        if rw.reads(4):
            key[:, 0] = records["arch"]
        ip = records["instruction_pointer"]
        if rw.reads(8):
            key[:, 1] = (ip & np.uint64(0xFFFFFFFF)).astype(np.int64)
        if rw.reads(12):
            key[:, 2] = (ip >> np.uint64(32)).astype(np.int64)
        bypass = np.isin(nr, BYPASS_NRS)
        key[:, 3] = np.where(bypass, nr, -1)
        groups, inverse = np.unique(key, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(groups) + 1))
        data = np.zeros(n, dtype=np.int64)
        issued = np.where(bypass, STAND_IN_NR, nr).astype(np.int32)
        args = records["args"]
        for g, (arch, ip_lo, ip_hi, bnr) in enumerate(groups.tolist()):
            idx = order[bounds[g]:bounds[g + 1]]
            prog = rw.build(arch, (ip_hi << 32) | ip_lo, None if bnr < 0 else bnr, shift, group)
            raw, error, _, _ = _run([prog], issued[idx], args[idx])
            if error == ENOTSUPP:
                raise BackendUnavailable(
                    "the kernel refused the rewritten program with ENOTSUPP: its BPF JIT failed "
                    "to compile it (CONFIG_BPF_JIT_ALWAYS_ON; see 'bpf_jit' in dmesg)")
            if error:
                raise KernelOracleError(f"the kernel refused the rewritten program "
                                        f"({_errname(error)}); this is a bug in the rewrite")
            data[idx] = np.where(raw == KILLED, 0, -raw)
        bad = (data < 0) | (data > 4095)
        if np.any(bad):
            i = int(np.nonzero(bad)[0][0])
            raise KernelOracleError(f"record {i}: the designated syscall returned {-data[i]}, "
                                    f"not -ERRNO(1..4095); the rewrite is broken")
        return data

    def evaluate_batch(self, records: np.ndarray, out: np.ndarray) -> None:
        """Pass 0 finds each record's return: a constant of group 0, another group's constant,
        ``ret a`` (then two more passes read A's upper bits) or the kill (a ``div x`` by 0:
        the program returned 0, SECCOMP_RET_KILL_THREAD)."""
        if len(records) == 0:
            return
        rw = self._rw
        result = np.zeros(len(records), dtype=np.uint64)
        todo = np.arange(len(records))
        first = data = self._pass(records, 0, 0)
        for group in range(rw.groups):
            if group:
                data = self._pass(np.ascontiguousarray(records[todo]), 0, group)
            const = (data >= 1) & (data <= GROUP_IDS)
            ids = data[const] - 1 + group * GROUP_IDS
            if np.any(ids >= len(rw.values)):
                raise KernelOracleError("the kernel returned an id no 'ret #k' of the program has")
            result[todo[const]] = rw.values[ids]
            todo = todo[data == OTHER_GROUP]
            if not len(todo):
                break
        if len(todo):
            raise KernelOracleError("a record returned a constant of no group of the program")
        via_a = np.nonzero(first >= RET_A_BASE)[0]
        if len(via_a):
            acc = (first[via_a] - RET_A_BASE).astype(np.uint64)
            sub = np.ascontiguousarray(records[via_a])
            for shift in SHIFTS[1:]:
                chunk = self._pass(sub, shift, 0)
                if np.any(chunk < RET_A_BASE):
                    raise KernelOracleError("a record took 'ret a' in one pass and another "
                                            "return in the next; the rewrite is not deterministic")
                acc |= (chunk - RET_A_BASE).astype(np.uint64) << np.uint64(shift)
            result[via_a] = acc
        out[:] = result.astype(np.uint32)


class KernelBackend:
    name = "kernel"

    def unavailable_reason(self) -> str | None:
        return kernel_unavailable_reason()

    def compile(self, program: CheckedProgram, layout: Layout) -> KernelEvaluator:
        _require()
        if layout.byteorder != "little":
            raise BackendUnavailable(
                f"the kernel backend evaluates little-endian layouts only on this x86_64 host; "
                f"{layout.name} is big-endian")
        return KernelEvaluator(program, layout)


BACKEND = KernelBackend()
