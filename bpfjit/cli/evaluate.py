"""Verbs that evaluate filters: ``eval`` (one syscall, optional trace), ``stack``, ``table``, ``syscalls``."""
from __future__ import annotations

import json
from collections import Counter

import click

from . import InputProblem, common_load_options, load_program
from ..errors import BpfjitError
from ..seccomp.actions import Action, outcome, stack_retval
from .process_options import parse_flags, process_fields, process_line, process_options

BACKENDS = click.Choice(["auto", "llvm", "numba", "reference", "kernel"])


def _parse_args(values: tuple[str, ...]) -> tuple[int, ...]:
    if len(values) > 6:
        raise InputProblem(f"a system call has at most 6 arguments; got {len(values)}")
    out = []
    for i, text in enumerate(values):
        try:
            value = int(text, 0)
        except ValueError:
            raise InputProblem(f"argument {i} ({text!r}) is not an integer "
                               f"(decimal, 0x hex, 0o octal, 0b binary; negative allowed)") from None
        if not -(1 << 63) <= value < (1 << 64):
            raise InputProblem(f"argument {i} ({text}) does not fit 64 bits")
        out.append(value & 0xFFFFFFFFFFFFFFFF)
    return tuple(out)


def _instruction_text(program, index: int, arch) -> str:
    from ..formats.disasm import instruction_text
    return instruction_text(program, index, arch=arch)


def _describe(retval: int, arch_name: str, nr: int, audit: int) -> dict:
    act = Action.from_value(retval)
    out = outcome(stack_retval([retval]), arch_name=arch_name, nr=nr, audit_arch=audit)
    return {"action": str(act), "retval": retval, "retval_hex": f"{retval:#010x}",
            "kernel": str(out), "kernel_kind": out.kind}


@click.command("eval")
@click.argument("filter_file", metavar="FILTER")
@click.argument("syscall")
@click.argument("args", nargs=-1)
@click.option("--arch", "-a", default=None,
              help="Architecture of the calling task: layout, seccomp_data.arch and syscall names "
                   "(default: the host, x86_64 here). E.g. x86 to test an i386 call.")
@click.option("--ip", "instruction_pointer", default="0", help="seccomp_data.instruction_pointer.")
@click.option("--trace", is_flag=True, help="Print each instruction executed with A and X.")
@click.option("--backend", type=BACKENDS, default="reference", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--flags", "flag_texts", multiple=True, metavar="FLAGS",
              help="SECCOMP_FILTER_FLAG_* the filter is installed with, e.g. LOG,NEW_LISTENER.")
@process_options
@common_load_options
def eval_(filter_file: str, syscall: str, args: tuple[str, ...], arch: str | None,
          instruction_pointer: str, trace: bool, backend: str, as_json: bool,
          fmt: str | None, endian: str | None, flag_texts=(), env=None) -> None:
    """What FILTER does to SYSCALL (name or number) with ARGS.

    Prints the action the program returns (ALLOW, ERRNO(1), KILL_PROCESS...),
    its 32-bit value and what the kernel then does to the process.

    \b
    bpfjit eval docker.bpf --arch x86_64 openat 3 0x80000
    bpfjit eval docker.bpf --arch aarch64 --trace clone 0x7e020000
    """
    from ..filter import compile as compile_filter
    prog = load_program(filter_file, fmt, endian, arch)
    values = _parse_args(args)
    try:
        ip = int(instruction_pointer, 0)
        f = compile_filter(prog, backend=backend, arch=arch)
        nr, audit = f.resolve(syscall, None)
        retval = f.evaluate(nr, values, None, ip)
        steps = f.trace(nr, values, None, ip).steps if trace else ()
    except ValueError as exc:
        raise InputProblem(str(exc)) from None
    from ..process import process_outcome
    flags = parse_flags(flag_texts, 1)
    proc = process_outcome([retval], flags, nr, audit, env)
    info = _describe(retval, f.layout.name, nr, audit)
    info.update({"syscall": syscall, "nr": nr, "arch": f.layout.name, "audit_arch": audit,
                 "args": list(values), "instruction_pointer": ip, "backend": f.backend})
    info.update(process_fields(proc, flags))
    if as_json:
        if trace:
            info["trace"] = [{"index": s.index, "insn": _instruction_text(f.program, s.index, arch),
                              "A": s.A, "X": s.X} for s in steps]
        click.echo(json.dumps(info))
        return
    for s in steps:
        click.echo(f"{s.index:5d}  {_instruction_text(f.program, s.index, arch):<44s} "
                   f"A={s.A:#010x} X={s.X:#010x}")
    click.echo(f"{info['action']}  (retval {info['retval_hex']}; {process_line(proc)})")


@click.command()
@click.option("-f", "--filter", "filters", multiple=True, required=True,
              help="A filter of the stack; repeat, OLDEST (first installed) first.")
