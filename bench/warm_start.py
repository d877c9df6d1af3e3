"""New process, warm disk cache: ``compile()`` to the first result (issue 11.4; target <= 2 ms).

Run from the worktree root: ``python3 bench/warm_start.py [--runs 15] [--filter NAME]``.
Fills a fresh cache directory once, then starts ``--runs`` new interpreters that
each import bpfjit, load the filter, and time ``compile()`` + ``evaluate("read")``
(``first_result_ms``; ``first_result_cpu_ms`` the same in CPU time of the calling thread,
steadier on a shared machine) and ``import bpfjit`` (``import_ms``) inside the process.
Prints the median and best. A measurement, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import bpfjit
t1 = time.perf_counter()
program = bpfjit.load(sys.argv[1])
t2 = time.perf_counter()
c2 = time.thread_time()
f = bpfjit.compile(program, backend="llvm", arch="x86_64")
t3 = time.perf_counter()
result = f.evaluate(0)
t4 = time.perf_counter()
c4 = time.thread_time()
print(json.dumps({"first_result_cpu_ms": (c4 - c2) * 1e3, "import_ms": (t1 - t0) * 1e3, "compile_ms": (t3 - t2) * 1e3,
                  "first_result_ms": (t4 - t2) * 1e3, "cache": f.evaluator.info["cache"],
                  "result": result}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--filter", default="docker-default.x86_64")
    args = parser.parse_args()
    path = ROOT / "tests" / "corpus" / "real" / "filters" / f"{args.filter}.bpf"
    # bytecode as an installed package has it (a shell with PYTHONDONTWRITEBYTECODE=1 would
    # otherwise compile every changed module from source in every measured process)
    import compileall
    compileall.compile_dir(str(ROOT / "bpfjit"), quiet=1, force=True)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, BPFJIT_CACHE_DIR=os.path.join(cache, "c"),
                   PYTHONPATH=str(ROOT))
        runs = []
        for i in range(args.runs + 1):
            out = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], env=env, check=True,
                                 capture_output=True, text=True).stdout
            if i:
                runs.append(json.loads(out))
    assert all(r["cache"] == "disk" for r in runs), runs
    for key in ("import_ms", "compile_ms", "first_result_ms", "first_result_cpu_ms"):
        values = [r[key] for r in runs]
        print(f"{key:16} median {statistics.median(values):7.3f}  best {min(values):7.3f}")


if __name__ == "__main__":
    main()
