"""The ``bpfjit fuzz`` verb (fuzzing stage): differential fuzzing of evaluators against Linux.

Exit status: 0 when no candidate disagreed, 1 when at least one did (one
reproducer directory per distinct disagreement in ``--out``), 2 on bad usage
(a candidate that cannot be imported, an unknown backend or arch).
"""
from __future__ import annotations

import json
import sys

import click

from . import InputProblem
from ..errors import BpfjitError

LOCAL_BACKENDS = ("llvm", "numba", "reference")
KINDS = ("valid", "realistic", "near_valid", "garbage", "probe")


def _local_backends() -> list[str]:
    from .. import backends
    available = backends.available()
    return [name for name in LOCAL_BACKENDS if available.get(name) is None]


def _report_json(report) -> dict:
    cov = report.coverage
    return {
        "ok": report.ok, "candidates": report.candidates, "seed": report.seed,
        "arch": report.arch, "stack": report.stack, "kernel": report.kernel,
        "programs": report.programs, "programs_by_kind": dict(report.programs_by_kind),
        "valid_programs": report.valid_programs, "records": report.records,
        "verdicts": report.verdicts, "accept_decisions": report.accept_decisions,
        "kernel_accept_decisions": report.kernel_accept_decisions,
        "kernel_verdicts": report.kernel_verdicts, "elapsed": round(report.elapsed, 3),
        "stopped_by": report.stopped_by,
        "programs_per_second": round(report.programs_per_second, 1),
        "inputs_per_second": round(report.inputs_per_second, 1),
        "coverage": {"opcodes": list(cov.opcode_fraction), "branches": list(cov.branch_fraction),
                     "missing_opcodes": cov.missing_opcodes(), "events": dict(cov.events)},
        "raw_disagreements": report.raw_disagreements,
        "disagreements": [{"summary": d.summary(), "kind": d.kind, "oracle": d.oracle,
                           "candidates": list(d.candidates), "count": d.count,
                           "instructions": [len(p) for p in d.programs],
                           "path": str(d.path) if d.path else None}
                          for d in report.disagreements],
    }


@click.command()
@click.option("--candidate", "-c", "candidate_specs", multiple=True, metavar="MODULE:FUNCTION",
              help="A user evaluator f(program_bytes, records) -> uint32 array (raise or return "
                   "None to reject). Repeatable.")
@click.option("--candidate-cmd", "candidate_cmds", multiple=True, metavar='"CMD ARGS"',
              help="An evaluator in any language: a command speaking the bpfjit candidate "
                   "protocol v1 on stdin/stdout (see bpfjit.testing.protocol, "
                   "examples/candidates/c/). Repeatable.")
@click.option("--peer", "peer_names", multiple=True,
              type=click.Choice(["pcap", "dpdk", "dpdk-jit", "dpdk-both"]),
              help="A real peer as a candidate, built on first use: libpcap's bpf_filter, DPDK's "
                   "rte_bpf interpreter, its JIT, or both cross-checked (bpfjit.testing.peers). "
                   "Repeatable.")
@click.option("--timeout", "batch_timeout", type=click.FloatRange(min=0, min_open=True),
              default=10.0, show_default=True,
              help="Seconds a candidate process (--candidate-cmd, or a Python candidate in "
                   "its worker) may take per batch; one that hangs or crashes is reported and "
                   "restarted.")
@click.option("--in-process", is_flag=True,
              help="Call Python candidates in this process (faster; no timeout or crash "
                   "isolation) instead of in a worker process.")
@click.option("--checker", "checker_specs", multiple=True, metavar="MODULE:FUNCTION",
              help="A pure checker f(program_bytes) -> bool, compared on accept/reject only.")
@click.option("--backend", "-b", "backend_names", multiple=True,
              type=click.Choice(["llvm", "numba", "reference", "kernel"]),
              help="A bpfjit backend as a candidate. Repeatable. Default (no candidate given): "
                   "every local backend available here.")
@click.option("--seconds", "-t", type=click.FloatRange(min=0), default=None,
              help="Time budget (default 30 s unless --programs is given).")
@click.option("--programs", "-n", "max_programs", type=click.IntRange(min=1), default=None,
              help="Stop after this many programs (stacks with --stack).")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for the reproducers (one directory per distinct disagreement).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generators.")
@click.option("--arch", "-a", default="x86_64", show_default=True,
              help="seccomp_data layout of the records candidates get.")
@click.option("--kernel/--no-kernel", "use_kernel", default=None,
              help="Compare with the running kernel (default: when seccomp works here).")
@click.option("--stack", is_flag=True, help="Fuzz stack evaluators: f(list_of_program_bytes_"
              "oldest_first, records); backends are wrapped as bpfjit.Stack.")
@click.option("--kinds", default=None, metavar="K1,K2",
              help=f"Program kinds to draw ({', '.join(KINDS)}; default all, "
                   f"realistic,valid with --stack).")
