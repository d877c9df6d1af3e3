"""``bpfjit sim``: a drop-in for libseccomp's ``scmp_bpf_sim`` covering every seccomp instruction.

Same flags (``-f FILE -a ARCH -s NR -0..-5 ARG -v -h``) and the same one-line
output (``ALLOW``, ``KILL``, ``KILL_PROCESS``, ``TRAP``, ``ERRNO(n)``,
``TRACE(n)``, ``LOG``), plus ``NOTIFY`` for SECCOMP_RET_USER_NOTIF. Like
scmp_bpf_sim, an action the kernel does not define prints ``ERROR`` on stderr
and exits with ENOEXEC (8); a program the kernel would refuse does the same.
Raw files are read in the arch's byte order unless the bytes clearly say
otherwise. Syscall names are accepted for ``-s`` as well as numbers.
"""
from __future__ import annotations

import errno
import sys

import click

from ..errors import BpfjitError, LoadError
from ..seccomp import actions as act

_NAMES = {act.SECCOMP_RET_KILL_PROCESS: "KILL_PROCESS", act.SECCOMP_RET_KILL_THREAD: "KILL",
          act.SECCOMP_RET_TRAP: "TRAP", act.SECCOMP_RET_LOG: "LOG",
          act.SECCOMP_RET_ALLOW: "ALLOW", act.SECCOMP_RET_USER_NOTIF: "NOTIFY"}


def sim_line(retval: int) -> str | None:
    """scmp_bpf_sim's output for a return value (``None``: not an action it knows)."""
    action = retval & act.SECCOMP_RET_ACTION_FULL
    data = retval & act.SECCOMP_RET_DATA
    if action == act.SECCOMP_RET_ERRNO:
        return f"ERRNO({data})"
    if action == act.SECCOMP_RET_TRACE:
        return f"TRACE({data})"
    return _NAMES.get(action)


def simulate(program, arch: str, nr: int, args: tuple[int, ...]) -> int:
    """The program's return value for one record, the way scmp_bpf_sim fills seccomp_data."""
    from ..filter import compile as compile_filter
    f = compile_filter(program, backend="reference", arch=arch)
    return f.evaluate(nr, args)


def _fail(kind: str, code: int, verbose: bool, detail: str) -> None:
    click.echo(f"{kind}: errno = {code}, {detail}" if verbose else kind, err=True)
    raise click.exceptions.Exit(code)


def _strtoull(text: str) -> int:
    t = text.strip()
    neg = t.startswith("-")
    value = int(t[1:] if neg else t, 0) if not t.lower().startswith(("0b", "-0b")) else None
    if value is None:
        raise ValueError(text)
    return (-value if neg else value) & 0xFFFFFFFFFFFFFFFF


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-f", "file", required=True, help="The BPF filter file.")
@click.option("-a", "arch", default=None, help="Architecture (libseccomp name; default: native).")
@click.option("-s", "syscall", default="0", help="Syscall number (or name).")
@click.option("-0", "a0", default="0", help="Argument 0.")
@click.option("-1", "a1", default="0", help="Argument 1.")
@click.option("-2", "a2", default="0", help="Argument 2.")
@click.option("-3", "a3", default="0", help="Argument 3.")
@click.option("-4", "a4", default="0", help="Argument 4.")
@click.option("-5", "a5", default="0", help="Argument 5.")
@click.option("-v", "verbose", is_flag=True, help="Verbose errors.")
def command(file: str, arch: str | None, syscall: str, a0: str, a1: str, a2: str, a3: str,
            a4: str, a5: str, verbose: bool) -> None:
    """Simulate a seccomp filter on one syscall, like libseccomp's scmp_bpf_sim."""
    from ..check import check
    from ..errors import InvalidProgram
    from ..formats import detect_format, load
    from ..formats.raw import detect_endian
    from ..seccomp import layouts
    try:
        lay = layouts.layout(arch)
    except BpfjitError as exc:
        _fail("FAULT", errno.EINVAL, verbose, str(exc))
    try:
        with open(file, "rb") as fh:
            data = fh.read(1 << 20)
    except OSError as exc:
        _fail("FAULT", exc.errno or errno.EIO, verbose, f"{file}: {exc.strerror}")
    try:
        fmt = detect_format(data)
        endian = (detect_endian(data) or lay.byteorder) if fmt == "raw" else None
        prog = load(data, format=fmt, endian=endian, arch=lay)
    except LoadError as exc:     # name the file, not "<bytes>"
        where = ": ".join(p for p in (f"line {exc.line}" if exc.line else "",
                                      f"byte {exc.offset}" if exc.offset is not None else "") if p)
        _fail("FAULT", errno.EINVAL, verbose, f"{file}: {where + ': ' if where else ''}{exc.reason}")
    except BpfjitError as exc:
        _fail("FAULT", errno.EINVAL, verbose, f"{file}: {exc}")
    try:
        check(prog)
    except InvalidProgram as exc:
        _fail("ERROR", errno.ENOEXEC, verbose, str(exc))
    try:
        args = tuple(_strtoull(a) for a in (a0, a1, a2, a3, a4, a5))
    except ValueError as exc:
        _fail("FAULT", errno.EINVAL, verbose, f"bad argument {exc}")
    try:
        from ..filter import compile as compile_filter
        f = compile_filter(prog, backend="reference", arch=lay)
        nr, _ = f.resolve(syscall.strip(), None)
        retval = f.evaluate(nr, args)
    except BpfjitError as exc:
        _fail("FAULT", errno.EINVAL, verbose, str(exc))
    line = sim_line(retval)
    if line is None:
        _fail("ERROR", errno.ENOEXEC, verbose, f"unknown action {retval:#010x}")
    sys.stdout.write(line + "\n")
