"""Testing: the ``policy`` pytest fixture. Enable with ``pytest_plugins = ["bpfjit.testing.pytest_plugin"]``.

``def test_profile(policy): assert policy("profile.bpf").allows("read")`` — see
:mod:`bpfjit.testing.policy`.
"""
from __future__ import annotations

import pytest

from .policy import policy as _policy


@pytest.fixture
def policy():
    """The function ``policy(path, arch=None) -> Policy`` (exact policy assertions)."""
    return _policy
