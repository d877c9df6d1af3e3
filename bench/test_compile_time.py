"""Compile time (bench stage): cold (empty cache, new process), warm (disk cache, new process), in-process.

Cold and warm are measured in a fresh Python process each round (the
benchmark's own statistics are the whole subprocess, interpreter start-up
included); the numbers that matter are measured inside it and stored in
``extra_info``:

- ``compile_ms``: ``bpfjit.compile()`` (``Stack(...)`` for a stack) alone;
- ``first_result_ms``: from the start of ``compile()`` to the first
  ``evaluate()`` result (targets: cold llvm <= 50 ms, warm <= 2 ms);
- ``import_ms``: ``import bpfjit`` before it (not part of either).

Cold: ``BPFJIT_CACHE_DIR`` and ``NUMBA_CACHE_DIR`` point to a new empty
directory (numba: its first compile). Warm: the same directory after one
run filled it. The subprocess's result is checked against the reference.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import pytest

from bpfjit.seccomp import syscalls
from matrix import FILTERS, JIT_BACKENDS, SESSION, timings

SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import bpfjit
from bpfjit import workloads
t1 = time.perf_counter()
programs, arch = workloads.corpus_filter(sys.argv[1])
t2 = time.perf_counter()
subject = workloads.compile_subject(programs, sys.argv[2], arch)
t3 = time.perf_counter()
result = subject.evaluate(int(sys.argv[3]), (3, 0x7FFD12345670, 4096))
t4 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "compile_ms": (t3 - t2) * 1e3,
                  "first_result_ms": (t4 - t2) * 1e3, "result": result}))
"""


def _run(name: str, backend: str, cache: str, nr: int) -> dict:
    env = dict(os.environ, BPFJIT_CACHE_DIR=cache, NUMBA_CACHE_DIR=os.path.join(cache, "numba"))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, name, backend, str(nr)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure(benchmark, name, backend, rounds, setup_dir, kind):
    SESSION.subject(name, backend)                       # skip if the backend is unavailable
    _, arch = SESSION.filter(name)
    nr = syscalls.number(arch, "read")
    expected = SESSION.subject(name, "reference").evaluate(nr, (3, 0x7FFD12345670, 4096))
    runs: list[dict] = []

    def target(cache):
        runs.append(_run(name, backend, cache, nr))

    benchmark.group = f"compile: {kind}"
    benchmark.pedantic(target, setup=lambda: ((setup_dir(),), {}), rounds=rounds, iterations=1)
    assert all(r["result"] == expected for r in runs)
    info = {key: statistics.median(r[key] for r in runs)
            for key in ("import_ms", "compile_ms", "first_result_ms")}
    info["first_result_ms_best"] = min(r["first_result_ms"] for r in runs)
    info["process_ms"] = timings(benchmark)[1] * 1e3
    benchmark.extra_info.update(info)
    SESSION.row("compile", filter=name, backend=backend, kind=kind, **info)


@pytest.mark.parametrize("backend", JIT_BACKENDS)
@pytest.mark.parametrize("name", FILTERS)
def test_compile_cold(benchmark, tmp_path_factory, name, backend):
    _measure(benchmark, name, backend, 3,
             lambda: str(tmp_path_factory.mktemp(f"cold-{backend}")), "cold, new process")


@pytest.mark.parametrize("backend", JIT_BACKENDS)
@pytest.mark.parametrize("name", FILTERS)
def test_compile_warm(benchmark, tmp_path_factory, name, backend):
    cache = str(tmp_path_factory.mktemp(f"warm-{backend}"))
    SESSION.subject(name, backend)
    _, arch = SESSION.filter(name)
    _run(name, backend, cache, syscalls.number(arch, "read"))          # fill the disk cache
    _measure(benchmark, name, backend, 5, lambda: cache, "warm disk cache, new process")


@pytest.mark.parametrize("backend", JIT_BACKENDS)
@pytest.mark.parametrize("name", FILTERS)
def test_compile_in_process(benchmark, name, backend):
    """compile() again in a process that already compiled it (whatever the backend keeps)."""
    from bpfjit import workloads
    SESSION.subject(name, backend)
    programs, arch = SESSION.filter(name)
    benchmark.group = "compile: again, same process"
    benchmark.pedantic(workloads.compile_subject, args=(programs, backend, arch), rounds=20,
                       iterations=1, warmup_rounds=1)
    best, median = timings(benchmark)
    benchmark.extra_info.update({"compile_ms": median * 1e3})
    SESSION.row("compile", filter=name, backend=backend, kind="again, same process",
                compile_ms=median * 1e3, first_result_ms=None, import_ms=None,
                first_result_ms_best=best * 1e3)
