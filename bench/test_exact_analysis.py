"""`bpfjit table` and `bpfjit diff` on Docker's filter, each in a fresh process (goal for table: < 0.3 s).

Run: ``python3 -m pytest bench/test_exact_analysis.py --benchmark-only``. The time includes
the interpreter's start-up and imports (numpy, click), as a user sees it.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILTERS = ROOT / "tests" / "corpus" / "real" / "filters"


def _run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "bpfjit", *args], cwd=ROOT, check=False,
                   stdout=subprocess.DEVNULL)


@pytest.mark.parametrize("name", ["docker-default.x86_64.bpf", "docker-default.x86_64.opt.bpf"])
def test_table_fresh_process(benchmark, name):
    benchmark.pedantic(_run, args=("table", str(FILTERS / name), "--arch", "x86_64"),
                       rounds=7, iterations=1, warmup_rounds=1)


def test_diff_docker_2021_vs_current_fresh_process(benchmark):
    benchmark.pedantic(_run, args=("diff", str(FILTERS / "docker-default-2021.x86_64.bpf"),
                                   str(FILTERS / "docker-default.x86_64.bpf")),
                       rounds=5, iterations=1, warmup_rounds=1)


def test_import_only_fresh_process(benchmark):
    """The floor: starting Python and importing the CLI."""
    benchmark.pedantic(subprocess.run, args=([sys.executable, "-c", "import bpfjit.cli"],),
                       rounds=7, iterations=1, warmup_rounds=1)
