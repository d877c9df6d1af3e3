"""The parsed form of a recorded system call, and of a line that could not be read."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Call:
    """One system call entry as a trace recorded it.

    ``name`` or ``nr`` (or both) identify the call; ``args`` are the printed
    argument texts (strace) to decode per arch, or ``values`` the raw register
    values already known (audit records: ``None`` each, as audit does not log
    them). ``compat`` is strace's personality for the pid (``None``, ``"32"``, ``"ip32"`` (inferred from -i's pointer width),
    ``"x32"``); ``arch`` an explicit libseccomp arch name (audit's ``arch=``).
    ``recorded`` is the seccomp return value the kernel logged (audit ``code=``).
    """

    source: str
    line: int
    pid: int | None
    name: str | None
    nr: int | None
    args: list[str] | None
    ip: int | None
    text: str
    compat: str | None = None
    arch: str | None = None
    values: tuple | None = None
    recorded: int | None = None


@dataclass(slots=True)
class Problem:
    """A line that is not a readable call: counted and reported with its place, never raised."""

    source: str
    line: int
    reason: str
    text: str
