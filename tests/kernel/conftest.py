"""Kernel tests: skipped, with the reason, when this kernel cannot install seccomp filters for us."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def kernel_available() -> None:
    from bpfjit.backends.kernel import kernel_unavailable_reason
    reason = kernel_unavailable_reason()
    if reason is not None:
        pytest.skip(f"the kernel oracle is unavailable: {reason}")
