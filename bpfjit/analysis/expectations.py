"""Analysis: policy expectations (``clone(flags=CLONE_NEWUSER) -> ERRNO(EPERM)``), proven.

An expectation names calls and what the filter must do to them::

    EXPECTATION := CALL ["on" ABI] "->" ["not"] ACTION
    CALL        := "*" | SYSCALL ["(" ARG ("," ARG)* ")"]
    ARG         := [NAME "="] VALUE          NAME: argN or the syscall's argument name
    VALUE       := "*" | TERM ("|" TERM)*    TERM: a number or a constant (AT_FDCWD, O_RDONLY...)
    ABI         := an ABI of the filter's family (x86_64, x32, x86...) or "*" (all of them)
    ACTION      := ALLOW | ERRNO | ERRNO(EPERM) | ERRNO(1) | KILL_PROCESS | TRAP | LOG ...

Wildcards (``*`` for the syscall, an argument, every argument not written,
the instruction pointer) are expanded *exactly*: for every (ABI, nr) named,
each region of :meth:`Semantics.verdict <.semantics.Semantics.verdict>` that
meets the expectation's inputs is checked, so "-> ALLOW" means every such
input is allowed, proven. An action without data (``ERRNO``) matches any data;
``not ACTION`` means no input gets it. On a 32-bit ABI values are passed as
32-bit registers (zero-extended), as the kernel does.

Public API: :func:`parse` (text -> :class:`Expectation`, errors name the
column), :func:`check` -> list of :class:`Counterexample` (each re-run on
the reference interpreter).
"""
from __future__ import annotations

import errno as _errno
import re
from dataclasses import dataclass

import bpfjit_reference as reference

from ..errors import BpfjitError
from ..seccomp import layouts, syscalls
from ..seccomp.actions import ACTION_VALUES, Action
from ..seccomp.layouts import Layout
from . import conditions as cd
from .compare import compat_words, family, record_of
from .conditions import U32, WordSet
from .semantics import ARCH, NR, Semantics, conjunction_witness

U64 = (1 << 64) - 1

#: constants an argument may be written with (Linux asm-generic / x86 values)
CONSTANTS = {
    "AT_FDCWD": -100, "AT_SYMLINK_NOFOLLOW": 0x100, "AT_EMPTY_PATH": 0x1000,
    "O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2, "O_CREAT": 0o100, "O_EXCL": 0o200,
    "O_NOCTTY": 0o400, "O_TRUNC": 0o1000, "O_APPEND": 0o2000, "O_NONBLOCK": 0o4000,
    "O_DIRECTORY": 0o200000, "O_NOFOLLOW": 0o400000, "O_CLOEXEC": 0o2000000,
    "O_PATH": 0o10000000, "O_TMPFILE": 0o20200000,
    "CLONE_VM": 0x100, "CLONE_FS": 0x200, "CLONE_FILES": 0x400, "CLONE_SIGHAND": 0x800,
    "CLONE_PIDFD": 0x1000, "CLONE_PTRACE": 0x2000, "CLONE_VFORK": 0x4000,
    "CLONE_PARENT": 0x8000, "CLONE_THREAD": 0x10000, "CLONE_NEWNS": 0x20000,
    "CLONE_SYSVSEM": 0x40000, "CLONE_SETTLS": 0x80000, "CLONE_PARENT_SETTID": 0x100000,
    "CLONE_CHILD_CLEARTID": 0x200000, "CLONE_UNTRACED": 0x800000,
    "CLONE_CHILD_SETTID": 0x1000000, "CLONE_NEWCGROUP": 0x2000000, "CLONE_NEWUTS": 0x4000000,
    "CLONE_NEWIPC": 0x8000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000, "CLONE_IO": 0x80000000, "SIGCHLD": 17,
    "AF_UNSPEC": 0, "AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10,
    "AF_NETLINK": 16, "AF_PACKET": 17, "AF_VSOCK": 40,
    "SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_RAW": 3, "SOCK_SEQPACKET": 5,
    "SOCK_NONBLOCK": 0o4000, "SOCK_CLOEXEC": 0o2000000,
    "PROT_NONE": 0, "PROT_READ": 1, "PROT_WRITE": 2, "PROT_EXEC": 4,
    "MAP_SHARED": 1, "MAP_PRIVATE": 2, "MAP_FIXED": 0x10, "MAP_ANONYMOUS": 0x20,
    "PER_LINUX": 0, "ADDR_NO_RANDOMIZE": 0x40000, "UNAME26": 0x20000,
}

