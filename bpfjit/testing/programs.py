"""Testing: seeded program generators — valid, realistic seccomp, near-valid (one rule broken), garbage.

Every generator takes a :class:`random.Random` and is reproducible from its
seed. They build programs *by construction* (they never ask
:func:`bpfjit.check.check`), so the checker and the kernel can be tested
against them:

- :func:`valid_program` follows the kernel's rules while it draws: forward
  jumps inside the program, a return last, constant divisors non-zero,
  constant shifts < 32, and scratch cells read only where the kernel's own
  linear scan (``check_load_and_stores``) says they are written;
- :func:`realistic_program` builds the shapes seccomp compilers emit (arch
  check, nr dispatch as jeq chains or jge/jgt trees, 64-bit argument tests,
  the x32 range check, scratch memory, ``ret a``, every kind of action);
- :func:`near_valid_program` breaks exactly one kernel rule of a valid program
  and names the kernel function that refuses it (``InvalidProgram.rule``;
  in :mod:`bpfjit.testing.near_valid`, re-exported here);
- :func:`garbage_program` is raw sock_filter bytes.
"""
from __future__ import annotations

import random
import struct
from collections import namedtuple
from collections.abc import Iterator, Sequence

from .. import opcodes as op
from ..program import Program
from ..seccomp import actions as act
from ..seccomp.layouts import Layout, LAYOUTS, X32_SYSCALL_BIT, layout as get_layout

U32 = 0xFFFFFFFF

#: an instruction while it is being drawn: a plain tuple, validated only when a Program is made
#: (program_stream packs these straight into bytes)
_I = namedtuple("_I", "code jt jf k", defaults=(0, 0, 0))
_PACK = struct.Struct("<HBBI").pack

# --- codes, by kernel spelling ----------------------------------------------------------
LD_ABS, LD_IMM, LDX_IMM = op.BPF_LD | op.BPF_W | op.BPF_ABS, op.BPF_LD | op.BPF_IMM, \
    op.BPF_LDX | op.BPF_IMM
LD_MEM, LDX_MEM = op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM
LD_LEN, LDX_LEN = op.BPF_LD | op.BPF_W | op.BPF_LEN, op.BPF_LDX | op.BPF_W | op.BPF_LEN
ST, STX = op.BPF_ST, op.BPF_STX
TAX, TXA = op.BPF_MISC | op.BPF_TAX, op.BPF_MISC | op.BPF_TXA
NEG = op.BPF_ALU | op.BPF_NEG
AND_K, OR_K = op.BPF_ALU | op.BPF_AND | op.BPF_K, op.BPF_ALU | op.BPF_OR | op.BPF_K
RET_K, RET_A = op.BPF_RET | op.BPF_K, op.BPF_RET | op.BPF_A
JA = op.BPF_JMP | op.BPF_JA
JEQ, JGT, JGE, JSET = (op.BPF_JMP | o | op.BPF_K for o in (op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE,
                                                            op.BPF_JSET))
ALU_OPS = (op.BPF_ADD, op.BPF_SUB, op.BPF_MUL, op.BPF_DIV, op.BPF_OR, op.BPF_AND, op.BPF_LSH,
           op.BPF_RSH, op.BPF_XOR)
JMP_OPS = (op.BPF_JEQ, op.BPF_JGT, op.BPF_JGE, op.BPF_JSET)

#: values that sit on edges: zero, one, shift limits, sign bits, all ones
INTERESTING = (0, 1, 2, 3, 7, 31, 32, 33, 63, 64, 255, 256, 0xFFFF, 0x10000, 0x3FFFFFFF,
               0x40000000, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFE, 0xFFFFFFFF)

#: return values of every kind: known actions with data, and unknown action values
ACTIONS = (act.SECCOMP_RET_ALLOW, act.SECCOMP_RET_LOG, act.SECCOMP_RET_KILL_PROCESS,
           act.SECCOMP_RET_KILL_THREAD, act.SECCOMP_RET_USER_NOTIF, act.SECCOMP_RET_TRAP,
           act.SECCOMP_RET_ERRNO, act.SECCOMP_RET_TRACE)
UNKNOWN_ACTIONS = (0x00010000, 0x00020000, 0x00040000, 0x00060000, 0x7FC10000, 0x7FF80000,
                   0x7FFE0000, 0x12340000, 0x80010000, 0xFFFF0000)


def random_k(rng: random.Random) -> int:
    """A 32-bit constant: often an edge value, often small, sometimes anything."""
    r = rng.random()
    if r < 0.45:
        return rng.choice(INTERESTING)
    if r < 0.7:
        return rng.randrange(65)
    if r < 0.85:
        return (rng.choice(INTERESTING) + rng.randrange(-2, 3)) & U32
    return rng.getrandbits(32)


