"""Verbs that read and write programs: ``disasm``, ``asm``, ``check``, ``dump``."""
from __future__ import annotations

import sys

import click

from . import InputProblem, common_load_options, load_program
from ..errors import BpfjitError, InvalidProgram


_STYLES = {"line": {"dim": True}, "allow": {"fg": "green"}, "deny": {"fg": "yellow"},
           "kill": {"fg": "red", "bold": True}}


def colour_wanted(stream=None) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    import os
    stream = stream or sys.stdout
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


@click.command()
@click.argument("file")
@click.option("--arch", "-a", default=None,
              help="Layout and syscall table for names (default: detected from the filter's "
                   "first arch check, else x86_64).")
@click.option("--numbered/--no-numbered", default=False, help="Prefix instruction indexes.")
@click.option("--columns", is_flag=True,
              help="seccomp-tools style: line, CODE, JT, JF, K and a pseudo-C line "
                   "(for reading; the default output assembles back).")
@click.option("--json", "as_json", is_flag=True,
              help="JSON: one object per instruction (index, code, jt, jf, k, text, pseudo_c).")
@common_load_options
def disasm(file: str, arch: str | None, numbered: bool, columns: bool, as_json: bool,
           fmt: str | None, endian: str | None) -> None:
    """Disassemble FILE to bpf_asm text with seccomp names (syscalls, fields, actions).

    The architecture used for names is detected from the filter (its first
    ``jeq #AUDIT_ARCH_...`` after ``ld [arch]``) unless --arch is given.
    """
    from ..formats import columns as column_view
    from ..formats.disasm import disassemble, infer_arch, instruction_text
    prog = load_program(file, fmt, endian, arch)
    try:
        if as_json:
            import json
            lay = arch or infer_arch(prog).name
            listing = column_view.rows(prog, arch=lay)
            doc = {"file": file, "arch": lay, "instructions": [
                {"index": i, "code": ins.code, "jt": ins.jt, "jf": ins.jf, "k": ins.k,
                 "text": instruction_text(prog, i, arch=lay), "pseudo_c": pseudo}
                for i, (ins, pseudo) in enumerate(listing)]}
            click.echo(json.dumps(doc, indent=1))
        elif columns:
            colour = colour_wanted()
            style = (lambda text, kind: click.style(text, **_STYLES.get(kind, {}))) \
                if colour else None
            click.echo(column_view.render(prog, arch=arch, style=style), nl=False, color=colour)
        else:
            click.echo(disassemble(prog, arch=arch, numbered=numbered), nl=False)
    except BpfjitError as exc:
        raise InputProblem(str(exc)) from None


@click.command()
@click.argument("file")
@click.option("-o", "--output", required=True, help="Output file ('-' for stdout).")
@click.option("--to", "out_fmt", type=click.Choice(["raw", "c", "hex", "asm"]), default="raw",
              show_default=True, help="Output format.")
@click.option("--out-endian", type=click.Choice(["little", "big"]), default=None,
              help="Byte order of raw/hex output (default: the input's).")
