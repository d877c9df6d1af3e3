"""Bench session (bench stage): prints the run's numbers as tables at the end.

pytest-benchmark's own table shows seconds per round; the summary here turns
the same measurements into records/s, ns/record and the ratios (bench/README.md
explains each). Set ``BPFJIT_BENCH_SUMMARY=path.json`` to also save the rows.
"""
from __future__ import annotations

import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # bench/matrix.py

from matrix import SESSION, SIZE  # noqa: E402


def _m(rate):
    if rate is None:
        return "—"
    return f"{rate / 1e6:.1f}" if rate >= 1e7 else f"{rate / 1e6:.3g}"


def _f(value, spec=".1f", suffix=""):
    if value is None:
        return "—"
    if spec.endswith("f") and 0 < abs(value) < 10 ** -int(spec[1:-1] or 0):
        spec = ".2g"                     # tiny values (the reference backend): 2 digits
    return f"{value:{spec}}{suffix}"


def _table(write, title, header, rows):
    if not rows:
        return
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    write("")
    write(title)
    for i, r in enumerate(cells):
        write("  " + "  ".join(c.ljust(w) if j < 3 else c.rjust(w)
                               for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            write("  " + "  ".join("-" * w for w in widths))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


DOCKER = "docker-default.x86_64"


def _targets(write, by) -> None:
    """The issue's targets against this run's numbers (reported, never asserted)."""
    batch = {(r["filter"], r["backend"], r["mix"]): r for r in by("batch")}
    threads = {(r["backend"], r["mix"], r["threads"]): r["records_per_s"] for r in by("threads")}
    single = {(r["filter"], r["backend"], r["call"]): r["ns_per_call"] for r in by("single")}
    comp = {(r["filter"], r["backend"], r["kind"]): r for r in by("compile")}
    rows = []

    def add(what, target, value, fmt, ok):
        if value is not None:
            rows.append([what, "", "", target, fmt(value), "met" if ok(value) else "MISSED"])

    llvm = batch.get((DOCKER, "llvm", "realistic"))
    if llvm:
        add("llvm, Docker linear, realistic, 1 thread", ">= 150 M rec/s",
            llvm["records_per_s"], lambda v: f"{v / 1e6:.1f} M rec/s", lambda v: v >= 150e6)
        add("  ... share of memory streaming (best vs best)", ">= 60 %",
            llvm.get("stream_ratio"), lambda v: f"{100 * v:.1f} %", lambda v: v >= 0.6)
        add("  ... share of memory streaming (paired)", ">= 60 %",
            llvm.get("stream_ratio_paired"), lambda v: f"{100 * v:.1f} %", lambda v: v >= 0.6)
        add("  ... times libpcap", ">= 25x", llvm.get("pcap_ratio"), lambda v: f"{v:.1f}x",
            lambda v: v >= 25)
        add("  ... times DPDK's JIT", "(reported)", llvm.get("dpdk_ratio"),
            lambda v: f"{v:.1f}x", lambda v: True)
    uni = batch.get((DOCKER, "llvm", "uniform_nr"))
    if uni:
        add("llvm, Docker linear, uniform_nr", ">= 100 M rec/s", uni["records_per_s"],
            lambda v: f"{v / 1e6:.1f} M rec/s", lambda v: v >= 100e6)
    for b in ("llvm", "numba"):
        for mix in ("realistic", "arg_dependent"):
            if (b, mix, 1) in threads and (b, mix, 2) in threads:
                add(f"{b}, 2 threads / 1 thread ({mix})", ">= 1.8x",
                    threads[(b, mix, 2)] / threads[(b, mix, 1)],
                    lambda v: f"{v:.2f}x", lambda v: v >= 1.8)
    for b in ("llvm", "numba"):
        add(f"{b}, one evaluate() (read, Docker)", "<= 1 us", single.get((DOCKER, b, "read")),
            lambda v: f"{v:.0f} ns", lambda v: v <= 1000)
    cold = comp.get((DOCKER, "llvm", "cold, new process"))
    warm = comp.get((DOCKER, "llvm", "warm disk cache, new process"))
    if cold:
        add("llvm cold compile (Docker, empty cache)", "<= 50 ms", cold["compile_ms"],
            lambda v: f"{v:.1f} ms", lambda v: v <= 50)
    if warm:
        add("llvm warm cache, new process, to 1st result", "<= 2 ms", warm["first_result_ms"],
            lambda v: f"{v:.2f} ms", lambda v: v <= 2)
    for mix in ("realistic", "uniform_nr", "arg_dependent"):
        n, l_ = batch.get((DOCKER, "numba", mix)), batch.get((DOCKER, "llvm", mix))
        if n and l_:
            add(f"numba within 3x of llvm (Docker, {mix})", "<= 3x",
                l_["records_per_s"] / n["records_per_s"], lambda v: f"{v:.2f}x slower",
                lambda v: v <= 3)
    _table(write, "Targets (from the issue; reported, not asserted)",
           ["what", "", "", "target", "measured", ""], rows)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = SESSION.rows
    if not rows:
        return
    write = terminalreporter.write_line
    by = lambda kind: [v for k, v in rows if k == kind]  # noqa: E731
    write("")
    write(f"bpfjit bench summary — {_cpu_model()}, {os.cpu_count()} CPUs, Linux "
          f"{platform.release()}, {SIZE:,} records per JIT batch")
    for r in by("batch") + by("threads"):          # ratios from the run's best streaming pass
        stream = SESSION.stream.get((r["mix"], r["arch"]))
        if stream:
            r["stream_records_per_s"] = SIZE / stream
            r["stream_ratio"] = r["records_per_s"] / r["stream_records_per_s"]
    _table(write, "Batch throughput (evaluate_batch, 1 thread; best of the rounds, median in "
                  "parentheses; vs stream = share of the memory-streaming rate of the same "
                  "records, best vs best and paired; vs libpcap = times libpcap's bpf_filter; vs DPDK "
                  "JIT = times DPDK's rte_bpf JIT)",
           ["filter", "backend", "mix", "records", "M rec/s", "(median)", "ns/rec",
            "vs stream", "(paired)", "vs libpcap", "vs DPDK JIT"],
           [[r["filter"], r["backend"], r["mix"], f"{r['records']:,}", _m(r["records_per_s"]),
             f"({_m(r['records_per_s_median'])})", _f(r["ns_per_record"], ".2f"),
             _f(r["stream_ratio"] and 100 * r["stream_ratio"], ".1f", " %"),
             "(" + _f(r["stream_ratio_paired"] and 100 * r["stream_ratio_paired"], ".1f", " %")
             + ")", _f(r["pcap_ratio"], ".1f", "x"), _f(r.get("dpdk_ratio"), ".1f", "x")]
            for r in by("batch")])
    threads = {}
    for r in by("threads"):
        threads.setdefault((r["backend"], r["mix"]), {})[r["threads"]] = r["records_per_s"]
    _table(write, "Threads (docker-default.x86_64)",
           ["backend", "mix", "", "1 thread M rec/s", "2 threads M rec/s", "speed-up"],
           [[b, mix, "", _m(t.get(1)), _m(t.get(2)),
             _f(t[2] / t[1], ".2f", "x") if 1 in t and 2 in t else "—"]
            for (b, mix), t in threads.items()])
    _table(write, "Single evaluate() call (median)",
           ["filter", "backend", "call", "ns/call", "best ns"],
           [[r["filter"], r["backend"], r["call"], _f(r["ns_per_call"], ".0f"),
             _f(r["ns_per_call_best"], ".0f")] for r in by("single")])
    _table(write, "Compile (medians; first result = compile() start to the first evaluate() "
                  "result)",
           ["filter", "backend", "kind", "compile ms", "first result ms", "best", "import ms"],
           [[r["filter"], r["backend"], r["kind"], _f(r["compile_ms"], ".2f"),
             _f(r["first_result_ms"], ".2f"), _f(r["first_result_ms_best"], ".2f"),
             _f(r["import_ms"], ".0f")] for r in by("compile")])
    _table(write, "Memory streaming (C loop reading all 64 bytes of each record; best pass "
                  "of the whole run)", ["mix", "arch", "", "M rec/s", "GB/s"],
           [[mix, arch, "", _m(SIZE / secs), _f(SIZE * 64 / secs / 1e9, ".1f")]
            for (mix, arch), secs in SESSION.stream.items()])
    _table(write, "libpcap bpf_filter()", ["filter", "mix", "", "M rec/s", "ns/rec"],
           [[r["filter"], r["mix"], "", _m(r["records_per_s"]), _f(r["ns_per_record"], ".1f")]
            for r in by("pcap")])
    _table(write, "DPDK JIT (rte_bpf_convert + x86-64 eBPF JIT, one call per record)",
           ["filter", "mix", "", "M rec/s", "ns/rec"],
           [[r["filter"], r["mix"], "", _m(r["records_per_s"]), _f(r["ns_per_record"], ".1f")]
            for r in by("dpdk")])
    batch = {(r["filter"], r["kind"], r["backend"]): r["ns_per_record"]
             for r in by("kernel_batch")}
    backends = sorted({b for _, _, b in batch})
    _table(write, "Kernel: seccomp cost per system call (filter = with - without; best of 9 "
                  "children) vs bpfjit ns/record on a batch of the same call",
           ["filter", "call", "kind", "without ns", "with ns", "filter ns",
            *[f"{b} ns/rec" for b in backends]],
           [[r["filter"], r["call"], r["kind"], _f(r["without_ns"]), _f(r["with_ns"]),
             _f(r["filter_ns"]), *[_f(batch.get((r["filter"], r["kind"], b)), ".2f")
                                   for b in backends]] for r in by("kernel")])
    _targets(write, by)
    path = os.environ.get("BPFJIT_BENCH_SUMMARY")
    if path:
        with open(path, "w") as fh:
            json.dump({"cpu": _cpu_model(), "cpus": os.cpu_count(),
                       "kernel": platform.release(), "size": SIZE,
                       "rows": [{"table": k, **v} for k, v in rows]}, fh, indent=1,
                      default=str)