def random_action(rng: random.Random) -> int:
    """A return value: every known action (with data where it means something) or an unknown one."""
    r = rng.random()
    if r < 0.8:
        base = rng.choice(ACTIONS)
        if base in (act.SECCOMP_RET_ERRNO, act.SECCOMP_RET_TRAP, act.SECCOMP_RET_TRACE):
            data = rng.choice((0, 1, 13, 38, 4095, 4096, 0xFFFF, rng.randrange(1, 200)))
            return base | data
        if rng.random() < 0.1:
            return base | rng.randrange(1, 0x10000)   # data bits on an action that ignores them
        return base
    if r < 0.95:
        return rng.choice(UNKNOWN_ACTIONS) | (rng.randrange(0x10000) if rng.random() < 0.3 else 0)
    return rng.getrandbits(32)


# --- valid programs ---------------------------------------------------------------------

class _MemScan:
    """The kernel's ``check_load_and_stores`` scan, run while a program is being drawn."""

    def __init__(self, length: int):
        self.masks = [0xFFFF] * length
        self.memvalid = 0

    def enter(self, pc: int) -> int:
        self.memvalid &= self.masks[pc]
        return self.memvalid

    def step(self, pc: int, insn: _I) -> None:
        code = insn.code
        if code in (ST, STX):
            self.memvalid |= 1 << insn.k
        elif code == JA:
            self.masks[pc + 1 + insn.k] &= self.memvalid
            self.memvalid = 0xFFFF
        elif code in op.CONDITIONAL_JUMPS:
            self.masks[pc + 1 + insn.jt] &= self.memvalid
            self.masks[pc + 1 + insn.jf] &= self.memvalid
            self.memvalid = 0xFFFF


def _ret(rng: random.Random) -> _I:
    if rng.random() < 0.2:
        return _I(RET_A)
    return _I(RET_K, 0, 0, random_action(rng))


def _valid_insn(rng: random.Random, pc: int, length: int, memvalid: int) -> _I:
    room = length - pc - 2                  # largest forward offset that stays inside
    kind = rng.choices(
        ("alu_k", "alu_x", "neg", "ld_abs", "ld_imm", "ldx_imm", "len", "ld_mem", "st",
         "misc", "ja", "jmp", "ret"),
        weights=(14, 10, 2, 12, 6, 7, 2, 6, 6, 4, 4, 22, 3))[0]
    if kind == "alu_k":
        o = rng.choice(ALU_OPS)
        if o == op.BPF_DIV:
            k = random_k(rng) or rng.choice((1, 2, 3, 0xFFFFFFFF))
        elif o in (op.BPF_LSH, op.BPF_RSH):
            k = rng.randrange(32)
        else:
            k = random_k(rng)
        return _I(op.BPF_ALU | o | op.BPF_K, 0, 0, k)
    if kind == "alu_x":
        return _I(op.BPF_ALU | rng.choice(ALU_OPS) | op.BPF_X)
    if kind == "neg":
        return _I(NEG)
    if kind == "ld_abs":
        return _I(LD_ABS, 0, 0, 4 * rng.randrange(16))
    if kind == "ld_imm":
        return _I(LD_IMM, 0, 0, random_k(rng))
    if kind == "ldx_imm":
        return _I(LDX_IMM, 0, 0, random_k(rng))
    if kind == "len":
        return _I(rng.choice((LD_LEN, LDX_LEN)))
    if kind == "ld_mem" and memvalid:
        cells = [c for c in range(op.BPF_MEMWORDS) if memvalid >> c & 1]
        return _I(rng.choice((LD_MEM, LDX_MEM)), 0, 0, rng.choice(cells))
    if kind in ("st", "ld_mem"):
        return _I(rng.choice((ST, STX)), 0, 0, rng.randrange(op.BPF_MEMWORDS))
    if kind == "misc":
        return _I(rng.choice((TAX, TXA)))
    if kind == "ja":
        return _I(JA, 0, 0, _offset(rng, room))
    if kind == "jmp":
        code = op.BPF_JMP | rng.choice(JMP_OPS) | rng.choice((op.BPF_K, op.BPF_X))
        jt, jf = _offset(rng, min(room, 255)), _offset(rng, min(room, 255))
        return _I(code, jt, jf, random_k(rng))
    return _ret(rng)


def _offset(rng: random.Random, room: int) -> int:
    if room <= 0:
        return 0
    r = rng.random()
    if r < 0.35:
        return 0
    if r < 0.7:
        return rng.randrange(min(room, 4) + 1)
    return rng.randrange(room + 1)


