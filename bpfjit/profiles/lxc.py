"""LXC ``.seccomp`` policies (``lxc.seccomp.profile``) → libseccomp, as LXC's src/lxc/seccomp.c builds them.

Format: line 1 the version (``1`` or ``2``); line 2 ``allowlist``/``denylist``
(``whitelist``/``blacklist``), optionally followed by a default action;
then rules. Version 1 rules are syscall numbers to allow. Version 2 rules are
``NAME [ACTION] [[index,value,op(,mask)]...]`` with ACTION ``kill``,
``errno N``, ``allow``, ``trap`` or ``notify`` (default: kill in a denylist,
allow in an allowlist), ``reject_force_umount`` (umount2 with MNT_FORCE →
ERRNO(EACCES)), ``#`` comments and ``[arch]`` sections; a section for an
architecture the host cannot run skips its rules. The policy's default is
allow for a denylist and kill for an allowlist.

As LXC does on an x86_64 host (and likewise on arm64, ppc64 and mips64): the
main context holds the native arch, compat contexts x86 and x32 get the same
rules (``seccomp_rule_add_exact_array``; names a compat arch lacks are
skipped) and are merged into the main one. The target arch plays the host.
"""
from __future__ import annotations

import re
import sys

from ..errors import ProfileError
from ..program import Program
from . import libseccomp as scmp
from .rules import LIBSECCOMP_ARCH, arch_token, target_layout, _undo_double_swap

MNT_FORCE = 1
EACCES = 13

#: host arch → compat arches LXC adds (parse_config_v2)
COMPAT = {"x86_64": ("x86", "x32"), "aarch64": ("arm",), "ppc64": ("ppc",),
          "mips64": ("mips", "mips64n32"), "mipsel64": ("mipsel", "mipsel64n32")}

#: section name → arches on which it applies (LXC's checks of native_arch)
SECTIONS = {"x86": ("x86", "x86_64"), "x32": ("x86_64",), "x86_64": ("x86_64",), "all": None,
            "arm": ("arm", "aarch64"), "arm64": ("aarch64",), "ppc64le": ("ppc64le",),
            "ppc64": ("ppc64",), "ppc": ("ppc", "ppc64"), "mips64": ("mips64",),
            "mips64n32": ("mips64",), "mips": ("mips", "mips64"), "mipsel64": ("mipsel64",),
            "mipsel64n32": ("mipsel64",), "mipsel": ("mipsel", "mipsel64"), "s390x": ("s390x",),
            "s390": ("s390",)}

_OPS = {"SCMP_CMP_NE": 1, "!=": 1, "SCMP_CMP_LT": 2, "<": 2, "SCMP_CMP_LE": 3, "<=": 3,
        "SCMP_CMP_EQ": 4, "==": 4, "SCMP_CMP_GE": 5, ">=": 5, "SCMP_CMP_GT": 6, ">": 6,
        "SCMP_CMP_MASKED_EQ": 7, "&=": 7}
_ARG = re.compile(r"\[\s*(\w+)\s*,\s*([^,\]]+?)\s*,\s*([^,\]0-9]+?)\s*(?:,\s*([^,\]]+?)\s*)?\]")


def looks_like(data: bytes) -> bool:
    lines = data.lstrip(b"\xef\xbb\xbf").split(b"\n", 2)
    return len(lines) >= 2 and lines[0].strip() in (b"1", b"2") and \
        lines[1].split(b" ")[0].strip() in (b"allowlist", b"denylist", b"whitelist", b"blacklist")


def _action(text: str, default: int, source: str, line: int) -> int:
    """LXC get_v2_default_action on the words after a name (prefix matching, as strncmp)."""
    text = text.lstrip(" ")
    if not text or text.startswith("#") or text.startswith("["):
        return default
    if text.startswith("kill"):
        return scmp.SCMP_ACT_KILL_THREAD
    if text.startswith("errno"):
        m = re.match(r"\s*([+-]?\d+)", text[5:])
        if not m:
            raise ProfileError(f"cannot read the errno value in {text!r}", source=source, line=line)
        return scmp.SCMP_ACT_ERRNO(int(m.group(1)))
    if text.startswith("allow"):
        return scmp.SCMP_ACT_ALLOW
    if text.startswith("trap"):
        return scmp.SCMP_ACT_TRAP
    if text.startswith("notify"):
        return scmp.SCMP_ACT_NOTIFY
    raise ProfileError(f"unrecognized seccomp action {text.split()[0]!r} (kill, errno N, allow, "
                       f"trap, notify)", source=source, line=line)


