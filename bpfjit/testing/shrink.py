"""Fuzzing stage, shrinking: re-check a disagreement, minimise it (programs, then the record), write it.

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

:class:`Referee` builds the predicates: it re-asks the oracles (bpfjit.check,
the reference interpreter, seccomp(2)) and the candidates about each
shrunk program and record, and finally collects everyone's answer on the
reproducer into a :class:`Disagreement`.
"""
from __future__ import annotations

import errno as errno_names
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import bpfjit_reference as ref

from .. import opcodes as op
from ..check import check
from ..errors import InvalidProgram, LoadError
from ..program import Program
from ..seccomp.actions import Action
from .candidates import Candidate, Failed, Rejected

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
    """Simpler values for a field, most aggressive first (0, 1, fewer bits, smaller)."""
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
    """The program as a C ``struct sock_filter`` initialiser, one ``{ code, jt, jf, k },``
    a line."""
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
    """Write ``program.bpf``/``.asm``/``.c`` (``filter-<i>.*`` for a stack), ``reproducer.json``."""
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


# --- the disagreement: oracles, predicates, everyone's answers ------------------------------

def expected_acceptance(data: bytes, program: Program | None = None
                        ) -> tuple[bool, str | None, str]:
    """(accepted, errno name, why) from bpfjit.check for little-endian ``sock_filter`` bytes
    (``program``: the same bytes already decoded)."""
    if len(data) % 8:
        return False, "EINVAL", f"{len(data)} bytes is not a whole number of instructions"
    try:
        check(program if program is not None else Program.from_bytes(data, "little"))
    except InvalidProgram as exc:
        return False, exc.errno, str(exc)
    except LoadError as exc:
        return False, "EINVAL", str(exc)
    return True, None, ""


def reference_values(programs: Sequence[Sequence[tuple]], records: np.ndarray, byteorder: str,
                     *, stack: bool = False, on_step: Callable | None = None,
                     sample: int = 0) -> np.ndarray:
    """The reference's uint32 answers for each record (``stack``: what the stack returns).

    The first ``sample`` records run with ``on_step`` (coverage).
    """
    insns = [[tuple(i) for i in p] for p in programs]
    out = np.empty(len(records), dtype=np.uint32)
    columns = zip(records["nr"].tolist(), records["arch"].tolist(),
                  records["instruction_pointer"].tolist(), records["args"].tolist())
    for i, (nr, arch, ip, args) in enumerate(columns):
        image = ref.seccomp_data_image(nr, arch, ip, args, byteorder)
        hook = on_step if i < sample else None
        values = [ref.run(p, image, byteorder=byteorder, on_step=hook) for p in insns]
        out[i] = ref.run_stack(values) if stack else values[0]
    return out


def describe_value(value) -> dict:
    if isinstance(value, Rejected):
        return {"rejected": value.reason}
    if isinstance(value, bool):
        return {"accepts": value}
    v = int(value)
    return {"value": v, "hex": f"{v:#010x}", "action": str(Action.from_value(v))}


@dataclass
class Disagreement:
    """One distinct disagreement, shrunk.

    ``kind``: ``verdict`` (different 32-bit value), ``accepts-invalid``,
    ``rejects-valid``, ``errno`` (both reject, with different errnos), or
    ``hang``/``crash`` (a candidate process, oracle ``protocol``).
    ``oracle`` names who is taken as right (``reference``, ``bpfjit.check``,
    ``kernel``); ``candidates`` who disagree with it on the reproducer.
    """

    kind: str
    oracle: str
    candidates: tuple[str, ...]
    programs: list[list[tuple[int, int, int, int]]]
    record: dict[str, int] | None
    expected: dict
    answers: dict[str, dict]
    origin: dict
    count: int = 1
    path: Path | None = None
    #: for a hang/crash: every record of the request the candidate failed on
    batch: list[dict[str, int]] | None = None

    @property
    def instructions(self) -> int:
        """Instructions of the (largest) shrunk program."""
        return max((len(p) for p in self.programs), default=0)

    def key(self) -> tuple:
        rec = tuple(sorted(self.record.items())) if self.record else None
        return (self.kind, self.candidates, tuple(tuple(p) for p in self.programs), rec)

    def summary(self) -> str:
        who = ", ".join(self.candidates)
        what = {"verdict": "returns a different 32-bit value than",
                "accepts-invalid": "accepts a program rejected by",
                "rejects-valid": "rejects (or fails on) a program accepted by",
                "errno": "rejects with another errno than",
                "hang": "hangs (no answer within the batch timeout) under the",
                "crash": "crashes (dies or breaks the framing) under the"}
        sizes = "+".join(str(len(p)) for p in self.programs)
        line = f"{who} {what.get(self.kind, self.kind)} {self.oracle} " \
               f"({sizes} instructions, seen {self.count}x)"
        if self.path:
            line += f" -> {self.path}"
        return line


