"""``bpfjit diff A B``: every input on which two filters differ, proven, with checked witnesses."""
from __future__ import annotations

import json

import click

from . import InputProblem, common_load_options, load_program
from ..errors import BpfjitError


def analysed(path: str, fmt, endian, arch):
    """(Semantics, layout) of a filter file for a verb; bad input exits 2."""
    from ..analysis.semantics import analyse
    from ..check import check
    from ..formats.disasm import infer_arch
    from ..seccomp import layouts
    prog = load_program(path, fmt, endian, arch)
    try:
        lay = layouts.layout(arch) if arch else infer_arch(prog)
        checked = check(prog)
    except BpfjitError as exc:
        raise InputProblem(f"{path}: {exc}") from None
    return analyse(checked, lay), lay


def _args(args: tuple) -> str:
    shown = list(args)
    while shown and not shown[-1]:
        shown.pop()
    return ", ".join(f"{a:#x}" if a > 9 else str(a) for a in shown)


@click.command("diff")
@click.argument("filter_a", metavar="A")
@click.argument("filter_b", metavar="B")
@click.option("--arch", "-a", default=None,
              help="Layout of both filters (default: the arch A checks first). Its compat ABIs "
                   "are compared too: x86_64 includes x32 and i386 numbers.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common_load_options
def command(filter_a: str, filter_b: str, arch: str | None, as_json: bool, fmt: str | None,
            endian: str | None) -> None:
    """Every syscall whose verdict differs between filters A and B, exactly.

    For each difference: the syscall by name and ABI, the argument condition
    under which the two filters disagree, and one concrete input, re-run on
    both filters with the reference interpreter before it is printed. Numbers
    outside the syscall tables and other arch values are compared too.
    Calls of a 32-bit ABI (i386, arm) are compared with the upper halves of
    their arguments 0, the only values such a task can pass. Exit status 0
    when the filters are equal on every input, 1 when they differ, 3 when no
    difference was found but some part was too large to compare (listed).

    \b
    bpfjit diff docker-default.x86_64.bpf docker-default.x86_64.opt.bpf
    bpfjit diff old.bpf new.bpf --arch aarch64 --json
    """
    from ..analysis.compare import compare
    sem_a, lay = analysed(filter_a, fmt, endian, arch)
    sem_b, _ = analysed(filter_b, fmt, endian, lay.name)
    result = compare(sem_a, sem_b, lay)
    abis = [x.name for x in result.abis]
    if as_json:
        click.echo(json.dumps({
            "equal": result.equal, "layout": lay.name, "abis": abis,
            "differences": [{
                "abi": d.abi or None, "arch": d.arch, "nr": d.nr, "syscall": d.name,
                "when": list(d.conditions), "a": d.result_a, "b": d.result_b,
                "witness": {"nr": d.witness[0], "arch": d.witness[1],
                            "instruction_pointer": d.witness[2], "args": list(d.witness[3])},
                "retval_a": d.retval_a, "retval_b": d.retval_b} for d in result.differences],
            "undecided": [{"where": w, "why": why} for w, why in result.undecided]}))
    else:
        for d in result.differences:
            who = (f"{d.name or d.nr} ({d.abi}, nr {d.nr})" if d.nr is not None else
                   f"other numbers ({d.abi})" if d.abi else "other arch values")
            when = " and ".join(d.conditions) or "any arguments"
            click.echo(f"{who}: {d.result_a} -> {d.result_b} for {when}")
            nr, audit, ip, args = d.witness
            click.echo(f"    e.g. nr {nr}, arch {audit:#x}, args ({_args(args)})"
                       + (f", ip {ip:#x}" if ip else "")
                       + f": A {d.retval_a:#010x}, B {d.retval_b:#010x} (reference)")
        for where, why in result.undecided:
            click.echo(f"undecided: {where}: {why}")
        names = {(d.abi, d.name or d.nr) for d in result.differences if d.nr is not None}
        if result.equal:
            click.echo(f"equal: A and B return the same value for every input "
                       f"({', '.join(abis)}, every other number and arch value)")
        elif result.differences:
            click.echo(f"; {len(result.differences)} differences, {len(names)} syscalls "
                       f"({', '.join(abis)})")
        else:
            click.echo(f"; no difference found, but {len(result.undecided)} parts could not be "
                       f"compared (see 'undecided' above): not proven equal")
    raise SystemExit(0 if result.equal else 1 if result.differences else 3)
