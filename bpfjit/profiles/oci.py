"""Docker/moby and OCI seccomp JSON → RuleSet, resolved as dockerd and runc resolve it.

Two stages, each after its Go original:

* :func:`resolve` is moby's ``setupSeccomp`` (github.com/moby/profiles
  ``seccomp/seccomp_linux.go``): the ``archMap`` entry of the target's
  architecture plus its sub-architectures become ``architectures`` (a profile
  may give ``architectures`` or ``archMap``, not both); a ``syscalls[]`` entry
  is dropped when ``excludes.arches`` names the target, ``includes.arches``
  does not, any ``excludes.caps`` is in the bounding set, an
  ``includes.caps`` is missing, the kernel is at least ``excludes.minKernel``
  or below ``includes.minKernel`` (major.minor compared, as moby does).
  Arch names in includes/excludes are moby's (``amd64``, ``arm64``, ``x86``,
  ``s390x``...).
* :func:`rules` is runc's ``SetupSeccomp`` + ``InitSeccomp``/``matchCall``
  (``libcontainer/specconv``, ``libcontainer/seccomp/seccomp_linux.go``): one
  rule per name; ``SCMP_ACT_KILL`` is KILL_THREAD; ERRNO without ``errnoRet``
  is EPERM, TRACE without it EPERM too; a rule whose action equals the
  default action is skipped; unknown names are skipped with a warning; when
  two conditions test the same argument, each condition becomes its own
  rule (runc's "old behavior"), otherwise one rule carries all of them
  (``value`` is datum_a, ``valueTwo`` datum_b; for MASKED_EQ the mask and
  the value). Filter attributes as libseccomp-golang/runc set them:
  ``SCMP_FLTATR_CTL_TSYNC`` 1, ``SCMP_FLTATR_CTL_NNP`` 0, bad-arch action
  libseccomp's default (KILL_THREAD), optimize level 1 (libseccomp's default,
  what runc 1.1 and crun use) unless chosen.

An OCI ``config.json`` is accepted too: its ``linux.seccomp`` is the profile.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ProfileError
from . import libseccomp as scmp
from .rules import RuleSet, Rule, target_layout

#: runc libcontainer/seccomp/config.go: profile action name → how runc builds it
ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")

#: runc's archs map: profile arch name → libseccomp arch name
ARCHES = {
    "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64", "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32", "SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le", "SCMP_ARCH_S390": "s390", "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_RISCV64": "riscv64", "SCMP_ARCH_LOONGARCH64": "loongarch64",
}

#: bpfjit layout → Go's GOARCH, then moby's goToNative / nativeToSeccomp (typos kept: moby
#: spells mipsel64n32 "mips3l64n32", and finds no archMap entry for mipsel or loongarch64)
GOARCH = {"x86_64": "amd64", "x86": "386", "aarch64": "arm64", "arm": "arm", "s390x": "s390x",
          "s390": "s390", "ppc64le": "ppc64le", "ppc64": "ppc64", "ppc": "ppc",
          "riscv64": "riscv64", "mips64": "mips64", "mipsel64": "mips64le",
          "mips64n32": "mips64p32", "mipsel64n32": "mips64p32le", "mipsel": "mipsle",
          "loongarch64": "loong64"}
GO_TO_NATIVE = {"386": "x86", "amd64": "amd64", "arm": "arm", "arm64": "arm64",
                "loong64": "loongarch64", "mips64": "mips64", "mips64p32": "mips64n32",
                "mips64le": "mipsel64", "mips64p32le": "mips3l64n32", "mipsle": "mipsel",
                "ppc": "ppc", "ppc64": "ppc64", "ppc64le": "ppc64le", "riscv64": "riscv64",
                "s390": "s390", "s390x": "s390x"}
NATIVE_TO_SECCOMP = {"x86": "SCMP_ARCH_X86", "amd64": "SCMP_ARCH_X86_64", "arm": "SCMP_ARCH_ARM",
                     "arm64": "SCMP_ARCH_AARCH64", "loong64": "SCMP_ARCH_LOONGARCH64",
                     "mips64": "SCMP_ARCH_MIPS64", "mips64n32": "SCMP_ARCH_MIPS64N32",
                     "mipsel64": "SCMP_ARCH_MIPSEL64", "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
                     "mipsle": "SCMP_ARCH_MIPSEL", "ppc": "SCMP_ARCH_PPC", "ppc64": "SCMP_ARCH_PPC64",
                     "ppc64le": "SCMP_ARCH_PPC64LE", "riscv64": "SCMP_ARCH_RISCV64",
                     "s390": "SCMP_ARCH_S390", "s390x": "SCMP_ARCH_S390X"}

#: OCI runtime-spec seccomp flags (runc setFlag): name → libseccomp attribute (None: no attribute)
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": None, "SECCOMP_FILTER_FLAG_LOG": scmp.SCMP_FLTATR_CTL_LOG,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": scmp.SCMP_FLTATR_CTL_SSB}

_TOP_KEYS = {"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "flags",
             "listenerPath", "listenerMetadata", "defaultErrno"}
_CALL_KEYS = {"name", "names", "action", "errnoRet", "args", "comment", "includes", "excludes",
              "errno"}
_FILTER_KEYS = {"arches", "caps", "minKernel"}
_ARG_KEYS = {"index", "value", "valueTwo", "op"}
U64 = (1 << 64) - 1


@dataclass(frozen=True)
class Choices:
    """What a profile is resolved for: target arch, capability bounding set, kernel version."""
    arch: str
    caps: frozenset[str]
    kernel: tuple[int, int]


class _Reader:
    """Typed access to parsed JSON that names the file and JSON path in every error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, message: str) -> ProfileError:
        return ProfileError(message, source=self.source, path=path)

    def obj(self, value: Any, path: str, keys: set[str], warnings: list[str]) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {_kind(value)}")
        out = {}
        folded = {k.lower(): k for k in keys}
        for key, item in value.items():
            # Go's encoding/json: exact name, else a case-insensitive match; the last one wins
            name = key if key in keys else folded.get(key.lower())
            if name is None:
                warnings.append(f"{path}.{key}: unknown key ignored (as Go's encoding/json does)")
            else:
                out[name] = item
        return out

    def list_(self, value: Any, path: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {_kind(value)}")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_kind(value)}")
        return value

    def uint(self, value: Any, path: str, bits: int = 64) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an unsigned integer, got {_kind(value)}")
        if not 0 <= value < (1 << bits):
            raise self.fail(path, f"{value} is out of range for a {bits}-bit unsigned integer")
        return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value),
                                                                          type(value).__name__)


