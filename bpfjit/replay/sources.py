"""Reading trace files: format detection (strace or audit), pids of ``-ff`` files, byte counts.

Files are read line by line in binary and decoded one line at a time, so a
trace of any size streams through in constant memory; ``bytes_read`` lets a
caller drive a progress bar.
"""
from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Iterator

from ..errors import LoadError
from . import audit, strace
from .calls import Call, Problem

_FF_SUFFIX = re.compile(r"\.(\d+)$")
_SNIFF_LINES = 64
#: a longer line is cut here (the rest skipped) and reported by the parser as truncated
MAX_LINE = 1 << 20


class TraceReader:
    """Calls and problems from several trace files, in file order; counts lines and bytes."""

    def __init__(self, paths: list[str]):
        self.paths = list(paths)
        self.lines = 0
        self.bytes_read = 0
        self.formats: dict[str, str] = {}
        self.parsers: list[strace.StraceParser] = []
        for p in self.paths:
            if p != "-" and not os.path.isfile(p):
                raise LoadError("no such trace file" if not os.path.exists(p)
                                else "not a regular file", source=p)

    def total_bytes(self) -> int | None:
        try:
            return sum(os.path.getsize(p) for p in self.paths if p != "-") or None
        except OSError:
            return None

    def _lines(self, stream) -> Iterator[str]:
        read = stream.readline
        while True:
            raw = read(MAX_LINE)
            if not raw:
                return
            self.lines += 1
            self.bytes_read += len(raw)
            if len(raw) == MAX_LINE and not raw.endswith(b"\n"):
                while True:                  # skip the rest of an overlong line
                    more = read(MAX_LINE)
                    self.bytes_read += len(more)
                    if not more or more.endswith(b"\n"):
                        break
                raw = raw[:200] + b" <line longer than 1 MiB cut here>"
            yield raw.decode("utf-8", "replace")

    def __iter__(self) -> Iterator[Call | Problem]:
        for path in self.paths:
            stream = sys.stdin.buffer if path == "-" else open(path, "rb")
            try:
                lines = self._lines(stream)
                head = list(itertools.islice(lines, _SNIFF_LINES))
                all_lines = itertools.chain(head, lines)
                source = "<stdin>" if path == "-" else path
                if audit.looks_like_audit(head):
                    self.formats[source] = "audit"
                    yield from audit.parse(all_lines, source)
                else:
                    self.formats[source] = "strace"
                    m = _FF_SUFFIX.search(path)
                    parser = strace.StraceParser(source, int(m.group(1)) if m else None)
                    self.parsers.append(parser)
                    for no, line in enumerate(all_lines, 1):
                        yield from parser.feed(no, line)
                    yield from parser.finish()
            finally:
                if stream is not sys.stdin.buffer:
                    stream.close()
