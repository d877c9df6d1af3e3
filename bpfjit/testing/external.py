"""Fuzzing stage, candidate processes: evaluators in any language, behind the protocol of
:mod:`bpfjit.testing.protocol`, with a per-batch timeout and crash isolation.

:func:`command_candidate` starts a command (``--candidate-cmd``) and turns
it into a :class:`~bpfjit.testing.candidates.Candidate`;
:func:`python_candidate` does the same for a Python ``module:function``
run in a worker process (:mod:`bpfjit.testing.worker`). A request that is
not answered within the timeout, or a process that dies or breaks the
framing, raises :class:`~bpfjit.testing.candidates.CandidateFailed`
(``hang`` or ``crash``); the process is killed and the next request starts
a fresh one.
"""
from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from ..seccomp import layouts
from ..seccomp.layouts import Layout
from . import protocol as proto
from .candidates import Candidate, CandidateError, CandidateFailed, Rejected

DEFAULT_TIMEOUT = 10.0
#: how long a fresh process may take to answer the handshake
START_TIMEOUT = 30.0


class _Timeout(Exception):
    pass


class _Closed(Exception):
    pass


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


class CandidateProcess:
    """One candidate command, started on demand, speaking protocol version 1."""

    def __init__(self, argv: Sequence[str], layout: Layout, *, stack: bool, timeout: float,
                 name: str, env: dict | None = None):
        self.argv = list(argv)
        self.layout = layout
        self.stack = stack
        self.timeout = timeout
        self.name = name
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.capabilities = 0
        self.starts = 0

    # -- process life --
    def start(self) -> None:
        self.stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.stderr, env=self.env, bufsize=0)
        except OSError as exc:
            raise CandidateError(f"candidate {self.name!r}: cannot start {self.argv[0]!r}: "
                                 f"{exc.strerror or exc}") from None
        self.starts += 1
        os.set_blocking(self.proc.stdin.fileno(), False)
        os.set_blocking(self.proc.stdout.fileno(), False)
        deadline = time.monotonic() + max(self.timeout, START_TIMEOUT)
        try:
            self._send(proto.hello(self.layout.audit_arch, self.layout.name, self.stack),
                       deadline)
            reply = self._recv(12, deadline)
        except _Timeout:
            self.kill()
            raise CandidateFailed("hang", "no answer to the protocol handshake within "
                                  f"{max(self.timeout, START_TIMEOUT):g} s") from None
        except _Closed:
            raise CandidateFailed("crash", "during the handshake: " + self._death() +
                                  " (does it speak the bpfjit candidate protocol?)") from None
        if reply[:4] != proto.MAGIC:
            self.kill()
            raise CandidateFailed("crash", f"handshake answered {reply[:4]!r}, not {proto.MAGIC!r} "
                                  f"(does it speak the bpfjit candidate protocol?)")
        version = proto.u32(reply[4:8])
        if version != proto.VERSION:
            self.kill()
            raise CandidateFailed("crash", f"protocol version {version}; bpfjit speaks version "
                                  f"{proto.VERSION}")
        self.capabilities = proto.u32(reply[8:12])

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def close(self) -> None:
        """End the process: close its stdin (it should exit), kill it after a second."""
        proc = self.proc
        if proc is None:
            return
        try:
            proc.stdin.close()
            proc.wait(timeout=1.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def _death(self) -> str:
        """Why the process stopped answering (it is reaped here), with its stderr's tail."""
        proc, self.proc = self.proc, None
        if proc is None:
            return "not running"
        try:
            code = proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        what = "closed its stdout" if code is None else \
            f"killed by {_signal_name(-code)}" if code < 0 else f"exited with status {code}"
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - 400))
        tail = self.stderr.read().decode("utf-8", "replace").strip()
        return what + (f"; stderr: ...{tail[-400:]}" if tail else "")

    # -- framing with a deadline --
    def _send(self, data: bytes, deadline: float) -> None:
        fd = self.proc.stdin.fileno()
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Timeout
            _, ready, _ = select.select([], [fd], [], left)
            if not ready:
                continue
            try:
                n = os.write(fd, view[:65536])
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                raise _Closed from None
            view = view[n:]

    def _recv(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Timeout
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(fd, n - got)
            except BlockingIOError:
                continue
            if not chunk:
                raise _Closed
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    # -- requests --
    def ask(self, op: int, programs: list[bytes], records: np.ndarray | None = None):
        """uint32 values (EVALUATE), True (CHECK accepted), or a Rejected."""
        if self.proc is None:
            self.start()
        deadline = time.monotonic() + self.timeout
        try:
            self._send(proto.request(op, programs, records), deadline)
            status = proto.u32(self._recv(4, deadline))
            if status == proto.ACCEPT:
                if op == proto.OP_CHECK:
                    return True
                raw = self._recv(4 * len(records), deadline)
                return np.frombuffer(raw, dtype="<u4").astype(np.uint32)
            if status == proto.REJECT:
                size = proto.u32(self._recv(4, deadline))
                if size > 65536:
                    raise proto.ProtocolError(f"a reject reason of {size} bytes")
                return Rejected(self._recv(size, deadline).decode("utf-8", "replace")
                                or "rejected")
            raise proto.ProtocolError(f"status {status} (expected 0 ACCEPT or 1 REJECT)")
        except _Timeout:
            self.kill()
            raise CandidateFailed("hang", f"no answer within {self.timeout:g} s "
                                  f"(the batch timeout); killed") from None
        except _Closed:
            raise CandidateFailed("crash", self._death()) from None
        except proto.ProtocolError as exc:
            self.kill()
            raise CandidateFailed("crash", f"broke the protocol: {exc}") from None

    def evaluate(self, programs, records: np.ndarray):
        progs = [bytes(p) for p in programs] if self.stack else [bytes(programs)]
        return self.ask(proto.OP_EVALUATE, progs, records)

    def check(self, programs) -> bool:
        progs = [bytes(p) for p in programs] if self.stack else [bytes(programs)]
        return self.ask(proto.OP_CHECK, progs) is True


def _candidate(process: CandidateProcess, description: str) -> Candidate:
    try:
        process.start()                      # fail early, with a clear error, at set-up
    except CandidateFailed as exc:
        raise CandidateError(f"candidate {process.name!r} failed to start ({exc.kind}): "
                             f"{exc.detail}") from None
    caps = process.capabilities
    return Candidate(process.name,
                     evaluate=None if caps & proto.CAP_CHECK_ONLY else process.evaluate,
                     check=process.check if caps & proto.CAP_CHECK else None,
                     stack=process.stack, verdicts_only=bool(caps & proto.CAP_VERDICTS_ONLY),
                     description=description, close=process.close, timeout=process.timeout)


def command_candidate(cmd: "str | Sequence[str]", layout: "str | Layout" = "x86_64", *,
                      stack: bool = False, timeout: float = DEFAULT_TIMEOUT,
                      name: str | None = None) -> Candidate:
    """A candidate process started from ``cmd`` (a shell-like string or an argv list)."""
    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    if not argv:
        raise CandidateError("--candidate-cmd: empty command")
    if not timeout > 0:
        raise CandidateError(f"the batch timeout must be > 0 s, not {timeout!r}")
    lay = layouts.layout(layout)
    label = name or (cmd if isinstance(cmd, str) else shlex.join(argv))
    proc = CandidateProcess(argv, lay, stack=stack, timeout=timeout, name=label)
    return _candidate(proc, f"command {label!r} (candidate protocol v{proto.VERSION}, "
                            f"timeout {timeout:g} s)")


def python_candidate(spec: str, layout: "str | Layout" = "x86_64", *, stack: bool = False,
                     timeout: float = DEFAULT_TIMEOUT, checker_only: bool = False) -> Candidate:
    """The Python candidate ``module:function`` run in a worker process, so that it can be
    timed out and survive crashes. The worker imports it from the current directory or
    PYTHONPATH, like the in-process loader."""
    lay = layouts.layout(layout)
    argv = [sys.executable, "-m", "bpfjit.testing.worker", spec]
    if checker_only:
        argv.append("--checker")
    env = dict(os.environ)
    paths = [os.getcwd()] + [p for p in sys.path if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    proc = CandidateProcess(argv, lay, stack=stack, timeout=timeout, name=spec, env=env)
    return _candidate(proc, f"user candidate {spec} (in a worker process, timeout {timeout:g} s)")
