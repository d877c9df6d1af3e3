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
    parts = sorted(REAL_FILTERS.glob("systemd-nspawn-252.*.bpf"),
                   key=lambda p: -json.loads(p.with_suffix(".json").read_text())["stack"]["index"])
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
    prog = bpfjit.load("ld [nr]\njeq #1, a, b\na: div x\nb: jgt #0x80000000, c, d\n"
                       "c: jset #1, d, e\nd: ret #0\ne: jeq #5, f, g\nf: ret a\ng: ret a\n",
                       format="asm")
    # prologue 3; ld 1; jeq(jt,jf both nonzero) 2; div x 5; jgt k<0 with jf!=0: 1+1+1;
    # jset jt=0 jf!=0: 2; ret #k 2; jeq jt=0 jf!=0: 1 (inverted to jne); ret a 1; ret a 1
    assert ebpf_length(prog) == 3 + 1 + 2 + 5 + 3 + 2 + 2 + 1 + 1 + 1


def test_budget_is_enforced_with_enomem():
    big = bpfjit.Program([bpfjit.stmt(0x00, 0)] * 4095 + [bpfjit.stmt(0x06, 0x7FFF0000)])
    n = ebpf_length(big)
    fits = MAX_INSNS_PER_PATH // (n + 4)
    check_budget([big] * fits)
    assert path_length([big] * fits) <= MAX_INSNS_PER_PATH
    with pytest.raises(bpfjit.StackLimitError) as err:
        bpfjit.Stack([big] * (fits + 1), backend="reference", arch="x86_64")
    assert err.value.errno == "ENOMEM"
