"""Session fixtures; corpus helpers live in tests/corpora.py (import corpora)."""
from __future__ import annotations

import pytest

from corpora import vector_cases


@pytest.fixture(scope="session")
def vectors() -> list[dict]:
    """The 9,490 libseccomp bpf-sim cases (tests/vectors/vectors.jsonl)."""
    return vector_cases()


def pytest_collection_modifyitems(config, items):
    """Slow tests (hour-long differential runs) run only when asked for with ``-m slow``."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: long differential run; select it with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
