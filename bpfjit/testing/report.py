"""Fuzzing stage, what a run saw and found: :class:`Coverage` (opcodes, branch outcomes, edge classes) and :class:`FuzzReport`.

Split from :mod:`bpfjit.testing.fuzz` (which re-exports both): the run
fills these in; tests, the CLI and the mutation score read them.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import opcodes as op
from .shrink import Disagreement

_JUMP_TESTS = {op.BPF_JEQ: lambda a, b: a == b, op.BPF_JGT: lambda a, b: a > b,
               op.BPF_JGE: lambda a, b: a >= b, op.BPF_JSET: lambda a, b: (a & b) != 0}
_DIV_X = op.BPF_ALU | op.BPF_DIV | op.BPF_X
_SHIFT_X = (op.BPF_ALU | op.BPF_LSH | op.BPF_X, op.BPF_ALU | op.BPF_RSH | op.BPF_X)
_COMPARES = {op.BPF_JMP | o | s for o in (op.BPF_JGT, op.BPF_JGE) for s in (op.BPF_K, op.BPF_X)}


# --- coverage -------------------------------------------------------------------------------

@dataclass
class Coverage:
    """What the reference executed on the sampled records."""

    opcodes: Counter = field(default_factory=Counter)    # code -> times executed
    branches: Counter = field(default_factory=Counter)   # (code, taken) -> times
    events: Counter = field(default_factory=Counter)     # edge case name -> times
    edges: Counter = field(default_factory=Counter)      # (code, probes.EDGE_CLASSES) -> times

    def missing_edges(self) -> list[int]:
        """Opcodes with an edge class of :data:`bpfjit.testing.probes.EDGE_CLASSES` executed
        fewer than MIN_EDGE_HITS times: the feedback that steers probe programs."""
        from .probes import EDGE_CLASSES, MIN_EDGE_HITS
        return sorted(c for c, classes in EDGE_CLASSES.items()
                      if any(self.edges[(c, e)] < MIN_EDGE_HITS for e in classes))

    def on_step(self, byteorder: str, edges: bool = True) -> Callable:
        """The reference's step hook. ``edges``: also count edge classes — only for probe
        programs, whose results reach the verdict (an edge executed in a random program is
        usually lost before a return, and must not count as tested)."""
        from .probes import EDGE_CLASSES, edge_class
        if not edges:
            EDGE_CLASSES = {}                          # noqa: N806
        opcodes, branches, events, edges = self.opcodes, self.branches, self.events, self.edges

        def step(pc, code, jt, jf, k, A, X):
            opcodes[code] += 1
            if code in EDGE_CLASSES:
                e = edge_class(code, A, X, k)
                if e is not None:
                    edges[(code, e)] += 1
            if code in op.CONDITIONAL_JUMPS:
                operand = X if op.bpf_src(code) == op.BPF_X else k
                branches[(code, _JUMP_TESTS[op.bpf_op(code)](A, operand))] += 1
                if code in _COMPARES and (A ^ operand) & 0x80000000:
                    events["jgt/jge with operands of different sign bit"] += 1
            elif code == _DIV_X and X == 0:
                events["div x with X = 0"] += 1
            elif code in _SHIFT_X and X >= 32:
                events["shift by X >= 32"] += 1
            elif code == op.BPF_LD | op.BPF_W | op.BPF_ABS and k >= 8 and \
                    (k % 8 == 4) == (byteorder == "little"):
                events["ld of a 64-bit field's high word"] += 1
            elif code in (op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM):
                events["scratch load"] += 1
        return step

    @property
    def opcode_fraction(self) -> tuple[int, int]:
        return len(set(self.opcodes) & op.SECCOMP_CODES), len(op.SECCOMP_CODES)

    @property
    def branch_fraction(self) -> tuple[int, int]:
        return len(self.branches), 2 * len(op.CONDITIONAL_JUMPS)

    def missing_opcodes(self) -> list[str]:
        return sorted(op.code_name(c) for c in op.SECCOMP_CODES - set(self.opcodes))

    def missing_branches(self) -> list[str]:
        return sorted(f"{op.code_name(c)} {'taken' if t else 'not taken'}"
                      for c in op.CONDITIONAL_JUMPS for t in (True, False)
                      if (c, t) not in self.branches)


# --- results --------------------------------------------------------------------------------

@dataclass
class FuzzReport:
    """What a fuzz run did and found. ``ok`` is True when nothing disagreed."""

    candidates: list[str]
    seed: int
    arch: str
    stack: bool
    kernel: str                                   # "used" or why not
    programs: int = 0
    programs_by_kind: Counter = field(default_factory=Counter)
    valid_programs: int = 0
    records: int = 0
    verdicts: int = 0                             # (record, candidate) values compared
    accept_decisions: int = 0                     # (program, candidate) accept/reject compared
    kernel_accept_decisions: int = 0              # bpfjit.check compared with seccomp(2)
    kernel_verdicts: int = 0
    raw_disagreements: int = 0
    unshrunk: int = 0                             # raw disagreements past the shrink cap
    elapsed: float = 0.0                          # wall seconds
    cpu_elapsed: float = 0.0                      # CPU seconds of this process (all threads)
    stopped_by: str = ""
    disagreements: list[Disagreement] = field(default_factory=list)
    coverage: Coverage = field(default_factory=Coverage)
    failures: Counter = field(default_factory=Counter)  # candidate processes: hang/crash -> n
    raw_by_candidate: Counter = field(default_factory=Counter)   # who -> raw disagreements
    #: who -> (programs drawn, wall s, CPU s) when its first raw disagreement was found
    first_found: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.disagreements and not self.raw_disagreements

    @property
    def programs_per_second(self) -> float:
        return self.programs / self.elapsed if self.elapsed else 0.0

    @property
    def inputs_per_second(self) -> float:
        return self.records / self.elapsed if self.elapsed else 0.0

    def format(self) -> str:
        cov = self.coverage
        (oc, ot), (bc, bt) = cov.opcode_fraction, cov.branch_fraction
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.programs_by_kind.items()))
        lines = [
            f"candidates: {', '.join(self.candidates)}  (arch {self.arch}, seed {self.seed}"
            f"{', stacks' if self.stack else ''}; kernel: {self.kernel})",
            f"programs: {self.programs} ({kinds}); {self.valid_programs} valid",
            f"time: {self.elapsed:.1f} s wall, {self.cpu_elapsed:.1f} s CPU ({self.stopped_by}); "
            f"{self.programs_per_second:.0f} programs/s, {self.inputs_per_second:.0f} inputs/s",
            f"compared: {self.verdicts} verdicts, {self.accept_decisions} accept/reject "
            f"decisions; kernel: {self.kernel_accept_decisions} accept/reject, "
            f"{self.kernel_verdicts} verdicts",
            *([f"candidate processes: " + ", ".join(f"{n} {k}" for k, n in
                                                    sorted(self.failures.items()))]
              if self.failures else []),
            f"coverage: opcodes {oc}/{ot}, branch outcomes {bc}/{bt}; events: " +
            (", ".join(f"{k} {n}" for k, n in sorted(cov.events.items())) or "none"),
        ]
        if cov.missing_opcodes():
            lines.append("  never executed: " + ", ".join(cov.missing_opcodes()))
        if self.disagreements:
            lines.append(f"DISAGREEMENTS: {len(self.disagreements)} distinct "
                         f"({self.raw_disagreements} raw, {self.unshrunk} not shrunk)")
            lines += [f"  {i + 1}. {d.summary()}" for i, d in enumerate(self.disagreements)]
        else:
            lines.append("no disagreement")
        return "\n".join(lines) + "\n"
