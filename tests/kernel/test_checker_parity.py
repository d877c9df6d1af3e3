"""bpfjit.check agrees with the running kernel's seccomp(2) on every program, and bpfjit.stack on the budget.

The kernel is the oracle: each program is installed for real in a throwaway
child (bpfjit.backends.kernel). A stream of 20,000 generated programs
(valid, realistic, near-valid, garbage), a table of edge cases, and stacks
whose eBPF path length is exactly at and one past the 32768 budget.
"""
from __future__ import annotations

import errno
import itertools
import os
import time
from collections import Counter

import pytest

from bpfjit import opcodes as op
from bpfjit.backends.kernel import (kernel_accepts, kernel_accepts_many, kernel_accepts_stack,
                                    kernel_stack_installs)
from bpfjit.check import is_valid
from bpfjit.errors import InvalidProgram
from bpfjit.program import Instruction, Program
from bpfjit.stack import MAX_INSNS_PER_PATH, check_budget, ebpf_length, path_length
from bpfjit.testing import program_stream

pytestmark = pytest.mark.kernel

STREAM_COUNT = int(os.environ.get("BPFJIT_PARITY_COUNT", "20000"))
ALLOW = 0x7FFF0000
#: include/linux/errno.h ENOTSUPP (kernel-internal, 524): with CONFIG_BPF_JIT_ALWAYS_ON a
#: program the x86-64 JIT fails to compile ("bpf_jit: fatal error" in dmesg) is refused
ENOTSUPP = 524
#: the named configuration of this kernel for check(..., kernel=): its x86-64 JIT's refusals
JIT_KERNEL = "linux-6.18-x86_64-jit-always-on"


