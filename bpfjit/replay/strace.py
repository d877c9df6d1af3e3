"""Parsing ``strace`` output into calls, one line at a time (streaming).

Handles ``-f`` (``[pid N]`` or ``N`` prefixes) and ``-ff -o`` files (the pid from
the file name's ``.N`` suffix), ``-t``/``-tt``/``-ttt``/``-r`` timestamps, ``-n``
(``[ 257]`` syscall numbers), ``-i`` (``[00007f...]`` instruction pointers),
``-T`` (``<0.000012>``), ``-y`` (``3</path>``), ``-X raw``/``-e raw=all``,
``<unfinished ...>`` / ``<... name resumed>`` pairs (joined per pid, the call
dated at its first line), signals (``--- SIGCHLD ... ---``), exits (``+++ exited
with 0 +++``) and personality changes (``[ Process PID=N runs in 32 bit mode. ]``; strace
writes that notice to stderr, so an ``-o`` file lacks it: there ``-i``'s 8-digit instruction
pointers mark a task without a notice as 32-bit).
Every system call line is one entry into the kernel, hence one run of the
filter. Lines that are not strace output become :class:`Problem` s.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from .args import collapse, split_call
from .calls import Call, Problem

_PREFIX = re.compile(
    r"(?:\[pid\s+(\d+)(?:<[^>]*>)?\]\s+|(\d+)(?:<[^>]*>)?\s+(?=\S))?"   # -f, -Y
    r"(?:(?:\d+:\d+:\d+(?:\.\d+)?|\d+\.\d+)\s+)?"             # -t, -tt, -ttt, -r
    r"(?:\[(?![0-9a-f]{8}\]|[0-9a-f]{16}\])\s*(\d+)\]\s+)?"     # -n (never 8 or 16 digits:
    #                                                          those are -i pointers, e.g. a
    #                                                          32-bit task's [08049035])
    r"(?:\[([0-9a-f]{16}|[0-9a-f]{8}|\?{16}|\?{8})\]\s+)?")   # -i
_CALL = re.compile(r"([a-z_][a-z0-9_]*)\(")
_RESUMED = re.compile(r"<\.\.\. ([a-z_][a-z0-9_]*) resumed>\s?")
_UNFINISHED = "<unfinished ...>"
_PERSONALITY = re.compile(r"\[ Process PID=(\d+) runs in (32 bit|64 bit|x32) mode\. \]")
_RESULT = re.compile(r"\s*=\s*\S")
_SYSCALL_HEX = re.compile(r"syscall_(0x[0-9a-f]+|\d+)")
_MAX_TEXT = 200


class StraceParser:
    """Feeds lines of one strace output file; yields Call and Problem objects in order."""

    def __init__(self, source: str, pid: int | None = None):
        self.source = source
        self.default_pid = pid
        self.pending: dict[int | None, tuple] = {}
        self.compat: dict[int | None, str] = {}
        self.signals = 0
        self.exits = 0
        self.notes = 0

    def feed(self, line_no: int, line: str) -> Iterator[Call | Problem]:
        text = line.rstrip("\n").rstrip("\r")
        if not text.strip():
            return
        m = _PREFIX.match(text)
        pid_text = m.group(1) or m.group(2)
        pid = int(pid_text) if pid_text else self.default_pid
        nr = int(m.group(3)) if m.group(3) else None
        ip_text = m.group(4)
        ip = int(ip_text, 16) if ip_text and ip_text[0] != "?" else None
        # strace -i prints 8 hex digits in a 32-bit personality; with -o its "runs in 32 bit
        # mode" notice goes to stderr, not to the file: the width is then the only sign
        compat = self.compat[pid] if pid in self.compat else (
            "ip32" if ip_text is not None and len(ip_text) == 8 else None)
        body = text[m.end():]
        c = body[:1]
        if c == "-" and body.startswith("--- "):
            self.signals += 1
            return
        if c == "+" and body.startswith("+++ "):
            self.exits += 1
            yield from self._flush(pid)
            return
        if c == "<":
            r = _RESUMED.match(body)
            if r:
                yield from self._resume(line_no, pid, r.group(1), body[r.end():], text)
                return
        call = _CALL.match(body)
        if call:
            name = call.group(1)
            rest = body[call.end():]
            stripped = rest.rstrip()
            if stripped.endswith(_UNFINISHED):
                yield from self._flush(pid)
                self.pending[pid] = (line_no, name, nr, ip, stripped[:-len(_UNFINISHED)].rstrip(),
                                     text, compat)
                return
            yield self._complete(line_no, pid, name, nr, ip, rest, text, compat)
            return
        p = _PERSONALITY.search(body)
        if p:
            mode = p.group(2)
            self.compat[int(p.group(1))] = None if mode == "64 bit" else (
                "32" if mode == "32 bit" else "x32")
            if self.default_pid is not None or not (m.group(1) or m.group(2)):
                self.compat[pid] = self.compat[int(p.group(1))]
            self.notes += 1
            return
        if text.startswith("strace: ") or body.lstrip().startswith(("strace: ", "> ")):   # -k
            self.notes += 1
            return
        yield Problem(self.source, line_no, "not a strace line", text[:_MAX_TEXT])

    def _complete(self, line_no: int, pid, name: str, nr, ip, rest: str, text: str,
                  compat) -> Call | Problem:
        split = split_call(collapse(rest))
        if split is None:
            return Problem(self.source, line_no,
                           f"truncated {name}(...): no closing parenthesis", text[:_MAX_TEXT])
        texts, tail = split
        if not _RESULT.match(tail):
            return Problem(self.source, line_no,
                           f"truncated {name}(...): no '= result'", text[:_MAX_TEXT])
        if nr is None and name.startswith("syscall_"):
            h = _SYSCALL_HEX.fullmatch(name)
            if h:
                nr = int(h.group(1), 0)
        return Call(self.source, line_no, pid, name, nr, texts, ip, text[:_MAX_TEXT], compat)

    def _resume(self, line_no: int, pid, name: str, rest: str, text: str):
        start = self.pending.pop(pid, None)
        if start is None or start[1] != name:
            if start is not None:
                self.pending[pid] = start
            yield Problem(self.source, line_no,
                          f"'{name} resumed' without its '<unfinished ...>' start", text[:_MAX_TEXT])
            return
        first, _, nr, ip, partial, first_text, compat = start
        rest = rest.replace(_UNFINISHED, "")
        joined = partial + " " + rest      # strace splits only between arguments
        if nr is None:
            nr = self._nr_from(text)
        yield self._complete(first, pid, name, nr, ip, joined, first_text, compat)

    def _nr_from(self, text: str) -> int | None:
        m = _PREFIX.match(text)
        return int(m.group(3)) if m and m.group(3) else None

    def _flush(self, pid) -> Iterator[Call | Problem]:
        """A pending call that will never be resumed (the task exited or was killed)."""
        start = self.pending.pop(pid, None)
        if start is not None:
            first, name, nr, ip, partial, first_text, compat = start
            texts = []
            split = split_call(collapse(partial) + ")")
            if split is not None:
                texts = split[0]
            yield Call(self.source, first, pid, name, nr, texts, ip, first_text[:_MAX_TEXT], compat)

    def finish(self) -> Iterator[Call | Problem]:
        for pid in list(self.pending):
            yield from self._flush(pid)


def parse(lines: Iterable[str], source: str = "<strace>", pid: int | None = None
          ) -> Iterator[Call | Problem]:
    """Calls and problems of a whole strace output (1-based line numbers)."""
    parser = StraceParser(source, pid)
    for no, line in enumerate(lines, 1):
        yield from parser.feed(no, line)
    yield from parser.finish()
