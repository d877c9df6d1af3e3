"""Benchmark matrix (bench stage): filters × backends × mixes × sizes, and the session's measurements.

Everything the bench modules share: which filters, backends and mixes run,
how big the batches are, per-session caches (records, compiled filters,
baselines measured once per run) and the rows the summary prints at the end.

Sizes (environment variables, for a quicker or longer run):

- ``BPFJIT_BENCH_SIZE`` (default 10,000,000): records per batch for llvm/numba;
- ``BPFJIT_BENCH_REFERENCE_SIZE`` (default 10,000): the pure-Python reference;
- ``BPFJIT_BENCH_PCAP_SIZE`` (default 1,000,000): libpcap's interpreter and DPDK's JIT;
- ``BPFJIT_BENCH_BACKENDS`` (default ``reference,numba,llvm``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pytest

import bpfjit
from bpfjit import baselines, workloads
from bpfjit.cli.bench import backend_problem

SIZE = int(os.environ.get("BPFJIT_BENCH_SIZE", 10_000_000))
REFERENCE_SIZE = int(os.environ.get("BPFJIT_BENCH_REFERENCE_SIZE", 10_000))
PCAP_SIZE = int(os.environ.get("BPFJIT_BENCH_PCAP_SIZE", 1_000_000))
SEED = 20240601
CHECK_RECORDS = 1000

FILTERS = workloads.BENCH_FILTERS
MIXES = workloads.MIXES
BACKENDS = tuple(b for b in os.environ.get("BPFJIT_BENCH_BACKENDS",
                                           "reference,numba,llvm").split(",") if b)
JIT_BACKENDS = tuple(b for b in BACKENDS if b != "reference")


def size_for(backend: str) -> int:
    return min(SIZE, REFERENCE_SIZE) if backend == "reference" else SIZE


def rounds_for(backend: str) -> int:
    return 2 if backend == "reference" else 7


@dataclass
class Session:
    """Caches of one pytest run; every ratio is computed from measurements of this run."""

    records: dict = field(default_factory=dict)
    programs: dict = field(default_factory=dict)
    subjects: dict = field(default_factory=dict)
    stream: dict = field(default_factory=dict)
    pcap: dict = field(default_factory=dict)
    dpdk: dict = field(default_factory=dict)
    dpdk_problems: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)     # what the terminal summary prints

    # --- inputs ---
    def filter(self, name: str) -> tuple[list[bpfjit.Program], str]:
        if name not in self.programs:
            try:
                self.programs[name] = workloads.corpus_filter(name)
            except FileNotFoundError as exc:
                pytest.skip(str(exc))
        return self.programs[name]

    def mix(self, mix: str, arch: str, n: int = SIZE) -> np.ndarray:
        """The first ``n`` records of the session's ``SIZE``-record mix (one array per mix)."""
        key = (mix, arch)
        if key not in self.records:
            self.records[key] = workloads.mix(mix, max(SIZE, REFERENCE_SIZE), SEED, arch)
        return self.records[key][:n]

    def subject(self, name: str, backend: str):
        """The compiled filter (or stack); skips with the registry's reason if unavailable."""
        why = backend_problem(backend)
        if why:
            pytest.skip(f"backend {backend}: {why}")
        key = (name, backend)
        if key not in self.subjects:
            programs, arch = self.filter(name)
            self.subjects[key] = workloads.compile_subject(programs, backend, arch)
        return self.subjects[key]

    def expect(self, name: str, recs: np.ndarray) -> np.ndarray:
        """The reference interpreter's results (the oracle) for ``recs``."""
        return self.subject(name, "reference").evaluate_batch(recs)

    # --- baselines, measured once per run ---
    def stream_seconds(self, mix: str, arch: str, n: int) -> float | None:
        """Memory streaming: the best C pass over the mix's array seen so far, scaled to ``n``.

        Each call measures again (best of 5) and keeps the session's best: on
        a shared machine the fastest pass is the closest to what the memory
        can do, and the summary computes every ratio from that final value.
        """
        if baselines.stream_reason():
            return None
        key = (mix, arch)
        secs = baselines.stream_seconds(self.mix(mix, arch, SIZE), repeat=5)
        self.stream[key] = min(secs, self.stream.get(key, secs))
        return self.stream[key] * n / SIZE

    def pcap_rate(self, name: str, mix: str) -> float | None:
        """libpcap ``bpf_filter()`` records/s on this filter (each filter of a stack) and mix."""
        if baselines.pcap_reason():
            return None
        key = (name, mix)
        if key not in self.pcap:
            programs, arch = self.filter(name)
            n = min(PCAP_SIZE, SIZE)
            image = baselines.pcap_image(self.mix(mix, arch, n), arch)
            self.pcap[key] = n / baselines.pcap_seconds(programs, image, repeat=3)
        return self.pcap[key]

    def dpdk_problem(self, name: str) -> str | None:
        """Why DPDK's JIT cannot be timed on this filter, else None: unavailable, or it gets the
        first records of the realistic mix wrong. Checked in a separate process (the peer
        candidate) first, because DPDK's JIT can crash on code it miscompiles."""
        if name not in self.dpdk_problems:
            why = baselines.dpdk_reason()
            if why is None:
                why = self._dpdk_check(name)
            self.dpdk_problems[name] = why
        return self.dpdk_problems[name]

    def _dpdk_check(self, name: str) -> str | None:
        from bpfjit.testing import peers
        from bpfjit.testing.candidates import CandidateFailed
        programs, arch = self.filter(name)
        for p in programs:
            if peers.jset_imm8([tuple(i) for i in p]):
                return "DPDK's JIT miscompiles its `jset #k` with k <= 127 (peers.KNOWN_DIFFERENCES)"
        head = self.mix("realistic", arch, CHECK_RECORDS)
        cand = peers.candidate("dpdk-jit", arch, mapped=False)
        try:
            for p in programs:
                want = bpfjit.compile(p, backend="reference", arch=arch).evaluate_batch(head)
                try:
                    got = cand.evaluate(p.to_bytes("little"), head)
                except CandidateFailed as exc:
                    return f"DPDK's JIT fails on it ({exc})"
                if not hasattr(got, "__len__") or list(got) != list(want):
                    return f"DPDK's JIT disagrees with the reference on it ({got!s:.80})"
        finally:
            cand.close()
        return None

    def dpdk_rate(self, name: str, mix: str) -> float | None:
        """DPDK's JIT records/s on this filter (each filter of a stack) and mix."""
        if self.dpdk_problem(name):
            return None
        key = (name, mix)
        if key not in self.dpdk:
            programs, arch = self.filter(name)
            n = min(PCAP_SIZE, SIZE)
            image = baselines.pcap_image(self.mix(mix, arch, n), arch)
            self.dpdk[key] = n / baselines.dpdk_seconds(programs, image, repeat=3)
        return self.dpdk[key]

    def row(self, table: str, **values) -> None:
        self.rows.append((table, values))


SESSION = Session()


def timings(benchmark) -> tuple[float, float]:
    """(best, median) seconds of the benchmark that just ran."""
    stats = benchmark.stats.stats
    return stats.min, stats.median