_ZERO = {name: 0 for name, _ in RECORD_FIELDS}

#: kernel-internal errnos that reach user space but have no libc name
KERNEL_ERRNOS = {524: "ENOTSUPP"}   # e.g. the x86-64 BPF JIT giving up on a program


def _errno_name(err: int) -> str:
    return errno_names.errorcode.get(err) or KERNEL_ERRNOS.get(err) or str(err)


class Referee:
    """Re-asks the oracles and the candidates about (shrunk) programs and records.

    The oracles: ``bpfjit.check`` (accept/reject, with the errno), the
    reference interpreter (values), and seccomp(2) through ``kernel_accepts``
    when given. ``stack``: programs are stacks, valued by ``run_stack``.
    """

    def __init__(self, cands: list, layout, *, stack: bool = False, kernel_accepts=None):
        self.cands = cands
        self.layout = layout
        self.stack = stack
        self.kernel_accepts = kernel_accepts

    # -- oracle and candidate answers on (shrunk) programs --
    def _bytes(self, programs):
        data = [Program(p).to_bytes("little") for p in programs]
        return data if self.stack else data[0]

    def _kernel_decision(self, data: bytes) -> tuple[bool, str | None]:
        return self.kernel_decisions([data])[0]

    def kernel_decisions(self, datas: list[bytes]) -> list[tuple[bool, str | None] | None]:
        """seccomp(2)'s (accepted, errno name) for each program; None where it cannot be asked
        (not whole instructions) or when the kernel is not used."""
        if self.kernel_accepts is None:
            return [None] * len(datas)
        from ..backends.kernel import kernel_accepts_many
        asked = [i for i, d in enumerate(datas) if not len(d) % 8]
        errs = kernel_accepts_many([datas[i] for i in asked]) if asked else []
        out: list = [None] * len(datas)
        for i, err in zip(asked, errs):
            out[i] = (err == 0, _errno_name(err) if err else None)
        return out

    def _all_valid(self, programs) -> bool:
        return all(expected_acceptance(Program(p).to_bytes("little"))[0] for p in programs)

    def predicate(self, kind: str, oracle: str, cand: Candidate | None, record: dict | None):
        """``holds(programs)`` for a disagreement of ``kind`` between ``cand`` and ``oracle``."""
        recs = make_records([record]) if record else None

        def holds(programs) -> bool:
            if kind in ("verdict", "rejects-valid") and not self._all_valid(programs):
                return False
            data = self._bytes(programs)
            if kind == "verdict":
                exp = reference_values(programs, recs, self.layout.byteorder,
                                   stack=self.stack)
                got = cand.answer(data, recs)
                return isinstance(got, np.ndarray) and int(got[0]) != int(exp[0])
            if kind == "rejects-valid":
                if cand.evaluates:
                    return isinstance(cand.answer(data, recs if recs is not None else
                                                  make_records([_ZERO])), Rejected)
                return cand.accepts(data) is not True
            ok, err, _ = expected_acceptance(data)
            if oracle == "kernel":          # bpfjit.check is the candidate
                if len(data) % 8 or not data:
                    return False
                k_ok, k_err = self._kernel_decision(data)
                return (ok, err) != (k_ok, k_err) and \
                    (kind != "errno" or (not ok and not k_ok)) and \
                    (kind != "accepts-invalid" or (ok and not k_ok)) and \
                    (kind != "rejects-valid" or (k_ok and not ok))
            return not ok and cand.accepts(data) is True          # accepts-invalid
        return holds

    def batch_predicate(self, cand: Candidate, programs):
        data = self._bytes(programs)

        def holds_batch(recs: np.ndarray) -> list[bool]:
            exp = reference_values(programs, recs, self.layout.byteorder,
                                   stack=self.stack)
            got = cand.answer(data, recs)
            if not isinstance(got, np.ndarray):
                return [False] * len(recs)
            return (got != exp).tolist()
        return holds_batch

    def describe(self, kind, oracle, cand, programs, record, origin) -> Disagreement:
        """Everyone's answer on the shrunk reproducer."""
        data = self._bytes(programs)
        answers: dict[str, dict] = {}
        disagree: list[str] = []
        if kind == "verdict" or (kind == "rejects-valid" and record is not None):
            recs = make_records([record])
            exp = int(reference_values(programs, recs, self.layout.byteorder,
                                   stack=self.stack)[0])
            expected = dict(describe_value(exp), oracle="reference")
            for c in self.cands:
                if not c.evaluates:
                    continue
                got = c.answer(data, recs)
                if got is None:
                    continue
                if isinstance(got, Failed):         # another candidate hangs/crashes on it
                    answers[c.name] = {got.kind: got.detail}
                    disagree.append(c.name)
                    continue
                answers[c.name] = describe_value(got if isinstance(got, Rejected) else int(got[0]))
                if isinstance(got, Rejected) or int(got[0]) != exp:
                    disagree.append(c.name)
        else:
            ok, err, why = expected_acceptance(data if isinstance(data, bytes) else data[0])
            expected = {"accepts": ok, "errno": err, "why": why, "oracle": "bpfjit.check"}
            if self.kernel_accepts is not None and isinstance(data, bytes) and data and \
                    not len(data) % 8:
                k_ok, k_err = self._kernel_decision(data)
                answers["kernel"] = {"accepts": k_ok, "errno": k_err}
                if oracle == "kernel":
                    expected, answers = dict(answers["kernel"], oracle="kernel"), \
                        {"bpfjit.check": {"accepts": ok, "errno": err, "why": why}}
                    disagree.append("bpfjit.check")
            for c in self.cands:
                if oracle == "kernel" or (c.accepts_checked and c is not cand):
                    continue
                verdict = c.accepts(data)
                answers[c.name] = describe_value(verdict)
                if (verdict is True) != expected["accepts"]:
                    disagree.append(c.name)
        if cand is not None and cand.name not in disagree:
            disagree.append(cand.name)  # e.g. a kernel sample candidate that others agree with
        return Disagreement(kind, oracle, tuple(sorted(disagree)), programs, record, expected,
                            answers, origin)

    def to_json(self, d: Disagreement) -> dict:
        lay = self.layout
        doc = {"kind": d.kind, "summary": d.summary(), "seen": d.count, "oracle": d.oracle,
               "disagreeing": list(d.candidates),
               "layout": {"name": lay.name, "byteorder": lay.byteorder,
                          "audit_arch": f"{lay.audit_arch:#010x}"},
               "stack": len(d.programs) > 1 or self.stack}
        if d.record is not None:
            nr = d.record["nr"]
            doc["record"] = {"nr": nr - (1 << 32) if nr >= 1 << 31 else nr,
                             "arch": d.record["arch"], "arch_hex": f"{d.record['arch']:#010x}",
                             "instruction_pointer": d.record["instruction_pointer"],
                             "args": [d.record[f"args[{i}]"] for i in range(6)]}
        doc.update(expected=d.expected, answers=d.answers, origin=d.origin,
                   candidates={c.name: c.description for c in self.cands})
        if d.batch is not None:
            doc["batch"] = [dict(r, nr=r["nr"] - (1 << 32) if r["nr"] >= 1 << 31 else r["nr"])
                            for r in d.batch]
        return doc
