"""``bpfjit bench``: a quick throughput matrix (filters × backends × record mixes) with baselines.

For each cell it compiles the filter (a corpus stack such as
``systemd-nspawn-252`` is evaluated as a :class:`bpfjit.Stack`), checks 256
records against the reference interpreter, then repeats ``evaluate_batch``
over the whole array for ``--seconds`` and keeps the best run, each pass
right after a memory-streaming pass over the same array (the ratio shown is
the median over those pairs, so both sides see the same machine load). It
also measures libpcap's ``bpf_filter()`` on the same records (see
:mod:`bpfjit.baselines`) and prints the ratios. The full suite with statistics is ``python -m pytest
bench --benchmark-only`` (bench/README.md).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import click
import numpy as np

from . import InputProblem

DEFAULT_BACKENDS = ("llvm", "numba")
CHECK_RECORDS = 256


@dataclass
class Cell:
    filter: str
    backend: str
    mix: str
    records: int
    seconds: float | None = None          # best evaluate_batch wall time
    error: str | None = None
    checked: bool | None = None           # agreed with the reference on CHECK_RECORDS records
    stream_ratio: float | None = None     # paired with memory streaming of the same array
    pcap_rate: float | None = None        # libpcap records/s on this filter and mix
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.records / self.seconds if self.seconds else None

    @property
    def ns_per_record(self) -> float | None:
        return self.seconds * 1e9 / self.records if self.seconds else None

    @property
    def pcap_ratio(self) -> float | None:
        return self.rate / self.pcap_rate if self.rate and self.pcap_rate else None


def backend_problem(name: str) -> str | None:
    """None if backend ``name`` can run here, else why not (any import/setup failure counts)."""
    from .. import backends as backends_mod
    try:
        backend = backends_mod.get(name)
        return getattr(backend, "unavailable_reason", lambda: None)()
    except Exception as exc:  # noqa: BLE001 - a half-installed backend is just unavailable
        return f"{type(exc).__name__}: {exc}"


def _split(values: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for v in values:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return list(dict.fromkeys(out))


def time_batch(subject, recs: np.ndarray, out: np.ndarray, seconds: float, threads: int = 1,
               stream=None) -> tuple[float, float | None]:
    """(best wall time of ``subject.evaluate_batch`` over ``recs``, paired streaming ratio).

    Runs for about ``seconds`` (at least once). With ``stream`` (a function
    returning the seconds of one memory-streaming pass over ``recs``) every
    filter pass follows a streaming pass, and the ratio returned is the median
    of their time ratios: both saw the same momentary machine load.
    """
    best = float("inf")
    ratios = []
    deadline = time.perf_counter() + seconds
    while True:
        s = stream() if stream is not None else None
        t0 = time.perf_counter()
        subject.evaluate_batch(recs, out, threads=threads)
        t1 = time.perf_counter()
        best = min(best, t1 - t0)
        if s is not None:
            ratios.append(s / (t1 - t0))
        if t1 >= deadline:
            return best, (statistics.median(ratios) if ratios else None)


def _fmt_rate(rate: float | None) -> str:
    if rate is None:
        return "—"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= div:
            return f"{rate / div:.3g} {unit}"
    return f"{rate:.3g}"


def _fmt(value: float | None, suffix: str = "") -> str:
    """Three significant digits, no exponent for the usual range."""
    if value is None:
        return "—"
    return (f"{value:.0f}" if value >= 100 else f"{value:.3g}") + suffix


def run_matrix(filters: list[str], backends: list[str], mixes: list[str], size: int,
               reference_size: int, seconds: float, threads: int, seed: int,
               baselines: bool, log=lambda msg: None) -> tuple[list[Cell], dict]:
    """Measure every (filter, backend, mix) cell; also the baselines. Returns (cells, info)."""
    from .. import backends as backends_mod
    from .. import baselines as base
    from .. import workloads
    from ..errors import BpfjitError

    avail = {b: backend_problem(b) for b in backends}
    info: dict = {"stream": {}, "pcap": {}, "notes": []}
    stream_why = pcap_why = None
    if baselines:
        stream_why, pcap_why = base.stream_reason(), base.pcap_reason()
        for what, why in (("memory streaming", stream_why), ("libpcap", pcap_why)):
            if why:
                info["notes"].append(f"{what} baseline unavailable: {why}")
    cells: list[Cell] = []
    record_cache: dict[tuple[str, str, int], np.ndarray] = {}
    for fname in filters:
        try:
            programs, arch = workloads.corpus_filter(fname)
        except (FileNotFoundError, OSError, ValueError) as exc:
            raise InputProblem(str(exc)) from None
        for mix in mixes:
            full = record_cache.get((mix, arch, size))
            if full is None:
                log(f"generating {size:,} {mix} records for {arch}")
                full = record_cache[(mix, arch, size)] = workloads.mix(mix, size, seed, arch)
            try:
                check_ref = workloads.compile_subject(programs, "reference", arch)
            except BpfjitError as exc:
                raise InputProblem(f"{fname}: {exc}") from None
            expected = check_ref.evaluate_batch(full[:CHECK_RECORDS])
            if baselines and not stream_why and (mix, arch, size) not in info["stream"]:
                info["stream"][(mix, arch, size)] = base.stream_seconds(full, repeat=5)
            pcap_rate = None
            if baselines and not pcap_why:
                n_pcap = min(size, 200_000)
                image = base.pcap_image(full[:n_pcap], arch)
                pcap_rate = n_pcap / base.pcap_seconds(programs, image, repeat=2)
                info["pcap"][(fname, mix)] = pcap_rate
            for bname in backends:
                n = min(size, reference_size) if bname == "reference" else size
                cell = Cell(fname, bname, mix, n, pcap_rate=pcap_rate)
                cells.append(cell)
                if avail.get(bname):
                    cell.error = "unavailable"
                    note = f"backend {bname} unavailable: {avail[bname]}"
                    if note not in info["notes"]:
                        info["notes"].append(note)
                    continue
                recs = full[:n]
                try:
                    log(f"{fname} / {bname} / {mix}: compiling")
                    subject = workloads.compile_subject(programs, bname, arch)
                    got = subject.evaluate_batch(full[:CHECK_RECORDS])
                    cell.checked = bool(np.array_equal(got, expected))
                    out = np.zeros(n, dtype=np.uint32)
                    out.fill(1)                  # touch every page before timing (VM page faults)
                    log(f"{fname} / {bname} / {mix}: timing {n:,} records")
                    stream = None
                    if baselines and not stream_why:
                        stream = lambda r=recs: base.stream_seconds(r, repeat=1)  # noqa: E731
                    cell.seconds, cell.stream_ratio = time_batch(subject, recs, out, seconds,
                                                                 threads, stream)
                except Exception as exc:  # noqa: BLE001 - one broken cell must not end the run
                    cell.error = f"{type(exc).__name__}"
                    info["notes"].append(f"{fname} / {bname} / {mix}: {type(exc).__name__}: "
                                         f"{exc}")
                    continue
    return cells, info


def render_table(cells: list[Cell], info: dict, threads: int, width: int = 120):
    """The summary table; narrower than 100 columns, one table per filter (a title, not a column)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table

    caption = ("vs stream: share of the memory-streaming rate of the same array (median over "
               "back-to-back pairs of passes; above 100 % when the filter reads fewer bytes of "
               "each record than the streaming pass, which reads all 64); vs pcap: times "
               "libpcap's bpf_filter(); = ref: the first "
               f"{CHECK_RECORDS} results equal the reference interpreter's")
    narrow = width < 100
    groups = ([[c for c in cells if c.filter == f] for f in dict.fromkeys(c.filter for c in cells)]
              if narrow else [cells])
    tables = []
    for n, group in enumerate(groups):
        title = (f"{group[0].filter}: evaluate_batch of {group[0].records:,} records, "
                 f"{threads} thread(s), best run" if narrow
                 else f"bpfjit bench — evaluate_batch, {threads} thread(s), best run")
        table = Table(title=title, caption=caption if n == len(groups) - 1 else None,
                      box=box.SIMPLE_HEAD if narrow else box.HEAVY_HEAD)
        columns = [] if narrow else [("filter", "left")]
        columns += [("backend", "left"), ("mix", "left")]
        columns += [] if narrow else [("records", "right")]
        columns += [("records/s", "right"), ("ns/rec", "right"), ("vs stream", "right"),
                    ("vs pcap", "right"), ("= ref", "center")]
        for col, justify in columns:    # numbers never wrap
            table.add_column(col, justify=justify, no_wrap=col != "filter", overflow="fold")
        for c in group:
            ok = {True: "[green]yes[/]", False: "[red bold]NO[/]", None: "—"}[c.checked]
            head = [c.backend, c.mix] if narrow else [c.filter, c.backend, c.mix, f"{c.records:,}"]
            if c.error:
                table.add_row(*head, f"[dim]{c.error}[/]", "", "", "", ok)
                continue
            table.add_row(*head, _fmt_rate(c.rate),
                          _fmt(c.ns_per_record),
                          _fmt(c.stream_ratio and 100 * c.stream_ratio, " %"),
                          _fmt(c.pcap_ratio, "×"), ok)
        tables.append(table)
    return tables[0] if len(tables) == 1 else Group(*tables)


