"""Rule sets → libseccomp → Program: the one place a profile meets libseccomp.

Each profile format (``oci``, ``firecracker``, ``lxc``) turns its file into a
:class:`RuleSet` the way its runtime does; :func:`compile_rules` hands it to
libseccomp with the runtime's attribute choices and reads back the program
``seccomp_export_bpf`` writes.
"""
from __future__ import annotations

import errno
import sys
from dataclasses import dataclass, field

from ..errors import ProfileError
from .. import opcodes as op
from ..program import Instruction, Program
from ..seccomp.layouts import Layout, layout as get_layout
from . import libseccomp as scmp

#: bpfjit layout name → libseccomp arch name (``seccomp_arch_resolve_name``)
LIBSECCOMP_ARCH = {
    "x86_64": "x86_64", "x86": "x86", "x32": "x32", "aarch64": "aarch64", "arm": "arm",
    "riscv64": "riscv64", "s390x": "s390x", "s390": "s390", "ppc64": "ppc64",
    "ppc64le": "ppc64le", "ppc": "ppc", "mips": "mips", "mipsel": "mipsel", "mips64": "mips64",
    "mipsel64": "mipsel64", "mips64n32": "mips64n32", "mipsel64n32": "mipsel64n32",
    "parisc": "parisc", "parisc64": "parisc64", "loongarch64": "loongarch64",
}

#: the bad-architecture action libseccomp uses unless told otherwise (db_col_init)
DEFAULT_BADARCH = scmp.SCMP_ACT_KILL_THREAD


@dataclass(frozen=True)
class Rule:
    """One ``seccomp_rule_add_array`` call: a syscall name, an action value, conditions."""
    name: str
    action: int
    conditions: tuple[scmp.Condition, ...] = ()
    exact: bool = False


@dataclass
class RuleSet:
    """Everything a runtime hands libseccomp for one filter.

    ``arches``: libseccomp arch names, the target first (the filter holds
    exactly these); ``attrs``: ``SCMP_FLTATR_*`` → value set before the rules;
    ``flags``: the ``seccomp()`` flags the runtime would pass (they do not
    change the program); ``warnings``: what was skipped or cannot apply.
    """
    default_action: int
    arches: list[str]
    rules: list[Rule] = field(default_factory=list)
    attrs: dict[int, int] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: runc's -ENOSYS prologue: (the profile's architectures, every syscall name), or None
    enosys: tuple[list[str], list[str]] | None = None


def host_arch() -> str:
    """The bpfjit layout name of this machine."""
    from ..seccomp.layouts import host_layout
    return host_layout().name


def target_layout(arch: "str | Layout | None") -> Layout:
    lay = get_layout(arch)
    if lay.name not in LIBSECCOMP_ARCH:
        raise ProfileError(f"libseccomp cannot build filters for {lay.name!r}")
    return lay


def arch_token(name: str) -> int:
    token = scmp.arch_token(name)
    if not token:
        raise ProfileError(f"this libseccomp ({'.'.join(map(str, scmp.version()))}) does not "
                           f"know the architecture {name!r}")
    return token


