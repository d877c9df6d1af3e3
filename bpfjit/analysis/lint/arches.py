"""Lint rules about architectures and syscall numbers (BJ101-BJ105), each proven on the reference.

Every finding here carries witness inputs in ``evidence``; a rule whose
witness does not reproduce on the reference interpreter reports nothing.
"""
from __future__ import annotations

from ... import opcodes as op
from ...seccomp import syscalls
from ...seccomp.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_LOG
from ...seccomp.layouts import ARCH_OFFSET, LAYOUTS, NR_OFFSET, by_audit_arch, layout
from . import Finding
from .facts import LD_ABS, Facts

AUDIT_ARCH_X86_64 = layout("x86_64").audit_arch
AUDIT_ARCH_I386 = layout("x86").audit_arch
#: names shown before "and N more"
SHOWN = 6
#: syscalls whose bypass matters most are named first when present
DANGEROUS = ("execve", "execveat", "ptrace", "open_by_handle_at", "bpf", "kexec_load",
             "init_module", "finit_module", "mount", "unshare", "setns", "clone", "keyctl",
             "personality", "process_vm_writev")


def _allows(retval: int) -> bool:
    return retval & 0xFFFF0000 in (SECCOMP_RET_ALLOW, SECCOMP_RET_LOG)


def _foreign_arches(facts: Facts) -> list[int]:
    """Distinct AUDIT_ARCH values of known architectures that the program never compares with."""
    named = set(facts.constants[1])
    for other in facts.others:                    # a stack: what any of its filters names
        named |= other.constants[1]
    seen: list[int] = []
    for lay in LAYOUTS.values():
        if lay.audit_arch not in named and lay.audit_arch not in seen:
            seen.append(lay.audit_arch)
    return seen


def _first_nr_jump(facts: Facts, trail: list[int]) -> tuple[int | None, bool]:
    """(index of the ``ld [nr]`` whose value a jump tests first on ``trail``, arch tested before it)."""
    held = None
    load_at = None
    arch_tested = False
    for pc in trail:
        code, _, _, k = facts.insns[pc]
        if code == LD_ABS:
            held, load_at = k, pc
        elif code in op.CONDITIONAL_JUMPS:
            if held == ARCH_OFFSET:
                arch_tested = True
            elif held == NR_OFFSET:
                return load_at, arch_tested
        elif op.bpf_class(code) in (op.BPF_LD, op.BPF_ALU) or code == op.BPF_MISC | op.BPF_TXA:
            held = None
    return None, arch_tested


def no_arch_check(facts: Facts) -> list[Finding]:
    """BJ101/BJ102: tasks of an architecture the filter does not name reach the nr dispatch."""
    foreign = _foreign_arches(facts)
    nr_k = facts.constants[0]
    if not foreign or not nr_k:
        return []
    probe = next((a for a in foreign if a != facts.layout.audit_arch), foreign[0])
    trail = facts.run(probe, 0)[1]
    load_at, arch_tested = _first_nr_jump(facts, trail)
    if load_at is not None and not arch_tested:
        w = facts.witness(probe, 0)
        return [Finding(
            "BJ101", load_at,
            f"nr is loaded and compared before any check of arch: a task of another "
            f"architecture (e.g. {w['arch']}) is judged by this architecture's syscall numbers",
            "start with ld [arch]; jne #AUDIT_ARCH_<yours>, kill; then ld [nr]",
            (w,))]
    numbers = sorted(nr_k | {max(nr_k) + 1})
    leaking: list[tuple[int, dict, dict]] = []
    for arch in foreign:
        verdict = facts.verdict_map(arch, numbers)
        values = {}
        for nr, v in verdict.items():
            values.setdefault(v, nr)
        if len(values) < 2:
            continue
        (v1, n1), (v2, n2) = list(values.items())[:2]
        w1, w2 = facts.witness(arch, n1), facts.witness(arch, n2)
        if w1["retval"] != w2["retval"]:
            leaking.append((arch, w1, w2))
    if not leaking:
        return []
    names = [facts.arch_name(a) for a, _, _ in leaking]
    arch, w1, w2 = leaking[0]
    trail = facts.run(arch, w1["nr"])[1]
    load_at, _ = _first_nr_jump(facts, trail)
    return [Finding(
        "BJ102", load_at,
        f"{len(names)} architecture(s) the filter does not name reach the nr dispatch "
        f"({', '.join(names[:SHOWN])}{'...' if len(names) > SHOWN else ''}): for {names[0]}, "
        f"nr {w1['nr']} -> {w1['action']} but nr {w2['nr']} -> {w2['action']}",
        "send every arch the filter does not handle to one action (jne #AUDIT_ARCH_..., kill)",
        (w1, w2))]