@click.option("--inputs", "inputs_per_program", type=click.IntRange(min=1), default=128,
              show_default=True, help="Records per program.")
@click.option("--max-disagreements", type=click.IntRange(min=1), default=None,
              help="Stop after this many distinct disagreements.")
@click.option("--shrink/--no-shrink", default=True, show_default=True,
              help="Minimise each disagreement before reporting it.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: when stderr is a terminal).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the report as JSON ('-' for stdout).")
def command(candidate_specs, candidate_cmds, peer_names, batch_timeout, in_process, checker_specs,
            backend_names, seconds, max_programs, out_dir, seed,
            arch, use_kernel, stack, kinds, inputs_per_program, max_disagreements, shrink,
            progress, json_path) -> None:
    """Differential fuzzing: generate programs and inputs, run every candidate, compare with Linux.

    Candidates are compared with the reference interpreter on every 32-bit
    value and with bpfjit's checker (itself compared with seccomp(2) when
    the kernel is usable) on accept/reject. Each disagreement is shrunk to a
    small program and input and written to --out as program.bpf, program.asm
    and reproducer.json. Exits 1 when anything disagreed.

    \b
    Examples:
      bpfjit fuzz --seconds 60
      bpfjit fuzz --candidate mymodule:evaluate --seconds 30 --out repro/
      bpfjit fuzz --candidate-cmd "./seccomp_candidate" --timeout 5 -t 60 -o repro/
      bpfjit fuzz --peer dpdk-jit --peer pcap -t 60 -o repro/
      bpfjit fuzz --checker mychecker:accepts --kinds near_valid,garbage -t 10
      bpfjit fuzz --stack --candidate mystack:evaluate -t 30 -o repro/
    """
    from ..testing import candidates as cands
    from ..testing import external, fuzz

    if seconds is None and max_programs is None:
        seconds = 30.0
    kind_list = None
    if kinds:
        kind_list = [k.strip() for k in kinds.split(",") if k.strip()]
        unknown = [k for k in kind_list if k not in KINDS]
        if unknown or not kind_list:
            raise InputProblem(f"--kinds: unknown kind {', '.join(unknown) or repr(kinds)}; "
                               f"choose from {', '.join(KINDS)}")
    try:
        from ..seccomp import layouts
        lay = layouts.layout(arch)
        specs: list = list(backend_names)
        if in_process:
            specs += [cands.load(s, layout=lay) for s in candidate_specs]
            specs += [cands.load(s, layout=lay, checker_only=True, option="--checker")
                      for s in checker_specs]
        else:
            for spec in candidate_specs:
                # import and stack/non-stack errors here, with a clear message
                cands.resolve(cands.load(spec, layout=lay), layout=lay, stack=stack)
                specs.append(external.python_candidate(spec, lay, stack=stack,
                                                       timeout=batch_timeout))
            for spec in checker_specs:
                cands.load(spec, layout=lay, checker_only=True, option="--checker")
                specs.append(external.python_candidate(spec, lay, timeout=batch_timeout,
                                                       checker_only=True))
        specs += [external.command_candidate(c, lay, stack=stack, timeout=batch_timeout)
                  for c in candidate_cmds]
        if peer_names:
            from ..testing import peers
            if stack:
                raise InputProblem("--peer: the peers evaluate single programs, not stacks")
            specs += [peers.candidate(p, lay, timeout=batch_timeout) for p in peer_names]
        if not specs:
            specs = _local_backends()   # the kernel joins through use_kernel="auto"
        kernel_mode = "auto" if use_kernel is None else use_kernel
        show = sys.stderr.isatty() if progress is None else progress
        report = fuzz.run(specs, seconds=seconds, max_programs=max_programs, seed=seed,
                          arch=lay.name, out_dir=out_dir, use_kernel=kernel_mode, progress=show,
                          stack=stack, kinds=kind_list, inputs_per_program=inputs_per_program,
                          max_disagreements=max_disagreements, shrink=shrink)
    except (BpfjitError, ValueError) as exc:
        raise InputProblem(str(exc)) from None
    # With --json -, stdout carries only the JSON document: the text report goes to stderr.
    click.echo(report.format(), nl=False, err=json_path == "-")
    for cand in specs:
        mapped = getattr(cand, "mapped", None)
        if mapped:          # a peer's known differences (bpfjit.testing.peers.KNOWN_DIFFERENCES)
            click.echo(f"{cand.name}: known differences, not compared: " +
                       ", ".join(f"{k} x{v}" for k, v in sorted(mapped.items())), err=True)
    if json_path:
        text = json.dumps(_report_json(report), indent=2) + "\n"
        if json_path == "-":
            click.echo(text, nl=False)
        else:
            with open(json_path, "w") as f:
                f.write(text)
    if not report.ok:
        # SystemExit, not click's Exit: bpfjit.cli.main (standalone_mode=False) drops the
        # code click returns for Exit, and "disagreement found" must reach the shell as 1.
        sys.exit(1)
