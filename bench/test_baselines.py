"""Baselines (bench stage): memory streaming, libpcap's interpreter, DPDK's JIT and the kernel.

- memory streaming: a C loop reading all 64 bytes of every record of the
  same 10 M-record array the batch benchmarks use (640 MB, far beyond the
  caches): the bound for any evaluator that looks at every record;
- libpcap ``bpf_filter()`` over 1 M records of each filter and mix (a stack:
  each of its filters), checked against the reference interpreter first;
- DPDK's classic-BPF JIT (``rte_bpf_convert`` + its x86-64 eBPF JIT) over
  the same 1 M records libpcap gets, checked against the reference first;
- the kernel: ns per system call spent in seccomp, with and without the
  filter(s) installed in a forked child, for a call the kernel's action
  cache short-circuits (``getppid``) and, if the filter has one, an allowed
  call whose path reads an argument (the filter runs); and bpfjit's
  ns/record on a batch of that same call, for comparison.

These run first (file order), so the batch benchmarks reuse their numbers.
"""
from __future__ import annotations

import numpy as np
import pytest

from bpfjit import baselines, workloads
from bpfjit.seccomp.layouts import host_layout
from matrix import (CHECK_RECORDS, FILTERS, JIT_BACKENDS, MIXES, PCAP_SIZE, SESSION, SIZE,
                    timings)

KERNEL_CALL_RECORDS = 1_000_000


@pytest.mark.parametrize("mix", MIXES)
def test_memory_streaming(benchmark, mix):
    why = baselines.stream_reason()
    if why:
        pytest.skip(why)
    arch = "x86_64"
    recs = SESSION.mix(mix, arch, SIZE)
    mod = baselines._stream()
    ptr = mod.ffi.cast("const uint64_t *", recs.ctypes.data)
    benchmark.group = "baseline: memory streaming"
    benchmark.pedantic(mod.lib.stream_xor, args=(ptr, len(recs)), rounds=9, iterations=1,
                       warmup_rounds=1)
    best, median = timings(benchmark)
    SESSION.stream[(mix, arch)] = min(best, SESSION.stream.get((mix, arch), best))
    info = {"records": len(recs), "records_per_s": len(recs) / best,
            "gb_per_s": recs.nbytes / best / 1e9}
    benchmark.extra_info.update(info)
    SESSION.row("stream", mix=mix, **info)


def _packet_baseline(benchmark, name: str, mix: str, evaluate, label: str,
                     **pedantic) -> float:
    """Time a packet-view evaluator (libpcap, DPDK's JIT) on each filter of ``name`` after
    checking its first records against the reference; returns records/s and logs the row."""
    programs, arch = SESSION.filter(name)
    n = min(PCAP_SIZE, SIZE)
    recs = SESSION.mix(mix, arch, n)
    image = baselines.pcap_image(recs, arch)
    head = recs[:CHECK_RECORDS]
    from bpfjit_reference import run_stack
    got = [evaluate(p, image[:CHECK_RECORDS]) for p in programs]
    combined = np.array([run_stack([int(g[i]) for g in got]) for i in range(len(head))],
                        dtype=np.uint32)
    assert np.array_equal(combined, SESSION.expect(name, head)), f"{label} disagrees"
    out = np.empty(n, dtype=np.uint32)
    benchmark.group = f"baseline: {label}, {mix}"
    benchmark.pedantic(lambda: [evaluate(p, image, out) for p in programs], iterations=1,
                       **pedantic)
    best, _ = timings(benchmark)
    info = {"records": n, "records_per_s": n / best, "ns_per_record": best * 1e9 / n}
    benchmark.extra_info.update(info)
    return info


@pytest.mark.parametrize("mix", MIXES)
@pytest.mark.parametrize("name", FILTERS)
def test_libpcap(benchmark, name, mix):
    why = baselines.pcap_reason()
    if why:
        pytest.skip(why)
    info = _packet_baseline(benchmark, name, mix, baselines.pcap_evaluate, "libpcap", rounds=3)
    SESSION.pcap[(name, mix)] = info["records_per_s"]
    SESSION.row("pcap", filter=name, mix=mix, **info)


@pytest.mark.parametrize("mix", MIXES)
@pytest.mark.parametrize("name", FILTERS)
def test_dpdk_jit(benchmark, name, mix):
    why = SESSION.dpdk_problem(name)
    if why:
        pytest.skip(why)
    info = _packet_baseline(benchmark, name, mix, baselines.dpdk_evaluate, "DPDK JIT",
                            rounds=5, warmup_rounds=1)
    SESSION.dpdk[(name, mix)] = info["records_per_s"]
    SESSION.row("dpdk", filter=name, mix=mix, **info)


def _kernel_call(name: str, kind: str) -> tuple[list, str, baselines.KernelCall]:
    why = baselines.kernel_reason()
    if why:
        pytest.skip(why)
    programs, arch = SESSION.filter(name)
    if arch != host_layout().name:
        pytest.skip(f"{name} is a {arch} filter; this machine runs {host_layout().name}")
    calls = [c for c in baselines.kernel_calls(programs, arch) if c.cached == (kind == "cached")]
    if not calls:
        pytest.skip(f"{name}: no cheap allowed call of kind {kind!r} among the candidates")
    return programs, arch, calls[0]


@pytest.mark.kernel
@pytest.mark.parametrize("kind", ["cached", "runs"])
@pytest.mark.parametrize("name", FILTERS)
def test_kernel_filter_cost(benchmark, name, kind):
    programs, _, call = _kernel_call(name, kind)
    result: dict = {}
    benchmark.group = "baseline: kernel seccomp cost per call"
    benchmark.pedantic(lambda: result.update(baselines.kernel_cost(programs, call, repeat=9)),
                       rounds=1,
                       iterations=1)
    info = {"call": call.name, "cached": call.cached, **result}
    benchmark.extra_info.update(info)
    SESSION.row("kernel", filter=name, kind=kind, **info)


@pytest.mark.parametrize("backend", JIT_BACKENDS)
@pytest.mark.parametrize("kind", ["cached", "runs"])
@pytest.mark.parametrize("name", FILTERS)
def test_kernel_call_batch(benchmark, name, kind, backend):
    """bpfjit on a batch of the same call the kernel baseline times: ns/record."""
    programs, arch, call = _kernel_call(name, kind)
    subject = SESSION.subject(name, backend)
    recs = workloads.repeat(call.name, KERNEL_CALL_RECORDS, arch, call.args)
    assert np.array_equal(subject.evaluate_batch(recs[:10]), SESSION.expect(name, recs[:10]))
    out = np.empty(len(recs), dtype=np.uint32)
    benchmark.group = "baseline: kernel call, as a bpfjit batch"
    benchmark.pedantic(subject.evaluate_batch, args=(recs, out), rounds=7, iterations=1,
                       warmup_rounds=1)
    best, _ = timings(benchmark)
    info = {"call": call.name, "ns_per_record": best * 1e9 / len(recs)}
    benchmark.extra_info.update(info)
    SESSION.row("kernel_batch", filter=name, kind=kind, backend=backend, **info)