def valid_program(rng: random.Random, *, max_len: int = 48) -> Program:
    """A program the kernel accepts, drawn instruction by instruction under the kernel's rules."""
    return Program(_valid_insns(rng, max_len), source="valid_program")


def _valid_insns(rng: random.Random, max_len: int) -> list[_I]:
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, not {max_len}")
    length = rng.randint(1, max_len)
    scan = _MemScan(length)
    insns: list[_I] = []
    for pc in range(length):
        memvalid = scan.enter(pc)
        insn = _ret(rng) if pc == length - 1 else _valid_insn(rng, pc, length, memvalid)
        scan.step(pc, insn)
        insns.append(insn)
    return insns


# --- realistic seccomp programs ---------------------------------------------------------

#: an instruction whose jump targets are labels (None: the next instruction; ``to``: the ja
#: target), resolved by :func:`_assemble`
_J = namedtuple("_J", "code k jt jf to", defaults=(0, None, None, None))


def _assemble(items: Sequence[_J | str]) -> list[_I]:
    """Lay out labelled code; a conditional jump too far for 8 bits becomes ``jxx; ja T; ja F``.

    Jumps only go forward, so one backward pass decides every size: the
    distance from a jump to a later label depends only on the items between.
    """
    n = len(items)
    index = {it: i for i, it in enumerate(items) if isinstance(it, str)}
    end = [0] * (n + 1)          # instructions from item i to the end
    far: set[int] = set()
    for i in range(n - 1, -1, -1):
        it = items[i]
        size = 0 if isinstance(it, str) else 1
        if size and it.code in op.CONDITIONAL_JUMPS:
            for label in (it.jt, it.jf):
                if label is not None and end[i + 1] - end[index[label]] > 255:
                    far.add(i)
                    size = 3
        end[i] = end[i + 1] + size
    total = end[0]
    at = [total - e for e in end]
    pos = {label: at[i] for label, i in index.items()}

    def off(label: str | None, src: int, default: int = 0) -> int:
        return default if label is None else pos[label] - src - 1

    out: list[_I] = []
    for i, it in enumerate(items):
        if isinstance(it, str):
            continue
        here = at[i]
        if it.code == JA:
            out.append(_I(JA, 0, 0, off(it.to, here)))
        elif i in far:
            out.append(_I(it.code, 0, 1, it.k))
            out.append(_I(JA, 0, 0, off(it.jt, here + 1, 1)))
            out.append(_I(JA, 0, 0, off(it.jf, here + 2, 0)))
        elif it.code in op.CONDITIONAL_JUMPS:
            out.append(_I(it.code, off(it.jt, here), off(it.jf, here), it.k))
        else:
            out.append(_I(it.code, 0, 0, it.k))
    return out