def json_rows(cells: list[Cell], info: dict, threads: int) -> dict:
    """The summary as plain data: one row per (filter, backend, mix), plus the baselines."""
    return {
        "threads": threads,
        "rows": [{"filter": c.filter, "backend": c.backend, "mix": c.mix, "records": c.records,
                  "records_per_second": c.rate, "ns_per_record": c.ns_per_record,
                  "vs_stream": c.stream_ratio, "vs_pcap": c.pcap_ratio,
                  "equals_reference": c.checked, "error": c.error} for c in cells],
        "memory_streaming": [{"mix": mix, "arch": arch, "records": n,
                              "records_per_second": n / secs}
                             for (mix, arch, n), secs in info["stream"].items()],
        "libpcap": [{"filter": f, "mix": mix, "records_per_second": rate}
                    for (f, mix), rate in info["pcap"].items()],
        "notes": list(info["notes"]),
    }


def render_plot(cells: list[Cell], info: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mixes = list(dict.fromkeys(c.mix for c in cells))
    filters = list(dict.fromkeys(c.filter for c in cells))
    backends = list(dict.fromkeys(c.backend for c in cells))
    series = backends + ["libpcap"]
    fig, axes = plt.subplots(len(mixes), 1, figsize=(max(7, 1.6 * len(filters) + 3),
                                                     3.6 * len(mixes)), squeeze=False)
    width = 0.8 / len(series)
    colors = plt.get_cmap("tab10")
    for ax, mix in zip(axes[:, 0], mixes):
        x = np.arange(len(filters))
        for s, name in enumerate(series):
            vals = []
            for fname in filters:
                if name == "libpcap":
                    vals.append(info["pcap"].get((fname, mix)) or 0)
                else:
                    hit = [c for c in cells if (c.filter, c.backend, c.mix) == (fname, name, mix)]
                    vals.append((hit[0].rate or 0) if hit else 0)
            if not any(vals):
                continue                                   # unavailable here: no empty bars
            bars = ax.bar(x + (s - (len(series) - 1) / 2) * width, np.array(vals) / 1e6, width,
                          label=name, color="0.55" if name == "libpcap" else colors(s))
            ax.bar_label(bars, labels=[_fmt_rate(v) if v else "" for v in vals], fontsize=7,
                         padding=1)
        stream_rate = [n / v for (m, _, n), v in info["stream"].items() if m == mix]
        if stream_rate:
            ax.axhline(max(stream_rate) / 1e6, color="k", linestyle="--", linewidth=1,
                       label="memory streaming")
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        ax.set_ylim(low, high * 4)                          # room for the bar labels
        ax.set_ylabel("M records/s (log)")
        ax.set_title(f"record mix: {mix}")
        ax.set_xticks(x)
        ax.set_xticklabels(filters, rotation=15, ha="right", fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("bpfjit evaluate_batch throughput (higher is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@click.command()
@click.option("--filters", "-f", multiple=True, default=("docker-default.x86_64",),
              show_default=True,
              help="Corpus filter names, a stack name (systemd-nspawn-252), 'all' for the "
                   "benchmark set, or filter file paths; comma-separated or repeated.")
@click.option("--backends", "-b", multiple=True, default=DEFAULT_BACKENDS, show_default=True,
              help="Backends (llvm, numba, reference); comma-separated or repeated.")
@click.option("--mix", "-m", "mixes", multiple=True, default=("realistic",), show_default=True,
              help="Record mixes: realistic, uniform_nr, arg_dependent, or 'all'.")
@click.option("--size", "-n", default=1_000_000, show_default=True, type=click.IntRange(1),
              help="Records per batch.")
@click.option("--reference-size", default=10_000, show_default=True, type=click.IntRange(1),
              help="Records per batch for the (slow, pure Python) reference backend.")
@click.option("--seconds", "-s", default=1.0, show_default=True, type=click.FloatRange(0),
              help="Time spent repeating each batch (the best run counts).")
@click.option("--threads", "-t", default=1, show_default=True, type=click.IntRange(1),
              help="evaluate_batch(threads=...).")
@click.option("--seed", default=0, show_default=True, type=int, help="Record mix seed.")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Measure memory streaming and libpcap on the same records.")
@click.option("--plot", type=click.Path(dir_okay=False, writable=True),
              help="Write a PNG bar chart of records/s here.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary rows as JSON on stdout (progress goes to stderr).")
def command(filters, backends, mixes, size, reference_size, seconds, threads, seed, baselines,
            plot, as_json) -> None:
    """Measure evaluate_batch throughput: filters × backends × record mixes, with baselines.

    \b
    Examples:
      bpfjit bench
      bpfjit bench -f all -b llvm,numba -m all -n 10000000 --plot bench.png
      bpfjit bench -f systemd-nspawn-252 -b reference -n 1000 --no-baselines
    """
    from rich.console import Console

    from .. import backends as backends_mod
    from .. import workloads

    console = Console(stderr=as_json)
    flist = _split(filters)
    if "all" in flist:
        flist = list(workloads.BENCH_FILTERS) + [f for f in flist if f != "all"]
        flist = list(dict.fromkeys(flist))
    blist = _split(backends)
    for b in blist:
        if b not in backends_mod.REGISTRY or b == "kernel":
            raise InputProblem(f"--backends: unknown backend {b!r}; choose from llvm, numba, "
                               f"reference")
    mlist = _split(mixes)
    if "all" in mlist:
        mlist = list(workloads.MIXES)
    for m in mlist:
        if m not in workloads.MIXES:
            raise InputProblem(f"--mix: unknown record mix {m!r}; choose from "
                               f"{', '.join(workloads.MIXES)}, all")
    if not flist or not blist or not mlist:
        raise InputProblem("nothing to measure: give at least one filter, backend and mix")

    with console.status("measuring...") as status:
        cells, info = run_matrix(flist, blist, mlist, size, reference_size, seconds, threads,
                                 seed, baselines, log=lambda msg: status.update(msg))
    if as_json:
        import json
        click.echo(json.dumps(json_rows(cells, info, threads), indent=1))
    else:
        console.print(render_table(cells, info, threads, console.width))
    for (mix, arch, n), secs in info["stream"].items():
        console.print(f"memory streaming ({mix}, {arch}, {n:,} records = {n * 64 / 1e6:.0f} MB, "
                      f"C loop reading all 64 bytes of each record): {_fmt_rate(n / secs)} "
                      f"records/s, {n * 64 / secs / 1e9:.1f} GB/s")
    for (fname, mix), rate in info["pcap"].items():
        console.print(f"libpcap bpf_filter ({fname}, {mix}): {_fmt_rate(rate)} records/s, "
                      f"{1e9 / rate:.1f} ns/record")
    for note in info["notes"]:
        console.print(f"[yellow]{note}[/]")
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise InputProblem("--plot needs matplotlib (pip install 'bpfjit[bench]')") from None
        try:
            render_plot(cells, info, plot)
        except OSError as exc:
            raise InputProblem(f"--plot {plot}: cannot write: {exc.strerror or exc}") from None
        console.print(f"plot written to {plot}")
    if any(c.checked is False for c in cells):
        raise click.ClickException("a backend disagreed with the reference interpreter "
                                   "(see the '= ref' column)")
