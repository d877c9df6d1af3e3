"""Paths of the recorded strace/audit fixtures (tests/replay/data, see record.sh and PROVENANCE.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data() -> Path:
    return DATA
