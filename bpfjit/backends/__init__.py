"""Backend registry: name -> backend, what is available here, and the ``auto`` policy.

Backends are imported lazily, so a missing optional library (llvmlite, numba)
only matters when that backend is asked for.
"""
from __future__ import annotations

import importlib
import logging

from ..errors import BackendUnavailable
from .base import Backend, Evaluator

log = logging.getLogger("bpfjit")

#: backend name -> module defining ``BACKEND``
REGISTRY = {
    "reference": "bpfjit.backends.reference",
    "llvm": "bpfjit.backends.llvm",
    "numba": "bpfjit.backends.numba_jit",
    "kernel": "bpfjit.backends.kernel",
}

#: what ``backend="auto"`` tries, in order
AUTO_ORDER = ("llvm", "numba", "reference")

NAMES = tuple(REGISTRY) + ("auto",)


def get(name: str) -> Backend:
    """The backend called ``name``; BackendUnavailable if it cannot be imported here."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r}; choose from {', '.join(NAMES)}")
    try:
        module = importlib.import_module(REGISTRY[name])
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r} cannot be imported: {exc}") from exc
    backend = getattr(module, "BACKEND", None)
    if backend is None:
        raise BackendUnavailable(f"backend module {REGISTRY[name]} defines no BACKEND")
    return backend


def available() -> dict[str, str | None]:
    """Backend name -> None when usable here, else the reason it is not."""
    result: dict[str, str | None] = {}
    for name in REGISTRY:
        try:
            backend = get(name)
            reason = getattr(backend, "unavailable_reason", lambda: None)()
        except BackendUnavailable as exc:
            reason = str(exc)
        result[name] = reason
    return result


__all__ = ["Backend", "Evaluator", "get", "available", "REGISTRY", "AUTO_ORDER", "NAMES"]
