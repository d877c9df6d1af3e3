"""Dask: evaluate a filter or a stack over Dask DataFrames and Parquet datasets, on any cluster.

The subject travels to the workers as *program bytes plus a layout name*
(:class:`Shipped`, a few hundred bytes, picklable); each worker process
compiles it once (through the on-disk code cache, so usually no LLVM work at
all) and keeps it for every later partition. Partitions go through
:mod:`bpfjit.columnar` (schema checks, zero-copy column reads) and the
native batch code.

- :func:`evaluate`: a Dask DataFrame plus ``retval``, ``action`` and (stacks)
  ``filter`` columns, lazily (``map_partitions``);
- :func:`count`: counts per action x syscall x host of a Dask DataFrame;
- :func:`replay_parquet`: the same over Parquet files, on an in-process
  ``LocalCluster`` by default or on ``scheduler="tcp://host:port"``; the
  ``bpfjit replay`` CLI verb calls it for ``.parquet`` paths. Its tasks
  (``Client.map``, a few consecutive row groups each) read one row group at a
  time with Arrow on the worker and return an Arrow count table, rather than going through
  ``dd.read_parquet`` and pandas: the pandas round trip of the records cost
  3.4x the in-process time on the bench dataset, and importing
  ``dask.dataframe`` costs each process about a second (``bench/README.md``).
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from . import columnar
from .errors import InputError, SchemaError
from .filter import Filter, compile
from .program import Program
from .seccomp import layouts
from .stack import Stack

if TYPE_CHECKING:  # pragma: no cover
    import dask.dataframe as dd
    import pandas as pd

COUNT_COLUMNS = ("action", "syscall", "host", "count")


@dataclass(frozen=True)
class Shipped:
    """What a worker needs to rebuild a Filter or Stack: raw programs (oldest first), layout, backend."""

    programs: tuple[bytes, ...]
    arch: str
    backend: str = "auto"

    def build(self) -> "Filter | Stack":
        """The compiled subject, once per worker process (then from memory)."""
        with _LOCK:
            found = _COMPILED.get(self)
            if found is None:
                progs = [Program.from_bytes(p, "little") for p in self.programs]
                if len(progs) == 1:
                    found = compile(progs[0], backend=self.backend, arch=self.arch)
                else:
                    found = Stack(progs, backend=self.backend, arch=self.arch)
                _COMPILED[self] = found
            return found


_LOCK = threading.Lock()
_COMPILED: dict[Shipped, "Filter | Stack"] = {}


def ship(subject: "Filter | Stack | Program | Sequence[Program]", *,
         arch: "str | None" = None) -> Shipped:
    """The :class:`Shipped` form of a compiled Filter/Stack (or of programs, compiled for ``arch``)."""
    if isinstance(subject, Shipped):
        return subject
    if isinstance(subject, Filter):
        return Shipped((subject.program.to_bytes("little"),), subject.layout.name,
                       subject.backend)
    if isinstance(subject, Stack):
        backends = {f.backend for f in subject.filters}
        return Shipped(tuple(f.program.to_bytes("little") for f in subject.filters),
                       subject.layout.name, backends.pop() if len(backends) == 1 else "auto")
    if isinstance(subject, Program):
        subject = [subject]
    if isinstance(subject, (list, tuple)) and subject and \
            all(isinstance(p, Program) for p in subject):
        return Shipped(tuple(p.to_bytes("little") for p in subject),
                       layouts.layout(arch).name)
    raise TypeError(f"expected a bpfjit Filter, Stack or Program(s), not {type(subject).__name__}")


# --- partition functions (run on the workers) ----------------------------------------------
def _batch(frame: "pd.DataFrame"):
    import pyarrow as pa
    return pa.RecordBatch.from_pandas(frame, preserve_index=False)


def _evaluate_partition(frame: "pd.DataFrame", shipped: Shipped, arch: int,
                        stack: bool) -> "pd.DataFrame":
    from .seccomp.actions import Action
    subject = shipped.build()
    retvals, match = columnar.evaluate(subject, _batch(frame), arch=arch, match=stack)
    out = frame.copy(deep=False)
    out["retval"] = retvals
    labels = {v: str(Action.from_value(int(v))) for v in np.unique(retvals).tolist()}
    out["action"] = [labels[v] for v in retvals.tolist()] if len(retvals) else []
    if stack:
        out["filter"] = match
    return out


def _count_partition(frame: "pd.DataFrame", shipped: Shipped, arch: int) -> "pd.DataFrame":
    subject = shipped.build()
    batch = _batch(frame)
    retvals, _ = columnar.evaluate(subject, batch, arch=arch)
    return columnar.counts(batch, retvals).to_pandas()


def _count_meta() -> "pd.DataFrame":
    import pandas as pd
    return pd.DataFrame({"retval": pd.Series([], dtype="uint32"),
                         "nr": pd.Series([], dtype="int64"),
                         "arch": pd.Series([], dtype="int64"),
                         "host": pd.Series([], dtype=object),
                         "count": pd.Series([], dtype="int64")})


def _check_frame(frame: "dd.DataFrame", arch_given: bool) -> None:
    import pyarrow as pa
    meta = frame._meta
    try:
        schema = pa.Schema.from_pandas(meta, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise SchemaError(f"the DataFrame's columns cannot be read as Arrow: {exc}") from None
    columnar.check_schema(schema, need_arch=not arch_given)


def _arch_value(subject: "Filter | Stack", arch: "str | int | None") -> int:
    if arch is None:
        return subject.layout.audit_arch
    return columnar._audit_arch(arch)


def evaluate(subject: "Filter | Stack", frame: "dd.DataFrame", *,
             arch: "str | int | None" = None) -> "dd.DataFrame":
    """``frame`` with ``retval`` (uint32), ``action`` (``str(Action)``) and, for a stack,
    ``filter`` (int32, 0 = oldest) columns added; lazy (``map_partitions``).

    ``arch``: the AUDIT_ARCH (name or value) of rows when there is no ``arch`` column
    (default: the subject's layout).
    """
    _check_frame(frame, True)
    shipped = ship(subject)
    stack = isinstance(subject, Stack)
    meta = frame._meta.copy()
    meta["retval"] = np.zeros(0, dtype=np.uint32)
    meta["action"] = np.zeros(0, dtype=object)
    if stack:
        meta["filter"] = np.zeros(0, dtype=np.int32)
    return frame.map_partitions(_evaluate_partition, shipped, _arch_value(subject, arch), stack,
                                meta=meta)


def partition_counts(subject: "Filter | Stack", frame: "dd.DataFrame", *,
                     arch: "str | int | None" = None) -> "dd.DataFrame":
    """Per partition: rows per (retval, nr, arch, host), lazily (``map_partitions``)."""
    _check_frame(frame, True)
    return frame.map_partitions(_count_partition, ship(subject), _arch_value(subject, arch),
                                meta=_count_meta())


def count(subject: "Filter | Stack", frame: "dd.DataFrame", *,
          arch: "str | int | None" = None) -> "pd.DataFrame":
    """Counts per action x syscall x host (``action, syscall, host, count``) of ``frame``,
    computed on the current Dask client (or Dask's default scheduler)."""
    parts = partition_counts(subject, frame, arch=arch)
    totals = parts.groupby(["retval", "nr", "arch", "host"], dropna=False)["count"].sum()
    return _label(totals.compute().reset_index(), _arch_value(subject, arch))


def _label(frame: "pd.DataFrame", default_arch: int) -> "pd.DataFrame":
    import pyarrow as pa
    table = pa.Table.from_pandas(frame.astype({"host": object}), preserve_index=False)
    return columnar.label(columnar.merge_counts([table]), default_arch)


# --- clusters ------------------------------------------------------------------------------
@contextmanager
def client(scheduler: "str | None" = None, *, n_workers: int | None = None,
           processes: bool = True) -> Iterator[Any]:
    """A ``distributed.Client``: on ``scheduler`` (``tcp://host:port``), else on a new
    in-process ``LocalCluster`` of ``n_workers`` (default: the CPU count) one-thread workers,
    closed on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - the extra is not installed
        raise InputError("bpfjit.dask needs dask[distributed] (pip install 'bpfjit[dask]')") \
            from exc
    if scheduler is not None:
        if not isinstance(scheduler, str) or "://" not in scheduler:
            raise InputError(f"scheduler must be an address such as tcp://127.0.0.1:8786, "
                             f"not {scheduler!r}")
        try:
            c = Client(scheduler, timeout=30, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            yield c
        finally:
            c.close()
        return
    n = n_workers or os.cpu_count() or 1
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                      dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster, set_as_default=False) as c:
        yield c


def _parquet_paths(paths: "str | Path | Iterable[str | Path]") -> list[str]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(str(q) for q in p.rglob("*.parquet"))
            if not found:
                raise InputError(f"{p}: a directory with no .parquet files")
            out.extend(found)
        elif not p.is_file():
            raise InputError(f"{p}: no such file")
        else:
            out.append(str(p))
    if not out:
        raise InputError("no Parquet files given")
    return out


def _dataset_pieces(paths: list[str], need_arch: bool) -> list[tuple[str, int, int, tuple]]:
    """Check every file's schema (naming the file); (path, row group, rows, columns) for each
    row group."""
    import pyarrow.parquet as pq
    pieces = []
    for path in paths:
        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds
            raise SchemaError(f"not a readable Parquet file ({exc})", source=path) from None
        schema = pf.schema_arrow
        columnar.check_schema(schema, need_arch=need_arch, source=path)
        columns = tuple(n for n in schema.names if n in columnar.EVALUATED or n == "host")
        meta = pf.metadata
        pieces.extend((path, i, meta.row_group(i).num_rows, columns)
                      for i in range(meta.num_row_groups))
    return pieces


#: rows a task aims at: fewer, longer tasks cost the scheduler less (Dask's advice is tasks of
#: well over 100 ms; a million rows take about that) while keeping
TASK_ROWS = 4 << 20
#: ... at least this many tasks per worker, so that workers finish together
TASKS_PER_WORKER = 8


def _tasks(pieces: list[tuple[str, int, int, tuple]], workers: int
           ) -> list[tuple[str, tuple[int, ...], tuple]]:
    """Consecutive row groups of one file grouped into tasks: (path, row groups, columns)."""
    total = sum(p[2] for p in pieces)
    target = max(1, min(TASK_ROWS, total // max(1, workers * TASKS_PER_WORKER)))
    tasks: list[tuple[str, tuple[int, ...], tuple]] = []
    path, groups, rows, columns = None, [], 0, ()
    for p, index, n, cols in pieces:
        if groups and (p != path or rows + n > target):
            tasks.append((path, tuple(groups), columns))
            groups, rows = [], 0
        path, columns = p, cols
        groups.append(index)
        rows += n
    if groups:
        tasks.append((path, tuple(groups), columns))
    return tasks


_FILES: dict[tuple, Any] = {}        # open Parquet files of this worker (metadata parsed once)


def _count_row_groups(task: tuple[str, tuple[int, ...], tuple], shipped: Shipped,
                      arch: int) -> Any:
    """Read a task's row groups with Arrow one at a time (hosts as dictionary codes), evaluate,
    count: an Arrow table (:func:`bpfjit.columnar.counts`), so neither side goes through pandas."""
    import pyarrow.parquet as pq
    path, groups, columns = task
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)    # a rewritten file is opened afresh
    with _LOCK:
        pf = _FILES.get(key)
        if pf is None:
            if len(_FILES) > 64:
                _FILES.clear()
            pf = _FILES[key] = pq.ParquetFile(path, read_dictionary=["host"]
                                              if "host" in columns else None)
    subject = shipped.build()
    parts = []
    for index in groups:
        batch = columnar._batch(pf.read_row_group(index, columns=list(columns),
                                                  use_threads=False))
        retvals, _ = columnar.evaluate(subject, batch, arch=arch, source=path)
        parts.append(columnar.counts(batch, retvals))
        del batch
    return columnar.merge_counts(parts) if len(parts) > 1 else parts[0]


def replay_parquet(filter_or_stack: "Filter | Stack | Program | Sequence[Program]",
                   paths: "str | Path | Iterable[str | Path]", *, arch: "str | None" = None,
                   scheduler: "str | None" = None, progress: bool = False,
                   n_workers: int | None = None, processes: bool = True) -> "pd.DataFrame":
    """Counts per action x syscall x host over Parquet files, evaluated on Dask workers.

    Returns a pandas DataFrame ``action, syscall, host, count`` (host "" when
    the data has none), largest counts first. Every file's schema is checked
    before anything runs; then each task (a few consecutive row groups) reads them with Arrow,
    evaluates and counts on a worker (``Client.map``), and the client merges
    the small count tables as they arrive, so memory stays bounded by a row
    group per worker. ``arch``: the layout to compile
    programs for and the AUDIT_ARCH of rows without an ``arch`` column
    (default: the filter's layout). ``scheduler``: ``tcp://host:port`` of a
    running cluster; default a new ``LocalCluster`` (``n_workers``,
    ``processes``). ``progress``: partitions done, on stderr.
    """
    import pandas as pd
    import pyarrow as pa
    from distributed import as_completed
    if isinstance(filter_or_stack, (Filter, Stack)):
        subject = filter_or_stack
    else:
        shipped = ship(filter_or_stack, arch=arch)
        subject = shipped.build()
    files = _parquet_paths(paths)
    default = _arch_value(subject, arch)
    pieces = _dataset_pieces(files, need_arch=False)
    if not pieces:
        return columnar.label(columnar.merge_counts([]), default)
    # tasks of a few row groups, read by Arrow on the worker, counted there; the small count
    # tables come back as Arrow (no dask.dataframe graph, no pandas on the workers)
    total: list[pa.Table] = []
    with client(scheduler, n_workers=n_workers, processes=processes) as c:
        tasks = _tasks(pieces, max(1, len(c.scheduler_info().get("workers", ())) or 1))
        futures = c.map(_count_row_groups, tasks, shipped=ship(subject), arch=default,
                        key=[f"bpfjit-count-{i}-{os.getpid()}-{id(tasks)}"
                             for i in range(len(tasks))])
        done = 0
        for future in as_completed(futures, loop=c.loop):
            total.append(future.result())
            future.release()
            done += 1
            if len(total) > 64:
                total = [columnar.merge_counts(total)]
            if progress:
                print(f"\rbpfjit replay: {done}/{len(futures)} tasks", end="",
                      file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)
    result = columnar.label(columnar.merge_counts(total), default)
    return result if isinstance(result, pd.DataFrame) else pd.DataFrame(result)