def _number(text: str, what: str, source: str, line: int) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise ProfileError(f"invalid argument {what} {text!r}", source=source, line=line) from None
    if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
        raise ProfileError(f"argument {what} {text!r} out of range", source=source, line=line)
    return value


def _conditions(text: str, source: str, line: int) -> list[scmp.Condition]:
    conds = []
    for chunk in text.split("]")[:6]:
        if "[" not in chunk:
            continue
        m = _ARG.match(chunk[chunk.index("["):] + "]")
        if not m:
            raise ProfileError(f"cannot read the argument test {chunk.strip()}] (expected "
                               f"[index,value,op] or [index,value,op,mask])", source=source,
                               line=line)
        index = _number(m.group(1), "index", source, line)
        if index >= 6:
            raise ProfileError(f"argument index {index} is out of range (0..5)", source=source,
                               line=line)
        value = _number(m.group(2), "value", source, line)
        mask = _number(m.group(4), "mask", source, line) if m.group(4) else 0
        op = m.group(3).strip()
        if op not in _OPS:
            raise ProfileError(f"unknown operator {op!r}; known: {', '.join(_OPS)}",
                               source=source, line=line)
        if _OPS[op] == 7:
            conds.append(scmp.Condition(index, 7, mask, value))
        else:
            conds.append(scmp.Condition(index, _OPS[op], value, 0))
    return conds


def _context(default: int, arch: str | None) -> tuple[scmp.FilterContext, bool]:
    ctx = scmp.FilterContext(default)
    ctx.attr_set(scmp.SCMP_FLTATR_CTL_NNP, 0)
    if arch is None:
        return ctx, False
    token = arch_token(LIBSECCOMP_ARCH[arch])
    if ctx.arch_exist(token):
        return ctx, False
    ctx.arch_remove(scmp.native_arch())
    ctx.arch_add(token)
    return ctx, True


