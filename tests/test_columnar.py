"""Columnar datasets: the Arrow schema (three forms), conversion to SECCOMP_DATA, Parquet
streaming, schema errors naming the column, counts against the reference interpreter."""
from __future__ import annotations

import collections
import re

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import bpfjit
from bpfjit import columnar, workloads
from bpfjit.errors import SchemaError
from bpfjit.seccomp import syscalls

DOCKER = workloads.corpus_filter("docker-default.x86_64")[0][0]
X86_64 = 0xC000003E


def _records(n: int = 3000, seed: int = 4) -> np.ndarray:
    recs = np.concatenate([workloads.mix(m, n // 3, seed=seed) for m in workloads.MIXES])
    recs["args"][::11, 2] = 0xFFFF_FFFF_FFFF_FFFF
    recs["nr"][::13] = -1
    return recs


def _expected_counts(recs: np.ndarray, hosts: list[str]) -> dict[tuple[str, str, str], int]:
    """(action, syscall, host) -> count, from the reference interpreter."""
    ref = bpfjit.compile(DOCKER, backend="reference", arch="x86_64")
    got = ref.evaluate_batch(recs)
    out: collections.Counter = collections.Counter()
    for value, nr, host in zip(got.tolist(), recs["nr"].tolist(), hosts):
        name = syscalls.name("x86_64", nr) or str(nr)
        out[(str(bpfjit.Action.from_value(value)), name, host)] += 1
    return dict(out)


def _as_dict(frame) -> dict[tuple[str, str, str], int]:
    assert list(frame.columns) == ["action", "syscall", "host", "count"]
    return {(a, s, h): int(c) for a, s, h, c in frame.itertuples(index=False)}


@pytest.mark.parametrize("form", ["columns", "list", "packed"])
def test_records_round_trip_through_each_arrow_form(form):
    recs = _records()
    batch = columnar.from_records(recs, args=form, extra={"host": ["h"] * len(recs)})
    back = columnar.to_records(batch)
    assert back.dtype == bpfjit.SECCOMP_DATA
    np.testing.assert_array_equal(back, recs)


def test_the_packed_form_is_zero_copy_both_ways():
    recs = _records()
    batch = columnar.from_records(recs, args="packed")
    col = batch.column(0)
    assert col.buffers()[1].address == recs.ctypes.data
    back = columnar.to_records(batch)
    assert back.ctypes.data == recs.ctypes.data


def test_columns_are_read_as_views_of_the_arrow_buffers():
    arr = pa.array(np.arange(10, dtype=np.uint64))
    view = columnar._ints(arr, "args0", 64, None)
    assert view.ctypes.data == arr.buffers()[1].address


def test_integer_types_and_arch_names_are_accepted():
    n = 4
    batch = pa.record_batch({
        "nr": pa.array([0, 59, 0xFFFFFFFF, 231], pa.uint32()),          # u32: two's complement
        "arch": pa.array(["x86_64", "x86_64", "i386", "aarch64"]),
        "instruction_pointer": pa.array([-1, 0, 1, 2], pa.int64()),
        "args": pa.array([[1, 2, 3, 4, 5, 6]] * n, pa.list_(pa.int64())),
        "pid": pa.array(range(n), pa.int32())})
    recs = columnar.to_records(batch)
    assert recs["nr"].tolist() == [0, 59, -1, 231]
    assert recs["arch"].tolist() == [X86_64, X86_64, 0x40000003, 0xC00000B7]
    assert recs["instruction_pointer"][0] == 0xFFFF_FFFF_FFFF_FFFF
    assert recs["args"][3].tolist() == [1, 2, 3, 4, 5, 6]


def test_missing_arch_and_args_take_the_given_arch_and_zero():
    batch = pa.record_batch({"nr": pa.array([1, 2], pa.int32()),
                             "args1": pa.array([7, 8], pa.uint64())})
    recs = columnar.to_records(batch, arch="x86_64")
    assert recs["arch"].tolist() == [X86_64, X86_64]
    assert recs["args"].tolist() == [[0, 7, 0, 0, 0, 0], [0, 8, 0, 0, 0, 0]]


@pytest.mark.parametrize("columns, column, words", [
    ({"syscall": pa.array([1], pa.int32())}, "nr", "no column 'nr'"),
    ({"nr": pa.array([1.5])}, "nr", "type double"),
    ({"nr": pa.array([1], pa.int32()), "arch": pa.array([1], pa.uint32()),
      "args3": pa.array([1.0])}, "args3", "type double"),
    ({"nr": pa.array([1, None], pa.int32()), "arch": pa.array([1, 1], pa.uint32())},
     "nr", "1 null values (first at row 1)"),
    ({"nr": pa.array([1, 1 << 33], pa.int64()), "arch": pa.array([1, 1], pa.uint32())},
     "nr", "row 1: 8589934592 does not fit 32 bits"),
    ({"nr": pa.array([1], pa.int32()), "arch": pa.array(["vax"])}, "arch", "vax"),
    ({"nr": pa.array([1], pa.int32()), "arch": pa.array([1.0])}, "arch", "type double"),
    ({"nr": pa.array([1], pa.int32())}, "arch", "no column 'arch'"),
    ({"nr": pa.array([1], pa.int32()), "arch": pa.array([1], pa.uint32()),
      "args": pa.array([[1, 2]], pa.list_(pa.uint64()))}, "args", "row 0 has 2 values"),
    ({"nr": pa.array([1], pa.int32()), "arch": pa.array([1], pa.uint32()),
      "args": pa.array([[1] * 6], pa.list_(pa.uint64())), "args0": pa.array([1], pa.uint64())},
     "args0", "both give arguments"),
    ({"seccomp_data": pa.array([b"x" * 8], pa.binary(8))}, "seccomp_data", "fixed_size_binary"),
])
def test_a_bad_schema_names_the_column(columns, column, words):
    with pytest.raises(SchemaError, match=re.escape(words)) as info:
        columnar.to_records(pa.record_batch(columns), source="data.parquet")
    assert info.value.column == column
    assert str(info.value).startswith("data.parquet: ")


def _write(path, recs, hosts, row_group_size, form="columns"):
    batch = columnar.from_records(recs, args=form, extra={"host": hosts})
    pq.write_table(pa.Table.from_batches([batch]), path, row_group_size=row_group_size)


def test_parquet_is_streamed_row_group_by_row_group(tmp_path):
    recs = _records(6000)
    _write(tmp_path / "a.parquet", recs, ["h"] * len(recs), row_group_size=1000)
    sizes = [b.num_rows for b in columnar.iter_parquet(tmp_path / "a.parquet")]
    assert sum(sizes) == len(recs) and max(sizes) <= 1000


def test_parquet_counts_equal_the_reference_interpreters(tmp_path):
    recs = _records(3000)
    hosts = ["alpha" if i % 3 else "beta" for i in range(len(recs))]
    _write(tmp_path / "a.parquet", recs[:1500], hosts[:1500], 500, "columns")
    _write(tmp_path / "b.parquet", recs[1500:], hosts[1500:], 400, "list")
    f = bpfjit.compile(DOCKER, backend="llvm", arch="x86_64")
    got = columnar.evaluate_parquet(f, [tmp_path / "a.parquet", tmp_path / "b.parquet"],
                                    batch_rows=300)
    assert _as_dict(got) == _expected_counts(recs, hosts)


def test_a_file_without_host_counts_under_the_empty_host(tmp_path):
    recs = _records(600)
    batch = columnar.from_records(recs)
    pq.write_table(pa.Table.from_batches([batch]), tmp_path / "a.parquet")
    f = bpfjit.compile(DOCKER, backend="llvm", arch="x86_64")
    got = columnar.evaluate_parquet(f, tmp_path / "a.parquet")
    assert _as_dict(got) == _expected_counts(recs, [""] * len(recs))


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    f = bpfjit.compile(DOCKER, backend="llvm", arch="x86_64")
    with pytest.raises(SchemaError, match="bad.parquet: not a readable Parquet file"):
        columnar.evaluate_parquet(f, bad)


@pytest.mark.parametrize("form", ["columns", "list", "packed"])
def test_chunked_evaluation_crosses_chunk_boundaries_exactly(form):
    """Batches longer than CHUNK_ROWS are interleaved and evaluated chunk by chunk: every
    row's verdict (and matching filter, for a stack) equals the whole-array evaluation."""
    n = 2 * columnar.CHUNK_ROWS + 1237
    recs = _records(n, seed=9)
    recs["arch"][::17] = 0x40000003            # i386 rows: a different path of the filter
    batch = columnar.from_records(recs, args=form)
    f = bpfjit.compile(DOCKER, arch="x86_64")
    got, match = columnar.evaluate(f, batch)
    assert match is None and got.dtype == np.uint32 and len(got) == len(recs)
    np.testing.assert_array_equal(got, f.evaluate_batch(recs))
    ref = bpfjit.compile(DOCKER, backend="reference", arch="x86_64")
    for i in list(range(0, n, 997)) + [columnar.CHUNK_ROWS - 1, columnar.CHUNK_ROWS, n - 1]:
        assert got[i] == ref.evaluate_batch(recs[i:i + 1])[0], i
    stack = bpfjit.Stack([DOCKER, DOCKER], arch="x86_64")
    got2, match2 = columnar.evaluate(stack, batch, match=True)
    want2, wmatch2 = stack.evaluate_batch_matching(recs, match=True)
    np.testing.assert_array_equal(got2, want2)
    np.testing.assert_array_equal(match2, wmatch2)


@pytest.mark.parametrize("spread", ["narrow", "wide"])
def test_counts_tally_every_pair_whatever_the_range_of_numbers(spread):
    """Both ways of counting (bincount over a narrow nr range, hash count otherwise)."""
    rng = np.random.default_rng(3)
    n = 20_000
    if spread == "narrow":
        nr = rng.integers(-1, 500, n).astype(np.int32)
    else:
        nr = rng.integers(-(1 << 31), (1 << 31) - 1, n, dtype=np.int64).astype(np.int32)
        nr[::3] = rng.integers(0, 40, len(nr[::3]))
    retvals = rng.choice(np.array([0x7FFF0000, 0x50001, 0, 0x80000000, 0xFFFFFFFF],
                                  dtype=np.uint32), n)
    batch = pa.record_batch({"nr": pa.array(nr), "host": pa.array(["a", "b"] * (n // 2))})
    table = columnar.counts(batch, retvals)
    got = {(r, s, h): c for r, s, h, c in zip(*(table.column(k).to_pylist()
                                                 for k in ("retval", "nr", "host", "count")))}
    want = collections.Counter(zip(retvals.tolist(), nr.tolist(), ["a", "b"] * (n // 2)))
    assert got == dict(want)
