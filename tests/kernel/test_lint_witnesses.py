"""Lint witnesses on the running kernel: every witness input of every finding on the real
filters gets the same return value from the kernel as the lint printed (and the reference gave).

The x32 and i386 bypass findings (BJ103, BJ104) and the default-ALLOW findings (BJ105) are the
ones whose claims are about calls a user could make; here the kernel confirms them.
"""
from __future__ import annotations

import numpy as np
import pytest

import bpfjit
from bpfjit.analysis.lint import lint
from bpfjit.formats import load
from bpfjit.seccomp import layouts, records
from corpora import REAL_FILTERS, real_filter_arch, real_filters

pytestmark = pytest.mark.kernel

LITTLE = [p for p in real_filters() if layouts.layout(real_filter_arch(p)).byteorder == "little"]


def test_witnesses_agree_with_the_kernel():
    checked = 0
    for path in LITTLE:
        arch = real_filter_arch(path)
        prog = load(str(path))
        witnesses = [w for f in lint(prog, arch) for w in f.evidence]
        if not witnesses:
            continue
        recs = np.concatenate([records.make(w["nr"] - (1 << 32) if w["nr"] >= 0x80000000 else w["nr"],
                                            w["audit_arch"], w["instruction_pointer"], w["args"])
                               for w in witnesses])
        got = bpfjit.compile(prog, backend="kernel", arch=arch).evaluate_batch(recs)
        assert [int(v) for v in got] == [w["retval"] for w in witnesses], path.name
        checked += len(witnesses)
    assert checked >= 20


def test_firejail_i386_bpf_bypass_on_the_kernel():
    names = ["protocol.x86_64", "default32.x86", "default.x86_64", "namespaces.x86_64",
             "namespaces32.x86"]
    progs = [load(str(REAL_FILTERS / f"firejail-server.{n}.bpf")) for n in names]
    stack = bpfjit.Stack(progs, backend="kernel", arch="x86_64")
    i386 = layouts.layout("x86").audit_arch
    from bpfjit.seccomp.actions import Action
    x86_64_bpf = stack.evaluate(321)                     # bpf, x86_64
    i386_bpf = stack.evaluate(357, (), i386)             # bpf, i386 (int 0x80)
    assert Action.from_value(x86_64_bpf).name == "ERRNO"
    assert Action.from_value(i386_bpf).name == "ALLOW"