def parse_json(data: bytes, source: str) -> Any:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                           source=source) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"bad JSON: {exc.msg} (column {exc.colno})", source=source,
                           line=exc.lineno) from None
    except RecursionError:
        raise ProfileError("bad JSON: nested too deeply", source=source) from None


def profile_of(doc: Any, source: str) -> tuple[dict, str]:
    """The seccomp profile object of a document and its JSON path (``$`` or ``$.linux.seccomp``)."""
    if not isinstance(doc, dict):
        raise ProfileError(f"expected a JSON object (a seccomp profile or an OCI config.json), "
                           f"got {_kind(doc)}", source=source, path="$")
    if "linux" in doc and "defaultAction" not in doc:
        linux = doc["linux"]
        if not isinstance(linux, dict):
            raise ProfileError(f"expected an object, got {_kind(linux)}", source=source,
                               path="$.linux")
        seccomp = linux.get("seccomp")
        if not isinstance(seccomp, dict):
            raise ProfileError("this OCI config.json has no seccomp profile (linux.seccomp)",
                               source=source, path="$.linux.seccomp")
        return seccomp, "$.linux.seccomp"
    return doc, "$"


def parse_kernel(text: str) -> tuple[int, int]:
    """``"4.8"``/``"6.1.0-13-amd64"`` → (4, 8); ValueError if it is not one."""
    m = re.match(r"^\s*(\d+)\.(\d+)", text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"invalid kernel version {text!r} (expected MAJOR.MINOR, e.g. 5.10)")
    return int(m.group(1)), int(m.group(2))


def host_kernel() -> tuple[int, int]:
    return parse_kernel(os.uname().release)


