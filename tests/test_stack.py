"""Stacks: kernel precedence over several filters, and the eBPF instruction budget."""
from __future__ import annotations

import numpy as np
import pytest

import bpfjit
from bpfjit.stack import MAX_INSNS_PER_PATH, check_budget, ebpf_length, path_length

import bpfjit_reference
from corpora import REAL_FILTERS


def _ret_nr_program(action_for: dict[int, int], default: int) -> bpfjit.Program:
    lines = ["ld [nr]"]
    for i, (nr, ret) in enumerate(action_for.items()):
        lines.append(f"jeq #{nr}, r{i}")
    lines.append(f"ret #{default}")
    for i, ret in enumerate(action_for.values()):
        lines.append(f"r{i}: ret #{ret}")
    return bpfjit.load("\n".join(lines) + "\n", format="asm")


def test_nspawn_stack_matches_the_reference_rule():
    import json
    # PTRACE_SECCOMP_GET_FILTER index 0 is the first installed filter (see formats/live.py)
    parts = sorted(REAL_FILTERS.glob("systemd-nspawn-252.*.bpf"),
                   key=lambda p: json.loads(p.with_suffix(".json").read_text())["stack"]["index"])
    progs = [bpfjit.load(p) for p in parts]                 # oldest first
    stack = bpfjit.Stack(progs, backend="reference", arch="x86_64")
    rng = np.random.default_rng(1)
    recs = np.zeros(3000, dtype=bpfjit.SECCOMP_DATA)
    recs["nr"] = rng.integers(0, 500, len(recs))
    recs["nr"][::7] |= 0x40000000                           # x32 calls
    recs["arch"] = rng.choice([0xC000003E, 0x40000003], len(recs))
    recs["args"] = rng.integers(0, 1 << 20, (len(recs), 6))
    got = stack.evaluate_batch(recs)
    singles = [bpfjit.compile(p, backend="reference", arch="x86_64").evaluate_batch(recs)
               for p in progs]
    for i in range(len(recs)):
        assert got[i] == bpfjit_reference.run_stack([int(s[i]) for s in singles])
    assert stack.evaluate(int(recs["nr"][5]), tuple(int(x) for x in recs["args"][5]),
                          int(recs["arch"][5])) == got[5]


def test_ties_go_to_the_newest_and_allow_data_is_dropped():
    older = _ret_nr_program({1: 0x00050001, 2: 0x7FFF0007}, 0x7FFF0000)
    newer = _ret_nr_program({1: 0x00050002}, 0x7FFF0003)
    s = bpfjit.Stack([older, newer], backend="reference", arch="x86_64")
    assert s.evaluate(1) == 0x00050002
    assert s.evaluate(2) == 0x7FFF0000
    assert s.evaluate(3) == 0x7FFF0000


def test_ebpf_length_counts_bpf_convert_filter_expansions():
    from bpfjit import jump, stmt
    from bpfjit.opcodes import (BPF_A, BPF_ABS, BPF_ALU, BPF_DIV, BPF_JEQ, BPF_JGT, BPF_JMP,
                                BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W, BPF_X)
    cases = [  # (instruction, eBPF instructions bpf_convert_filter emits for it)
        (stmt(BPF_LD | BPF_W | BPF_ABS, 0), 1),
        (jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 1, 0), 1),           # jf = 0: one jeq
        (jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1), 1),           # jt = 0: inverted to jne
        (jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 1, 1), 2),           # both: jeq + ja
        (jump(BPF_JMP | BPF_JSET | BPF_K, 1, 0, 1), 2),          # jset cannot be inverted
        (jump(BPF_JMP | BPF_JGT | BPF_K, 0x80000000, 0, 1), 2),  # k < 0: mov to tmp + jle
        (jump(BPF_JMP | BPF_JGT | BPF_K, 0x80000000, 1, 1), 3),
        (jump(BPF_JMP | BPF_JGT | BPF_X, 0, 1, 1), 2),
        (stmt(BPF_ALU | BPF_DIV | BPF_X, 0), 5),                  # X == 0 check
        (stmt(BPF_ALU | BPF_DIV | BPF_K, 3), 1),
        (stmt(BPF_RET | BPF_A, 0), 1),
        (stmt(BPF_RET | BPF_K, 0), 2),                            # mov r0, k + exit
    ]
    prog = bpfjit.Program([insn for insn, _ in cases])
    assert ebpf_length(prog) == 3 + sum(n for _, n in cases)


def test_budget_is_enforced_with_enomem():
    big = bpfjit.Program([bpfjit.stmt(0x00, 0)] * 4095 + [bpfjit.stmt(0x06, 0x7FFF0000)])
    n = ebpf_length(big)
    fits = MAX_INSNS_PER_PATH // (n + 4)
    check_budget([big] * fits)
    assert path_length([big] * fits) <= MAX_INSNS_PER_PATH
    with pytest.raises(bpfjit.StackLimitError) as err:
        bpfjit.Stack([big] * (fits + 1), backend="reference", arch="x86_64")
    assert err.value.errno == "ENOMEM"

