"""The ``lint`` verb: findings with stable codes, severity, instruction index and a one-line fix."""
from __future__ import annotations

import json

import click

from . import InputProblem, common_load_options, load_program
from ..errors import BpfjitError


@click.command("lint")
@click.argument("filter_file", metavar="FILTER", required=False)
@click.option("--arch", "-a", default=None,
              help="Architecture the filter is written for (default: the first AUDIT_ARCH it "
                   "compares with, else x86_64).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object {filter, arch, findings: [...]} on stdout.")
@click.option("--fail-on", type=click.Choice(["info", "warning", "error", "never"]),
              default="warning", show_default=True,
              help="Exit 1 when a finding of this severity or worse is reported.")
@click.option("--stack", "stacked", multiple=True, metavar="OTHER",
              help="Another filter installed in the same process; repeat. The behaviour rules "
                   "then judge the whole stack's verdict.")
@click.option("--ignore", multiple=True, metavar="CODE", help="Drop findings with this code; repeat.")
@click.option("--rules", "list_rules", is_flag=True, help="List every rule code and exit.")
@common_load_options
def lint(filter_file: str | None, arch: str | None, as_json: bool, fail_on: str,
         stacked: tuple[str, ...], ignore: tuple[str, ...], list_rules: bool, fmt: str | None, endian: str | None) -> int:
    """Check FILTER for common seccomp policy mistakes.

    Each finding has a stable code (BJ101...), a severity (error, warning,
    info), the instruction index it is about and a one-line fix. Findings
    about behaviour carry witness inputs evaluated on the reference
    interpreter (shown with --json).

    \b
    Exit status: 0 no finding at or above --fail-on (default: warning);
    1 some finding at or above it; 2 unreadable input or bad usage.

    \b
    bpfjit lint filter.bpf
    bpfjit lint --json --fail-on error docker.bpf
    bpfjit lint nspawn.x86_64.bpf --stack nspawn.x86.bpf --stack nspawn.x32.bpf
    bpfjit lint --rules
    """
    from ..analysis.lint import RULES, at_least
    from ..analysis.lint import lint as run_lint
    if list_rules:
        for code, (severity, title) in RULES.items():
            click.echo(f"{code}  {severity:<8s} {title}")
        return 0
    if filter_file is None:
        raise InputProblem("missing argument FILTER (or use --rules)")
    unknown = [c for c in ignore if c.upper() not in RULES]
    if unknown:
        raise InputProblem(f"unknown rule code(s) for --ignore: {', '.join(unknown)} "
                           f"(see bpfjit lint --rules)")
    prog = load_program(filter_file, fmt, endian, arch)
    others = [load_program(p, fmt, endian, arch) for p in stacked]
    try:
        findings = run_lint(prog, arch, stack=others)
    except BpfjitError as exc:
        raise InputProblem(str(exc)) from None
    skip = {c.upper() for c in ignore}
    findings = [f for f in findings if f.code not in skip]
    if as_json:
        from ..formats.disasm import infer_arch
        click.echo(json.dumps({"filter": filter_file, "arch": arch or infer_arch(prog).name,
                               "findings": [f.to_dict() for f in findings]}))
    else:
        for f in findings:
            where = f"{f.index:5d}" if f.index is not None else "    -"
            click.echo(f"{filter_file}:{where}: {f.code} {f.severity}: {f.message}")
            click.echo(f"    fix: {f.fix}")
        counts = {s: sum(1 for f in findings if f.severity == s) for s in ("error", "warning", "info")}
        click.echo(f"; {len(findings)} finding(s): " + ", ".join(f"{v} {k}" for k, v in counts.items()),
                   err=True)
    if fail_on != "never" and at_least(findings, fail_on):
        return 1
    return 0