def _action(reader: _Reader, name: str, errno_ret: int | None, path: str) -> int:
    """runc getAction: the libseccomp action value for a profile action name."""
    if name not in ACTIONS:
        raise reader.fail(path, f"unknown action {name!r}; known: {', '.join(ACTIONS)}")
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return scmp.SCMP_ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return scmp.SCMP_ACT_KILL_PROCESS
    if name == "SCMP_ACT_ERRNO":
        return scmp.SCMP_ACT_ERRNO(1 if errno_ret is None else errno_ret)   # EPERM
    if name == "SCMP_ACT_TRACE":
        return scmp.SCMP_ACT_TRACE(1 if errno_ret is None else errno_ret)   # EPERM
    if name == "SCMP_ACT_TRAP":
        return scmp.SCMP_ACT_TRAP
    if name == "SCMP_ACT_LOG":
        return scmp.SCMP_ACT_LOG
    if name == "SCMP_ACT_NOTIFY":
        return scmp.SCMP_ACT_NOTIFY
    return scmp.SCMP_ACT_ALLOW


def _cond_filter(reader: _Reader, value: Any, path: str, warnings: list[str]) -> dict:
    f = reader.obj(value, path, _FILTER_KEYS, warnings)
    arches = [reader.string(a, f"{path}.arches[{i}]")
              for i, a in enumerate(reader.list_(f.get("arches"), f"{path}.arches"))]
    caps = [reader.string(c, f"{path}.caps[{i}]")
            for i, c in enumerate(reader.list_(f.get("caps"), f"{path}.caps"))]
    kernel = None
    if f.get("minKernel") not in (None, ""):
        text = reader.string(f["minKernel"], f"{path}.minKernel")
        try:
            kernel = parse_kernel(text)
        except ValueError as exc:
            raise reader.fail(f"{path}.minKernel", str(exc)) from None
    return {"arches": arches, "caps": caps, "minKernel": kernel}


def resolve(profile: dict, choices: Choices, *, source: str, base: str = "$",
            warnings: list[str] | None = None) -> tuple[list[str], list[tuple[str, dict]]]:
    """moby setupSeccomp: (architectures as profile names, kept syscalls[] entries with their paths)."""
    warnings = [] if warnings is None else warnings
    reader = _Reader(source)
    arch_list = reader.list_(profile.get("architectures"), f"{base}.architectures")
    arch_map = reader.list_(profile.get("archMap"), f"{base}.archMap")
    if arch_list and arch_map:
        raise reader.fail(base, "both 'architectures' and 'archMap' are specified in the seccomp "
                                "profile, use either 'architectures' or 'archMap'")
    architectures = [reader.string(a, f"{base}.architectures[{i}]") for i, a in enumerate(arch_list)]
    native = GO_TO_NATIVE.get(GOARCH.get(choices.arch, ""), "")
    wanted = NATIVE_TO_SECCOMP.get(native)
    for i, entry in enumerate(arch_map):
        p = f"{base}.archMap[{i}]"
        e = reader.obj(entry, p, {"architecture", "subArchitectures"}, warnings)
        main = reader.string(e.get("architecture"), f"{p}.architecture")
        subs = [reader.string(s, f"{p}.subArchitectures[{j}]")
                for j, s in enumerate(reader.list_(e.get("subArchitectures"),
                                                   f"{p}.subArchitectures"))]
        for name, q in [(main, f"{p}.architecture")] + \
                [(s, f"{p}.subArchitectures[{j}]") for j, s in enumerate(subs)]:
            if name not in ARCHES:
                raise reader.fail(q, f"unknown architecture {name!r}; known: {', '.join(ARCHES)}")
        if wanted is not None and main == wanted and not architectures:
            architectures = [main] + subs
    kept: list[tuple[str, dict]] = []
    for i, call in enumerate(reader.list_(profile.get("syscalls"), f"{base}.syscalls")):
        p = f"{base}.syscalls[{i}]"
        call = reader.obj(call, p, _CALL_KEYS, warnings)
        if call.get("name") and call.get("names"):
            raise reader.fail(p, "both 'name' and 'names' are specified in the seccomp profile, "
                                 "use either 'name' or 'names'")
        exc = _cond_filter(reader, call.get("excludes"), f"{p}.excludes", warnings)
        inc = _cond_filter(reader, call.get("includes"), f"{p}.includes", warnings)
        if exc["arches"] and native in exc["arches"]:
            continue
        if exc["caps"] and any(c in choices.caps for c in exc["caps"]):
            continue
        if exc["minKernel"] is not None and choices.kernel >= exc["minKernel"]:
            continue
        if inc["arches"] and native not in inc["arches"]:
            continue
        if inc["caps"] and not all(c in choices.caps for c in inc["caps"]):
            continue
        if inc["minKernel"] is not None and choices.kernel < inc["minKernel"]:
            continue
        kept.append((p, call))
    return architectures, kept


