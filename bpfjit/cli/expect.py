"""``bpfjit test FILTER EXPECTATIONS``: expectations proven for every input, or a counterexample."""
from __future__ import annotations

import json

import click

from . import InputProblem, common_load_options


def counterexample_text(c, sem) -> tuple[str, list[str]]:
    """(one-line description, the path in words) of a counterexample."""
    from ..analysis.semantics import ARCH, NR
    from ..analysis.walk import decision_texts, walk
    from ..seccomp import layouts
    from ..seccomp.actions import Action
    from .diff import _args
    nr, arch, ip, args = c.record
    lay = sem.layout
    words = {NR: nr & 0xFFFFFFFF, ARCH: arch}
    for i, v in enumerate([ip, *args]):
        lo = lay.word_offset("ip" if i == 0 else "args", max(i - 1, 0), "lo") // 4
        words[lo], words[lo ^ 1] = v & 0xFFFFFFFF, v >> 32
    decisions, _, _ = walk(sem.program, [words.get(i, 0) for i in range(16)], lay,
                           layouts.layout(c.abi))
    line = (f"{c.name or c.nr}({_args(args)}) on {c.abi}" + (f", ip {ip:#x}" if ip else "")
            + f" -> {Action(c.retval)}")
    return line, decision_texts(decisions) + [f"-> {Action(c.retval)}"]


@click.command("test")
@click.argument("filter_file", metavar="FILTER")
@click.argument("expectations", metavar="EXPECTATIONS")
@click.option("--arch", "-a", default=None,
              help="Layout of FILTER (default: the arch it checks first).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common_load_options
def command(filter_file: str, expectations: str, arch: str | None, as_json: bool,
            fmt: str | None, endian: str | None) -> None:
    """Check FILTER against an EXPECTATIONS file; every wildcard is proven, not sampled.

    \b
    One expectation per line (or a TOML file with expect = [...]):
      read -> ALLOW
      openat(AT_FDCWD, *, O_RDONLY) on x86_64 -> ALLOW
      clone(flags=CLONE_NEWUSER) -> ERRNO(EPERM)
      * on x32 -> not ALLOW
      ptrace -> not ALLOW
    A failure prints a counterexample input and its path through the filter.
    Exit status 0 when every expectation holds, 1 when one fails, 2 for a bad file.
    """
    from ..analysis import expectations as ex
    from .diff import analysed
    try:
        items, default_abi = ex.load(expectations)
    except ex.ExpectationError as exc:
        raise InputProblem(str(exc)) from None
    sem, _ = analysed(filter_file, fmt, endian, arch)
    results = []
    for line, exp in items:
        try:
            found = ex.check(sem, exp, default_abi)
        except ex.ExpectationError as exc:
            raise InputProblem(f"{expectations}:{line}: {exc}") from None
        results.append((line, exp, found))
    failed = sum(1 for *_, found in results if found)
    if as_json:
        out = []
        for line, exp, found in results:
            entry = {"line": line, "expectation": exp.text, "holds": not found}
            if found:
                text, path = counterexample_text(found[0], sem)
                nr, arch_v, ip, args = found[0].record
                entry["counterexample"] = {"abi": found[0].abi, "syscall": found[0].name,
                                           "nr": nr, "arch": arch_v, "instruction_pointer": ip,
                                           "args": list(args), "retval": found[0].retval,
                                           "path": path, "more": len(found) - 1}
            out.append(entry)
        click.echo(json.dumps({"passed": len(results) - failed, "failed": failed,
                               "results": out}))
    else:
        for line, exp, found in results:
            if not found:
                click.echo(f"ok    {expectations}:{line}: {exp.text}")
                continue
            text, path = counterexample_text(found[0], sem)
            more = f" (and {len(found) - 1} more syscalls)" if len(found) > 1 else ""
            click.echo(f"FAIL  {expectations}:{line}: {exp.text}\n"
                       f"      counterexample: {text}{more}\n      path: {'; '.join(path)}")
        click.echo(f"; {len(results) - failed} passed, {failed} failed")
    raise SystemExit(1 if failed else 0)