@click.option("--arch", "-a", default=None, help="Architecture for names in the input.")
@common_load_options
def asm(file: str, output: str, out_fmt: str, out_endian: str | None, arch: str | None,
        fmt: str | None, endian: str | None) -> None:
    """Assemble FILE (bpf_asm text, C array, hex or raw) into OUTPUT.

    \b
    bpfjit asm policy.asm -o policy.bpf
    bpfjit asm policy.asm -o - --to c
    """
    from ..formats import dump as dump_program
    from ..check import check as check_program
    prog = load_program(file, fmt or ("asm" if file.endswith(".asm") else None), endian, arch)
    try:
        check_program(prog)
    except InvalidProgram as exc:   # still written: invalid programs are legitimate test data
        click.echo(f"warning: {file}: seccomp(2) would refuse this program: {exc}", err=True)
    data = dump_program(prog, out_fmt, endian=out_endian, arch=arch)
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        with open(output, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise InputProblem(f"{output}: cannot write: {exc.strerror}") from None


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.option("--jit", "kernel", default=None, metavar="NAME",
              help="Also replay this kernel build's BPF JIT (ENOTSUPP refusals): 'host' for "
                   "the running kernel, or a name such as linux-6.18-x86_64-jit-always-on.")
@common_load_options
def check(files: tuple[str, ...], as_json: bool, kernel: str | None, fmt: str | None,
          endian: str | None) -> None:
    """Would seccomp(2) accept each FILE? Exit 1 if any is refused, 2 if any is unreadable.

    Applies exactly the kernel's rules (net/core/filter.c bpf_check_classic,
    check_load_and_stores; kernel/seccomp.c seccomp_check_filter). With
    --jit NAME, also what that kernel build's BPF JIT does: with
    CONFIG_BPF_JIT_ALWAYS_ON a program the x86-64 JIT cannot size is refused
    with ENOTSUPP ("refused by the x86-64 JIT (did not converge in N
    passes)"). An unreadable FILE is reported (a JSON object with "error"
    under --json) and the others are still checked.
    """
    import json

    from ..check import check as check_program
    from ..errors import InputError
    from ..stack import ebpf_length
    if kernel is not None:
        from ..kernelcfg import kernel_config
        try:
            kernel = kernel_config(kernel)
        except InputError as exc:
            raise InputProblem(str(exc)) from None
    bad = unreadable = 0
    for file in files:
        try:
            prog = load_program(file, fmt, endian, None)
        except InputProblem as exc:
            unreadable += 1
            if as_json:
                click.echo(json.dumps({"file": file, "valid": None, "error": exc.message}))
            else:
                click.echo(f"Error: {exc.message}", err=True)
            continue
        try:
            check_program(prog, kernel=kernel)
        except InputError as exc:
            raise InputProblem(str(exc)) from None
        except InvalidProgram as exc:
            bad += 1
            if as_json:
                click.echo(json.dumps({"file": file, "valid": False, "index": exc.index,
                                       "rule": exc.rule, "errno": exc.errno,
                                       "reason": exc.reason,
                                       **({"kernel": kernel.name} if kernel else {})}))
            else:
                click.echo(f"{file}: INVALID: {exc}")
            continue
        if as_json:
            click.echo(json.dumps({"file": file, "valid": True, "instructions": len(prog),
                                   "ebpf_instructions": ebpf_length(prog),
                                   "endian": prog.endian,
                                   **({"kernel": kernel.name} if kernel else {})}))
        else:
            click.echo(f"{file}: OK ({len(prog)} instructions, {prog.endian}-endian, "
                       f"{ebpf_length(prog)} eBPF instructions in the kernel)")
    if unreadable or bad:
        raise click.exceptions.Exit(2 if unreadable else 1)


@click.command()
@click.argument("pid", type=int)
@click.option("--index", type=int, default=None,
              help="Only filter INDEX (0 = the first installed, as the kernel numbers them).")
@click.option("-o", "--output", default=None,
              help="Write raw bytes here (with several filters: OUTPUT.N, N oldest first).")
@click.option("--arch", "-a", default=None, help="Architecture for names.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: each filter's index, flags, raw bytes (hex), arch and "
                   "instructions (index, code, jt, jf, k, text).")
def dump(pid: int, index: int | None, output: str | None, arch: str | None,
         as_json: bool) -> None:
    """Read the seccomp filters of a running process (root; PTRACE_SECCOMP_GET_FILTER).

    Without -o, prints each filter disassembled, oldest first, with its flags
    (PTRACE_SECCOMP_GET_METADATA; the kernel keeps and reports LOG only).
    """
    from ..formats.disasm import disassemble, infer_arch, instruction_text
    from ..formats.live import load_process_flags
    from ..seccomp.kernels import flag_names
    try:
        found = load_process_flags(pid, index)
    except BpfjitError as exc:
        raise InputProblem(str(exc)) from None
    if as_json:
        import json
        filters = []
        for n, (prog, flags) in enumerate(found):
            lay = arch or infer_arch(prog).name
            filters.append({
                "index": n if index is None else index, "flags": flags,
                "flag_names": flag_names(flags), "source": prog.source, "arch": lay,
                "raw": prog.to_bytes().hex(), "instructions": [
                    {"index": i, "code": ins.code, "jt": ins.jt, "jf": ins.jf, "k": ins.k,
                     "text": instruction_text(prog, i, arch=lay)}
                    for i, ins in enumerate(prog.instructions)]})
        click.echo(json.dumps({"pid": pid, "filters": filters}, indent=1))
        return
    for n, (prog, flags) in enumerate(found):
        if output:
            path = output if len(found) == 1 else f"{output}.{n}"
            with open(path, "wb") as fh:
                fh.write(prog.to_bytes())
            click.echo(f"{path}: {len(prog)} instructions ({prog.source}), flags {flag_names(flags)}")
        else:
            click.echo(f"; {prog.source} — {len(prog)} instructions (filter {n} of "
                       f"{len(found)}, oldest first), flags {flag_names(flags)}")
            click.echo(disassemble(prog, arch=arch), nl=False)
