"""The ``replay`` verb: evaluate a filter on every call of recorded traces (strace, audit, Parquet)."""
from __future__ import annotations

import json
import os
import sys

import click

from . import InputProblem, common_load_options, load_program
from ..errors import BpfjitError

BACKENDS = click.Choice(["auto", "llvm", "numba", "reference"])
#: show a progress bar above this many bytes of trace (when stderr is a terminal)
PROGRESS_BYTES = 16 << 20


def _is_dataset(path: str) -> bool:
    return path.endswith(".parquet") or os.path.isdir(path)


@click.command("replay")
@click.argument("filter_file", metavar="FILTER")
@click.argument("traces", metavar="TRACE...", nargs=-1, required=True)
@click.option("--arch", "-a", default=None,
              help="Arch of the traced tasks and the filter's layout (default: the host). "
                   "32-bit tasks of a 64-bit trace use the compat arch (x86 next to x86_64).")
@click.option("--stack", "stack_files", multiple=True, metavar="FILTER",
              help="Another filter installed before FILTER (repeat, oldest first): replay the stack.")
@click.option("--trace", "show_trace", is_flag=True,
              help="Print the path taken for the first call of each refused group.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout, nothing else.")
@click.option("--backend", type=BACKENDS, default="auto", show_default=True)
@click.option("--scheduler", default=None,
              help="Dask scheduler for Parquet datasets (a TRACE ending in .parquet or a directory).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: on for large traces when stderr is a terminal).")
@common_load_options
def command(filter_file: str, traces: tuple[str, ...], arch: str | None,
            stack_files: tuple[str, ...], show_trace: bool, as_json: bool, backend: str,
            scheduler: str | None, progress: bool | None, fmt: str | None,
            endian: str | None) -> None:
    """What FILTER would have done to every call recorded in TRACE.

    TRACE: `strace -f` output (any of -X raw, -e raw=all, -i, -n, -t/-tt/-ttt,
    -T, -y, -ff -o files), an audit log with type=SECCOMP / 1326 records
    (audit.log, dmesg, ausearch -i), or a Parquet dataset (bpfjit.dask).
    Symbolic arguments (O_RDONLY|O_CLOEXEC, AT_FDCWD, ...) are turned back into
    register values; arguments strace shows by their contents (strings,
    structs), or does not show, are unknown, and a verdict whose path reads one
    is marked as depending on an unrecorded argument.

    Exit status: 0 every call would run; 1 some call would be refused, killed,
    or depends on an unrecorded argument; 2 bad usage or unreadable input.

    \b
    strace -f -o trace.txt -X raw ./program
    bpfjit replay filter.bpf trace.txt
    bpfjit replay docker.bpf trace.txt --trace --json
    """
    from ..filter import compile as compile_filter
    from ..stack import Stack
    try:
        progs = [load_program(p, fmt, endian, arch) for p in (*stack_files, filter_file)]
        target = (Stack(progs, backend=backend, arch=arch) if stack_files
                  else compile_filter(progs[0], backend=backend, arch=arch))
    except (BpfjitError, ValueError) as exc:
        raise InputProblem(str(exc)) from None
    datasets = [t for t in traces if _is_dataset(t)]
    if datasets:
        if len(datasets) != len(traces):
            raise InputProblem("give either Parquet datasets or text traces, not both")
        rc = _replay_parquet(target, list(traces), arch, scheduler, progress, as_json)
        click.get_current_context().exit(rc)
    summary = _replay_text(target, list(traces), progress, as_json)
    if as_json:
        data = summary.as_dict()
        data["filter"] = filter_file
        if show_trace:
            for item, group in zip(data["refused"], summary.refused):
                item["trace"] = _trace_rows(summary, group, target)
        click.echo(json.dumps(data))
    else:
        _print_summary(summary, target, show_trace)
    click.get_current_context().exit(1 if summary.would_not_run else 0)