#: argument names for the keyword form (kernel prototypes; x86_64 order for clone)
ARG_NAMES = {
    "clone": ("flags", "newsp", "parent_tid", "child_tid", "tls"),
    "clone3": ("uargs", "size"), "unshare": ("flags",), "setns": ("fd", "nstype"),
    "open": ("filename", "flags", "mode"), "openat": ("dirfd", "filename", "flags", "mode"),
    "openat2": ("dirfd", "filename", "how", "size"),
    "socket": ("domain", "type", "protocol"), "socketpair": ("domain", "type", "protocol", "sv"),
    "ioctl": ("fd", "cmd", "arg"), "personality": ("persona",),
    "mmap": ("addr", "len", "prot", "flags", "fd", "off"), "mprotect": ("addr", "len", "prot"),
    "prctl": ("option", "arg2", "arg3", "arg4", "arg5"), "kill": ("pid", "sig"),
    "ptrace": ("request", "pid", "addr", "data"), "read": ("fd", "buf", "count"),
    "write": ("fd", "buf", "count"), "close": ("fd",), "fcntl": ("fd", "cmd", "arg"),
}


class ExpectationError(BpfjitError, ValueError):
    """An expectation that cannot be read; ``column`` is 1-based (0 when unknown)."""

    def __init__(self, message: str, column: int = 0):
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Expectation:
    text: str
    syscall: str | None            # None: every syscall of the ABI
    args: tuple                    # 6 entries: None (any) or a u64 value
    abi: str | None                # None: the default ABI; "*": the whole family
    action: int                    # the action value (SECCOMP_RET_*), data included if given
    with_data: bool                # compare the 16 data bits too
    negated: bool


@dataclass(frozen=True)
class Counterexample:
    expectation: Expectation
    abi: str
    nr: int
    name: str | None
    record: tuple                  # (nr, arch, instruction_pointer, args)
    retval: int


_LINE = re.compile(r"^\s*(?P<call>\*|[A-Za-z_][A-Za-z0-9_]*(?:\s*\((?P<args>[^)]*)\))?)"
                   r"(?:\s+on\s+(?P<abi>\*|[A-Za-z0-9_]+))?\s*->\s*(?P<neg>not\s+)?"
                   r"(?P<action>\S.*?)\s*$")


def _value(text: str, col: int) -> int | None:
    t = text.strip()
    if t == "*":
        return None
    total = 0
    for term in t.split("|"):
        term = term.strip()
        if term in CONSTANTS:
            v = CONSTANTS[term]
        else:
            try:
                v = int(term, 0)
            except ValueError:
                raise ExpectationError(f"argument {text.strip()!r}: {term!r} is neither a "
                                       f"number nor a known constant", col) from None
        if not -(1 << 63) <= v <= U64:
            raise ExpectationError(f"argument {text.strip()!r} does not fit 64 bits", col)
        total |= v & U64
    return total


