"""Session fixtures; corpus helpers live in tests/corpora.py (import corpora)."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from corpora import vector_cases

# Hypothesis: one profile for every run, so a clean clone behaves like CI.
# "derandomized" (the default): each test draws the same examples every run
# (the seed comes from the test's own code), no example database is read or
# written, no deadline (timing on a loaded 2-core machine is not a property).
# "seeded" is chosen automatically when ``--hypothesis-seed N`` is given, so
# that option really varies the examples (derandomize would override it);
# ``HYPOTHESIS_PROFILE=name`` picks a profile explicitly.
_COMMON = dict(database=None, deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("derandomized", derandomize=True, **_COMMON)
settings.register_profile("seeded", derandomize=False, **_COMMON)


def pytest_configure(config):
    profile = os.environ.get("HYPOTHESIS_PROFILE")
    if profile is None:
        seeded = config.getoption("hypothesis_seed", default=None) is not None
        profile = "seeded" if seeded else "derandomized"
    settings.load_profile(profile)


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
