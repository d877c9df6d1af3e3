"""Dask replay at scale: a generated Parquet dataset through Dask (2 workers, 1 worker) and
in-process, with identical results, throughput ratios and peak memory. Not a pytest file.

    nice -n 10 python bench/dask_replay.py generate --records 256000000 --files 8 --out /tmp/bpfjit-dask-data
    nice -n 10 python bench/dask_replay.py measure --data /tmp/bpfjit-dask-data
    rm -r /tmp/bpfjit-dask-data

``generate`` writes ``--files`` Parquet files (one host each, row groups of
1 M records cycling through the three ``bpfjit.workloads`` mixes, snappy),
from numpy only. ``measure`` runs each phase in a fresh process (so each peak
RSS is its own): ``inprocess`` (``bpfjit.columnar.evaluate_parquet``: row
group by row group on one thread, evaluate_batch, Arrow counts), ``dask2`` and ``dask1``
(``bpfjit.dask.replay_parquet`` on a LocalCluster of 2 / 1 one-thread worker
processes); the three count tables must be identical. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FILTER = "docker-default.x86_64"
ROW_GROUP = 1 << 20


def generate(out: Path, records: int, files: int) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from bpfjit import columnar, workloads
    out.mkdir(parents=True, exist_ok=True)
    per_file = records // files
    t0 = time.perf_counter()
    for f in range(files):
        host = f"host-{f:03d}"
        path = out / f"part-{f:03d}.parquet"
        writer = None
        done = 0
        group = 0
        while done < per_file:
            n = min(ROW_GROUP, per_file - done)
            mix = workloads.MIXES[(f + group) % len(workloads.MIXES)]
            recs = workloads.mix(mix, n, seed=1000 * f + group)
            hosts = pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), pa.array([host]))
            pid = np.full(n, 1000 + f, dtype=np.int32) + (np.arange(n, dtype=np.int32) % 7)
            batch = columnar.from_records(recs, extra={"host": hosts, "pid": pid})
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema, compression="snappy")
            writer.write_batch(batch, row_group_size=ROW_GROUP)
            done += n
            group += 1
        writer.close()
    size = sum(p.stat().st_size for p in out.glob("*.parquet"))
    return {"records": per_file * files, "files": files, "bytes": size,
            "seconds": round(time.perf_counter() - t0, 1)}


def _subject():
    from bpfjit import workloads
    programs, arch = workloads.corpus_filter(FILTER)
    return workloads.compile_subject(programs, "llvm", arch)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _usage() -> dict:
    """This process's peak RSS (MiB) and CPU seconds (user + system)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_mib": round(ru.ru_maxrss / 1024, 1),
            "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 2)}


def phase(name: str, data: Path, result: Path, count: int | None = None) -> dict:
    files = sorted(str(p) for p in data.glob("*.parquet"))[:count]
    subject = _subject()
    t0 = time.perf_counter()
    workers = {}
    if name == "inprocess":
        from bpfjit import columnar
        frame = columnar.evaluate_parquet(subject, files)
    else:
        from bpfjit import dask as bdask
        n = int(name.removeprefix("dask"))
        frame, workers = _dask(bdask, subject, files, n)
    seconds = time.perf_counter() - t0
    frame.to_parquet(result)
    return {"phase": name, "seconds": round(seconds, 2), "records": int(frame["count"].sum()),
            "rows": len(frame), "peak_rss_mib": round(_peak_rss_mib(), 1),
            "cpu_seconds": _usage()["cpu_seconds"], "workers": workers}


def _dask(bdask, subject, files, n):
    """replay_parquet, plus each worker's peak RSS read just before the cluster closes."""
    import distributed
    rss = []
    ready = []
    original = bdask.client

    from contextlib import contextmanager

    @contextmanager
    def spying(*a, **kw):
        with original(*a, **kw) as c:
            ready.append(time.perf_counter())
            yield c
            ready.append(time.perf_counter())
            got = c.run(_usage)
            rss.extend(got.values())

    bdask.client = spying
    try:
        frame = bdask.replay_parquet(subject, files, n_workers=n, processes=True)
    finally:
        bdask.client = original
    assert distributed                                  # imported for the workers' sake
    return frame, {"peak_rss_mib": [r["peak_rss_mib"] for r in rss],
                   "cpu_seconds": round(sum(r["cpu_seconds"] for r in rss), 2),
                   "compute_seconds": round(ready[1] - ready[0], 2)}


