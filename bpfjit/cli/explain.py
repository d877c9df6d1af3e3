"""``bpfjit explain FILTER SYSCALL [ARGS]``: why a call gets its verdict, what would change it."""
from __future__ import annotations

import json

import click

from . import InputProblem, common_load_options
from ..errors import BpfjitError


@click.command("explain")
@click.argument("filter_file", metavar="FILTER")
@click.argument("syscall")
@click.argument("args", nargs=-1)
@click.option("--arch", "-a", default=None,
              help="ABI of the call (x86_64, x32, x86, aarch64...; default: the arch FILTER "
                   "checks first). x32 and x86 calls use the x86_64 layout.")
@click.option("--ip", "instruction_pointer", default="0", help="seccomp_data.instruction_pointer.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common_load_options
def command(filter_file: str, syscall: str, args: tuple[str, ...], arch: str | None,
            instruction_pointer: str, as_json: bool, fmt: str | None, endian: str | None) -> None:
    """The path SYSCALL with ARGS takes through FILTER, in words, and the
    argument values that would give another verdict (proven for every input).

    \b
    bpfjit explain docker.bpf clone 0x10000000
    bpfjit explain docker.bpf --arch x86 socket 40
    """
    import bpfjit_reference as reference
    from ..analysis.compare import family, record_of
    from ..analysis.semantics import ARCH, NR, describe, result_text
    from ..analysis.walk import decision_texts, walk
    from ..seccomp import layouts, syscalls
    from .diff import _args, analysed
    from .evaluate import _parse_args
    try:
        abi = layouts.layout(arch) if arch else None
    except BpfjitError as exc:
        raise InputProblem(str(exc)) from None
    base = None
    if abi is not None:   # the layout whose family holds this ABI (x32 -> x86_64)
        from ..analysis.compare import FAMILIES
        base = next((n for n, members in FAMILIES.items() if abi.name in members[1:]), abi.name)
    sem, lay = analysed(filter_file, fmt, endian, base)
    abi = abi or lay
    values = _parse_args(args)
    try:
        ip = int(instruction_pointer, 0) & ((1 << 64) - 1)
        text = syscall.strip()
        try:
            nr = int(text, 0)
        except ValueError:
            nr = syscalls.number(abi.syscall_abi, text)
    except (ValueError, BpfjitError) as exc:
        raise InputProblem(str(exc)) from None
    if abi.name not in {x.name for x in family(lay)}:
        raise InputProblem(f"--arch {abi.name} does not run on a {lay.name} layout "
                           f"(its ABIs: {', '.join(x.name for x in family(lay))})")
    name = syscalls.name(abi.syscall_abi, nr) if syscalls.has_table(abi.syscall_abi) else None
    word_nr = nr & 0xFFFFFFFF
    words = {NR: word_nr, ARCH: abi.audit_arch}
    for i, v in enumerate([ip] + list(values) + [0] * (6 - len(values))):
        lo = lay.word_offset("ip" if i == 0 else "args", max(i - 1, 0), "lo") // 4
        words[lo], words[lo ^ 1] = v & 0xFFFFFFFF, v >> 32
    word_list = [words.get(i, 0) for i in range(16)]
    decisions, retval, end = walk(sem.program, word_list, lay, abi)
    rec = record_of(words, lay)
    check_value = reference.run_seccomp([tuple(i) for i in sem.program], *rec, lay.byteorder)
    if check_value != retval:
        raise AssertionError(f"internal error: walk gave {retval:#x}, reference {check_value:#x}")
    verdict = sem.verdict(abi.audit_arch, word_nr)
    others = []
    for region in verdict.regions:
        if region.matches(word_list):
            continue
        w = region.witness(prefer=words)
        if w is False:
            continue
        w = None if w is None else {**w, NR: word_nr, ARCH: abi.audit_arch}
        res = result_text(region.result, lay) if isinstance(region.result, int) else None
        value = None if w is None else reference.run_seccomp(
            [tuple(i) for i in sem.program], *record_of(w, lay), lay.byteorder)
        if value == retval or (w is not None and res is None and value is None):
            continue
        others.append({"action": res or result_text(region.result, lay),
                       "when": describe(region, lay),
                       "example_args": None if w is None else list(record_of(w, lay)[3]),
                       "example_retval": value})
    texts = decision_texts(decisions)
    from ..seccomp.actions import Action
    action = str(Action(retval))
    if as_json:
        click.echo(json.dumps({"syscall": name, "nr": nr, "abi": abi.name, "layout": lay.name,
                               "args": list(values), "instruction_pointer": ip,
                               "path": texts, "ret_index": end, "action": action,
                               "retval": retval, "other_verdicts": others,
                               "exact": verdict.symbolic,
                               "other_verdicts_complete": verdict.complete}))
        return
    click.echo("; ".join(texts + [f"-> {action}"]) + f"  (ret at {end})")
    if not verdict.complete:
        click.echo(f"  the other verdicts of {name or nr} on {abi.name} are not listed: the filter "
                   f"has too many paths for them to be enumerated")
    elif not others:
        click.echo(f"no other argument or instruction pointer value changes this: every "
                   f"{name or nr} call on {abi.name} gets {action}")
    by_action: dict = {}
    for o in others:
        by_action.setdefault(o["action"], []).append(o)
    for act, group in by_action.items():
        whens = [" and ".join(o["when"]) or "any arguments" for o in group]
        eg = next((o["example_args"] for o in group if o["example_args"] is not None), None)
        egs = "" if eg is None else f"  (e.g. args ({_args(tuple(eg))}))"
        click.echo(f"  {act} when {'; or '.join(whens)}{egs}")
    if verdict.complete and not verdict.symbolic:
        click.echo("  note: some regions are conditions on computed values (shown as "
                   "expressions), decided exactly by the solver")