class _Builder:
    def __init__(self, rng: random.Random, lay: Layout):
        self.rng = rng
        self.lay = lay
        self.items: list[_J | str] = []
        self.tails: list[_J | str] = []       # blocks emitted after the dispatch
        self.n = 0
        self.uses_mem = False                   # M[0] holds nr on every path to the blocks

    def label(self, hint: str) -> str:
        self.n += 1
        return f"{hint}{self.n}"

    def emit(self, *items: _J | str) -> None:
        self.items.extend(items)

    def nrs(self, count: int) -> list[int]:
        try:
            from ..seccomp import syscalls
            pool = sorted(set(syscalls.table(self.lay.syscall_abi).values()))
        except Exception:  # noqa: BLE001 - no table for this ABI: plausible numbers
            pool = [self.lay.nr_bit | n for n in range(450)]
        count = min(count, len(pool))
        picked = set(self.rng.sample(pool, count))
        if self.rng.random() < 0.1:
            picked.add(U32)            # the -1 that some filters test for
        return sorted(picked)

    # --- argument tests: every path ends at ok or fail ---
    def arg_test(self, ok: str, fail: str) -> list[_J | str]:
        rng, lay = self.rng, self.lay
        i = rng.randrange(6)
        hi, lo = lay.word_offset("args", i, "hi"), lay.word_offset("args", i, "lo")
        value = rng.choice((0, 1, rng.getrandbits(32), rng.getrandbits(64), 0xFFFFFFFF,
                            0x80000000, 0xFFFFFFFFFFFFFFFF, 1 << 32))
        vhi, vlo = value >> 32, value & U32
        form = rng.choice(("eq", "ne", "gt", "ge", "lt", "masked_eq", "lo_only", "jset"))
        if form == "eq":
            return [_J(LD_ABS, hi), _J(JEQ, vhi, None, fail), _J(LD_ABS, lo), _J(JEQ, vlo, ok, fail)]
        if form == "ne":
            return [_J(LD_ABS, hi), _J(JEQ, vhi, None, ok), _J(LD_ABS, lo), _J(JEQ, vlo, fail, ok)]
        if form in ("gt", "ge", "lt"):
            good, bad = (fail, ok) if form == "lt" else (ok, fail)
            last = JGT if form == "gt" else JGE
            return [_J(LD_ABS, hi), _J(JGT, vhi, good, None), _J(JEQ, vhi, None, bad),
                    _J(LD_ABS, lo), _J(last, vlo, good, bad)]
        if form == "masked_eq":
            mask = rng.choice((0xFFFF, 0xFFFFFFFF, rng.getrandbits(64), 1 << rng.randrange(64)))
            mhi, mlo = mask >> 32, mask & U32
            return [_J(LD_ABS, hi), _J(AND_K, mhi), _J(JEQ, vhi & mhi, None, fail),
                    _J(LD_ABS, lo), _J(AND_K, mlo), _J(JEQ, vlo & mlo, ok, fail)]
        if form == "lo_only":
            return [_J(LD_ABS, lo), _J(rng.choice((JEQ, JGT, JGE)), vlo, ok, fail)]
        return [_J(LD_ABS, lo), _J(JSET, vlo or 1, ok, fail)]

    def block(self, name: str, default: str) -> None:
        """The code run for one matched syscall."""
        rng = self.rng
        self.tails.append(name)
        r = rng.random()
        if r < 0.45:
            self.tails.append(_J(RET_K, random_action(rng)))
        elif r < 0.75:
            for _ in range(rng.randint(1, 3)):
                ok, fail = self.label("ok"), self.label("fail")
                self.tails.extend(self.arg_test(ok, fail))
                self.tails.extend([ok, _J(RET_K, random_action(rng)), fail])
            self.tails.append(_J(JA, to=default) if rng.random() < 0.5
                              else _J(RET_K, random_action(rng)))
        elif r < 0.88 or not self.uses_mem:   # ret a: a computed value
            if rng.random() < 0.5:
                self.tails.extend([_J(LD_IMM, random_action(rng)), _J(RET_A)])
            else:
                lo = self.lay.word_offset("args", rng.randrange(6), "lo")
                self.tails += [_J(LD_ABS, lo), _J(AND_K, 0xFFF),
                               _J(OR_K, act.SECCOMP_RET_ERRNO), _J(RET_A)]
        else:            # scratch memory: the nr saved in M[0] before the dispatch
            load = rng.choice((LD_MEM, LDX_MEM))
            self.tails += [_J(load, 0)] + ([_J(TXA)] if load == LDX_MEM else []) + \
                [_J(AND_K, 0xFF), _J(OR_K, act.SECCOMP_RET_ERRNO), _J(RET_A)]

    def chain(self, nrs: list[int], default: str) -> None:
        for nr in nrs:
            name = self.label("sys")
            self.emit(_J(JEQ, nr, name, None))
            self.block(name, default)
        self.emit(_J(JA, to=default))

    def tree(self, nrs: list[int], default: str) -> None:
        if len(nrs) <= 3:
            self.chain(nrs, default)
            return
        mid = len(nrs) // 2
        right = self.label("right")
        if self.rng.random() < 0.5:
            self.emit(_J(JGE, nrs[mid], right, None))
        else:
            self.emit(_J(JGT, (nrs[mid] - 1) & U32, right, None))
        self.tree(nrs[:mid], default)
        self.emit(right)
        self.tree(nrs[mid:], default)


def realistic_program(rng: random.Random, *, arch: str = "x86_64") -> Program:
    """A seccomp filter of the shape libseccomp, systemd, Chromium or Docker emit, for ``arch``."""
    lay = get_layout(arch)
    return Program(_realistic_insns(rng, lay), source=f"realistic_program({lay.name})")