def measure(data: Path, count: int | None = None) -> dict:
    import pandas as pd
    files = sorted(data.glob("*.parquet"))[:count]
    for p in files:                                      # same page-cache state for every phase
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass
    out = {"dataset": {"files": len(files), "bytes": sum(p.stat().st_size for p in files)},
           "load_average_before": os.getloadavg(),
           "filter": FILTER, "cpus": os.cpu_count(), "phases": {}}
    frames = {}
    for name in ("inprocess", "dask2", "dask1"):
        result = data.parent / f"bpfjit-dask-result-{name}.parquet"
        proc = subprocess.run([sys.executable, __file__, "phase", name, "--data", str(data),
                               "--result", str(result)]
                              + (["--files", str(count)] if count else []),
                              capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if proc.returncode:
            raise SystemExit(f"phase {name} failed:\n{proc.stderr[-4000:]}")
        out["phases"][name] = json.loads(proc.stdout.strip().splitlines()[-1])
        frames[name] = pd.read_parquet(result)
        result.unlink()
    base = frames["inprocess"]
    out["identical"] = {k: bool(v.equals(base)) for k, v in frames.items()}
    ph = out["phases"]
    recs = ph["inprocess"]["records"]
    for k, v in ph.items():
        v["records_per_s"] = round(recs / v["seconds"])
    out["ratio_2_workers_over_1"] = round(ph["dask1"]["seconds"] / ph["dask2"]["seconds"], 3)
    out["ratio_2_workers_over_1_compute_only"] = round(
        ph["dask1"]["workers"]["compute_seconds"] / ph["dask2"]["workers"]["compute_seconds"], 3)
    out["ratio_dask2_over_inprocess_throughput"] = round(
        ph["inprocess"]["seconds"] / ph["dask2"]["seconds"], 3)
    out["dask2_overhead_vs_inprocess"] = round(
        ph["dask2"]["seconds"] / ph["inprocess"]["seconds"] - 1, 3)
    # both on one core: the cost of Dask itself (scheduling, cluster start, results transfer)
    out["dask1_overhead_vs_inprocess"] = round(
        ph["dask1"]["seconds"] / ph["inprocess"]["seconds"] - 1, 3)
    # CPU seconds (user + system) of the evaluating processes: what the work costs, whatever
    # share of the cores the machine's other load left us (see bench/README.md)
    cpu_in = ph["inprocess"]["cpu_seconds"]
    for k in ("dask1", "dask2"):
        out[f"{k}_worker_cpu_over_inprocess_cpu"] = round(
            ph[k]["workers"]["cpu_seconds"] / cpu_in, 3)
    out["load_average_after"] = os.getloadavg()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--records", type=int, default=256_000_000)
    g.add_argument("--files", type=int, default=8)
    g.add_argument("--out", type=Path, default=Path("/tmp/bpfjit-dask-data"))
    m = sub.add_parser("measure")
    m.add_argument("--data", type=Path, default=Path("/tmp/bpfjit-dask-data"))
    m.add_argument("--files", type=int, default=None, help="only the first N files")
    p = sub.add_parser("phase")
    p.add_argument("name", choices=("inprocess", "dask1", "dask2"))
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--result", type=Path, required=True)
    p.add_argument("--files", type=int, default=None)
    args = ap.parse_args()
    if args.cmd == "generate":
        print(json.dumps(generate(args.out, args.records, args.files)))
    elif args.cmd == "measure":
        print(json.dumps(measure(args.data, args.files), indent=1))
    else:
        print(json.dumps(phase(args.name, args.data, args.result, args.files)))


if __name__ == "__main__":
    main()
