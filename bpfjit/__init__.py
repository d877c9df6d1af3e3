"""bpfjit — evaluate Linux seccomp filters (classic BPF) exactly as the kernel does, fast.

The pipeline: ``load`` (formats) → ``Program.check()`` (the kernel's checker) →
``compile`` (a backend: llvm, numba, reference, kernel) → ``Filter.evaluate``.

Machine model: A and X are 32-bit unsigned registers, M[0..15] scratch cells,
``ld [k]`` reads the 32-bit word at offset k of ``struct seccomp_data`` in the
layout's byte order; a program returns a 32-bit value whose high 16 bits are
the action (``ALLOW``, ``ERRNO``, ``KILL_PROCESS``...) and low 16 bits data.

>>> import bpfjit
>>> prog = bpfjit.load("ld [nr]\\njeq #59, kill, allow\\nkill: ret KILL_PROCESS\\nallow: ret ALLOW\\n")
>>> f = bpfjit.compile(prog, backend="reference", arch="x86_64")
>>> str(bpfjit.Action.from_value(f.evaluate("execve")))
'KILL_PROCESS'
"""
from __future__ import annotations

from .check import CheckedProgram, check
from .errors import (BackendUnavailable, BpfjitError, InputError, InvalidProgram, LoadError,
                     ProfileError, StackLimitError, UnknownArchError, UnknownSyscallError)
from .errors import SchemaError
from .filter import Filter, Trace, compile
from .formats import dump, load
from .install import InstallResult, install_check
from .process import Environment, ProcessOutcome
from .program import Instruction, Program, jump, stmt
from .seccomp.actions import Action, Outcome
from .seccomp.layouts import LAYOUTS, Layout, layout
from .seccomp.records import SECCOMP_DATA
from .stack import Stack

__version__ = "0.1.0"

__all__ = [
    "load", "dump", "check", "compile", "Program", "Instruction", "CheckedProgram", "stmt", "jump",
    "Filter", "Trace", "Stack", "Action", "Outcome", "Layout", "layout", "LAYOUTS", "SECCOMP_DATA",
    "BpfjitError", "LoadError", "InvalidProgram", "StackLimitError", "InputError",
    "UnknownSyscallError", "UnknownArchError", "BackendUnavailable", "ProfileError", "__version__",
    "Environment", "ProcessOutcome", "install_check", "InstallResult",
    "SchemaError",
]