def _table(abi: str) -> dict[str, int]:
    return dict(syscalls.table(abi)) if syscalls.has_table(abi) else {}


def _bypass(facts: Facts, code: str, other_arch: int, other_abi: str, label: str) -> list[Finding]:
    """Syscalls the x86_64 rules deny whose number in ``other_abi`` is allowed."""
    native = _table("x86_64")
    other = _table(other_abi)
    common = sorted(set(native) & set(other))
    if not common:
        return []
    v64 = facts.verdict_map(AUDIT_ARCH_X86_64, [native[n] for n in common])
    vo = facts.verdict_map(other_arch, [other[n] for n in common])
    bypassed = [n for n in common
                if not _allows(v64[native[n]]) and _allows(vo[other[n] & 0xFFFFFFFF])]
    if not bypassed:
        return []
    bypassed.sort(key=lambda n: (DANGEROUS.index(n) if n in DANGEROUS else len(DANGEROUS), n))
    name = bypassed[0]
    w_native = facts.witness(AUDIT_ARCH_X86_64, native[name])
    w_other = facts.witness(other_arch, other[name])
    if _allows(w_native["retval"]) or not _allows(w_other["retval"]):
        return []
    shown = ", ".join(bypassed[:SHOWN]) + (f" and {len(bypassed) - SHOWN} more"
                                           if len(bypassed) > SHOWN else "")
    fix = ("after the arch check, jge #0x40000000 (__X32_SYSCALL_BIT) to a deny action"
           if code == "BJ103" else
           "handle AUDIT_ARCH_I386 with its own rules (i386 numbers), or kill it")
    return [Finding(
        code, w_other["ret_index"],
        f"{len(bypassed)} syscall(s) denied for x86_64 are allowed through their {label} number: "
        f"{shown} (e.g. {name}: x86_64 nr {native[name]} -> {w_native['action']}, {label} nr "
        f"{w_other['nr']:#x} -> {w_other['action']})",
        fix, (w_native, w_other))]


def x32_and_i386(facts: Facts) -> list[Finding]:
    """BJ103/BJ104 for filters that handle x86_64 tasks."""
    named = facts.constants[1]
    if AUDIT_ARCH_X86_64 not in named and not (facts.layout.name == "x86_64" and not named):
        return []
    return (_bypass(facts, "BJ103", AUDIT_ARCH_X86_64, "x32", "x32")
            + _bypass(facts, "BJ104", AUDIT_ARCH_I386, "x86", "i386"))


def default_allow(facts: Facts) -> list[Finding]:
    """BJ105: a number no syscall has yet is allowed while some syscalls are denied."""
    nr_k = facts.constants[0]
    arches = facts.named_arches or [facts.layout.audit_arch]
    out = []
    for arch in arches:
        lays = [lay for lay in by_audit_arch(arch) if not lay.nr_bit]
        if not lays:
            continue
        table = _table(lays[0].syscall_abi)
        if not table:
            continue
        top = max(table.values())
        unused = next(n for n in range(top + 1, top + 2 + len(nr_k)) if n not in nr_k)
        verdict = facts.verdict_map(arch, list(table.values()) + [unused])
        if not _allows(verdict[unused]):
            continue
        denied = sorted(name for name, nr in table.items() if not _allows(verdict[nr & 0xFFFFFFFF]))
        if not denied:
            continue
        w = facts.witness(arch, unused)
        if not _allows(w["retval"]):
            continue
        out.append(Finding(
            "BJ105", w["ret_index"],
            f"{lays[0].name}: nr {unused} (no syscall has it yet) -> {w['action']} while "
            f"{len(denied)} syscall(s) are denied: a deny-list, so syscalls added by newer "
            f"kernels are allowed",
            "make the default a deny action (ERRNO(ENOSYS) or KILL_PROCESS) and list what is allowed",
            (w,)))
    return out


def findings(facts: Facts) -> list[Finding]:
    return no_arch_check(facts) + x32_and_i386(facts) + default_allow(facts)