def compile_rules(rule_set: RuleSet, *, source: str | None = None) -> Program:
    """Build the filter with libseccomp and return the exported program.

    Names libseccomp does not know are skipped, as runc skips them, and listed
    in ``rule_set.warnings``.

    When the target (``arches[0]``) is not the host's architecture, the host
    arch that ``seccomp_init`` adds is removed first, so the program is the
    one a native build of libseccomp exports (for big-endian targets the
    export is big-endian and is read as such).
    """
    ctx = scmp.FilterContext(rule_set.default_action)
    try:
        tokens = [arch_token(a) for a in rule_set.arches]
        native = scmp.native_arch()
        if tokens and native not in tokens:
            ctx.arch_remove(native)          # before adding: libseccomp cannot mix byte orders
        for name, token in zip(rule_set.arches, tokens):
            try:
                ctx.arch_add(token)
            except scmp.LibseccompError as exc:
                why = " (a filter has one byte order)" if exc.errno == errno.EDOM else ""
                raise ProfileError(f"libseccomp cannot add {name} to a filter for "
                                   f"{rule_set.arches[0]}{why}: {exc}", source=source) from None
        for attr, value in rule_set.attrs.items():
            ctx.attr_set(attr, value)
        unknown: list[str] = []
        for rule in rule_set.rules:
            # native numbering, as runc's GetSyscallFromName; libseccomp translates per arch
            nr = scmp.resolve_syscall(rule.name)
            if nr == scmp.__NR_SCMP_ERROR:
                if rule.name not in unknown:
                    unknown.append(rule.name)
                continue
            try:
                ctx.rule_add(rule.action, nr, rule.conditions, exact=rule.exact)
            except scmp.LibseccompError as exc:
                raise ProfileError(f"libseccomp refused the rule for {rule.name!r} "
                                   f"(action {rule.action:#x}, conditions "
                                   f"{[tuple(vars(c).values()) for c in rule.conditions]}): {exc}",
                                   source=source) from None
        data = ctx.export_bpf()
        if unknown:
            version = ".".join(map(str, scmp.version()))
            rule_set.warnings.append(f"syscall names unknown to libseccomp {version} skipped "
                                     f"(as runc does): {', '.join(unknown)}")
    finally:
        ctx.close()
    endian = get_layout(rule_set.arches[0]).byteorder if rule_set.arches else sys.byteorder
    program = Program.from_bytes(data, endian, source=source)
    if endian != sys.byteorder:
        program = _undo_double_swap(program, rule_set.warnings, source)
    if rule_set.enosys is not None:
        from .patchbpf import patch
        program = patch(program, *rule_set.enosys)
    return program


def valid_action(k: int) -> bool:
    """Would libseccomp accept ``k`` as an action (db_action_valid)? Every ret it emits is one."""
    if k in (scmp.SCMP_ACT_KILL_PROCESS, scmp.SCMP_ACT_KILL_THREAD, scmp.SCMP_ACT_TRAP,
             scmp.SCMP_ACT_LOG, scmp.SCMP_ACT_ALLOW, scmp.SCMP_ACT_NOTIFY):
        return True
    return k & 0xFFFF0000 in (0x00050000, 0x7FF00000)          # ERRNO(x), TRACE(x)


def _undo_double_swap(program: Program, warnings: list[str], source: str | None) -> Program:
    """Correct libseccomp 2.5.4's cross-endian export bug.

    On a little-endian host, libseccomp 2.5.4 exports a few ``ret #k`` of a
    big-endian filter (s390x, ppc64...) with ``k`` byte-swapped twice, i.e.
    in host order: ALLOW comes out as 0x0000ff7f. A native build does not do
    this (the corpus' s390x filter was made by the s390x build under
    qemu-user). A ``ret`` whose ``k`` is not an action libseccomp could have
    emitted, but whose byte swap is, is swapped back.
    """
    fixed = []
    insns = list(program)
    for i, insn in enumerate(insns):
        if insn.code == op.BPF_RET | op.BPF_K and not valid_action(insn.k):
            swapped = int.from_bytes(insn.k.to_bytes(4, "little"), "big")
            if valid_action(swapped):
                insns[i] = Instruction(insn.code, insn.jt, insn.jf, swapped)
                fixed.append(i)
    if not fixed:
        return program
    warnings.append(f"libseccomp {'.'.join(map(str, scmp.version()))} exported {len(fixed)} ret "
                    f"instruction(s) of this {program.endian}-endian filter byte-swapped twice "
                    f"(a bug of cross-endian export on a {sys.byteorder}-endian host); "
                    f"corrected at index {', '.join(map(str, fixed))} to what a native build exports")
    return Program(insns, endian=program.endian, source=source)