def I(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> Instruction:  # noqa: E743
    return Instruction(code, jt, jf, k)


from expect import (ALU, JA, JEQ, JGE, JGT, JSET, LD_ABS, LD_IMM, LD_MEM, LDX_IMM, LDX_MEM,  # noqa: F401
                    RET_A, RET_K, ST, STX)


def _errname(err: int) -> str:
    return "accepted" if not err else "ENOTSUPP" if err == ENOTSUPP else \
        errno.errorcode.get(err, str(err))


def _parity(items: list[tuple[str, bytes]]) -> tuple[Counter, list, list]:
    """(counts by kind and verdict, checker disagreements, JIT refusals of valid programs)."""
    verdicts = kernel_accepts_many([data for _, data in items])
    counts: Counter = Counter()
    mismatches, jit_failures = [], []
    for (kind, data), err in zip(items, verdicts):
        mine = is_valid(Program.from_bytes(data))
        counts[(kind, _errname(err))] += 1
        if mine and err == ENOTSUPP:
            jit_failures.append((kind, data.hex()))
        elif mine != (err == 0):
            mismatches.append((kind, _errname(err), data.hex()))
    return counts, mismatches, jit_failures


@pytest.mark.slow
def test_checker_agrees_with_the_kernel_on_a_million_programs(request):
    """The long run (BPFJIT_PARITY_SLOW_COUNT, default 1,000,000), in chunks of 10,000.

    Run it with ``python -m pytest -m slow tests/kernel/test_checker_parity.py -s``.
    """
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the 1,000,000-program run; select it with -m slow")
    total = int(os.environ.get("BPFJIT_PARITY_SLOW_COUNT", "1000000"))
    stream = program_stream(1_000_003)
    counts: Counter = Counter()
    mismatches: list = []
    jit_failures: list = []
    start = time.perf_counter()
    done = 0
    while done < total:
        chunk = list(itertools.islice(stream, min(10_000, total - done)))
        c, m, j = _parity(chunk)
        counts.update(c)
        mismatches += m
        jit_failures += j
        done += len(chunk)
        print(f"  {done} programs, {len(mismatches)} checker disagreements, "
              f"{len(jit_failures)} JIT refusals, {time.perf_counter() - start:.0f} s", flush=True)
    elapsed = time.perf_counter() - start
    print(f"\nchecker vs kernel on {done} programs in {elapsed:.0f} s:")
    for key, n in sorted(counts.items()):
        print(f"  {key[0]:>10} {key[1]:>9}: {n}")
    for kind, hexdata in jit_failures:
        print(f"  valid, refused by the x86-64 JIT (ENOTSUPP): {kind} {hexdata}")
    assert not mismatches, f"{len(mismatches)} disagreements, first: {mismatches[:3]}"
    # every JIT refusal is the one bpfjit.kernelcfg.x86_jit predicts for this kernel
    unexplained = [h for _, h in jit_failures
                   if is_valid(Program.from_bytes(bytes.fromhex(h)), kernel=JIT_KERNEL)]
    assert not unexplained, f"ENOTSUPP the JIT model does not predict: {unexplained[:3]}"


def test_checker_agrees_with_the_kernel_on_a_generated_stream():
    items = list(itertools.islice(program_stream(20240917), STREAM_COUNT))
    counts, mismatches, jit_failures = _parity(items)
    print(f"\nchecker vs kernel on {len(items)} programs:")
    for key, n in sorted(counts.items()):
        print(f"  {key[0]:>10} {key[1]:>9}: {n}")
    assert not mismatches, f"{len(mismatches)} disagreements, first: {mismatches[:3]}"
    assert not jit_failures, (f"{len(jit_failures)} valid programs refused with ENOTSUPP by the "
                              f"x86-64 JIT (see test_x86_jit_refusal): {jit_failures[:3]}")
    kinds = {k for k, _ in counts}
    assert {"valid", "realistic", "near_valid", "garbage"} <= kinds <= {"valid", "realistic", "near_valid", "garbage", "probe"}
    assert counts[("valid", "accepted")] and counts[("realistic", "accepted")]
    assert counts[("near_valid", "EINVAL")] and counts[("garbage", "EINVAL")]
    assert not any(k[0] in ("valid", "realistic") and k[1] != "accepted" for k in counts)
    assert not any(k[0] == "near_valid" and k[1] == "accepted" for k in counts)


def _ret(k: int = ALLOW) -> Instruction:
    return I(RET_K, k)


def _pad(n: int, last: Instruction | None = None) -> list[Instruction]:
    """n-1 harmless loads and a return: n instructions."""
    return [I(LD_IMM, i) for i in range(n - 1)] + [last or _ret()]


KNOWN_ANC = op.SKF_AD_OFF           # SKF_AD_PROTOCOL
EDGES: list[tuple[str, list[Instruction], int]] = [
    # (what, program, expected errno from seccomp(2); 0 = accepted)
    ("empty program", [], errno.EINVAL),
    ("one ret", [_ret()], 0),
    ("ret a alone", [I(RET_A)], 0),
    ("4096 instructions", _pad(4096), 0),
    ("4097 instructions", _pad(4097), errno.EINVAL),
    ("last instruction is a load", [I(LD_IMM, 1)], errno.EINVAL),
    ("last instruction is ja 0", [I(LD_IMM), I(JA, 0)], errno.EINVAL),
    ("ja lands on the last instruction", [I(JA, 1), I(LD_IMM), _ret()], 0),
    ("ja one past the last", [I(JA, 2), I(LD_IMM), _ret()], errno.EINVAL),
    ("ja with k = 0xffffffff", [I(JA, 0xFFFFFFFF), _ret()], errno.EINVAL),
    ("jt lands on the last instruction", [I(JEQ, 0, 1, 0), I(LD_IMM), _ret()], 0),
    ("jf lands on the last instruction", [I(JEQ, 0, 0, 1), I(LD_IMM), _ret()], 0),
    ("jt one past the last", [I(JEQ, 0, 2, 0), I(LD_IMM), _ret()], errno.EINVAL),
    ("jf one past the last", [I(JGT | op.BPF_X, 0, 0, 2), I(LD_IMM), _ret()], errno.EINVAL),
    ("jt=255 inside", [I(JSET, 1, 255, 0)] + _pad(256), 0),
    ("jt=255 past the end", [I(JSET, 1, 255, 0)] + _pad(255), errno.EINVAL),
    ("jeq k with bit 31", [I(JEQ, 0x80000000, 0, 1), _ret(0), _ret()], 0),
    ("jset with jt=0", [I(JSET, 4, 0, 1), _ret(0), _ret()], 0),
    ("div #0", [I(ALU | op.BPF_DIV | op.BPF_K, 0), _ret()], errno.EINVAL),
    ("div #1", [I(ALU | op.BPF_DIV | op.BPF_K, 1), _ret()], 0),
    ("div x (X may be 0)", [I(ALU | op.BPF_DIV | op.BPF_X), _ret()], 0),
    ("mod #0", [I(ALU | op.BPF_MOD | op.BPF_K, 0), _ret()], errno.EINVAL),
    ("mod #3: classic, not seccomp", [I(ALU | op.BPF_MOD | op.BPF_K, 3), _ret()], errno.EINVAL),
    ("mod x", [I(ALU | op.BPF_MOD | op.BPF_X), _ret()], errno.EINVAL),
    ("lsh #31", [I(ALU | op.BPF_LSH | op.BPF_K, 31), _ret()], 0),
    ("lsh #32", [I(ALU | op.BPF_LSH | op.BPF_K, 32), _ret()], errno.EINVAL),
    ("rsh #0xffffffff", [I(ALU | op.BPF_RSH | op.BPF_K, 0xFFFFFFFF), _ret()], errno.EINVAL),
    ("lsh x with a big X", [I(LDX_IMM, 0xFFFFFFFF), I(ALU | op.BPF_LSH | op.BPF_X), _ret()], 0),
    ("neg", [I(ALU | op.BPF_NEG), _ret()], 0),
    ("neg x (not in the table)", [I(ALU | op.BPF_NEG | op.BPF_X), _ret()], errno.EINVAL),
    ("ret x (not in the table)", [I(op.BPF_RET | op.BPF_X)], errno.EINVAL),
    ("code 0x106 (ret k with bit 8)", [I(0x106, ALLOW)], errno.EINVAL),
    ("code 0xffff", [I(0xFFFF), _ret()], errno.EINVAL),
    ("st M[15]; ld M[15]", [I(ST, 15), I(LD_MEM, 15), I(RET_A)], 0),
    ("st M[16]", [I(ST, 16), _ret()], errno.EINVAL),
    ("stx M[16]", [I(STX, 16), _ret()], errno.EINVAL),
    ("ld M[16]", [I(LD_MEM, 16), _ret()], errno.EINVAL),
    ("ldx M[0xffffffff]", [I(LDX_MEM, 0xFFFFFFFF), _ret()], errno.EINVAL),
    ("ld M[0] never written", [I(LD_MEM, 0), I(RET_A)], errno.EINVAL),
    ("ret #0; ld M[0]; ret a", [_ret(0), I(LD_MEM, 0), I(RET_A)], errno.EINVAL),
    ("st M[0]; ret #0; ld M[0]; ret a (state after ret carries)",
     [I(ST, 0), _ret(0), I(LD_MEM, 0), I(RET_A)], 0),
    ("written on one branch only",
     [I(LD_ABS, 0), I(JEQ, 1, 0, 1), I(ST, 2), I(LD_MEM, 2), I(RET_A)], errno.EINVAL),
    ("written on both branches",
     [I(LD_ABS, 0), I(JEQ, 1, 0, 2), I(ST, 2), I(JA, 1), I(STX, 2), I(LDX_MEM, 2), _ret()], 0),
    ("jump over the write from before it",
     [I(ST, 1), I(JA, 1), I(STX, 2), I(LD_MEM, 1), I(RET_A)], 0),
    ("ld [0] .. ld [60] every aligned offset", [I(LD_ABS, 4 * i) for i in range(16)] + [_ret()], 0),
    ("ld [64]", [I(LD_ABS, 64), _ret()], errno.EINVAL),
    ("ld [62]", [I(LD_ABS, 62), _ret()], errno.EINVAL),
    ("ld [1]", [I(LD_ABS, 1), _ret()], errno.EINVAL),
    ("ld [known ancillary: protocol]", [I(LD_ABS, KNOWN_ANC), _ret()], errno.EINVAL),
    ("ld [known ancillary: vlan_tpid]", [I(LD_ABS, KNOWN_ANC + 60), _ret()], errno.EINVAL),
    ("ld [unknown ancillary +64]", [I(LD_ABS, KNOWN_ANC + 64), _ret()], errno.EINVAL),
    ("ld [unknown ancillary +2]", [I(LD_ABS, KNOWN_ANC + 2), _ret()], errno.EINVAL),
    ("ldh [0]", [I(op.BPF_LD | op.BPF_H | op.BPF_ABS, 0), _ret()], errno.EINVAL),
    ("ldb [known ancillary]", [I(op.BPF_LD | op.BPF_B | op.BPF_ABS, KNOWN_ANC + 4), _ret()],
     errno.EINVAL),
    ("ld [x+0]", [I(op.BPF_LD | op.BPF_W | op.BPF_IND, 0), _ret()], errno.EINVAL),
    ("ldx msh", [I(op.BPF_LDX | op.BPF_B | op.BPF_MSH, 14), _ret()], errno.EINVAL),
    ("ld len; ldx len", [I(op.BPF_LD | op.BPF_W | op.BPF_LEN), I(op.BPF_LDX | op.BPF_W | op.BPF_LEN),
                         _ret()], 0),
    ("tax; txa", [I(op.BPF_MISC | op.BPF_TAX), I(op.BPF_MISC | op.BPF_TXA), _ret()], 0),
    ("misc with other bits (0x27)", [I(0x27), _ret()], errno.EINVAL),
]


@pytest.mark.parametrize("what,insns,expected", EDGES, ids=[e[0] for e in EDGES])
def test_edge_case(what, insns, expected):
    prog = Program(insns)
    got = kernel_accepts(prog.to_bytes())
    assert got == expected, f"the kernel says {errno.errorcode.get(got, got)} for {what}"
    assert is_valid(prog) == (expected == 0)
    if expected:
        with pytest.raises(InvalidProgram) as info:
            prog.check()
        assert info.value.errno == errno.errorcode[expected]


def test_the_checker_table_agrees_with_the_kernel():
    """tests/test_check.py's hand-made table, accept/reject side, asked of the kernel."""
    import test_check
    rows = [(w, insns, True) for w, insns, _, _ in test_check.REFUSED] + \
        [(w, insns, False) for w, insns in test_check.ACCEPTED]
    verdicts = kernel_accepts_many([Program(insns).to_bytes() for _, insns, _ in rows])
    wrong = [(w, errno.errorcode.get(v, v)) for (w, _, refused), v in zip(rows, verdicts)
             if (v != 0) != refused or (refused and v != errno.EINVAL)]
    assert not wrong


#: a valid 34-instruction program (shrunk from a generated realistic filter) that this
#: kernel refuses with ENOTSUPP: the x86-64 BPF JIT's passes agree on the total length but
#: not on every instruction's address, its last pass stops ("bpf_jit: fatal error"), and
#: CONFIG_BPF_JIT_ALWAYS_ON turns that into a refusal. No rule of the checker is involved.
JIT_REFUSED = (
    "15000b000000000015000e000000000015000e000000000015000e000000000015000e000100000015001100"
    "03010000150012005301000015001200d001000015001300d401000015001600ffffffff0500000016000000"
    "0600000001000000200000000000000054000000ff0f000044000000000005001600000001000000060000"
    "000100000006000000010000000600000001000000200000000000000045000001000000000600000001000000"
    "050000000100000006000000010000000600000001000000060000000100000000000000010000001600000001"
    "000000200000000000000054000000ff0f00004400000000000500160000000100000035000000ffffffff06"
    "00000001000000")


def test_x86_jit_refusal():
    """A known divergence, found by the 1,000,000-program run: the checker accepts, the JIT fails."""
    prog = Program.from_bytes(bytes.fromhex(JIT_REFUSED))
    assert len(prog) == 34 and is_valid(prog)
    assert not is_valid(prog, kernel=JIT_KERNEL)      # predicted (bpfjit.kernelcfg.x86_jit)
    got = kernel_accepts(prog)
    if got == 0:
        pytest.skip("this kernel's JIT compiles the program: the divergence is gone here")
    assert got == ENOTSUPP, _errname(got)


def test_kernel_accepts_takes_bytes_and_programs_and_refuses_bad_input():
    prog = Program([_ret()])
    assert kernel_accepts(prog) == 0
    assert kernel_accepts(prog.to_bytes()) == 0
    assert kernel_accepts_many([]) == []
    with pytest.raises(ValueError, match="whole number of 8-byte"):
        kernel_accepts(b"\x06\x00\x00\x00")
    with pytest.raises(TypeError, match="sock_filter bytes"):
        kernel_accepts("ret #0")
    with pytest.raises(ValueError, match="unsigned short"):
        kernel_accepts(bytes(8 * 0x10000))


# --- the stack budget: bpfjit.stack.ebpf_length against seccomp_attach_filter --------

def _filler(ebpf: int) -> Program:
    """A program allowing everything whose eBPF length is ``ebpf`` (3 + n loads + 2), >= 6."""
    assert ebpf >= 6
    return Program(_pad(ebpf - 4))


#: per conversion rule: a repeatable unit of instructions (all paths lead to the next unit;
#: X is set to 1 first, so div x never ends the program and every path returns ALLOW)
UNITS: dict[str, list[Instruction]] = {
    "plain loads and alu": [I(LD_ABS, 0), I(ALU | op.BPF_ADD | op.BPF_K, 3), I(LD_IMM, 5),
                            I(op.BPF_LD | op.BPF_W | op.BPF_LEN), I(ST, 1), I(LDX_MEM, 1),
                            I(ALU | op.BPF_NEG), I(op.BPF_MISC | op.BPF_TXA), I(LDX_IMM, 1)],
    "ret #k": [_ret()],
    "ret a": [I(LD_IMM, ALLOW), I(RET_A)],
    "div x": [I(ALU | op.BPF_DIV | op.BPF_X)],
    "div #k": [I(ALU | op.BPF_DIV | op.BPF_K, 3)],
    "mul x, lsh x": [I(ALU | op.BPF_MUL | op.BPF_X), I(ALU | op.BPF_LSH | op.BPF_X)],
    "jeq #k jt=0 jf=0": [I(JEQ, 5, 0, 0)],
    "jeq #k bit 31, jt=0 jf=0": [I(JEQ, 0x80000000, 0, 0)],
    "jgt #k jt=1 jf=0": [I(JGT, 5, 1, 0), I(LD_IMM)],
    "jeq #k jt=0 jf=1": [I(JEQ, 5, 0, 1), I(LD_IMM)],
    "jgt #k jt=0 jf=1": [I(JGT, 5, 0, 1), I(LD_IMM)],
    "jge #k jt=0 jf=1": [I(JGE, 5, 0, 1), I(LD_IMM)],
    "jset #k jt=0 jf=1": [I(JSET, 5, 0, 1), I(LD_IMM)],
    "jset #k bit 31 jt=0 jf=1": [I(JSET, 0xFFFFFFFF, 0, 1), I(LD_IMM)],
    "jeq #k jt=1 jf=1": [I(JEQ, 5, 1, 1), I(LD_IMM)],
    "jge #k bit 31 jt=1 jf=2": [I(JGE, 0x80000001, 1, 2), I(LD_IMM), I(LD_IMM)],
    "jgt #k bit 31 jt=0 jf=1": [I(JGT, 0xFFFFFFFE, 0, 1), I(LD_IMM)],
    "jeq x jt=0 jf=1": [I(JEQ | op.BPF_X, 0, 0, 1), I(LD_IMM)],
    "jset x jt=0 jf=1": [I(JSET | op.BPF_X, 0, 0, 1), I(LD_IMM)],
    "jset x jt=2 jf=1": [I(JSET | op.BPF_X, 0, 2, 1), I(LD_IMM), I(LD_IMM)],
    "ja 0 and ja 1": [I(JA, 0), I(JA, 1), I(LD_IMM)],
}


def _rule_program(unit: list[Instruction], max_len: int = 4000) -> Program:
    count = (max_len - 2) // len(unit)
    return Program([I(LDX_IMM, 1)] + unit * count + [_ret()])


def _stack_at(rule_prog: Program, total: int) -> list[Program]:
    """Fillers, then ``rule_prog`` last, with path_length exactly ``total``."""
    stack = [rule_prog]
    remaining = total - ebpf_length(rule_prog)
    fillers = []
    while remaining > 0:
        room = remaining - 4                      # each earlier filter costs 4 more
        size = min(room, 4000)
        if room - size and room - size < 6 + 4:   # leave enough for a last filler
            size = room - 10
        fillers.append(_filler(size))
        remaining -= size + 4
    assert remaining == 0
    stack = fillers + stack
    assert path_length(stack) == total
    return stack


@pytest.mark.parametrize("rule", list(UNITS))
def test_stack_budget_boundary(rule):
    prog = _rule_program(UNITS[rule])
    assert kernel_accepts(prog) == 0 and is_valid(prog)
    at = _stack_at(prog, MAX_INSNS_PER_PATH)
    past = _stack_at(prog, MAX_INSNS_PER_PATH + 1)
    check_budget(at)
    with pytest.raises(InvalidProgram):
        check_budget(past)
    assert kernel_accepts_stack(at) == 0, \
        f"{rule}: the kernel refused a stack bpfjit.stack counts as exactly {MAX_INSNS_PER_PATH}"
    err, installed = kernel_stack_installs(past)
    assert err == errno.ENOMEM, f"{rule}: the kernel accepted a stack counted as one over"
    assert installed == len(past) - 1               # only the last filter is refused


def test_stack_of_single_instruction_filters():
    # the smallest filters: ret #ALLOW (3 + 2 eBPF) + 4 per earlier filter = 9 each
    one = Program([_ret()])
    n = (MAX_INSNS_PER_PATH + 4) // 9                # 3641 filters: 32765
    stack = [one] * n
    assert path_length(stack) == 9 * n - 4 <= MAX_INSNS_PER_PATH
    assert kernel_accepts_stack(stack) == 0
    err, installed = kernel_stack_installs([one] * (n + 1))
    assert (err, installed) == (errno.ENOMEM, n)