def rules(profile: dict, choices: Choices, *, source: str, base: str = "$",
          optimize: "int | str" = 1, runtime: str = "crun") -> RuleSet:
    """The libseccomp calls runc makes for a resolved profile.

    ``runtime="runc"`` also prepends runc's -ENOSYS prologue
    (:mod:`bpfjit.profiles.patchbpf`); ``"crun"`` (the default) keeps
    libseccomp's program as it is, which is what crun loads.
    """
    if runtime not in ("crun", "runc"):
        raise ProfileError(f"runtime must be 'crun' or 'runc', not {runtime!r}", source=source)
    warnings: list[str] = []
    reader = _Reader(source)
    profile = reader.obj(profile, base, _TOP_KEYS, warnings)
    architectures, calls = resolve(profile, choices, source=source, base=base, warnings=warnings)
    if not profile.get("defaultAction") and not calls:
        raise reader.fail(base, "no defaultAction and no syscalls: runc installs no seccomp "
                                "filter for this profile")
    default_errno = None
    if profile.get("defaultErrnoRet") is not None:
        default_errno = reader.uint(profile["defaultErrnoRet"], f"{base}.defaultErrnoRet", 32)
    default = _action(reader, reader.string(profile.get("defaultAction"), f"{base}.defaultAction"),
                      default_errno, f"{base}.defaultAction")
    if default == scmp.SCMP_ACT_NOTIFY:
        raise reader.fail(f"{base}.defaultAction", "SCMP_ACT_NOTIFY cannot be used as default "
                                                   "action (runc refuses it)")
    target = target_layout(choices.arch).name
    arches = [target]
    for i, name in enumerate(architectures):
        if name not in ARCHES:
            raise reader.fail(f"{base}.architectures[{i}]",
                              f"unknown architecture {name!r}; known: {', '.join(ARCHES)}")
        if ARCHES[name] not in arches:
            arches.append(ARCHES[name])
    flags: list[str] = []
    attrs = {scmp.SCMP_FLTATR_CTL_TSYNC: 1, scmp.SCMP_FLTATR_CTL_NNP: 0}
    for i, flag in enumerate(reader.list_(profile.get("flags"), f"{base}.flags")):
        flag = reader.string(flag, f"{base}.flags[{i}]")
        if flag not in FLAGS:
            raise reader.fail(f"{base}.flags[{i}]", f"seccomp flag {flag!r} is not known to runc; "
                                                    f"known: {', '.join(FLAGS)}")
        flags.append(flag)
        if FLAGS[flag] is not None:
            attrs[FLAGS[flag]] = 1
    out: list[Rule] = []
    n_names = 0
    notify = False
    all_names: list[str] = []
    for p, call in calls:
        names = [call["name"]] if call.get("name") else reader.list_(call.get("names"), f"{p}.names")
        errno_ret = None
        if call.get("errnoRet") is not None:
            errno_ret = reader.uint(call["errnoRet"], f"{p}.errnoRet", 32)
        action = _action(reader, reader.string(call.get("action"), f"{p}.action"), errno_ret,
                         f"{p}.action")
        conds, same_arg = _conditions(reader, call.get("args"), f"{p}.args")
        for j, name in enumerate(names):
            name = reader.string(name, f"{p}.names[{j}]" if not call.get("name") else f"{p}.name")
            if not name:
                raise reader.fail(f"{p}.names[{j}]", "empty string is not a valid syscall")
            n_names += 1
            all_names.append(name)
            if action == scmp.SCMP_ACT_NOTIFY:
                notify = True
                if name == "write":
                    raise reader.fail(f"{p}.action", "SCMP_ACT_NOTIFY cannot be used for the "
                                                     "write syscall (runc refuses it)")
            if action == default:
                continue                      # runc: redundant rule, silently skipped
            if same_arg:                      # runc: one rule per condition
                out.extend(Rule(name, action, (c,)) for c in conds)
            else:
                out.append(Rule(name, action, tuple(conds)))
    if optimize == "runc":                    # runc >= 1.2: binary tree above 32 syscalls
        optimize = 2 if n_names > 32 else 1
    if optimize not in (1, 2):
        raise ProfileError(f"optimize must be 1, 2 or 'runc', not {optimize!r}", source=source)
    if optimize != 1:
        attrs[scmp.SCMP_FLTATR_CTL_OPTIMIZE] = optimize
    if notify:
        flags.append("SECCOMP_FILTER_FLAG_NEW_LISTENER")     # runc filterFlags
    enosys = None
    if runtime == "runc":
        from .patchbpf import wanted
        if wanted(default, default_errno):
            enosys = ([ARCHES[a] for a in architectures], all_names)
    if profile.get("listenerPath"):
        warnings.append(f"{base}.listenerPath {profile['listenerPath']!r} not applied: "
                        f"SCMP_ACT_NOTIFY calls are reported as USER_NOTIF; no agent is contacted")
    elif notify:
        warnings.append("SCMP_ACT_NOTIFY rules without listenerPath: runc would need a "
                        "seccomp agent; their calls are reported as USER_NOTIF")
    if profile.get("listenerMetadata"):
        warnings.append(f"{base}.listenerMetadata not applied (it is only passed to the agent)")
    return RuleSet(default_action=default, arches=arches, rules=out, attrs=attrs, flags=flags,
                   warnings=warnings, enosys=enosys)


