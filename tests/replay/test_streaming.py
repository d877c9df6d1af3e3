"""Streaming: a trace many batches long replays with the same counts as its parts, and the
memory held stops growing once a batch is full (the 1 GB run is in the README)."""
from __future__ import annotations

import tracemalloc

import bpfjit
from bpfjit.replay import evaluate, replay
from corpora import REAL_FILTERS

DOCKER = str(REAL_FILTERS / "docker-default.x86_64.bpf")


def test_a_large_trace_streams_in_bounded_memory(data, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate, "BATCH", 512)
    f = bpfjit.compile(bpfjit.load(DOCKER), arch="x86_64")
    parts = [data / "threads.strace", data / "pipeline.raw.strace"]
    one = replay(f, [str(p) for p in parts])
    chunk = b"".join(p.read_bytes() for p in parts)
    peaks = {}
    for copies in (3, 12):
        big = tmp_path / f"big{copies}.strace"
        big.write_bytes(chunk * copies)
        tracemalloc.start()
        try:
            many = replay(f, [str(big)])
            peaks[copies] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert many.calls == one.calls * copies
        assert many.counts == {k: v * copies for k, v in one.counts.items()}
        assert many.problems == 0 and many.lines == one.lines * copies
    # four times the trace, not four times the memory
    assert peaks[12] < 1.5 * peaks[3], peaks
    assert peaks[12] < len(chunk) * 12 / 2, peaks
