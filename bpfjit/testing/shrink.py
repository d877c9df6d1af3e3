"""Fuzzing stage, shrinking: minimise a disagreement (programs, then the input record) into a reproducer.

The shrinker knows nothing about candidates: it is handed a predicate
``holds(...) -> bool`` ("the disagreement is still there") and greedily
applies smaller and simpler edits while the predicate keeps holding:

programs (:func:`shrink_programs`), in rounds until nothing changes:

1. drop a whole filter of a stack;
2. delete runs of instructions, halving the run length (ddmin), fixing up
   every jump that crosses the deleted run (a jump into it lands on the
   instruction after it);
3. replace an instruction by ``ret #0``, a conditional jump by ``ja`` to
   either target, a ``ja`` by a shorter one;
4. simplify fields: ``k`` towards 0/1/fewer bits, ``jt``/``jf`` towards 0.

The input record (:func:`shrink_record`): each field towards 0, then 1 and
small values, then clearing one bit at a time from the top. Candidate values
are tested in batches (``holds_batch(records) -> list[bool]``), so a
record is shrunk with a handful of candidate calls.

:func:`write_reproducer` then writes the result: ``program.bpf`` (raw,
little-endian), ``program.asm`` (bpf_asm text, or the C array when the
disassembler is unavailable), ``program.c`` and ``reproducer.json``.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .. import opcodes as op

Insn = tuple[int, int, int, int]
Insns = list[Insn]

_RET_K = op.BPF_RET | op.BPF_K
_RET_A = op.BPF_RET | op.BPF_A
_JA = op.BPF_JMP | op.BPF_JA

#: fields of a record, in the order they are shrunk, with their width in bits
RECORD_FIELDS = (("nr", 32), ("arch", 32), ("instruction_pointer", 64)) + \
    tuple((f"args[{i}]", 64) for i in range(6))


class Budget:
    """A count of predicate calls left; shrinking stops (keeping its best) when it runs out."""

    def __init__(self, tries: int):
        self.left = tries
        self.used = 0

    def take(self, n: int = 1) -> bool:
        if self.left < n:
            return False
        self.left -= n
        self.used += n
        return True


# --- programs -------------------------------------------------------------------------------

def _targets(insn: Insn, pc: int) -> list[tuple[str, int]]:
    code, jt, jf, k = insn
    if code == _JA:
        return [("k", pc + 1 + k)]
    if code in op.CONDITIONAL_JUMPS:
        return [("jt", pc + 1 + jt), ("jf", pc + 1 + jf)]
    return []


def _retarget(insn: Insn, pc: int, new_targets: dict[str, int]) -> Insn | None:
    code, jt, jf, k = insn
    fields = {"jt": jt, "jf": jf, "k": k}
    for name, target in new_targets.items():
        off = target - pc - 1
        if off < 0 or (name != "k" and off > 0xFF) or off > 0xFFFFFFFF:
            return None
        fields[name] = off
    return (code, fields["jt"], fields["jf"], fields["k"])


def delete(insns: Sequence[Insn], start: int, stop: int) -> Insns | None:
    """``insns`` without ``[start, stop)``; jumps over the hole shrink, jumps into it land after it.

    Returns None when nothing would be deleted or a jump cannot be fixed.
    """
    n = len(insns)
    stop = min(stop, n)
    if not 0 <= start < stop:
        return None
    width = stop - start
    out: Insns = []
    for pc, insn in enumerate(insns):
        if start <= pc < stop:
            continue
        if pc < start:
            moved = {}
            for name, target in _targets(insn, pc):
                if target >= stop:
                    moved[name] = target - width
                elif target >= start:
                    moved[name] = start
            if moved:
                fixed = _retarget(insn, pc, moved)
                if fixed is None:
                    return None
                insn = fixed
        out.append(tuple(insn))
    return out


def _simpler_values(value: int, bits: int = 32) -> list[int]:
    """Smaller candidates for a field value, most aggressive first, each < ``value`` in some sense."""
    if value == 0:
        return []
    seen: list[int] = []
    for v in (0, 1, 2, value >> 16, value & 0xFFFF, value >> 1, value & (value - 1),
              value ^ (1 << (value.bit_length() - 1)), value - 1):
        if 0 <= v < (1 << bits) and v != value and v not in seen and \
                (v == 0 or v.bit_length() < value.bit_length() or v < value):
            seen.append(v)
    return seen


def _replacements(insns: Insns, pc: int) -> Iterator[Insns]:
    """Simpler instructions in place of ``insns[pc]`` (same length program)."""
    code, jt, jf, k = insns[pc]
    def put(new: Insn) -> Insns:
        out = list(insns)
        out[pc] = new
        return out
    if code != _RET_K or k != 0:
        yield put((_RET_K, 0, 0, 0))
    if code in op.CONDITIONAL_JUMPS:
        for off in sorted({jt, jf}):
            yield put((_JA, 0, 0, off))
        if jt != jf:
            yield put((code, jt, jt, k))
            yield put((code, jf, jf, k))
    if code == _RET_A:
        yield put((_RET_K, 0, 0, 0))
    if op.bpf_src(code) == op.BPF_X and op.bpf_class(code) in (op.BPF_ALU, op.BPF_JMP) and \
            code != op.BPF_ALU | op.BPF_NEG:
        yield put((code & ~op.BPF_X, jt, jf, k or 1))
    for v in _simpler_values(k):
        if code == op.BPF_LD | op.BPF_W | op.BPF_ABS and v & 3:
            continue
        yield put((code, jt, jf, v))
    if code in op.CONDITIONAL_JUMPS:
        for v in _simpler_values(jt, 8):
            yield put((code, v, jf, k))
        for v in _simpler_values(jf, 8):
            yield put((code, jt, v, k))
    if jt or jf:
        if code not in op.CONDITIONAL_JUMPS:
            yield put((code, 0, 0, k))
    if code > 0xFF:
        yield put((code & 0xFF, jt, jf, k))


def shrink_programs(programs: Sequence[Sequence[Insn]], holds: Callable[[list[Insns]], bool], *,
                    budget: Budget | None = None) -> list[Insns]:
    """The smallest programs (one, or a stack) found on which ``holds`` is still true.

    ``holds`` gets a list of instruction lists (``(code, jt, jf, k)`` tuples).
    """
    budget = budget or Budget(4000)
    cur = [list(map(tuple, p)) for p in programs]

    def attempt(candidate: list[Insns]) -> bool:
        if not budget.take():
            return False
        try:
            return bool(holds(candidate))
        except RecursionError:
            return False

    changed = True
    while changed and budget.left > 0:
        changed = False
        # 1. drop whole filters of a stack (keep at least one)
        i = 0
        while len(cur) > 1 and i < len(cur):
            trial = cur[:i] + cur[i + 1:]
            if attempt(trial):
                cur, changed = trial, True
            else:
                i += 1
        for f in range(len(cur)):
            # 2. delete runs of instructions, longest first
            size = max(1, len(cur[f]) // 2)
            while size >= 1 and budget.left > 0:
                start = 0
                while start < len(cur[f]) and budget.left > 0:
                    smaller = delete(cur[f], start, start + size)
                    if smaller is not None and attempt(cur[:f] + [smaller] + cur[f + 1:]):
                        cur[f], changed = smaller, True
                    else:
                        start += size if size > 1 else 1
                size //= 2
            # 3./4. simpler instructions, position by position
            pc = 0
            while pc < len(cur[f]) and budget.left > 0:
                for trial in _replacements(cur[f], pc):
                    if attempt(cur[:f] + [trial] + cur[f + 1:]):
                        cur[f], changed = trial, True
                        break
                else:
                    pc += 1
    return cur


# --- the input record -----------------------------------------------------------------------

def record_fields(record: np.void | np.ndarray) -> dict[str, int]:
    """A SECCOMP_DATA record as ``{"nr": .., "arch": .., "instruction_pointer": .., "args[i]": ..}``
    with every value unsigned (``nr`` as its 32-bit pattern)."""
    rec = np.asarray(record).reshape(-1)[0]
    fields = {"nr": int(rec["nr"]) & 0xFFFFFFFF, "arch": int(rec["arch"]),
              "instruction_pointer": int(rec["instruction_pointer"])}
    for i, a in enumerate(rec["args"].tolist()):
        fields[f"args[{i}]"] = int(a)
    return fields


def make_records(rows: Sequence[dict[str, int]]) -> np.ndarray:
    """SECCOMP_DATA records from :func:`record_fields` dictionaries."""
    from ..seccomp.records import SECCOMP_DATA
    out = np.zeros(len(rows), dtype=SECCOMP_DATA)
    for i, row in enumerate(rows):
        nr = row["nr"] & 0xFFFFFFFF
        out[i]["nr"] = nr - (1 << 32) if nr >= 1 << 31 else nr
        out[i]["arch"] = row["arch"]
        out[i]["instruction_pointer"] = row["instruction_pointer"]
        out[i]["args"] = [row[f"args[{j}]"] for j in range(6)]
    return out


def shrink_record(fields: dict[str, int], holds_batch: Callable[[np.ndarray], Sequence[bool]], *,
                  budget: Budget | None = None) -> dict[str, int]:
    """The simplest record (fields towards 0, fewer bits) on which the disagreement stays.

    ``holds_batch(records)`` answers for a whole array of variants at once.
    """
    budget = budget or Budget(200)
    cur = dict(fields)
    changed = True
    while changed and budget.take():
        changed = False
        for name, bits in RECORD_FIELDS:
            value = cur[name]
            if value == 0:
                continue
            variants = [0, 1, 2, 3] + [value & ~(1 << b) for b in range(bits - 1, -1, -1)
                                       if value >> b & 1]
            variants = [v for v in dict.fromkeys(variants) if v < value]
            if not variants:
                continue
            rows = [dict(cur, **{name: v}) for v in variants]
            verdicts = list(holds_batch(make_records(rows)))
            good = [v for v, ok in zip(variants, verdicts) if ok]
            if good:
                cur[name] = min(good)
                changed = True
    return cur


# --- the reproducer -------------------------------------------------------------------------

def c_array(insns: Sequence[Insn]) -> str:
    """The program as a C ``struct sock_filter`` initialiser, one ``{ code, jt, jf, k },`` a line."""
    return "".join(f"{{ 0x{c:02x}, {jt}, {jf}, 0x{k:08x} }},\n" for c, jt, jf, k in insns)


def assembler(insns: Sequence[Insn], arch: str) -> str:
    """bpf_asm text via bpfjit.formats.disasm, falling back to the C array if it cannot."""
    try:
        from ..formats.disasm import disassemble
        from ..program import Program
        return disassemble(Program(insns), arch=arch)
    except Exception:  # noqa: BLE001 - the disassembler is optional here; the C form never fails
        return c_array(insns)


def write_reproducer(directory: "str | Path", programs: Sequence[Sequence[Insn]], info: dict,
                     *, arch: str) -> Path:
    """Write ``program.bpf``/``.asm``/``.c`` (``filter-<i>.*`` for a stack) and ``reproducer.json``."""
    from ..program import Program
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    names = ["program"] if len(programs) == 1 else [f"filter-{i}" for i in range(len(programs))]
    files = []
    for name, insns in zip(names, programs):
        prog = Program(insns)
        (path / f"{name}.bpf").write_bytes(prog.to_bytes("little"))
        (path / f"{name}.asm").write_text(assembler(insns, arch))
        (path / f"{name}.c").write_text(c_array(insns))
        files.append({"bpf": f"{name}.bpf", "asm": f"{name}.asm", "c": f"{name}.c",
                      "instructions": len(insns), "sha256": prog.digest()})
    doc = dict(info)
    doc["programs"] = files
    (path / "reproducer.json").write_text(json.dumps(doc, indent=2) + "\n")
    return path