def _replay_text(target, traces: list[str], progress: bool | None, as_json: bool):
    from ..replay import Replayer, TraceReader
    try:
        reader = TraceReader(traces)
    except BpfjitError as exc:
        raise InputProblem(str(exc)) from None
    total = reader.total_bytes()
    show = progress if progress is not None else (
        sys.stderr.isatty() and total is not None and total >= PROGRESS_BYTES)
    replayer = Replayer(target)
    try:
        if show:
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                       TimeRemainingColumn, TransferSpeedColumn)
            with Progress(TextColumn("replay"), BarColumn(), DownloadColumn(),
                          TransferSpeedColumn(), TimeRemainingColumn(),
                          console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("replay", total=total)
                summary = replayer.feed(reader, lambda: bar.update(task,
                                                                   completed=reader.bytes_read))
                bar.update(task, completed=reader.bytes_read)
        else:
            summary = replayer.feed(reader)
    except OSError as exc:
        raise InputProblem(f"cannot read the trace: {exc}") from None
    summary.lines = reader.lines
    summary.bytes = reader.bytes_read
    summary.replayer = replayer
    return summary


def _trace_rows(summary, group, target) -> list[dict]:
    from ..formats.disasm import instruction_text
    rows = []
    filters = summary.replayer.filters
    for i, steps in enumerate(summary.replayer.trace(group)):
        f = filters[i]
        for s in steps:
            rows.append({"filter": i, "index": s.index,
                         "insn": instruction_text(f.program, s.index, arch=f.layout.name),
                         "A": s.A, "X": s.X})
    return rows


def _print_summary(summary, target, show_trace: bool) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"{summary.calls} calls, {summary.lines} lines ({summary.arch})")
    table.add_column("action")
    table.add_column("syscall")
    table.add_column("calls", justify="right")
    table.add_column("depends on an unrecorded argument", justify="right")
    merged: dict[tuple[str, str], list[int]] = {}
    for (action, name, dep), n in summary.counts.items():
        row = merged.setdefault((action, name), [0, 0])
        row[0] += n
        row[1] += n if dep else 0
    rows = sorted(merged.items(), key=lambda kv: (kv[0][0], -kv[1][0]))
    if console.is_terminal:
        for (action, name), (n, dep) in rows:
            table.add_row(action, name, str(n), str(dep) if dep else "")
        console.print(table)
    else:                                   # plain columns for pipes and files
        click.echo(f"# {summary.calls} calls, {summary.lines} lines ({summary.arch})")
        click.echo(f"{'action':<16s} {'syscall':<24s} {'calls':>10s} {'depends':>10s}")
        for (action, name), (n, dep) in rows:
            click.echo(f"{action:<16s} {name:<24s} {n:>10d} {dep if dep else '':>10}")
    totals = ", ".join(f"{a}: {n}" for a, n in summary.actions().most_common())
    console.print(f"actions: {totals or 'no calls'}")
    refused = summary.refused
    if refused:
        console.print(f"\n{len(refused)} kinds of call would not run (or may not):")
    for g in refused:
        why = (f"  depends on an unrecorded argument ({', '.join(g.unknown)}; "
               f"{g.alternative} if all ones)" if g.depends else "")
        console.print(f"  {g.source}:{g.line}: {g.syscall} -> {g.action} "
                      f"({g.count} call{'s' if g.count != 1 else ''}){why}")
        console.print(f"      {g.text}", markup=False)
        if show_trace:
            for row in _trace_rows(summary, g, target):
                console.print(f"      [{row['filter']}] {row['index']:5d}  {row['insn']:<40s} "
                              f"A={row['A']:#010x} X={row['X']:#010x}", markup=False)
    if summary.inferred_32:
        console.print(f"\n{summary.inferred_32} call(s) replayed as a 32-bit task's (the compat "
                      f"arch of {summary.arch}): their -i instruction pointers have 8 digits and "
                      f"the trace has no 'runs in 32 bit mode' line (strace prints it on stderr); "
                      f"an x32 task prints the same width: replay it with --arch x32")
    if summary.recorded_mismatches:
        console.print(f"\n{summary.recorded_mismatches} audit records name a different action "
                      f"than this filter returns")
    if summary.problems:
        console.print(f"\n{summary.problems} unreadable line(s):")
        for reason, n in summary.problem_reasons.most_common():
            console.print(f"  {n:8d}  {reason}", markup=False)
        for p in summary.problem_examples[:20]:
            console.print(f"  {p.source}:{p.line}: {p.reason}: {p.text[:100]}", markup=False)


def _replay_parquet(target, paths: list[str], arch: str | None, scheduler: str | None,
                    progress: bool | None, as_json: bool) -> int:
    try:
        from ..dask import replay_parquet
    except ImportError as exc:
        raise InputProblem(f"Parquet datasets need bpfjit.dask, which is not available here "
                           f"({exc})") from None
    try:
        frame = replay_parquet(target, paths, arch=arch, scheduler=scheduler,
                               progress=bool(progress) if progress is not None
                               else sys.stderr.isatty())
    except BpfjitError as exc:
        raise InputProblem(str(exc)) from None
    rows = [(str(r.action), str(r.syscall), str(r.host), int(r.count))
            for r in frame.itertuples(index=False)]
    refused = sum(n for a, _, _, n in rows if a.split("(")[0] not in ("ALLOW", "LOG"))
    if as_json:
        click.echo(json.dumps({"calls": sum(r[3] for r in rows), "table": [
            {"action": a, "syscall": s, "host": h, "count": n} for a, s, h, n in rows],
            "would_not_run": bool(refused)}))
    else:
        from rich.console import Console
        from rich.table import Table
        table = Table(title=f"{sum(r[3] for r in rows)} calls (Parquet)")
        for col in ("action", "syscall", "host", "calls"):
            table.add_column(col, justify="right" if col == "calls" else "left")
        for a, s, h, n in sorted(rows, key=lambda r: (r[0], -r[3])):
            table.add_row(a, s, h, str(n))
        Console(highlight=False).print(table)
    return 1 if refused else 0