def build(data: bytes, source: str, arch: str) -> tuple[Program, list[str]]:
    """The program LXC loads for this policy on a host of architecture ``arch``."""
    target = target_layout(arch).name
    warnings: list[str] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                           source=source) from None
    lines = text.split("\n")
    version = lines[0].strip() if lines else ""
    if version not in ("1", "2"):
        raise ProfileError(f"invalid version {version!r} (expected 1 or 2)", source=source, line=1)
    header = lines[1] if len(lines) > 1 else ""
    if "debug" in header:
        raise ProfileError("'debug' is not implemented by LXC", source=source, line=2)
    deny = header.startswith(("denylist", "blacklist"))
    if not deny and not header.startswith(("allowlist", "whitelist")):
        raise ProfileError(f"bad seccomp policy style {header.strip()!r} (allowlist or denylist)",
                           source=source, line=2)
    if version == "1" and deny:
        raise ProfileError("only allowlist policies exist in version 1", source=source, line=2)
    main, _ = _context(scmp.SCMP_ACT_KILL_THREAD, target if target != _host() else None)
    contexts: list[tuple[str, scmp.FilterContext, bool]] = []
    try:
        if version == "1":
            if target != _host():
                raise ProfileError(f"a version 1 policy lists {_host()} syscall numbers of the host "
                                   f"running LXC; it cannot be compiled for {target}",
                                   source=source, line=1)
            for n, line in enumerate(lines[2:], start=3):
                if not line.strip():
                    continue
                nr = _number(line.split()[0], "syscall number", source, n)
                main.rule_add(scmp.SCMP_ACT_ALLOW, nr)
            return _export(main, target, source, warnings), warnings
        policy_default = None
        if " " in header:
            rest = header.split(" ", 1)[1].strip()
            if rest:
                policy_default = _action(rest, scmp.SCMP_ACT_KILL_THREAD, source, 2)
        if deny:
            policy_default = scmp.SCMP_ACT_ALLOW if policy_default is None else policy_default
            rule_default = scmp.SCMP_ACT_KILL_THREAD
        else:
            policy_default = scmp.SCMP_ACT_KILL_THREAD if policy_default is None else policy_default
            rule_default = scmp.SCMP_ACT_ALLOW
        for compat in COMPAT.get(target, ()):   # the native one exists in main: never merged
            ctx, merge = _context(policy_default, compat)
            contexts.append((compat, ctx, merge))
        if policy_default != scmp.SCMP_ACT_KILL_THREAD:       # seccomp_reset(main, default)
            main.close()
            main, _ = _context(policy_default, target if target != _host() else None)
        applies = True
        notify = policy_default == scmp.SCMP_ACT_NOTIFY
        for n, raw in enumerate(lines[2:], start=3):
            if raw.startswith("#") or not raw:
                continue
            line = raw.rstrip("\r\n")
            if line.startswith("["):
                section = line.strip("[]").lower()
                if line not in (f"[{section}]", f"[{section.upper()}]") or section not in SECTIONS:
                    raise ProfileError(f"unsupported architecture section {line!r}",
                                       source=source, line=n)
                hosts = SECTIONS[section]
                applies = hosts is None or target in hosts
                continue
            if not applies:
                continue
            name = line.split(" ", 1)[0]
            rest = line.split(" ", 1)[1] if " " in line else ""
            action = _action(rest, rule_default, source, n)
            notify = notify or action == scmp.SCMP_ACT_NOTIFY
            conds = _conditions(line, source, n) if "[" in line else []
            if name.startswith("reject_force_umount"):
                umount2 = scmp.resolve_syscall("umount2")
                force = [scmp.Condition(1, 7, MNT_FORCE, MNT_FORCE)]
                main.rule_add(scmp.SCMP_ACT_ERRNO(EACCES), umount2, force, exact=True)
                for _, ctx, _ in contexts:
                    ctx.rule_add(scmp.SCMP_ACT_ERRNO(EACCES), umount2, force, exact=True)
                continue
            nr = scmp.resolve_syscall(name)
            if nr == scmp.__NR_SCMP_ERROR:
                if name:
                    warnings.append(f"line {n}: syscall {name!r} unknown to libseccomp "
                                    f"{'.'.join(map(str, scmp.version()))}; skipped (as LXC does)")
                continue
            try:
                # a pseudo-syscall of the native arch is left to the compat contexts
                if scmp.resolve_syscall(name, arch_token(LIBSECCOMP_ARCH[target])) >= 0:
                    main.rule_add(action, nr, conds, exact=True)
                for compat, ctx, _ in contexts:
                    if scmp.resolve_syscall(
                            name, arch_token(LIBSECCOMP_ARCH[compat])) >= 0:
                        ctx.rule_add(action, nr, conds, exact=True)
            except scmp.LibseccompError as exc:
                raise ProfileError(f"libseccomp refused the rule for {name!r}: {exc}",
                                   source=source, line=n) from None
        for compat, ctx, merge in contexts:
            if merge:
                main.merge(ctx)
        if notify:
            warnings.append("notify actions need LXC's seccomp proxy; reported as USER_NOTIF")
        return _export(main, target, source, warnings), warnings
    finally:
        main.close()
        for _, ctx, _ in contexts:
            ctx.close()


def _host() -> str:
    from .rules import host_arch
    return host_arch()


def _export(ctx: scmp.FilterContext, target: str, source: str, warnings: list[str]) -> Program:
    lay = target_layout(target)
    program = Program.from_bytes(ctx.export_bpf(), lay.byteorder, source=source)
    if lay.byteorder != sys.byteorder:
        program = _undo_double_swap(program, warnings, source)
    return program
