"""Lint rules about the program's own instructions and paths (BJ106-BJ113).

Reachability here is exact in the direction claimed: "never runs" comes from
:mod:`bpfjit.analysis.paths`, which over-approximates the paths inputs take,
so an instruction it never reaches is never executed by any input.
"""
from __future__ import annotations

import math

from ... import opcodes as op
from ...seccomp.actions import (MAX_ERRNO, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_THREAD,
                                SECCOMP_RET_TRACE, SECCOMP_RET_USER_NOTIF, Action)
from ...seccomp.layouts import IP_OFFSET, LAYOUTS, NR_OFFSET
from .. import dispatch
from . import Finding
from .facts import Facts

RET_K = op.BPF_RET | op.BPF_K
#: a dispatch chain is reported when some value takes at least this many comparisons ...
CHAIN_MIN = 32
#: ... and that is more than this many times a balanced tree's depth
CHAIN_FACTOR = 3


def _ranges(indexes: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for i in sorted(indexes):
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def _span(lo: int, hi: int) -> str:
    return f"{lo}" if lo == hi else f"{lo}..{hi}"


def returns(facts: Facts) -> list[Finding]:
    """BJ108 (ERRNO > 4095), BJ109 (KILL_THREAD), BJ112 (USER_NOTIF / TRACE) on reached ``ret #k``."""
    out = []
    for pc, (code, _, _, k) in enumerate(facts.insns):
        if code != RET_K or not facts.reached(pc):
            continue
        action = k & 0xFFFF0000
        if action == SECCOMP_RET_ERRNO and k & 0xFFFF > MAX_ERRNO:
            out.append(Finding(
                "BJ108", pc,
                f"ret ERRNO({k & 0xFFFF}): the kernel caps errno at {MAX_ERRNO}, so the caller "
                f"sees -{MAX_ERRNO}, not -{k & 0xFFFF}",
                f"use an errno of at most {MAX_ERRNO} (e.g. ERRNO(1) for EPERM)"))
        elif action == SECCOMP_RET_KILL_THREAD:
            out.append(Finding(
                "BJ109", pc,
                "ret KILL_THREAD kills only the calling thread (the whole process only when it is "
                "the last one): other threads keep running, possibly holding locks or half-done work",
                "return KILL_PROCESS instead"))
        elif action in (SECCOMP_RET_USER_NOTIF, SECCOMP_RET_TRACE):
            who = "no listener holds the notification fd" if action == SECCOMP_RET_USER_NOTIF \
                else "no tracer is attached (or it does not use PTRACE_O_TRACESECCOMP)"
            out.append(Finding(
                "BJ112", pc,
                f"ret {Action.from_value(k)}: when {who}, the kernel fails the call with ENOSYS "
                f"instead of deciding it",
                "make sure callers treat ENOSYS as a denial, or keep the supervisor/tracer alive "
                "for the whole life of the filtered process"))
    return out


def instruction_pointer(facts: Facts) -> list[Finding]:
    """BJ107: a reached load of either half of ``instruction_pointer``."""
    return [Finding(
        "BJ107", pc,
        f"ld [{facts.layout.describe_offset(k)}]: the instruction pointer is chosen by whoever makes "
        f"the call (any code can jump to a syscall instruction anywhere), so it cannot make "
        f"a policy decision",
        "decide on nr and args only")
        for pc, k in facts.loads() if k in (IP_OFFSET, IP_OFFSET + 4)]


def _sixty_four_bit_at(facts: Facts, pc: int) -> bool:
    """Some 64-bit architecture's task may run ``pc`` (arch range from the path analysis)."""
    lo, hi, refused = facts.feasible.possible(pc, 4)
    if (lo, hi) == (0, 0xFFFFFFFF) and not refused:
        return facts.layout.bits == 64
    return any(lo <= lay.audit_arch <= hi and lay.audit_arch not in refused and lay.bits == 64
               for lay in LAYOUTS.values())


def low_half_only(facts: Facts) -> list[Finding]:
    """BJ106: ``args[i].lo`` loaded where no path through it ever loads ``args[i].hi``."""
    lay = facts.layout
    insns = facts.insns
    n = len(insns)
    preds: list[list[int]] = [[] for _ in range(n)]
    for pc in range(n):
        for t in _succ(insns, pc):
            preds[t].append(pc)
    out = []
    loads = facts.loads()
    for i in range(6):
        lo_k, hi_k = lay.word_offset("args", i, "lo"), lay.word_offset("args", i, "hi")
        lo_at = [pc for pc, k in loads if k == lo_k]
        if not lo_at:
            continue
        hi_at = {pc for pc, k in loads if k == hi_k}
        before = [False] * n            # a hi load runs on some path into pc (pc included)
        for pc in range(n):
            before[pc] = pc in hi_at or any(before[p] for p in preds[pc])
        after = [False] * n             # a hi load runs on some path out of pc (pc included)
        for pc in range(n - 1, -1, -1):
            succ = _succ(insns, pc)
            after[pc] = pc in hi_at or any(after[s] for s in succ)
        bare = [pc for pc in lo_at if not before[pc] and not after[pc]
                and _sixty_four_bit_at(facts, pc)]
        for pc in bare:
            out.append(Finding(
                "BJ106", pc,
                f"ld [args[{i}].lo] with no load of args[{i}].hi on any path through it: values that "
                f"differ only in the high 32 bits get the same verdict (fine only where the kernel "
                f"truncates this argument to 32 bits)",
                f"also check args[{i}].hi (e.g. jne #0 to the deny action)"))
    return out


def _succ(insns: list[tuple], pc: int) -> tuple[int, ...]:
    code, jt, jf, k = insns[pc]
    if op.bpf_class(code) == op.BPF_RET:
        return ()
    if code == op.BPF_JMP | op.BPF_JA:
        return (pc + 1 + k,)
    if code in op.CONDITIONAL_JUMPS:
        return (pc + 1 + jt, pc + 1 + jf)
    return (pc + 1,)


def unreachable(facts: Facts) -> list[Finding]:
    """BJ110: instructions no control-flow path from instruction 0 reaches."""
    dead = [pc for pc in range(len(facts.insns)) if pc not in facts.cfg_reachable]
    return [Finding(
        "BJ110", lo,
        f"instruction{'s' if hi > lo else ''} {_span(lo, hi)} cannot be reached by any jump",
        f"remove {'them' if hi > lo else 'it'} (or fix the jump that was meant to reach "
        f"{'them' if hi > lo else 'it'})")
        for lo, hi in _ranges(dead)]


def _describe_jump(facts: Facts, pc: int) -> str:
    from ...formats.disasm import instruction_text
    return instruction_text(facts.program, pc, arch=facts.layout)


def shadowed(facts: Facts) -> list[Finding]:
    """BJ111: a comparison with an edge no input takes, whose target then never runs."""
    feas = facts.feasible
    if not feas.complete:
        return []
    never = {pc for pc in facts.cfg_reachable if pc not in feas.reached}
    if not never:
        return []
    dead_ranges = _ranges(sorted(never))
    out = []
    for pc, target in feas.infeasible_edges(facts.program):
        if target not in never:
            continue
        code, jt, jf, k = facts.insns[pc]
        span = next((lo, hi) for lo, hi in dead_ranges if lo <= target <= hi)
        earlier = _earlier_same_test(facts, pc)
        why = f" (the same test at instruction {earlier} already took those values)" \
            if earlier is not None else " given the comparisons before it"
        out.append(Finding(
            "BJ111", pc,
            f"`{_describe_jump(facts, pc).split(';')[0].strip()}`: no input takes its branch to "
            f"instruction {target}{why}, so instruction{'s' if span[1] > span[0] else ''} "
            f"{_span(*span)} never run{'' if span[1] > span[0] else 's'}",
            "remove the shadowed rule or move it before the rule that shadows it"))
    return out


def _earlier_same_test(facts: Facts, pc: int) -> int | None:
    """An earlier reached ``jeq`` with the same constant on the same loaded word, if any."""
    code, _, _, k = facts.insns[pc]
    word = _held_word(facts, pc)
    if word is None:
        return None
    for q in range(pc):
        qc, _, _, qk = facts.insns[q]
        if qc == code and qk == k and facts.reached(q) and _held_word(facts, q) == word:
            return q
    return None


def _held_word(facts: Facts, pc: int) -> int | None:
    """The seccomp_data offset A holds whenever ``pc`` runs (None if not always one word)."""
    return facts.feasible.word_in_a(pc)


def chains(facts: Facts) -> list[Finding]:
    """BJ113: a dispatch on nr where some number passes CHAIN_MIN comparisons one after another."""
    regions = dispatch.find_dispatches(facts.program)
    covered: set[int] = set()
    out = []
    for head in sorted(regions):
        region = regions[head]
        if head in covered:
            continue
        covered.update(region.members)
        if _held_word(facts, head) != NR_OFFSET:
            continue
        depth = _longest(facts.insns, region)
        cases = len(region.cases)
        tree = math.ceil(math.log2(cases + 1)) + 1
        if depth >= CHAIN_MIN and depth > CHAIN_FACTOR * tree:
            out.append(Finding(
                "BJ113", head,
                f"nr dispatch of {cases} numbers tested one after another: up to {depth} "
                f"comparisons per call, where a binary tree needs about {tree}",
                "generate a binary tree (libseccomp: SCMP_FLTATR_CTL_OPTIMIZE=2)"))
    return out


def _longest(insns: list[tuple], region: dispatch.Dispatch) -> int:
    """The most comparisons a run through the region executes (ja not counted)."""
    members = set(region.members)
    best: dict[int, int] = {}
    for pc in sorted(members, reverse=True):
        code = insns[pc][0]
        inner = [best.get(s, 0) for s in _succ(insns, pc) if s in members]
        best[pc] = (0 if code == op.BPF_JMP | op.BPF_JA else 1) + max(inner, default=0)
    return best.get(region.head, 0)


def findings(facts: Facts) -> list[Finding]:
    return (returns(facts) + instruction_pointer(facts) + low_half_only(facts)
            + unreachable(facts) + shadowed(facts) + chains(facts))