def _realistic_insns(rng: random.Random, lay: Layout) -> list[_I]:
    b = _Builder(rng, lay)
    default, bad_arch = b.label("default"), b.label("badarch")
    if rng.random() < 0.9:
        b.emit(_J(LD_ABS, 4), _J(JEQ, lay.audit_arch, None, bad_arch))
    b.emit(_J(LD_ABS, 0))
    if lay.name == "x86_64" and rng.random() < 0.6:      # refuse x32 numbers, allow -1
        x32, dispatch = b.label("x32"), b.label("dispatch")
        b.emit(_J(JGT, X32_SYSCALL_BIT - 1, x32, dispatch), x32,
               _J(JEQ, U32, dispatch, bad_arch), dispatch)
    if rng.random() < 0.3:
        b.emit(_J(ST, 0))
        b.uses_mem = True
    size = rng.choices((rng.randint(1, 12), rng.randint(13, 60), rng.randint(61, 300)),
                       weights=(6, 3, 1))[0]
    nrs = b.nrs(size)
    if b.uses_mem and rng.random() < 0.5:
        b.emit(_J(LDX_MEM, 0), _J(TXA))
    if rng.random() < 0.5:
        b.chain(nrs, default)
    else:
        b.tree(nrs, default)
    b.items.extend(b.tails)
    b.emit(default, _J(RET_K, random_action(rng)), bad_arch,
           _J(RET_K, rng.choice((act.SECCOMP_RET_KILL_PROCESS, act.SECCOMP_RET_KILL_THREAD,
                                  act.SECCOMP_RET_TRAP, act.SECCOMP_RET_ERRNO | 1))))
    return _assemble(b.items)


# --- garbage ----------------------------------------------------------------------------

def garbage_program(rng: random.Random, *, max_len: int = 64) -> bytes:
    """Random little-endian sock_filter bytes (a multiple of 8), sometimes with plausible opcodes."""
    n = rng.randint(0, max_len)
    style = rng.random()
    if style < 0.3:
        return rng.randbytes(8 * n)
    codes = sorted(op.SECCOMP_CODES) if style < 0.65 else sorted(op.CLASSIC_CODES)
    noise = rng.choice((0.0, 0.02, 0.1))       # share of codes drawn from all 65536
    out = bytearray()
    for pc in range(n):
        if pc == n - 1 and rng.random() < 0.6:
            code = rng.choice((RET_K, RET_A))
        elif rng.random() >= noise:
            code = rng.choice(codes)
        else:
            code = rng.randrange(0x10000)
        jt = rng.randrange(min(256, n + 2)) if rng.random() < 0.8 else rng.randrange(256)
        jf = rng.randrange(min(256, n + 2)) if rng.random() < 0.8 else rng.randrange(256)
        k = rng.choice((random_k(rng), 4 * rng.randrange(17), rng.randrange(20)))
        out += code.to_bytes(2, "little") + bytes((jt, jf)) + k.to_bytes(4, "little")
    return bytes(out)


# --- the stream -------------------------------------------------------------------------

KINDS = ("valid", "realistic", "near_valid", "garbage", "probe")
#: how often program_stream draws each kind: probes are small and each makes one operation's
#: edge visible, so they get the largest share
KIND_WEIGHTS = {"valid": 2, "realistic": 2, "near_valid": 2, "garbage": 1, "probe": 4}
_ARCHES = tuple(name for name, lay in LAYOUTS.items())


def program_stream(seed: int, kinds: Sequence[str] = KINDS, *, focus=None
                   ) -> Iterator[tuple[str, bytes]]:
    """An endless, reproducible mix of ``(kind, little-endian sock_filter bytes)``.

    ``focus(rng)``: (the opcode a ``probe`` program is built around, whether to aim
    its operands at edges), from the fuzzer's coverage feedback
    (:func:`bpfjit.testing.probes.focus_chooser`).
    """
    from .near_valid import _near_valid
    from .probes import probe_insns
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty selection of {', '.join(KINDS)}; "
                         f"got {kinds!r}")
    rng = random.Random(seed)
    weights = [KIND_WEIGHTS[k] for k in kinds]
    while True:
        kind = rng.choices(kinds, weights)[0]
        if kind == "valid":
            insns = _valid_insns(rng, rng.choice((8, 48, 48, 200)))
        elif kind == "realistic":
            insns = _realistic_insns(rng, get_layout(rng.choice(_ARCHES)))
        elif kind == "near_valid":
            insns = _near_valid(rng, None)[0]
        elif kind == "probe":
            target, aim = focus(rng) if focus else (None, False)
            insns = [_I(*i) for i in probe_insns(rng, target, aim=aim)]
        else:
            yield kind, garbage_program(rng)
            continue
        yield kind, b"".join([_PACK(*i) for i in insns])


# near-valid programs live in their own module (which imports this one); their names stay
# importable from here, resolved on first use
_NEAR_VALID = frozenset({"BREAKAGES", "CLASSIC_NOT_SECCOMP", "NearValid", "near_valid_case",
                         "near_valid_program"})


def __getattr__(name: str):
    if name in _NEAR_VALID:
        from . import near_valid
        return getattr(near_valid, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
