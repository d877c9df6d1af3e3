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
            hint = ("; nor is it an option of this verb (see --help)" if text.startswith("-")
                    else "")
            raise InputProblem(f"argument {i} ({text!r}) is not an integer "
                               f"(decimal, 0x hex, 0o octal, 0b binary; negative allowed){hint}"
                               ) from None
        if not -(1 << 63) <= value < (1 << 64):
            raise InputProblem(f"argument {i} ({text}) does not fit 64 bits")
        out.append(value & 0xFFFFFFFFFFFFFFFF)
    return tuple(out)


def _parse_ip(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise InputProblem(f"--ip: {text!r} is not an integer (decimal, 0x hex, 0o octal or "
                           f"0b binary; the 64-bit seccomp_data.instruction_pointer)") from None
    if not 0 <= value < 1 << 64:
        raise InputProblem(f"--ip: {text} does not fit the 64-bit instruction_pointer")
    return value


def _arch_hint(program, layout) -> str | None:
    """A hint when the filter's arch checks never accept the record's arch (``--arch`` mismatch)."""
    from .. import opcodes as op
    from ..formats import symbols
    from ..formats.disasm import _cached
    listing = _cached(program, layout)         # which word A holds at each instruction
    accepted = {ins.k for i, ins in enumerate(program)
                if ins.code == op.BPF_JMP | op.BPF_JEQ | op.BPF_K and listing.states[i][0] == "arch"}
    if not accepted or layout.audit_arch in accepted:
        return None
    names = ", ".join(sorted(symbols.AUDIT_ARCH_NAMES.get(a, f"{a:#x}") for a in accepted))
    return (f"hint: this filter checks seccomp_data.arch against {names} only; the record "
            f"carries {symbols.AUDIT_ARCH_NAMES.get(layout.audit_arch, hex(layout.audit_arch))} "
            f"(--arch {layout.name}), so it takes the filter's other-arch path. Pass the "
            f"filter's --arch to evaluate its rules.")


def _compile_named(path: str, prog, backend: str, arch):
    """compile() with the file named in any error (invalid program, unknown arch)."""
    from ..filter import compile as compile_filter
    try:
        return compile_filter(prog, backend=backend, arch=arch)
    except BpfjitError as exc:
        raise InputProblem(f"{path}: {exc}") from None


def _instruction_text(program, index: int, arch) -> str:
    from ..formats.disasm import instruction_text
    return instruction_text(program, index, arch=arch)


def _describe(retval: int, arch_name: str, nr: int, audit: int) -> dict:
    act = Action.from_value(retval)
    out = outcome(stack_retval([retval]), arch_name=arch_name, nr=nr, audit_arch=audit)
    return {"action": str(act), "retval": retval, "retval_hex": f"{retval:#010x}",
            "kernel": str(out), "kernel_kind": out.kind}


#: "-1" is an argument, not an unknown option (negative arguments are common: AT_FDCWD)
NEGATIVE_OK = {"ignore_unknown_options": True}


@click.command("eval", context_settings=NEGATIVE_OK)
@click.argument("filter_file", metavar="FILTER")
@click.argument("syscall")
@click.argument("args", nargs=-1)
@click.option("--arch", "-a", default=None,
              help="Architecture of the calling task: layout, seccomp_data.arch and syscall names "
                   "(default: the host, x86_64 here). E.g. x86 to test an i386 call.")
@click.option("--ip", "instruction_pointer", default="0", help="seccomp_data.instruction_pointer.")
@click.option("--trace", is_flag=True,
              help="Print each instruction executed, with the values A and X hold before it.")
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
    prog = load_program(filter_file, fmt, endian, arch)
    values = _parse_args(args)
    ip = _parse_ip(instruction_pointer)
    f = _compile_named(filter_file, prog, backend, arch)
    try:
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
    if steps:
        click.echo(f"{'index':>5}  {'instruction':<44s} A and X before it")
    for s in steps:
        click.echo(f"{s.index:5d}  {_instruction_text(f.program, s.index, arch):<44s} "
                   f"A={s.A:#010x} X={s.X:#010x}")
    click.echo(f"{info['action']}  (retval {info['retval_hex']}; {process_line(proc)})")
    hint = _arch_hint(f.program, f.layout)
    if hint:
        click.echo(hint, err=True)


@click.command(context_settings=NEGATIVE_OK)
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
    ip = _parse_ip(instruction_pointer)
    compiled = [_compile_named(p, prog, backend, arch) for p, prog in zip(filters, progs)]
    try:
        s = Stack(compiled, backend=backend, arch=arch)
        nr, audit = s.filters[-1].resolve(syscall, None)
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


def _action_matcher(text: str):
    """--action: a predicate on an action's text; ERRNO matches every ERRNO(n), ERRNO(1) one."""
    import re

    from ..seccomp.actions import ACTION_VALUES
    m = re.fullmatch(r"\s*([A-Za-z_]+)\s*(\(.*\))?\s*", text)
    if not m or m.group(1).upper() not in ACTION_VALUES:
        raise InputProblem(f"--action: {text!r} is not an action; choose from "
                           f"{', '.join(sorted(ACTION_VALUES))}, with data for an exact value "
                           f"(e.g. ERRNO(1), TRAP(0x10))")
    try:
        exact = str(Action.parse(text))
    except ValueError as exc:
        raise InputProblem(f"--action: {exc}") from None
    if m.group(2):
        return lambda action: action == exact
    return lambda action: action.split("(")[0] == exact.split("(")[0]


@click.command()
@click.argument("filter_file", metavar="FILTER")
@click.option("--arch", "-a", default=None, help="Architecture of the calling tasks.")
@click.option("--action", "only", default=None,
              help="Only syscalls with this action for some arguments: a name (ALLOW, ERRNO, "
                   "KILL_PROCESS, ...) for every data value, or an exact value such as ERRNO(1).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per syscall.")
@common_load_options
def table(filter_file: str, arch: str | None, only: str | None, as_json: bool,
          fmt: str | None, endian: str | None) -> None:
    """Every syscall of the arch's table with FILTER's action, for every argument value.

    From the exact analysis (bpfjit.analysis.semantics): a syscall whose
    action depends on its arguments or the instruction pointer is listed with
    each action and the argument conditions under which the filter returns it.
    """
    from ..analysis.conditions import evaluate, words_in
    from ..analysis.semantics import analyse, describe, result_text, word_name
    from ..check import check
    from ..seccomp import layouts, syscalls
    wanted = _action_matcher(only) if only else None
    prog = load_program(filter_file, fmt, endian, arch)
    try:
        lay = layouts.layout(arch)
        sem = analyse(check(prog), lay)
        names = syscalls.table(lay.syscall_abi)
    except BpfjitError as exc:
        raise InputProblem(str(exc)) from None
    counts: Counter[str] = Counter()
    for nr in sorted(set(names.values())):
        name = syscalls.name(lay.syscall_abi, nr)
        v = sem.verdict(lay.audit_arch, nr)
        groups: dict[str, list[str]] = {}
        for region in v.regions:
            groups.setdefault(result_text(region.result, lay), []).append(
                " and ".join(describe(region, lay)) or "any arguments")
        if not v.complete:
            groups = {"(not analysed: too many paths)": []}
        if wanted and not any(wanted(a) for a in groups):
            continue
        single = len(groups) == 1
        counts[(next(iter(groups)) if single else "depends on arguments")] += 1
        if as_json:
            zero = [nr & 0xFFFFFFFF, lay.audit_arch] + [0] * 14
            hit = next((r for r in v.regions if r.matches(zero)), None)
            reads = sorted({word_name(lay, i) for r in v.regions
                            for i in (*r.words, *(i for c in r.opaque for e in c[1:3]
                                                  for i in words_in(e)))})
            click.echo(json.dumps({"nr": nr, "name": name,
                                   "action": next(iter(groups)) if single else None,
                                   "retval": None if hit is None else evaluate(hit.result, zero),
                                   "reads": reads,
                                   "exact": v.symbolic,
                                   "regions": [{"action": a, "when": w}
                                               for a, w in groups.items()]}))
        elif single:
            click.echo(f"{nr:>10d}  {name:<24s} {next(iter(groups))}")
        else:   # the regions partition the inputs: the wordiest action reads as "otherwise"
            last = max(groups, key=lambda a: (sum(map(len, groups[a])), list(groups).index(a)))
            click.echo(f"{nr:>10d}  {name:<24s} " + "; ".join(
                f"{a} if {' or '.join(w)}" for a, w in groups.items() if a != last)
                + f"; {last} otherwise")
    if not as_json:
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        total = sum(counts.values())
        click.echo(f"; {total} syscall{'s' if total != 1 else ''}"
                   + (f" — {summary}" if summary else " match"))


@click.command("syscalls")
@click.argument("names", nargs=-1)
@click.option("--arch", "-a", default=None, help="ABI (default: the host).")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {nr, name}.")
def syscalls_(names: tuple[str, ...], arch: str | None, as_json: bool) -> None:
    """Look up syscall numbers and names for an arch (all of them without NAMES)."""
    import json

    from ..seccomp import layouts, syscalls
    try:
        lay = layouts.layout(arch)
        abi = lay.syscall_abi
        if not names:
            rows = [(nr, name) for name, nr in sorted(syscalls.table(abi).items(),
                                                       key=lambda item: item[1])]
        else:
            rows = []
            for text in names:
                try:
                    nr = int(text, 0)
                except ValueError:
                    rows.append((syscalls.number(abi, text), text))
                    continue
                rows.append((nr, syscalls.name(abi, nr)))
    except BpfjitError as exc:
        raise InputProblem(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"arch": lay.name, "syscalls": [{"nr": nr, "name": name}
                                                               for nr, name in rows]}))
        return
    for nr, name in rows:
        click.echo(f"{nr}\t{name or '?'}")
