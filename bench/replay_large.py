"""Replay a large generated strace file and print the rate and the peak RSS (not run by pytest).

    nice -n 10 python3 bench/replay_large.py [--gib 1] [--keep /tmp/big.strace]

The file repeats the recorded fixtures of tests/replay/data (several processes, threads,
unfinished/resumed pairs, -X raw and decoded styles) up to the size asked for, in /tmp.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "replay" / "data"
PARTS = ["threads.strace", "pipeline.strace", "files_and_sockets.strace", "pipeline.raw.strace"]
FILTER = ROOT / "bpfjit" / "examples" / "docker-default.x86_64.bpf"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--keep", default=None, help="path of the generated file (kept)")
    a = ap.parse_args()
    chunk = b"".join((DATA / p).read_bytes() for p in PARTS)
    path = Path(a.keep) if a.keep else Path(tempfile.mkstemp(suffix=".strace", dir="/tmp")[1])
    if not path.exists() or path.stat().st_size < a.gib * (1 << 30):
        with open(path, "wb") as f:
            written = 0
            while written < a.gib * (1 << 30):
                f.write(chunk)
                written += len(chunk)
    try:
        res = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "bpfjit", "replay",
                              str(FILTER), str(path), "--json"], capture_output=True, text=True,
                             cwd=ROOT)
        got = json.loads(res.stdout)
        t = {k.strip(): v.strip() for k, v in (line.rsplit(": ", 1) for line in
                                                res.stderr.splitlines() if ": " in line)}
        cpu = float(t["User time (seconds)"]) + float(t["System time (seconds)"])
        print(f"{got['bytes'] / (1 << 30):.2f} GiB, {got['lines']} lines, {got['calls']} calls; "
              f"peak RSS {int(t['Maximum resident set size (kbytes)']) / 1024:.0f} MiB; "
              f"{got['lines'] / cpu:,.0f} lines/s of CPU time "
              f"({t['Elapsed (wall clock) time (h:mm:ss or m:ss)']} wall)")
    finally:
        if not a.keep:
            os.unlink(path)


if __name__ == "__main__":
    main()