def _action(text: str, col: int) -> tuple[int, bool]:
    m = re.fullmatch(r"([A-Za-z_]+)\s*(?:\(\s*([A-Za-z0-9_]+)\s*\))?", text.strip())
    if m and m.group(1).upper() in ACTION_VALUES:
        base = ACTION_VALUES[m.group(1).upper()]
        if m.group(2) is None:
            return base, False
        data = m.group(2)
        code = getattr(_errno, data, None) if data.isidentifier() else None
        if code is None:
            try:
                code = int(data, 0)
            except ValueError:
                raise ExpectationError(f"unknown errno or data {data!r}", col) from None
        if not 0 <= code <= 0xFFFF:
            raise ExpectationError(f"action data {code} is outside 0..65535", col)
        return base | code, True
    try:
        return Action.parse(text).value, True
    except ValueError as exc:
        raise ExpectationError(str(exc), col) from None


def parse(text: str) -> Expectation:
    """One expectation; ExpectationError names what is wrong."""
    m = _LINE.match(text)
    if not m:
        raise ExpectationError(f"expected 'SYSCALL(ARGS) [on ABI] -> [not] ACTION', "
                               f"got {text.strip()!r}", 1)
    call = m.group("call")
    name = None if call == "*" else call.split("(")[0].strip()
    args: list = [None] * 6
    if m.group("args") is not None and m.group("args").strip():
        col = m.start("args") + 1
        pos = 0
        for i, part in enumerate(m.group("args").split(",")):
            if "=" in part:
                key, value = (s.strip() for s in part.split("=", 1))
                km = re.fullmatch(r"arg([0-5])", key)
                if km:
                    index = int(km.group(1))
                elif key in ARG_NAMES.get(name or "", ()):
                    index = ARG_NAMES[name].index(key)
                else:
                    known = ", ".join(ARG_NAMES.get(name or "", ())) or "none known"
                    raise ExpectationError(f"{name}: unknown argument name {key!r} (use arg0.."
                                           f"arg5; names: {known})", col)
            else:
                index, value = pos, part
            if index > 5:
                raise ExpectationError(f"{name}: a system call has at most 6 arguments", col)
            args[index] = _value(value, col)
            pos = index + 1
    action, with_data = _action(m.group("action"), m.start("action") + 1)
    return Expectation(text.strip(), name, tuple(args), m.group("abi"), action, with_data,
                       bool(m.group("neg")))


def _targets(exp: Expectation, layout: Layout, default_abi: str | None) -> list:
    members = family(layout)
    if exp.abi == "*":
        abis = members
    else:
        wanted = exp.abi or default_abi or layout.name
        try:
            abi = layouts.layout(wanted)
        except BpfjitError as exc:
            raise ExpectationError(str(exc)) from None
        if abi.name not in {x.name for x in members}:
            raise ExpectationError(f"ABI {abi.name} does not run on a {layout.name} filter "
                                   f"(its ABIs: {', '.join(x.name for x in members)})")
        abis = [abi]
    out = []
    for abi in abis:
        if exp.syscall is None:
            numbers = sorted(set(syscalls.table(abi.syscall_abi).values()))
        else:
            try:
                numbers = [syscalls.number(abi.syscall_abi, exp.syscall)]
            except BpfjitError as exc:
                if exp.abi == "*":
                    continue                      # not a syscall of this member of the family
                raise ExpectationError(str(exc)) from None
        out.extend((abi, nr) for nr in numbers)
    if not out:
        raise ExpectationError(f"{exp.syscall}: no such syscall on any ABI of {layout.name}")
    return out


def _violation(exp: Expectation):
    """(jop, mask, value): the result r violates the expectation when (r & mask) == value is
    ``exp.negated``."""
    mask = U32 if exp.with_data else 0xFFFF0000
    return mask, exp.action & mask


