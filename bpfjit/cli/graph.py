"""The ``graph`` verb: draw a filter's control flow (graphviz) with dispatch chains collapsed."""
from __future__ import annotations

import click

from . import InputProblem, common_load_options, load_program
from ..errors import BpfjitError


@click.command("graph")
@click.argument("filter_file", metavar="FILTER")
@click.option("-o", "--output", required=True,
              help="Output file: .svg, .png or .pdf (rendered with Graphviz's dot), or .dot source.")
@click.option("--arch", "-a", default=None,
              help="Architecture for names and --syscall (default: the first AUDIT_ARCH the "
                   "filter compares with, else x86_64).")
@click.option("--syscall", "syscall", default=None, metavar="NAME",
              help="Draw the path this syscall (name or number, arguments 0) takes in bold.")
@common_load_options
def graph(filter_file: str, output: str, arch: str | None, syscall: str | None,
          fmt: str | None, endian: str | None) -> None:
    """Draw FILTER's control-flow graph to OUTPUT.

    Basic blocks show their instructions; returns are coloured by action
    (ALLOW green, ERRNO orange, TRAP purple, KILL red); a chain or tree of
    comparisons on one word (the syscall dispatch) is one hexagon whose
    edges carry the syscall names or number ranges that lead to each target.

    \b
    bpfjit graph docker.bpf -o docker.png
    bpfjit graph docker.bpf -o docker.svg --syscall clone
    bpfjit graph filter.bpf -o filter.dot
    """
    try:
        import graphviz  # noqa: F401
    except ImportError:
        raise InputProblem("bpfjit graph needs the Python package graphviz "
                           "(pip install 'bpfjit[graph]')") from None
    from ..analysis.graph import build, render
    from ..check import check
    from ..formats.disasm import infer_arch
    from ..seccomp.layouts import layout as resolve
    prog = load_program(filter_file, fmt, endian, arch)
    try:
        checked = check(prog)
        lay = infer_arch(checked) if arch is None else resolve(arch)
        highlight = None
        if syscall is not None:
            from ..filter import compile as compile_filter
            nr, audit = compile_filter(checked, backend="reference", arch=lay).resolve(syscall, None)
            highlight = (audit, nr, syscall)
        pic = build(checked, lay, highlight=highlight)
        render(pic, output)
    except (BpfjitError, ValueError) as exc:
        raise InputProblem(str(exc)) from None
    except OSError as exc:
        raise InputProblem(f"cannot write {output}: {exc}") from None
    except Exception as exc:  # graphviz.ExecutableNotFound, graphviz.CalledProcessError
        if type(exc).__module__.startswith("graphviz"):
            raise InputProblem(f"Graphviz could not render {output}: {exc} "
                               f"(install the Debian package graphviz, or write a .dot file)") from None
        raise
    click.echo(f"wrote {output}: {len(pic.nodes)} nodes, {len(pic.edges)} edges", err=True)
