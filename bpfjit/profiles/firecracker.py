"""Firecracker seccompiler JSON → RuleSet: one filter per thread category (``vmm``, ``api``, ``vcpu``).

The format (Firecracker ``docs/seccompiler.md``): a JSON object mapping a
thread category to ``{"default_action", "filter_action", "filter": [rule...]}``;
a rule is ``{"syscall", "args": [cond...], "comment"}`` and matches when all
its conditions hold; several rules for one syscall are alternatives. A
condition is ``{"index" 0..5, "type": "dword"|"qword", "op", "val", "comment"}``
with ``op`` one of ``eq ne lt le gt ge`` or ``{"masked_eq": MASK}``. Actions:
``allow``, ``trap``, ``kill_thread``, ``kill_process``, ``log``,
``{"errno": N}``, ``{"trace": N}``.

Compiled with libseccomp as the corpus filters were: ``seccomp_init(default)``,
the target arch only, one ``seccomp_rule_add_array`` per rule. A ``dword``
condition compares the low 32 bits only, which libseccomp 2.5 (64-bit
comparisons) expresses for ``eq`` as MASKED_EQ 0xffffffff and for
``masked_eq`` as MASKED_EQ with the mask cut to 32 bits; other ``dword``
operators are compiled as 64-bit comparisons and reported in the warnings
(they differ only when the upper half of the argument is not zero).
"""
from __future__ import annotations

from typing import Any

from ..errors import ProfileError
from . import libseccomp as scmp
from .oci import _kind, _Reader, parse_json
from .rules import Rule, RuleSet, target_layout

_OPS = {"eq": "SCMP_CMP_EQ", "ne": "SCMP_CMP_NE", "lt": "SCMP_CMP_LT", "le": "SCMP_CMP_LE",
        "gt": "SCMP_CMP_GT", "ge": "SCMP_CMP_GE"}
_SIMPLE_ACTIONS = {"allow": scmp.SCMP_ACT_ALLOW, "trap": scmp.SCMP_ACT_TRAP,
                   "kill_thread": scmp.SCMP_ACT_KILL_THREAD, "kill": scmp.SCMP_ACT_KILL_THREAD,
                   "kill_process": scmp.SCMP_ACT_KILL_PROCESS, "log": scmp.SCMP_ACT_LOG}
U32 = 0xFFFFFFFF


def looks_like(doc: Any) -> bool:
    return isinstance(doc, dict) and bool(doc) and all(
        isinstance(v, dict) and ("filter" in v or "default_action" in v) for v in doc.values())


def _action(reader: _Reader, value: Any, path: str) -> int:
    if isinstance(value, str) and value in _SIMPLE_ACTIONS:
        return _SIMPLE_ACTIONS[value]
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key in ("errno", "trace"):
            n = reader.uint(arg, f"{path}.{key}", 16)
            return scmp.SCMP_ACT_ERRNO(n) if key == "errno" else scmp.SCMP_ACT_TRACE(n)
    known = ", ".join(list(_SIMPLE_ACTIONS) + ['{"errno": N}', '{"trace": N}'])
    raise reader.fail(path, f"unknown action {value!r}; known: {known}")


def rule_set(data: bytes, source: str, arch: str, thread: str | None,
             optimize: "int | str" = 1) -> tuple[RuleSet, str]:
    """(RuleSet, chosen thread) for one thread category of a seccompiler JSON file."""
    reader = _Reader(source)
    doc = parse_json(data, source)
    if not looks_like(doc):
        raise reader.fail("$", "not a Firecracker seccompiler file: expected an object of thread "
                               "categories, each with default_action, filter_action and filter")
    if thread is None:
        if len(doc) != 1:
            raise ProfileError(f"this Firecracker file has one filter per thread category; choose "
                               f"one with PATH#THREAD or thread= ({', '.join(doc)})", source=source)
        thread = next(iter(doc))
    if thread not in doc:
        raise ProfileError(f"no thread category {thread!r}; the file has {', '.join(doc)}",
                           source=source)
    base = f"$.{thread}"
    warnings: list[str] = []
    cat = reader.obj(doc[thread], base, {"default_action", "filter_action", "filter"}, warnings)
    default = _action(reader, cat.get("default_action"), f"{base}.default_action")
    matched = _action(reader, cat.get("filter_action"), f"{base}.filter_action")
    out: list[Rule] = []
    for i, rule in enumerate(reader.list_(cat.get("filter"), f"{base}.filter")):
        p = f"{base}.filter[{i}]"
        rule = reader.obj(rule, p, {"syscall", "args", "comment"}, warnings)
        name = reader.string(rule.get("syscall"), f"{p}.syscall")
        conds = []
        for j, cond in enumerate(reader.list_(rule.get("args"), f"{p}.args")):
            conds.append(_condition(reader, cond, f"{p}.args[{j}]", warnings))
        if matched != default:
            out.append(Rule(name, matched, tuple(conds)))
    attrs = {} if optimize == 1 else {scmp.SCMP_FLTATR_CTL_OPTIMIZE: int(optimize)}
    if optimize not in (1, 2):
        raise ProfileError(f"optimize must be 1 or 2 for Firecracker JSON, not {optimize!r}",
                           source=source)
    return RuleSet(default_action=default, arches=[target_layout(arch).name], rules=out,
                   attrs=attrs, warnings=warnings), thread


def _condition(reader: _Reader, cond: Any, path: str, warnings: list[str]) -> scmp.Condition:
    cond = reader.obj(cond, path, {"index", "type", "op", "val", "comment"}, warnings)
    index = reader.uint(cond.get("index"), f"{path}.index")
    if index > 5:
        raise reader.fail(f"{path}.index", f"argument index {index} is out of range (0..5)")
    kind = cond.get("type")
    if kind not in ("dword", "qword"):
        raise reader.fail(f"{path}.type", f"expected \"dword\" or \"qword\", got {kind!r}")
    val = reader.uint(cond.get("val"), f"{path}.val", 32 if kind == "dword" else 64)
    op = cond.get("op")
    if isinstance(op, dict) and set(op) == {"masked_eq"}:
        mask = reader.uint(op["masked_eq"], f"{path}.op.masked_eq", 64)
        if kind == "dword":
            mask &= U32
        return scmp.Condition(index, scmp.SCMP_CMP["SCMP_CMP_MASKED_EQ"], mask, val)
    if not isinstance(op, str) or op not in _OPS:
        raise reader.fail(f"{path}.op", f"unknown operator {op!r} ({_kind(op)}); known: "
                                        f"{', '.join(_OPS)}, {{\"masked_eq\": MASK}}")
    if kind == "dword" and op == "eq":
        return scmp.Condition(index, scmp.SCMP_CMP["SCMP_CMP_MASKED_EQ"], U32, val)
    if kind == "dword":
        warnings.append(f"{path}: dword {op!r} compiled as a 64-bit comparison (libseccomp 2.5 "
                        f"has no 32-bit one); it differs when the argument's upper half is set")
    return scmp.Condition(index, scmp.SCMP_CMP[_OPS[op]], val, 0)
