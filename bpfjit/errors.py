"""Errors: one hierarchy rooted at BpfjitError, each naming what is wrong and where."""
from __future__ import annotations


class BpfjitError(Exception):
    """Root of every error bpfjit raises on purpose."""


class LoadError(BpfjitError, ValueError):
    """A filter could not be read: truncated bytes, garbage text, unknown format.

    ``source`` names the input (a path or ``<bytes>``), ``line`` is the 1-based
    text line or ``None``, ``offset`` a byte offset or ``None``.
    """

    def __init__(self, message: str, *, source: str | None = None,
                 line: int | None = None, offset: int | None = None):
        self.source = source
        self.line = line
        self.offset = offset
        where = []
        if source:
            where.append(str(source))
        if line is not None:
            where.append(f"line {line}")
        if offset is not None:
            where.append(f"byte {offset}")
        self.reason = message
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class InvalidProgram(BpfjitError, ValueError):
    """The kernel would refuse this program.

    ``index`` is the 0-based instruction the rule failed at (``None`` for
    whole-program rules such as the length), ``rule`` the kernel function or
    rule name (e.g. ``"bpf_check_classic"``), ``errno`` what seccomp(2) would
    return (``"EINVAL"`` or ``"ENOMEM"``).
    """

    def __init__(self, message: str, *, index: int | None = None,
                 rule: str = "", errno: str = "EINVAL"):
        self.index = index
        self.rule = rule
        self.errno = errno
        self.reason = message
        where = f"instruction {index}: " if index is not None else ""
        super().__init__(f"{where}{message}" + (f" [{rule}, {errno}]" if rule else ""))


class StackLimitError(InvalidProgram):
    """A stack of filters exceeds the kernel's instruction budget (ENOMEM)."""

    def __init__(self, message: str, *, index: int | None = None):
        super().__init__(message, index=index, rule="seccomp_attach_filter", errno="ENOMEM")


class InputError(BpfjitError, ValueError):
    """Bad arguments to evaluate()/evaluate_batch(): dtype, shape, values."""


class UnknownSyscallError(InputError, KeyError):
    """A syscall name (or number) that the named ABI does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownArchError(InputError, KeyError):
    """An architecture name that bpfjit has no seccomp_data layout for."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class BackendUnavailable(BpfjitError, RuntimeError):
    """A backend cannot run here (missing library, wrong OS, codegen failure)."""


class ProfileError(LoadError):
    """A seccomp profile (OCI/Docker JSON, Firecracker JSON, LXC policy) is wrong or cannot be built.

    ``path`` is where in the file: a JSON path such as ``$.syscalls[3].args[0].op``
    (JSON formats) or ``None``; ``line`` is the 1-based line for text formats.
    """

    def __init__(self, message: str, *, source: str | None = None, path: str | None = None,
                 line: int | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message, source=source, line=line)


class SchemaError(InputError):
    """A columnar dataset (Arrow/Parquet/Dask) whose columns do not fit the syscall-record schema.

    ``column`` names the offending column; ``source`` the file or dataset, when known.
    """

    def __init__(self, message: str, *, column: str | None = None, source: str | None = None):
        self.column = column
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)
