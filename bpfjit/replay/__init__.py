"""Trace replay: what a seccomp filter would have done to every call a program really made.

Input: ``strace`` output (:mod:`.strace`) and audit logs (:mod:`.audit`); strace's
symbolic arguments go back to raw register values (:mod:`.args`, :mod:`.constants`);
calls are evaluated in batches by a compiled Filter or Stack (:mod:`.evaluate`).

    >>> import bpfjit
    >>> from bpfjit.replay import replay
    >>> f = bpfjit.compile(bpfjit.load("filter.bpf"), arch="x86_64")   # doctest: +SKIP
    >>> summary = replay(f, ["trace.txt"])                             # doctest: +SKIP
    >>> summary.actions(), [(g.syscall, g.action, g.line) for g in summary.refused]  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Callable

from .calls import Call, Problem
from .evaluate import Group, Replayer, Summary
from .sources import TraceReader

__all__ = ["Call", "Problem", "Group", "Replayer", "Summary", "TraceReader", "replay"]


def replay(target, paths: list[str], progress: "Callable[[int, int | None], None] | None" = None
           ) -> Summary:
    """Replay the trace files ``paths`` through ``target`` (a Filter or Stack).

    ``progress(bytes_read, total_bytes)`` is called after each batch.
    """
    reader = TraceReader(paths)
    replayer = Replayer(target)
    total = reader.total_bytes()
    tick = (lambda: progress(reader.bytes_read, total)) if progress else None
    summary = replayer.feed(reader, tick)
    summary.lines = reader.lines
    summary.bytes = reader.bytes_read
    return summary