def _conditions(reader: _Reader, value: Any, path: str) -> tuple[list[scmp.Condition], bool]:
    conds: list[scmp.Condition] = []
    counts = [0] * 6
    for i, arg in enumerate(reader.list_(value, path)):
        p = f"{path}[{i}]"
        arg = reader.obj(arg, p, _ARG_KEYS, [])
        index = reader.uint(arg.get("index"), f"{p}.index")
        if index > 5:
            raise reader.fail(f"{p}.index", f"argument index {index} is out of range (0..5)")
        op = reader.string(arg.get("op"), f"{p}.op")
        if op not in scmp.SCMP_CMP:
            raise reader.fail(f"{p}.op", f"unknown operator {op!r}; known: "
                                         f"{', '.join(scmp.SCMP_CMP)}")
        value_ = reader.uint(arg.get("value", 0), f"{p}.value")
        value2 = reader.uint(arg.get("valueTwo", 0) or 0, f"{p}.valueTwo")
        counts[index] += 1
        conds.append(scmp.Condition(index, scmp.SCMP_CMP[op], value_, value2))
    return conds, any(c > 1 for c in counts)


def rule_set(data: bytes, source: str, choices: Choices, optimize: "int | str" = 1,
             runtime: str = "crun") -> RuleSet:
    """Parse a Docker/OCI profile or config.json and build runc's RuleSet for ``choices``."""
    profile, base = profile_of(parse_json(data, source), source)
    return rules(profile, choices, source=source, base=base, optimize=optimize, runtime=runtime)


def looks_like(doc: Any) -> bool:
    return isinstance(doc, dict) and ("defaultAction" in doc or "syscalls" in doc or (
        isinstance(doc.get("linux"), dict) and "seccomp" in doc["linux"]))


def normalise_caps(caps: Iterable[str]) -> frozenset[str]:
    out = set()
    for c in caps:
        c = c.strip().upper()
        if c:
            out.add(c if c.startswith("CAP_") else f"CAP_{c}")
    return frozenset(out)


def choices(arch: str, caps: Sequence[str], kernel: tuple[int, int]) -> Choices:
    return Choices(arch=arch, caps=normalise_caps(caps), kernel=kernel)
