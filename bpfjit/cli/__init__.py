"""The ``bpfjit`` command line: a click group whose verbs live in their own modules, loaded lazily.

Exit codes: 0 success; 1 a negative answer (invalid program, disagreement
found); 2 bad usage or unreadable input.
"""
from __future__ import annotations

import importlib
import re
import sys

import click

from .. import __version__
from ..errors import BpfjitError

#: verb -> (module under bpfjit.cli, attribute naming the click command)
VERBS = {
    "disasm": ("inspect", "disasm"),
    "asm": ("inspect", "asm"),
    "check": ("inspect", "check"),
    "eval": ("evaluate", "eval_"),
    "stack": ("evaluate", "stack"),
    "table": ("evaluate", "table"),
    "syscalls": ("evaluate", "syscalls_"),
    "dump": ("inspect", "dump"),
    "sim": ("sim", "command"),
    "demo": ("demo", "command"),
    "fuzz": ("fuzz", "command"),
    "bench": ("bench", "command"),
    "lint": ("lint", "lint"),
    "graph": ("graph", "graph"),
    "diff": ("diff", "command"),
    "explain": ("explain", "command"),
    "test": ("expect", "command"),
    "install-check": ("install_check", "command"),
    "replay": ("replay", "command"),
}


class InputProblem(click.ClickException):
    """Unreadable input or impossible request: printed as ``Error: ...``, exit status 2."""

    exit_code = 2


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(VERBS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in VERBS:
            return None
        module, attr = VERBS[name]
        try:
            mod = importlib.import_module(f"{__name__}.{module}")
        except ImportError as exc:  # a verb whose optional dependency is missing
            @click.command(name, help=f"(unavailable: {exc})")
            def unavailable() -> None:
                raise InputProblem(f"'bpfjit {name}' is unavailable here: {exc}")
            return unavailable
        return getattr(mod, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bpfjit")
def cli() -> None:
    """Evaluate Linux seccomp filters exactly as the kernel does, fast.

    \b
    Examples:
      bpfjit disasm filter.bpf --arch x86_64
      bpfjit eval filter.bpf --arch aarch64 openat 3 0 0
      bpfjit eval filter.bpf --arch x86_64 --trace clone 0x10000
      bpfjit check filter.bpf
      bpfjit sim -f filter.bpf -a x86_64 -s 59
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bpfjit`` script; returns the exit status."""
    try:
        rc = cli.main(args=argv, prog_name="bpfjit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    except BpfjitError as exc:
        click.echo(f"Error: {exc}", err=True)
        return 2
    except BrokenPipeError:
        sys.stderr.close()
        return 1
    return rc if isinstance(rc, int) else 0   # a verb's ctx.exit(n) comes back as n


def load_program(path: str, fmt: str | None, endian: str | None, arch: str | None):
    """Load a filter for a verb; LoadError becomes a clean exit-2 message.

    Profiles (JSON, LXC) are compiled with the --caps/--kernel/--profile-arch/--optimize
    choices of the current command (see :func:`profile_options`); their warnings go to stderr.
    """
    import warnings
    from ..formats import load
    from ..profiles import ProfileWarning
    ctx = click.get_current_context(silent=True)
    choices = dict(ctx.meta.get("bpfjit.profile", {})) if ctx is not None else {}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ProfileWarning)
            prog = load(path if path != "-" else sys.stdin.buffer.read(), format=fmt,
                        endian=endian, arch=arch, **choices)
    except BpfjitError as exc:   # the library's spelling (format='raw') in the CLI's (--format raw)
        text = re.sub(r"\b(format|endian)='(\w+)'", r"--\1 \2", str(exc))
        raise InputProblem(text) from None
    for w in caught:
        if issubclass(w.category, ProfileWarning):
            click.echo(f"warning: {w.message}", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return prog


def _profile_choice(key: str):
    def store(ctx: click.Context, param: click.Parameter, value):
        if value is not None:
            ctx.meta.setdefault("bpfjit.profile", {})[key] = value
        return value
    return store


def profile_options(f):
    """--caps / --kernel / --profile-arch / --optimize / --runtime: how a profile is compiled.

    They are not passed to the verb: load_program reads them from the click context, so
    every verb that loads through load_program accepts profiles without code of its own.
    """
    f = click.option("--runtime", type=click.Choice(["crun", "runc"]), default=None,
                     expose_value=False, callback=_profile_choice("runtime"),
                     help="Profiles: crun loads libseccomp's program as is (default); runc "
                          "prepends its -ENOSYS prologue.")(f)
    f = click.option("--optimize", type=click.Choice(["1", "2", "runc"]), default=None,
                     expose_value=False, callback=_profile_choice("optimize"),
                     help="Profiles: libseccomp optimize level (1 linear, the default; 2 binary "
                          "tree; runc: 2 above 32 syscalls, as runc >= 1.2).")(f)
    f = click.option("--profile-arch", default=None, expose_value=False,
                     callback=_profile_choice("profile_arch"),
                     help="Profiles: target architecture (default: --arch's main arch, x86_64 "
                          "for x86/x32; else the host).")(f)
    f = click.option("--kernel", default=None, expose_value=False,
                     callback=_profile_choice("kernel"),
                     help="Profiles: kernel version for minKernel, e.g. 5.10 (default: the host's).")(f)
    f = click.option("--caps", default=None, expose_value=False, callback=_profile_choice("caps"),
                     help="Profiles: capability set for includes/excludes.caps: docker (default), "
                          "podman, all, none, or a comma list (CAP_SYS_ADMIN,...).")(f)
    return f


FORMAT_CHOICE = click.Choice(["raw", "asm", "c", "hex", "oci", "firecracker", "lxc"])
ENDIAN_CHOICE = click.Choice(["little", "big"])


def common_load_options(f):
    """--format / --endian (and the profile options) shared by the verbs that read a filter."""
    f = profile_options(f)
    f = click.option("--endian", type=ENDIAN_CHOICE, default=None,
                     help="Byte order of raw/hex input (default: detect).")(f)
    f = click.option("--format", "fmt", type=FORMAT_CHOICE, default=None,
                     help="Input format (default: detect).")(f)
    return f
