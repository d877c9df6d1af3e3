"""What the lint rules share about one checked program: CFG, feasible paths, constants, an oracle.

The oracle is the reference interpreter (``bpfjit_reference``): every witness
a rule prints is the result of running it there. Verdicts for many numbers at
once come from the constant-verdict interpretation of
:mod:`bpfjit.analysis.verdicts` (exact where determined) and fall back to the
reference for the numbers whose verdict depends on the arguments.
"""
from __future__ import annotations

from functools import cached_property
from typing import Iterable

import bpfjit_reference

from ... import opcodes as op
from ...check import CheckedProgram
from ...seccomp.actions import Action, stack_retval
from ...seccomp.layouts import Layout, audit_arch_name, by_audit_arch
from .. import cfg, paths, verdicts

LD_ABS = op.BPF_LD | op.BPF_W | op.BPF_ABS
#: numbers further apart than this get separate windows in verdict_map
GAP = 64


class Facts:
    """Facts about ``program``; ``others``: the other filters of the same process (a stack).

    With ``others``, the oracle's verdicts are the stack's (the kernel's
    precedence over every filter's retval, ``seccomp_run_filters``), so the
    behaviour rules judge what the process really gets; the structural rules
    still look at ``program`` alone.
    """

    def __init__(self, program: CheckedProgram, layout: Layout,
                 others: "tuple[CheckedProgram, ...]" = ()):
        self.program = program
        self.layout = layout
        self.insns = [tuple(i) for i in program]
        self.others = tuple(Facts(o, layout) for o in others)

    @cached_property
    def graph(self) -> cfg.Cfg:
        return cfg.build(self.program)

    @cached_property
    def cfg_reachable(self) -> frozenset[int]:
        return cfg.reachable_instructions(self.program)

    @cached_property
    def feasible(self) -> paths.Feasibility:
        return paths.analyse(self.program)

    @cached_property
    def constants(self) -> tuple[set[int], set[int]]:
        """(nr constants, arch constants) the program compares the loaded words with."""
        return verdicts.tested_constants(self.program)

    @cached_property
    def named_arches(self) -> list[int]:
        """AUDIT_ARCH values the program compares ``arch`` with that are known architectures."""
        return sorted(a for a in self.constants[1] if by_audit_arch(a))

    # --- the oracle ------------------------------------------------------------------------

    def run(self, arch: int, nr: int, args: Iterable[int] = (0,) * 6, ip: int = 0
            ) -> tuple[int, list[int]]:
        """(retval, indexes of ``program`` executed) on one input, on the reference.

        With ``others``, retval is the stack's (``bpfjit_reference.run_stack``).
        """
        args = list(args)
        order = self.layout.byteorder
        image = bpfjit_reference.seccomp_data_image(nr & 0xFFFFFFFF, arch, ip, args, order)
        trail: list[int] = []
        retval = bpfjit_reference.run(self.insns, image, byteorder=order,
                                      on_step=lambda pc, *rest: trail.append(pc))
        if self.others:
            each = [bpfjit_reference.run(o.insns, image, byteorder=order) for o in self.others]
            retval = bpfjit_reference.run_stack(each + [retval])
        return retval, trail

    def witness(self, arch: int, nr: int, args: Iterable[int] = (0,) * 6, ip: int = 0) -> dict:
        """A witness input with its reference result, as printed in ``evidence``."""
        args = list(args)
        retval, trail = self.run(arch, nr, args, ip)
        name = audit_arch_name(arch)
        return {"arch": name or f"{arch:#x}", "audit_arch": arch, "nr": nr & 0xFFFFFFFF,
                "args": args, "instruction_pointer": ip, "retval": retval,
                "action": str(Action.from_value(retval)), "ret_index": trail[-1]}

    def verdict_map(self, arch: int, numbers: Iterable[int]) -> dict[int, int]:
        """nr -> retval with every argument and the instruction pointer 0, for ``arch``.

        Numbers whose verdict is the same for every argument come from the
        abstract interpretation; the rest are run on the reference.
        """
        words = sorted({n & 0xFFFFFFFF for n in numbers})
        spans: list[tuple[int, int]] = []
        for w in words:
            if spans and w - (spans[-1][0] + spans[-1][1]) < GAP:
                spans[-1] = (spans[-1][0], w - spans[-1][0] + 1)
            else:
                spans.append((w, 1))
        out: dict[int, int] = {}
        try:
            space = verdicts._Space(spans)
            values, known, _ = verdicts.interpret(self.program, arch, space)
            pos = 0
            for base, size in spans:
                for i in range(size):
                    if known[pos + i]:
                        out[base + i] = int(values[pos + i])
                pos += size
        except verdicts.BudgetExceeded:
            pass
        for w in words:
            if w not in out:
                out[w] = self._run_one(arch, w)
        if not self.others:
            return {w: out[w] for w in words}
        theirs = [o.verdict_map(arch, words) for o in self.others]
        return {w: stack_retval([t[w] for t in theirs] + [out[w]]) for w in words}

    def _run_one(self, arch: int, nr: int) -> int:
        image = bpfjit_reference.seccomp_data_image(nr, arch, 0, [0] * 6, self.layout.byteorder)
        return bpfjit_reference.run(self.insns, image, byteorder=self.layout.byteorder)

    # --- small structural queries ----------------------------------------------------------

    def reached(self, pc: int) -> bool:
        """Some input may execute ``pc`` (false only when proven never executed)."""
        return pc in self.feasible.reached

    def loads(self) -> list[tuple[int, int]]:
        """(index, offset) of every reached ``ld [k]`` of seccomp_data."""
        return [(pc, i[3]) for pc, i in enumerate(self.insns)
                if i[0] == LD_ABS and self.reached(pc)]

    def arch_name(self, value: int) -> str:
        return audit_arch_name(value) or f"{value:#x}"
