"""Analysis stage: lint findings for a seccomp filter — stable codes, severity, index, one-line fix.

Each rule either states a fact about the program's text or control flow
(an instruction that loads ``instruction_pointer``, a ``ret`` of KILL_THREAD,
instructions no path reaches), or claims something about behaviour; the latter
come with a proof — a concrete witness input re-evaluated on the reference
interpreter (``evidence``), or an exact infeasibility result of
:mod:`bpfjit.analysis.paths` — and are not reported when the proof fails.

Codes (stable; never renumbered, retired codes are not reused):

======  ========  ==================================================================
code    severity  finding
======  ========  ==================================================================
BJ001   error     the kernel would reject the program (nothing else is checked)
BJ101   error     a system call number is loaded before any check of ``arch``
BJ102   error     a task of an architecture the filter does not name reaches the
                  ``nr`` dispatch (its verdict changes with ``nr``)
BJ103   warning   an x86_64 filter denies a syscall but allows its x32 number
BJ104   warning   an x86_64 filter denies a syscall but allows its i386 number
BJ105   warning   default action ALLOW on a deny-list (unknown numbers are allowed)
BJ106   warning   only the low 32 bits of a 64-bit argument are checked
BJ107   warning   ``instruction_pointer`` is used for policy
BJ108   warning   ERRNO data above 4095 (the kernel caps it at MAX_ERRNO)
BJ109   warning   KILL_THREAD: other threads of the process keep running
BJ110   info      instructions that no path reaches
BJ111   warning   a rule shadowed by earlier ones: a comparison that no input can
                  make true (or false) here, leaving instructions that never run
BJ112   warning   USER_NOTIF / TRACE: ENOSYS when no listener / tracer is attached
BJ113   info      a long linear chain of comparisons that could be a binary tree
======  ========  ==================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ...errors import InvalidProgram
from ...program import Program
from ...seccomp.layouts import Layout

SEVERITIES = ("info", "warning", "error")

#: code -> (severity, title): the catalogue printed by ``bpfjit lint --rules``
RULES = {
    "BJ001": ("error", "the kernel would reject the program"),
    "BJ101": ("error", "no arch check before the first ld [nr]"),
    "BJ102": ("error", "another architecture falls through to the nr dispatch"),
    "BJ103": ("warning", "x32 numbers bypass the x86_64 rules"),
    "BJ104": ("warning", "i386 (int 0x80) numbers bypass the x86_64 rules"),
    "BJ105": ("warning", "default action ALLOW on a deny-list"),
    "BJ106": ("warning", "only the low 32 bits of a 64-bit argument are checked"),
    "BJ107": ("warning", "instruction_pointer used for policy"),
    "BJ108": ("warning", "ERRNO data above 4095 is capped by the kernel"),
    "BJ109": ("warning", "KILL_THREAD leaves the other threads running"),
    "BJ110": ("info", "unreachable instructions"),
    "BJ111": ("warning", "rule shadowed by earlier comparisons"),
    "BJ112": ("warning", "USER_NOTIF/TRACE fail with ENOSYS without a listener/tracer"),
    "BJ113": ("info", "linear comparison chain that could be a binary tree"),
}


@dataclass(frozen=True)
class Finding:
    """One lint finding. ``index``: the instruction it is about (None: the whole program)."""

    code: str
    index: int | None
    message: str
    fix: str
    evidence: tuple[dict, ...] = field(default=())   # witness inputs with their reference retval

    @property
    def severity(self) -> str:
        return RULES[self.code][0]

    def to_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "index": self.index,
                "message": self.message, "fix": self.fix, "evidence": list(self.evidence)}


def at_least(findings: Sequence[Finding], severity: str) -> list[Finding]:
    """The findings of ``severity`` or worse."""
    floor = SEVERITIES.index(severity)
    return [f for f in findings if SEVERITIES.index(f.severity) >= floor]


def lint(program: Program, layout: "Layout | str | None" = None, *,
         stack: Sequence[Program] = ()) -> list[Finding]:
    """Every finding for ``program``, sorted by instruction index then code.

    ``layout``: the architecture the filter is written for (None: the first
    AUDIT_ARCH the program compares ``arch`` with, else x86_64). ``stack``:
    the other filters installed in the same process; the behaviour rules
    (BJ102-BJ105) then judge the verdict of the whole stack, as the kernel
    applies it.
    """
    from ...check import check
    from ...formats.disasm import infer_arch
    from ...seccomp.layouts import layout as resolve
    try:
        checked = check(program)
    except InvalidProgram as exc:
        return [Finding("BJ001", exc.index, str(exc), "fix the program so seccomp(2) accepts it")]
    lay = infer_arch(checked) if layout is None else resolve(layout)
    others = []
    for i, other in enumerate(stack):
        try:
            others.append(check(other))
        except InvalidProgram as exc:
            raise InvalidProgram(f"stacked filter {i}: {exc.reason}", index=exc.index,
                                 rule=exc.rule, errno=exc.errno) from None
    from . import arches, structure
    from .facts import Facts
    facts = Facts(checked, lay, tuple(others))
    found = arches.findings(facts) + structure.findings(facts)
    return sorted(found, key=lambda f: (-1 if f.index is None else f.index, f.code))
