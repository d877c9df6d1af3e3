"""runc's -ENOSYS prologue (libcontainer/seccomp/patchbpf/enosys_linux.go), prepended to libseccomp's program.

runc answers system calls newer than anything its profile names with
ERRNO(ENOSYS) instead of the default action, so that programs fall back
gracefully: for each architecture of the profile's ``architectures`` (their
AUDIT_ARCH, x86_64 and x32 sharing one), a section compares ``nr`` with the
largest number any profile name has on that arch (x32 numbers carry bit 30,
s390/s390x also send nr 0, the ``setup`` multiplexer, to ENOSYS). Not added
when the default action is ALLOW, LOG or TRACE, nor when ``defaultErrnoRet``
equals runc's ENOSYS *action* value (0x50026; runc compares the errno with
the action, so an errno of 38 still gets the prologue).

Go's map iteration order decides the order of runc's sections, so two runc
runs may emit the sections in different orders; the verdicts do not depend
on it. Here the order is that of first appearance in ``architectures``
(which reproduces the filter runc 1.1.5 loaded in the corpus).
"""
from __future__ import annotations

from collections.abc import Sequence

from .. import opcodes as op
from ..program import Instruction, Program
from ..seccomp.layouts import layout as get_layout
from . import libseccomp as scmp

ENOSYS = 38
RET_ERRNO_ENOSYS = scmp.SCMP_ACT_ERRNO(ENOSYS)
X32_BIT = 1 << 30
ALLOW_LIKE = (scmp.SCMP_ACT_ALLOW, scmp.SCMP_ACT_LOG)


def _ld(off: int) -> Instruction:
    return Instruction(op.BPF_LD | op.BPF_W | op.BPF_ABS, 0, 0, off)


def _ja(skip: int) -> Instruction:
    return Instruction(op.BPF_JMP | op.BPF_JA, 0, 0, skip)


def _ret(k: int) -> Instruction:
    return Instruction(op.BPF_RET | op.BPF_K, 0, 0, k)


def _jump_if(cond: str, k: int, skip_true: int, skip_false: int = 0) -> Instruction:
    """golang.org/x/net/bpf JumpIf: negated tests are the positive opcode with jt/jf swapped."""
    base, flip = {"eq": (op.BPF_JEQ, False), "ne": (op.BPF_JEQ, True),
                  "gt": (op.BPF_JGT, False), "le": (op.BPF_JGT, True),
                  "set": (op.BPF_JSET, False), "notset": (op.BPF_JSET, True)}[cond]
    jt, jf = (skip_false, skip_true) if flip else (skip_true, skip_false)
    return Instruction(op.BPF_JMP | base | op.BPF_K, jt, jf, k)


def wanted(default_action: int, default_errno_ret: int | None) -> bool:
    """runc generatePatch: is a prologue generated for this default action?"""
    if default_errno_ret is not None and default_errno_ret == RET_ERRNO_ENOSYS:
        return False
    return default_action not in ALLOW_LIKE and default_action & 0xFFFF0000 != 0x7FF00000


def last_syscalls(arches: Sequence[str], names: Sequence[str]) -> dict[int, dict[str, int]]:
    """runc findLastSyscalls: AUDIT_ARCH → {libseccomp arch: largest number of any name}."""
    out: dict[int, dict[str, int]] = {}
    for arch in arches:
        audit = get_layout(arch).audit_arch
        per = out.setdefault(audit, {})
        if arch in per:
            continue
        token = scmp.arch_token(arch)
        largest = 0
        for name in names:
            nr = scmp.resolve_syscall(name, token)
            if nr > largest:
                largest = nr
        if largest:
            per[arch] = largest
    return out


def stub(arches: Sequence[str], names: Sequence[str]) -> list[Instruction]:
    """runc generateEnosysStub for the profile's architectures and syscall names."""
    last = last_syscalls(arches, names)
    tail = [_ja(1), _ret(RET_ERRNO_ENOSYS)]
    table: dict[int, int] = {}
    for audit, maxima in last.items():
        enosys = len(tail) - 1
        to_filter = enosys + 1
        section = [_ld(0)]
        if not maxima:
            continue
        if len(maxima) == 1:
            (arch, nr), = maxima.items()
            if arch in ("s390", "s390x"):
                section += [_jump_if("ne", 0, 1), _ret(RET_ERRNO_ENOSYS)]
            if enosys + 1 <= 255:
                sec_tail = [_jump_if("gt", nr, enosys + 1), _ja(to_filter)]
            else:
                sec_tail = [_jump_if("le", nr, 1), _ret(RET_ERRNO_ENOSYS), _ja(to_filter)]
            if audit == get_layout("x86_64").audit_arch:
                cond = "set" if arch == "x86_64" else "notset"
                sec_tail = [_jump_if(cond, X32_BIT, len(sec_tail) - 1)] + sec_tail
            section += sec_tail
        else:
            x32, x86_64 = maxima["x32"], maxima["x86_64"]
            if enosys + 2 <= 255:
                section += [_jump_if("set", X32_BIT, 1), _jump_if("gt", x86_64, enosys + 2, 1),
                            _jump_if("gt", x32, enosys + 1), _ja(to_filter)]
            else:
                section += [_jump_if("set", X32_BIT, 1), _jump_if("gt", x86_64, 1, 2),
                            _jump_if("le", x32, 1), _ret(RET_ERRNO_ENOSYS), _ja(to_filter)]
        tail = section + tail
        table[audit] = len(tail)
    tail = [_ja(len(tail))] + tail
    for audit in last:
        jump = len(tail) - table.get(audit, 0)      # an arch without names: to the filter
        if jump <= 255:
            tail = [_jump_if("eq", audit, jump)] + tail
        else:
            tail = [_jump_if("ne", audit, 1), _ja(jump)] + tail
    return [_ld(4)] + tail


def patch(program: Program, arches: Sequence[str], names: Sequence[str]) -> Program:
    """``program`` behind runc's prologue."""
    return Program(stub(arches, names) + list(program), endian=program.endian,
                   source=program.source)
