"""Session fixtures; corpus helpers live in tests/corpora.py (import corpora)."""
from __future__ import annotations

import pytest

from corpora import vector_cases


@pytest.fixture(scope="session")
def vectors() -> list[dict]:
    """The 9,490 libseccomp bpf-sim cases (tests/vectors/vectors.jsonl)."""
    return vector_cases()
