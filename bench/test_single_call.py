"""Single calls (bench stage): one ``Filter.evaluate(nr, args)`` — the 1-record size of the matrix.

The cost of one Python call into the compiled filter: argument normalisation
in :class:`bpfjit.Filter` plus the backend's ``evaluate_one``. Two calls: a
hot-path ``read(3, buf, 4096)`` and ``personality(0xffffffff)``, whose verdict
in the Docker profile depends on its argument. The result is checked against
the reference interpreter first. Target: <= 1 µs per call (not asserted).
"""
from __future__ import annotations

import pytest

from bpfjit.seccomp import syscalls
from matrix import BACKENDS, FILTERS, SESSION, timings

CALLS = {
    "read": ("read", (3, 0x7FFD12345670, 4096)),
    "personality": ("personality", (0xFFFFFFFF,)),
}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", FILTERS)
def test_single_call(benchmark, name, backend, call):
    subject = SESSION.subject(name, backend)
    _, arch = SESSION.filter(name)
    sysname, args = CALLS[call]
    nr = syscalls.number(arch, sysname)
    expected = SESSION.subject(name, "reference").evaluate(nr, args)
    assert subject.evaluate(nr, args) == expected
    benchmark.group = f"single call: {call}"
    if backend == "reference":
        benchmark.pedantic(subject.evaluate, args=(nr, args), rounds=200, iterations=1)
    else:
        benchmark(subject.evaluate, nr, args)
    best, median = timings(benchmark)
    benchmark.extra_info.update({"ns_per_call": median * 1e9, "ns_per_call_best": best * 1e9})
    SESSION.row("single", filter=name, backend=backend, call=call, ns_per_call=median * 1e9,
                ns_per_call_best=best * 1e9)
