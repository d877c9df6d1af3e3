"""Corpus paths and loaders shared by the tests (importable as `corpora`: pyproject sets pythonpath)."""
from __future__ import annotations

import json
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REAL_FILTERS = TESTS / "corpus" / "real" / "filters"
VECTORS = TESTS / "vectors"


def real_filters() -> list[Path]:
    """Every real filter's .bpf path, sorted."""
    return sorted(REAL_FILTERS.glob("*.bpf"))


def real_filter_arch(path: Path) -> str:
    """The layout a real filter is written for: its provenance's native_arch, s390x being big."""
    meta = json.loads(path.with_suffix(".json").read_text())
    name = path.name
    for arch in ("aarch64", "riscv64", "ppc64le", "s390x", "x32", "x86_64", "x86"):
        if f".{arch}." in name:
            return arch
    return meta.get("native_arch", "x86_64")


def vector_cases() -> list[dict]:
    with open(VECTORS / "vectors.jsonl") as fh:
        return [json.loads(line) for line in fh]