@click.argument("syscall")
@click.argument("args", nargs=-1)
@click.option("--arch", "-a", default=None, help="Architecture of the calling task.")
@click.option("--ip", "instruction_pointer", default="0", help="seccomp_data.instruction_pointer.")
@click.option("--backend", type=BACKENDS, default="reference", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--flags", "flag_texts", multiple=True, metavar="FLAGS",
              help="Flags of each filter, once per -f in the same order (0 for none).")
@process_options
@common_load_options
def stack(filters: tuple[str, ...], syscall: str, args: tuple[str, ...], arch: str | None,
          instruction_pointer: str, backend: str, as_json: bool, fmt: str | None,
          endian: str | None, flag_texts=(), env=None) -> None:
    """What a stack of filters (one process) does to SYSCALL with ARGS.

    Every filter runs; the kernel keeps the most restrictive action (ties: the
    newest filter). A stack over the kernel's 32768-instruction budget is
    reported as the ENOMEM the kernel would give.

    \b
    bpfjit stack -f first.bpf -f second.bpf --arch x86_64 openat 3 0
    """
    from ..stack import Stack
    progs = [load_program(p, fmt, endian, arch) for p in filters]
    values = _parse_args(args)
    try:
        s = Stack(progs, backend=backend, arch=arch)
        nr, audit = s.filters[-1].resolve(syscall, None)
        ip = int(instruction_pointer, 0)
        each = [f.evaluate(nr, values, None, ip) for f in s.filters]
        retval = stack_retval(each)
    except ValueError as exc:
        raise InputProblem(str(exc)) from None
    from ..process import process_outcome
    flags = parse_flags(flag_texts, len(filters))
    proc = process_outcome(each, flags, nr, audit, env)
    info = _describe(retval, s.layout.name, nr, audit)
    info.update({"syscall": syscall, "nr": nr, "arch": s.layout.name, "filters": [
        {"file": path, "action": str(Action.from_value(v)), "retval": v}
        for path, v in zip(filters, each)]})
    info.update(process_fields(proc, flags))
    if as_json:
        click.echo(json.dumps(info))
        return
    for i, (path, v) in enumerate(zip(filters, each)):
        click.echo(f"  filter {i} {path}: {Action.from_value(v)}")
    click.echo(f"{info['action']}  (retval {info['retval_hex']}; {process_line(proc)})")


@click.command()
@click.argument("filter_file", metavar="FILTER")
@click.option("--arch", "-a", default=None, help="Architecture of the calling tasks.")
@click.option("--action", "only", default=None,
              help="Only syscalls whose zero-argument action is this (e.g. ALLOW, ERRNO).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per syscall.")
@common_load_options
def table(filter_file: str, arch: str | None, only: str | None, as_json: bool,
          fmt: str | None, endian: str | None) -> None:
    """Every syscall of the arch's table with FILTER's action (arguments 0).

    Syscalls whose path reads arguments or the instruction pointer are marked
    with the words read: their action may change with the arguments.
    """
    from ..filter import compile as compile_filter
    from ..seccomp import syscalls
    prog = load_program(filter_file, fmt, endian, arch)
    try:
        f = compile_filter(prog, backend="reference", arch=arch)
        names = syscalls.table(f.layout.syscall_abi)
    except BpfjitError as exc:
        raise InputProblem(str(exc)) from None
    counts: Counter[str] = Counter()
    for name, nr in sorted(names.items(), key=lambda item: item[1]):
        tr = f.trace(nr)
        reads = sorted({f.layout.describe_offset(s.k) or f"[{s.k}]" for s in tr.steps
                        if s.code == 0x20 and s.k >= 8})
        action = str(tr.action)
        if only and not action.upper().startswith(only.upper()):
            continue
        counts[action + ("*" if reads else "")] += 1
        if as_json:
            click.echo(json.dumps({"nr": nr, "name": name, "action": action,
                                   "retval": tr.retval, "reads": reads}))
        else:
            dep = f"  depends on {', '.join(reads)}" if reads else ""
            click.echo(f"{nr:>10d}  {name:<24s} {action}{dep}")
    if not as_json:
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        click.echo(f"; {sum(counts.values())} syscalls — {summary} (* = depends on arguments)")


@click.command("syscalls")
@click.argument("names", nargs=-1)
@click.option("--arch", "-a", default=None, help="ABI (default: the host).")
def syscalls_(names: tuple[str, ...], arch: str | None) -> None:
    """Look up syscall numbers and names for an arch (all of them without NAMES)."""
    from ..seccomp import layouts, syscalls
    try:
        abi = layouts.layout(arch).syscall_abi
        if not names:
            for name, nr in sorted(syscalls.table(abi).items(), key=lambda item: item[1]):
                click.echo(f"{nr}\t{name}")
            return
        for text in names:
            try:
                nr = int(text, 0)
            except ValueError:
                click.echo(f"{syscalls.number(abi, text)}\t{text}")
                continue
            click.echo(f"{nr}\t{syscalls.name(abi, nr) or '?'}")
    except BpfjitError as exc:
        raise InputProblem(str(exc)) from None