def check(sem: Semantics, exp: Expectation, default_abi: str | None = None) -> list:
    """Counterexamples to ``exp`` (one per (ABI, nr) at most); empty when it always holds."""
    from .. import opcodes as op
    layout = sem.layout
    mask, want = _violation(exp)
    insns = [tuple(i) for i in sem.program]
    out = []
    for abi, nr in _targets(exp, layout, default_abi):
        word = nr & U32
        v = sem.verdict(abi.audit_arch, word)
        if not v.complete:
            raise ExpectationError(f"{exp.syscall or nr} on {abi.name}: the filter has too many "
                                   f"paths to prove this")
        limit = U32 if abi.bits == 32 else U64
        inputs: dict[int, WordSet] = {}
        for i, value in enumerate(exp.args):
            if value is not None:
                if value > limit and value < (U64 ^ 0x7FFFFFFF):
                    raise ExpectationError(f"argument {i} = {value:#x} is impossible on "
                                           f"{abi.name}: its arguments are 32-bit registers")
                value &= limit
                lo = layout.word_offset("args", i, "lo") // 4
                inputs[lo] = WordSet(mask=U32, value=value & U32)
                inputs[lo ^ 1] = WordSet(mask=U32, value=value >> 32)
        compat = compat_words(abi, layout)
        for region in v.regions:
            words = dict(region.words)
            for extra in (inputs, compat.words if compat else {}):
                for i, s in extra.items():
                    t = words[i].intersect(s) if i in words else s
                    if t is None:
                        words = None
                        break
                    words[i] = t
                if words is None:
                    break
            if words is None:
                continue
            r = region.result
            opaque = region.opaque
            if isinstance(r, int):
                if ((r & mask) == want) != exp.negated:
                    continue
            else:
                opaque = opaque + ((op.BPF_JEQ, cd.fold(op.BPF_AND, r, mask), want,
                                    exp.negated),)
            found = conjunction_witness(words, opaque, prefer={i: 0 for i in range(16)})
            if found is None:
                raise ExpectationError(f"{exp.text}: the solver gave up on {abi.name} nr {nr}")
            if found is False:
                continue
            found = {**found, NR: word, ARCH: abi.audit_arch}
            rec = record_of(found, layout)
            got = reference.run_seccomp(insns, *rec, layout.byteorder)
            if ((got & mask) == want) != exp.negated:
                raise AssertionError(f"internal error: counterexample {rec} does not reproduce")
            out.append(Counterexample(exp, abi.name, nr, syscalls.name(abi.syscall_abi, nr),
                                      rec, got))
            break
    return out



def load(source: str, text: str | None = None) -> tuple[list, str | None]:
    """``[(line number, Expectation)]`` and the default ABI from an expectations file.

    ``*.toml``: a table with ``expect = ["...", ...]`` and optionally ``arch = "x86_64"``
    (the ABI of lines without ``on``). Any other name: one expectation per line, ``#``
    comments, and an optional ``arch: x86_64`` line. Errors name the file and line.
    """
    import tomllib
    if text is None:
        try:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ExpectationError(f"{source}: cannot read: {exc}") from None
    lines = text.splitlines()
    out = []
    if source.endswith(".toml"):
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ExpectationError(f"{source}: {exc}") from None
        items = doc.get("expect")
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise ExpectationError(f"{source}: needs 'expect = [\"SYSCALL -> ACTION\", ...]'")
        unknown = set(doc) - {"expect", "arch"}
        if unknown:
            raise ExpectationError(f"{source}: unknown keys {sorted(unknown)} (expect, arch)")
        default = doc.get("arch")
        at = 0
        for item in items:
            line = next((n for n in range(at, len(lines)) if item in lines[n]), at)
            at = line
            out.append((line + 1, item))
    else:
        default = None
        for n, raw in enumerate(lines, 1):
            body = raw.split("#", 1)[0].strip()
            if not body:
                continue
            m = re.fullmatch(r"arch\s*:\s*(\S+)", body)
            if m:
                default = m.group(1)
                continue
            out.append((n, body))
    parsed = []
    for n, item in out:
        try:
            parsed.append((n, parse(item)))
        except ExpectationError as exc:
            raise ExpectationError(f"{source}:{n}: {exc}", exc.column) from None
    if not parsed:
        raise ExpectationError(f"{source}: no expectations")
    return parsed, default
