"""Columnar record datasets: syscall records as Arrow record batches and Parquet files.

The schema (one row per system call; column names are the ``seccomp_data`` fields)::

    nr                   int32    required  (any integer type in -2**31 .. 2**32-1 is accepted)
    arch                 uint32   AUDIT_ARCH value, or a string column of arch names
                                  ("x86_64"); when absent, the ``arch`` argument (default: the
                                  filter's layout)
    instruction_pointer  uint64   default 0
    args0 .. args5       uint64   six columns (missing ones are 0), OR
    args                 fixed_size_list<uint64>[6]  (a list<uint64> of length 6 per row works too)
    host, pid, tid, time, comm, ...  pass-through: ignored by evaluation, kept for grouping

64-bit fields accept int64 too (two's complement, as the kernel stores them);
``nr`` accepts uint32 (two's complement of the kernel's ``int nr``). No
evaluated column may hold nulls. A bad schema raises
:class:`~bpfjit.errors.SchemaError` naming the column (and the file).

A third, packed form holds whole records: ``seccomp_data`` as
``fixed_size_binary(64)`` with ``struct seccomp_data`` in little-endian
order. It converts to and from :data:`~bpfjit.SECCOMP_DATA` without copying
(on a little-endian host). The columnar forms read every Arrow column buffer
without copying (numpy views) and interleave them into 64-byte records in
one pass, the layout the native code reads; nothing goes through Python
objects.

Parquet files are evaluated row group by row group (:func:`iter_parquet`):
memory stays bounded by a row group, whatever the file size.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import SchemaError, UnknownArchError
from .seccomp import layouts, syscalls
from .seccomp.actions import Action
from .seccomp.records import SECCOMP_DATA

if TYPE_CHECKING:  # pragma: no cover
    from .filter import Filter
    from .stack import Stack

ARGS = tuple(f"args{i}" for i in range(6))
ARGS_LIST = pa.list_(pa.uint64(), 6)
PACKED = "seccomp_data"
#: the evaluated columns of the columnar form (args as six columns)
SCHEMA = pa.schema([("nr", pa.int32()), ("arch", pa.uint32()),
                    ("instruction_pointer", pa.uint64())] + [(a, pa.uint64()) for a in ARGS])
#: the same with ``args`` as one fixed-size list column
SCHEMA_LIST = pa.schema([("nr", pa.int32()), ("arch", pa.uint32()),
                         ("instruction_pointer", pa.uint64()), ("args", ARGS_LIST)])
#: the packed form: whole little-endian ``struct seccomp_data`` records
SCHEMA_PACKED = pa.schema([(PACKED, pa.binary(64))])
#: recommended types of the usual pass-through columns (not enforced)
PASS_THROUGH = pa.schema([("host", pa.string()), ("pid", pa.int64()), ("tid", pa.int64()),
                          ("time", pa.timestamp("ns", tz="UTC")), ("comm", pa.string())])
EVALUATED = frozenset(("nr", "arch", "instruction_pointer", "args", PACKED) + ARGS)
#: rows per batch read from Parquet (a row group is read whole when smaller)
BATCH_ROWS = 1 << 20
#: rows interleaved into records and evaluated at a time: 1 MiB, inside a core's L2 cache
#: (interleaving a whole million-row batch first costs 2-3x more in memory traffic)
CHUNK_ROWS = 1 << 14


# --- schema checks ------------------------------------------------------------------------
def _integer(field: pa.Field, source: str | None) -> None:
    if not pa.types.is_integer(field.type):
        raise SchemaError(f"column {field.name!r} has type {field.type}; expected an integer "
                          f"type ({_expected(field.name)})", column=field.name, source=source)


def _expected(name: str) -> str:
    if name == "nr":
        return "int32"
    if name == "arch":
        return "uint32 AUDIT_ARCH values or arch names"
    return "uint64"


def check_schema(schema: pa.Schema, *, need_arch: bool = True, source: str | None = None) -> None:
    """Raise SchemaError unless ``schema`` holds evaluable syscall records (see the module doc)."""
    names = schema.names
    dup = {n for n in names if names.count(n) > 1 and n in EVALUATED}
    if dup:
        raise SchemaError(f"column {sorted(dup)[0]!r} appears more than once",
                          column=sorted(dup)[0], source=source)
    if PACKED in names:
        field = schema.field(PACKED)
        if field.type != pa.binary(64):
            raise SchemaError(f"column {PACKED!r} has type {field.type}; expected "
                              f"fixed_size_binary[64] (struct seccomp_data, little-endian)",
                              column=PACKED, source=source)
        others = [n for n in names if n in EVALUATED and n != PACKED]
        if others:
            raise SchemaError(f"column {others[0]!r} and the packed {PACKED!r} column both give "
                              f"record fields; keep one form", column=others[0], source=source)
        return
    if "nr" not in names:
        raise SchemaError(f"no column 'nr' (the syscall number); columns are "
                          f"{', '.join(names) or 'none'}", column="nr", source=source)
    _integer(schema.field("nr"), source)
    if "arch" in names:
        field = schema.field("arch")
        if not (pa.types.is_integer(field.type) or pa.types.is_string(field.type)
                or pa.types.is_large_string(field.type)
                or (pa.types.is_dictionary(field.type)
                    and pa.types.is_string(field.type.value_type))):
            raise SchemaError(f"column 'arch' has type {field.type}; expected uint32 AUDIT_ARCH "
                              f"values or arch names", column="arch", source=source)
    elif need_arch:
        raise SchemaError("no column 'arch' and no arch given (pass arch='x86_64' or add an "
                          "'arch' column)", column="arch", source=source)
    if "instruction_pointer" in names:
        _integer(schema.field("instruction_pointer"), source)
    split = [a for a in ARGS if a in names]
    if "args" in names:
        if split:
            raise SchemaError(f"columns 'args' and {split[0]!r} both give arguments; use six "
                              f"columns args0..args5 or one fixed-size list 'args'",
                              column=split[0], source=source)
        t = schema.field("args").type
        ok = ((pa.types.is_fixed_size_list(t) and t.list_size == 6) or pa.types.is_list(t)
              or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type)
        if not ok:
            raise SchemaError(f"column 'args' has type {t}; expected fixed_size_list<uint64>[6]",
                              column="args", source=source)
    for a in split:
        _integer(schema.field(a), source)


# --- Arrow -> SECCOMP_DATA ---------------------------------------------------------------
def _no_nulls(arr: pa.Array, name: str, source: str | None) -> None:
    if arr.null_count:
        first = int(pc.index(pc.is_null(arr), True).as_py())
        raise SchemaError(f"column {name!r} has {arr.null_count} null values (first at row "
                          f"{first})", column=name, source=source)


def _ints(arr: pa.Array, name: str, bits: int, source: str | None,
          signed_low: int | None = None) -> np.ndarray:
    """An integer column as a numpy view (a copy only when narrowing), range-checked."""
    _no_nulls(arr, name, source)
    values = arr.to_numpy(zero_copy_only=True)
    width = values.dtype.itemsize * 8
    low = -(1 << (bits - 1)) if signed_low is None else signed_low
    if width > bits or (values.dtype.kind == "u" and width == bits and signed_low is not None):
        if len(values):
            lo, hi = int(values.min()), int(values.max())
            if lo < low or hi > (1 << bits) - 1:
                bad = lo if lo < low else hi
                row = int(np.argmax(values == bad))
                raise SchemaError(f"column {name!r} row {row}: {bad} does not fit {bits} bits",
                                  column=name, source=source)
    return values


def _arches(arr: pa.Array, source: str | None) -> np.ndarray:
    if pa.types.is_integer(arr.type):
        return _ints(arr, "arch", 32, source)
    _no_nulls(arr, "arch", source)
    enc = arr if pa.types.is_dictionary(arr.type) else pc.dictionary_encode(arr)
    try:
        values = np.array([layouts.layout(str(name)).audit_arch
                           for name in enc.dictionary.to_pylist()], dtype=np.uint32)
    except UnknownArchError as exc:
        raise SchemaError(f"column 'arch': {exc}", column="arch", source=source) from None
    return values[enc.indices.to_numpy(zero_copy_only=False)]


def _args(arr: pa.Array, source: str | None) -> np.ndarray:
    """The ``args`` list column as an (n, 6) array (a view of the list values when possible)."""
    _no_nulls(arr, "args", source)
    if not pa.types.is_fixed_size_list(arr.type):
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != 6).any():
            row = int(np.argmax(lengths != 6))
            raise SchemaError(f"column 'args' row {row} has {lengths[row]} values; expected 6",
                              column="args", source=source)
    flat = arr.flatten()
    _no_nulls(flat, "args", source)
    return flat.to_numpy(zero_copy_only=True).reshape(len(arr), 6)


def _batch(data: "pa.RecordBatch | pa.Table") -> pa.RecordBatch:
    if isinstance(data, pa.Table):
        return data.combine_chunks().to_batches()[0] if data.num_rows else \
            pa.RecordBatch.from_pylist([], schema=data.schema)
    if not isinstance(data, pa.RecordBatch):
        raise TypeError(f"expected a pyarrow RecordBatch or Table, not {type(data).__name__}")
    return data


class Scratch(threading.local):
    """A per-thread records buffer reused from batch to batch.

    A fresh 64 MB array per million rows costs more in page faults than the
    conversion itself; streaming evaluation fills the same pages again.
    """

    def __init__(self) -> None:
        self._buf = np.empty(0, dtype=SECCOMP_DATA)

    def records(self, n: int) -> np.ndarray:
        if len(self._buf) < n:
            self._buf = np.empty(n, dtype=SECCOMP_DATA)
        return self._buf[:n]


SCRATCH = Scratch()


class _Columns:
    """The evaluated columns of a batch, checked once, as numpy views (or constants)."""

    __slots__ = ("n", "nr", "arch", "ip", "args", "packed")

    def __init__(self, batch: pa.RecordBatch, arch: "str | int | None",
                 source: str | None) -> None:
        check_schema(batch.schema, need_arch=arch is None, source=source)
        self.n = n = batch.num_rows
        names = batch.schema.names
        col = batch.column
        self.packed: np.ndarray | None = None
        if PACKED in names:
            packed = col(names.index(PACKED))
            _no_nulls(packed, PACKED, source)
            recs = np.frombuffer(packed.buffers()[1], dtype=SECCOMP_DATA.newbyteorder("<"),
                                 count=n, offset=packed.offset * 64)
            self.packed = recs.view(SECCOMP_DATA) if sys.byteorder == "little" else \
                recs.astype(SECCOMP_DATA)
            return
        self.nr = _ints(col(names.index("nr")), "nr", 32, source, signed_low=-(1 << 31))
        self.arch: "np.ndarray | int" = (_arches(col(names.index("arch")), source)
                                         if "arch" in names else _audit_arch(arch))
        self.ip: "np.ndarray | int" = (
            _ints(col(names.index("instruction_pointer")), "instruction_pointer", 64, source)
            if "instruction_pointer" in names else 0)
        self.args: "np.ndarray | list" = (
            _args(col(names.index("args")), source) if "args" in names else
            [_ints(col(names.index(a)), a, 64, source) if a in names else 0 for a in ARGS])

    def fill(self, recs: np.ndarray, start: int) -> np.ndarray:
        """Rows ``start .. start + len(recs)`` interleaved into ``recs`` (returned)."""
        if self.packed is not None:
            recs[:] = self.packed[start:start + len(recs)]
            return recs
        stop = start + len(recs)

        def part(values):
            return values[start:stop] if isinstance(values, np.ndarray) else values
        recs["nr"] = self.nr[start:stop]
        recs["arch"] = part(self.arch)
        recs["instruction_pointer"] = part(self.ip)
        if isinstance(self.args, np.ndarray):
            recs["args"] = self.args[start:stop]
        else:
            args = recs["args"]
            for i, values in enumerate(self.args):
                args[:, i] = part(values)
        return recs


def to_records(data: "pa.RecordBatch | pa.Table", *, arch: "str | int | None" = None,
               source: str | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """The rows of ``data`` as a ``SECCOMP_DATA`` array (see the module doc for the schema).

    ``arch``: the AUDIT_ARCH (name or value) of rows when there is no ``arch`` column.
    ``out``: a ``SECCOMP_DATA`` array of at least as many rows to fill (its
    first rows are returned). The packed form comes back as a read-only view of
    the Arrow buffer (no copy).
    """
    cols = _Columns(_batch(data), arch, source)
    if cols.packed is not None:
        return cols.packed
    n = cols.n
    if out is not None:
        if out.dtype != SECCOMP_DATA or out.ndim != 1 or len(out) < n:
            raise ValueError(f"out must be a 1-D SECCOMP_DATA array of at least {n} rows")
        recs = out[:n]
    else:
        recs = np.empty(n, dtype=SECCOMP_DATA)
    return cols.fill(recs, 0)


def _audit_arch(arch: "str | int") -> int:
    if isinstance(arch, str):
        return layouts.layout(arch).audit_arch
    return int(arch) & 0xFFFFFFFF


# --- SECCOMP_DATA -> Arrow ---------------------------------------------------------------
def from_records(records: np.ndarray, *, args: str = "columns",
                 extra: "Mapping[str, Any] | None" = None) -> pa.RecordBatch:
    """A record batch of ``records`` (``SECCOMP_DATA``): ``args`` = ``columns`` (args0..args5),
    ``list`` (fixed-size list) or ``packed`` (one ``seccomp_data`` column; no copy);
    ``extra``: pass-through columns (name -> array-like of the same length)."""
    from .seccomp.records import validate
    recs = validate(records)
    n = len(recs)
    if args == "packed":
        le = recs if sys.byteorder == "little" else recs.astype(SECCOMP_DATA.newbyteorder("<"))
        arrays = [pa.FixedSizeBinaryArray.from_buffers(pa.binary(64), n,
                                                       [None, pa.py_buffer(le)])]
        names = [PACKED]
    else:
        arrays = [pa.array(np.ascontiguousarray(recs["nr"])),
                  pa.array(np.ascontiguousarray(recs["arch"])),
                  pa.array(np.ascontiguousarray(recs["instruction_pointer"]))]
        names = ["nr", "arch", "instruction_pointer"]
        if args == "columns":
            arrays += [pa.array(np.ascontiguousarray(recs["args"][:, i])) for i in range(6)]
            names += list(ARGS)
        elif args == "list":
            flat = pa.array(np.ascontiguousarray(recs["args"]).reshape(-1))
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, 6))
            names.append("args")
        else:
            raise ValueError(f"args must be 'columns', 'list' or 'packed', not {args!r}")
    for name, values in (extra or {}).items():
        if name in names:
            raise SchemaError(f"pass-through column {name!r} clashes with a record field",
                              column=name)
        arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
        if len(arr) != n:
            raise SchemaError(f"pass-through column {name!r} has {len(arr)} rows; the records "
                              f"have {n}", column=name)
        arrays.append(arr)
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)


# --- evaluation ---------------------------------------------------------------------------
def evaluate(subject: "Filter | Stack", data: "pa.RecordBatch | pa.Table", *,
             arch: "str | int | None" = None, match: bool = False, source: str | None = None
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """(retvals uint32, matching filter int32 or None) for the rows of ``data``.

    ``match``: also the index of the stack's filter that decided (0 = oldest;
    always 0 for a single filter). ``arch`` defaults to the subject's layout
    when the data has no ``arch`` column. The columns are interleaved into
    records and evaluated :data:`CHUNK_ROWS` rows at a time in a per-thread
    buffer that stays in the core's cache (the whole batch is never copied).
    """
    cols = _Columns(_batch(data), arch if arch is not None else subject.layout.audit_arch,
                    source)
    if cols.packed is not None:
        return _run(subject, cols.packed, match)
    n = cols.n
    if n <= CHUNK_ROWS:
        return _run(subject, cols.fill(SCRATCH.records(n), 0), match)
    retvals = np.empty(n, dtype=np.uint32)
    matched = np.empty(n, dtype=np.int32) if match else None
    buf = SCRATCH.records(CHUNK_ROWS)
    for start in range(0, n, CHUNK_ROWS):
        recs = cols.fill(buf[:min(CHUNK_ROWS, n - start)], start)
        r, m = _run(subject, recs, match)
        retvals[start:start + len(recs)] = r
        if matched is not None:
            matched[start:start + len(recs)] = m
    return retvals, matched


def _run(subject: "Filter | Stack", recs: np.ndarray,
         match: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    if hasattr(subject, "evaluate_batch_matching"):
        return subject.evaluate_batch_matching(recs, match=match)
    out = subject.evaluate_batch(recs)
    return out, (np.zeros(len(out), dtype=np.int32) if match else None)


def iter_parquet(path: "str | Path", *, batch_rows: int = BATCH_ROWS,
                 columns: "Iterable[str] | None" = None, need_arch: bool = True
                 ) -> Iterator[pa.RecordBatch]:
    """Record batches of a Parquet file, row group by row group (never the whole file at once).

    The schema is checked before any data is read. ``columns``: pass-through
    columns to keep besides the evaluated ones (default: all).
    """
    import pyarrow.parquet as pq
    source = str(path)
    try:
        pf = pq.ParquetFile(source)
        schema = pf.schema_arrow
        if "host" in schema.names and pa.types.is_string(schema.field("host").type):
            pf = pq.ParquetFile(source, read_dictionary=["host"])   # hosts repeat: keep codes
    except (OSError, pa.ArrowInvalid) as exc:
        raise SchemaError(f"not a readable Parquet file ({exc})", source=source) from None
    check_schema(schema, need_arch=need_arch, source=source)
    keep = None
    if columns is not None:
        wanted = set(columns)
        keep = [n for n in schema.names if n in EVALUATED or n in wanted]
    for index in range(pf.metadata.num_row_groups):    # one row group in memory at a time
        table = pf.read_row_group(index, columns=keep, use_threads=False)
        for start in range(0, table.num_rows, batch_rows):
            yield _batch(table.slice(start, batch_rows))
        del table


def _codes(arr: "pa.Array | None", n: int) -> tuple[np.ndarray | None, list]:
    """(int codes or None when all rows are equal, the distinct values) of a group column."""
    if arr is None:
        return None, [None]
    if not pa.types.is_dictionary(arr.type):
        if pa.types.is_integer(arr.type):
            values = arr.to_numpy(zero_copy_only=False)
            if n and values.min() == values.max():
                return None, [values[0].item()]
        elif n and pc.all(pc.equal(arr, arr[0])).as_py():
            return None, [arr[0].as_py()]       # one host per file: no hashing of strings
        arr = pc.dictionary_encode(arr)
    uniq = arr.dictionary.to_pylist()
    codes = arr.indices.to_numpy(zero_copy_only=False)
    if len(uniq) == 1 or (n and codes.min() == codes.max()):
        return None, [uniq[int(codes[0])] if n else None]
    return codes, uniq


def _tally(retvals: np.ndarray, nr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(retval uint32, nr int64, count int64) of each distinct (retval, nr) pair.

    Usually few distinct return values and a narrow range of numbers: then the
    pairs are counted with one ``bincount`` over (retval code, nr - min); else
    one hash count of ``retval << 32 | nr``.
    """
    nr64 = nr.astype(np.int64)
    if len(nr64):
        lo, hi = int(nr64.min()), int(nr64.max())
        enc = pc.dictionary_encode(pa.array(retvals, type=pa.uint32()))
        values = enc.dictionary.to_numpy(zero_copy_only=False)
        span = hi - lo + 1
        if len(values) * span <= 1 << 22:
            code = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64) * span + (nr64 - lo)
            tally = np.bincount(code, minlength=len(values) * span)
            hit = np.flatnonzero(tally)
            return values[hit // span].astype(np.uint32), hit % span + lo, tally[hit]
    key = (retvals.astype(np.uint64) << np.uint64(32)) | (nr64.astype(np.uint64)
                                                         & np.uint64(0xFFFFFFFF))
    vc = pc.value_counts(pa.array(key))
    keys = vc.field("values").to_numpy(zero_copy_only=False)
    return ((keys >> np.uint64(32)).astype(np.uint32),
            (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.int32).astype(np.int64),
            vc.field("counts").to_numpy(zero_copy_only=False).astype(np.int64))


def counts(data: "pa.RecordBatch | pa.Table", retvals: np.ndarray,
           records: np.ndarray | None = None) -> pa.Table:
    """Rows per (retval, nr, arch, host) as an Arrow table ``retval, nr, arch, host, count``.

    ``arch`` is null where the data has no arch column, ``host`` "" where it
    has no host column. One count of the (retval, nr) pairs (:func:`_tally`) per
    distinct (arch, host) of the batch (usually one).
    """
    batch = _batch(data)
    names = batch.schema.names
    n = batch.num_rows
    if records is None and "nr" not in names:
        records = to_records(batch, arch=0)
    nr = (records["nr"] if records is not None
          else _ints(batch.column(names.index("nr")), "nr", 32, None, signed_low=-(1 << 31)))
    arch_col = batch.column(names.index("arch")) if "arch" in names else None
    host_col = batch.column(names.index("host")) if "host" in names else None
    if host_col is not None and not (pa.types.is_string(host_col.type)
                                     or pa.types.is_dictionary(host_col.type)):
        host_col = host_col.cast(pa.string())
    arch_codes, arch_values = _codes(arch_col, n)
    host_codes, host_values = _codes(host_col, n)
    if arch_codes is None and host_codes is None:
        groups = [(None, arch_values[0], host_values[0])]
    else:
        a = arch_codes if arch_codes is not None else np.zeros(n, np.int64)
        h = host_codes if host_codes is not None else np.zeros(n, np.int64)
        g = a.astype(np.int64) * len(host_values) + h
        groups = [(g == code, arch_values[code // len(host_values)],
                   host_values[code % len(host_values)]) for code in np.unique(g)]
    parts = []
    for mask, arch, host in groups:
        rv, nrs, cnt = _tally(retvals if mask is None else retvals[mask],
                              nr if mask is None else nr[mask])
        m = len(cnt)
        parts.append(pa.table({
            "retval": pa.array(rv, type=pa.uint32()),
            "nr": pa.array(nrs, type=pa.int64()),
            "arch": pa.array([arch] * m, type=pa.int64()) if not isinstance(arch, str)
            else pa.array([_audit_arch(arch)] * m, type=pa.int64()),
            "host": pa.array(["" if host is None else str(host)] * m, type=pa.string()),
            "count": pa.array(cnt, type=pa.int64())}))
    return pa.concat_tables(parts)


def merge_counts(tables: "Iterable[pa.Table]") -> pa.Table:
    """Sum the ``count`` of equal keys over several :func:`counts` tables."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pa.table({"retval": pa.array([], pa.uint32()), "nr": pa.array([], pa.int64()),
                         "arch": pa.array([], pa.int64()), "host": pa.array([], pa.string()),
                         "count": pa.array([], pa.int64())})
    table = pa.concat_tables(tables)
    keys = [n for n in table.column_names if n != "count"]
    out = table.group_by(keys).aggregate([("count", "sum")])
    return out.rename_columns(keys + ["count"])


def label(table: pa.Table, default_arch: int) -> "Any":
    """A pandas DataFrame ``action, syscall, host, count`` from a :func:`counts` table: the
    action as ``str(Action)`` (``ERRNO(1)``), the syscall by name for its arch (else the number)."""
    import pandas as pd
    if not table.num_rows:
        return pd.DataFrame({"action": pd.Series([], dtype=object),
                             "syscall": pd.Series([], dtype=object),
                             "host": pd.Series([], dtype=object),
                             "count": pd.Series([], dtype="int64")})
    frame = table.to_pandas()
    arch = frame["arch"].fillna(default_arch).astype("int64")
    names: dict[tuple[int, int], str] = {}
    for a, nr in set(zip(arch.tolist(), frame["nr"].tolist())):
        found = layouts.by_audit_arch(a)
        name = syscalls.name(found[0].syscall_abi, nr) if found else None
        names[(a, nr)] = name or str(nr)
    actions = {v: str(Action.from_value(int(v))) for v in frame["retval"].unique().tolist()}
    out = pd.DataFrame({"action": frame["retval"].map(actions),
                        "syscall": [names[k] for k in zip(arch.tolist(), frame["nr"].tolist())],
                        "host": frame["host"].astype(object),
                        "count": frame["count"].astype("int64")})
    out = out.groupby(["action", "syscall", "host"], as_index=False, sort=True)["count"].sum()
    return out.sort_values(["count", "action", "syscall", "host"],
                           ascending=[False, True, True, True], ignore_index=True)


def evaluate_parquet(subject: "Filter | Stack", paths: "str | Path | Iterable[str | Path]", *,
                     arch: "str | int | None" = None, batch_rows: int = BATCH_ROWS) -> "Any":
    """Counts per action x syscall x host over Parquet files, streamed row group by row group,
    in this process: a pandas DataFrame ``action, syscall, host, count`` (host "" when absent)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    default = _audit_arch(arch) if arch is not None else subject.layout.audit_arch
    parts = []
    for path in paths:
        for batch in iter_parquet(path, batch_rows=batch_rows, columns=("host",),
                                  need_arch=False):
            retvals, _ = evaluate(subject, batch, arch=default, source=str(path))
            parts.append(counts(batch, retvals))
        parts = [merge_counts(parts)]
    return label(merge_counts(parts), default)
