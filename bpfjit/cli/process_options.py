"""Options shared by ``eval``, ``stack`` and ``install-check``: filter flags and the process
environment (bpfjit.process.Environment), and the process fields of their output."""
from __future__ import annotations

import functools

import click

from . import InputProblem


def _environment(actions_logged, tracer, listeners, threads, kernel, no_new_privs=True,
                 cap_sys_admin=False):
    from ..process import Environment
    from ..seccomp import kernels
    try:
        version = kernels.parse_version(kernel)
        logged = None if actions_logged is None else frozenset(
            actions_logged.replace(",", " ").split())
        return Environment(actions_logged=logged, tracer=tracer,
                           listeners=frozenset(listeners) if listeners else None,
                           threads=threads, kernel=version, no_new_privs=no_new_privs,
                           cap_sys_admin=cap_sys_admin)
    except ValueError as exc:
        raise InputProblem(str(exc)) from None


def process_options(f):
    """--actions-logged, --tracer/--no-tracer, --listener, --threads, --kernel → ``env``."""
    @functools.wraps(f)
    def wrapper(*args, actions_logged, tracer, listeners, process_threads, kernel, **kw):
        return f(*args, env=_environment(actions_logged, tracer, listeners, process_threads,
                                         kernel), **kw)
    # One --kernel for both models: the process model's version and a profile's minKernel
    # (common_load_options declared a profile-only --kernel; this one replaces it).
    params = getattr(wrapper, "__click_params__", None)
    if params is not None:
        params[:] = [p for p in params if "--kernel" not in p.opts]

    def also_for_profiles(ctx: click.Context, param: click.Parameter, value):
        if value is not None:
            ctx.meta.setdefault("bpfjit.profile", {})["kernel"] = value
        return value
    wrapper = click.option("--kernel", default=None, metavar="VERSION", callback=also_for_profiles,
                           help="Kernel version to model (default 6.18), e.g. 5.4 or 4.13; also "
                                "the version a profile's minKernel is resolved for.")(wrapper)
    wrapper = click.option("--threads", "process_threads", type=click.IntRange(min=1), default=1,
                           show_default=True, help="Live threads of the calling process.")(wrapper)
    wrapper = click.option("--listener", "listeners", type=click.IntRange(min=0), multiple=True,
                           metavar="INDEX",
                           help="Filter INDEX (0 = oldest) has an open listener fd; repeat. "
                                "Default: every filter installed with NEW_LISTENER.")(wrapper)
    wrapper = click.option("--tracer/--no-tracer", default=False, show_default=True,
                           help="A ptracer with PTRACE_O_TRACESECCOMP is attached.")(wrapper)
    wrapper = click.option("--actions-logged", default=None, metavar="NAMES",
                           help="/proc/sys/kernel/seccomp/actions_logged (default: the "
                                "kernel's, every action but allow).")(wrapper)
    return wrapper


def parse_flags(texts, count: int) -> list[int]:
    """``--flags`` values (names like LOG,NEW_LISTENER or numbers), one per filter."""
    from ..seccomp.kernels import parse_flags as parse
    if texts and len(texts) != count:
        raise InputProblem(f"--flags was given {len(texts)} times for {count} filter(s); give it "
                           f"once per filter, oldest first (0 for none)")
    try:
        return [parse(t) for t in texts] if texts else [0] * count
    except ValueError as exc:
        raise InputProblem(str(exc)) from None


def process_fields(outcome, flags: list[int]) -> dict:
    """The ``--json`` keys: logged, matching_filter, errno, signal, core_dump, and the rest."""
    from ..seccomp.kernels import flag_names
    return {"logged": outcome.logged, "matching_filter": outcome.matching_filter,
            "errno": outcome.errno, "signal": outcome.signal, "core_dump": outcome.core_dump,
            "flags": [flag_names(f) for f in flags], "process": outcome.as_dict()}


def process_line(outcome) -> str:
    match = ("no filter matched" if outcome.matching_filter is None
             else f"filter {outcome.matching_filter} matched")
    return f"the kernel: {outcome.effect()}; {match}, {'logged' if outcome.logged else 'not logged'}"
