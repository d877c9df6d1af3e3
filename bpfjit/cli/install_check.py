"""Verb ``install-check``: would seccomp(SECCOMP_SET_MODE_FILTER, FLAGS, FILTER) succeed?"""
from __future__ import annotations

import json

import click

from . import InputProblem, common_load_options, load_program
from .process_options import _environment, parse_flags


@click.command("install-check")
@click.argument("filter_file", metavar="FILTER")
@click.option("--flags", "flag_text", default="0", show_default=True, metavar="FLAGS",
              help="SECCOMP_FILTER_FLAG_* to install with, e.g. LOG,NEW_LISTENER or 0x2.")
@click.option("-s", "--stack", "stack_files", multiple=True, metavar="FILE",
              help="A filter already installed, OLDEST first; repeat.")
@click.option("--stack-flags", "stack_flag_texts", multiple=True, metavar="FLAGS",
              help="Flags of each --stack filter, same order (0 for none).")
@click.option("--listener", "listeners", type=click.IntRange(min=0), multiple=True,
              metavar="INDEX", help="Stack filter INDEX still has an open listener fd; repeat "
                                    "(default: every stack filter installed with NEW_LISTENER).")
@click.option("--no-listeners", is_flag=True, help="Every listener fd of the stack is closed.")
@click.option("--nnp/--no-nnp", "nnp", default=True, show_default=True,
              help="PR_SET_NO_NEW_PRIVS is set.")
@click.option("--cap-sys-admin/--no-cap-sys-admin", default=False, show_default=True,
              help="The task has CAP_SYS_ADMIN in its user namespace.")
@click.option("--kernel", default=None, metavar="VERSION", help="Kernel version (default 6.18).")
@click.option("--arch", "-a", default=None, help="Architecture for names in asm input.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common_load_options
def command(filter_file: str, flag_text: str, stack_files: tuple[str, ...],
            stack_flag_texts: tuple[str, ...], listeners: tuple[int, ...], no_listeners: bool,
            nnp: bool, cap_sys_admin: bool, kernel: str | None, arch: str | None, as_json: bool,
            fmt: str | None, endian: str | None) -> None:
    """Would installing FILTER succeed, and if not, with which errno and why? Exit 1 if refused.

    Applies kernel/seccomp.c's rules in its order: unknown flag bits,
    TSYNC|NEW_LISTENER without TSYNC_ESRCH, WAIT_KILLABLE_RECV without
    NEW_LISTENER (EINVAL); no NO_NEW_PRIVS and no CAP_SYS_ADMIN (EACCES); the
    checker (EINVAL); a second listener in the task tree (EBUSY); the
    32768-instruction path budget (ENOMEM).

    \b
    bpfjit install-check policy.bpf --flags LOG,NEW_LISTENER -s base.bpf --stack-flags NEW_LISTENER
    """
    from ..install import install_check
    program = load_program(filter_file, fmt, endian, arch)
    stack = [load_program(p, fmt, endian, arch) for p in stack_files]
    stack_flags = parse_flags(stack_flag_texts, len(stack))
    (flags,) = parse_flags((flag_text,), 1)
    for i in listeners:
        if i >= len(stack):
            raise InputProblem(f"--listener {i}: the stack has {len(stack)} filter(s)")
    env = _environment(None, False, listeners, 1, kernel, nnp, cap_sys_admin)
    if no_listeners:
        from dataclasses import replace
        env = replace(env, listeners=frozenset())
    result = install_check(program, flags, stack, stack_flags, env)
    if as_json:
        click.echo(json.dumps({"file": filter_file, "flags": flags, **result.as_dict()}))
    else:
        click.echo(f"{filter_file}: {result}")
    if not result.ok:
        raise click.exceptions.Exit(1)
