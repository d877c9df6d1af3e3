"""bpfjit.dask: filters and stacks over Dask DataFrames and Parquet datasets, on a LocalCluster
and on real dask-scheduler / dask-worker processes; results equal in-process evaluation and
the reference interpreter."""
from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

import bpfjit
import bpfjit_reference
from bpfjit import columnar, workloads
from bpfjit import dask as bdask
from bpfjit.errors import InputError, SchemaError
from bpfjit.seccomp import syscalls

ROOT = Path(__file__).resolve().parent.parent
# dask 2026.8 calls reset_index(inplace=True) while reading Parquet (its code, not ours)
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")
DOCKER = workloads.corpus_filter("docker-default.x86_64")[0][0]
HOSTS = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three files (one host each; args as columns in two, as a list in one), 2,400 records."""
    root = tmp_path_factory.mktemp("parquet")
    parts = []
    for i, host in enumerate(HOSTS):
        recs = workloads.mix(workloads.MIXES[i], 800, seed=i)
        recs["nr"][::17] = -1
        batch = columnar.from_records(recs, args="list" if i == 1 else "columns",
                                      extra={"host": [host] * len(recs)})
        pq.write_table(pa.Table.from_batches([batch]), root / f"{host}.parquet",
                       row_group_size=300)
        parts.append((recs, host))
    return root, parts


def _reference_counts(programs, parts) -> dict:
    refs = [bpfjit.compile(p, backend="reference", arch="x86_64") for p in programs]
    out: collections.Counter = collections.Counter()
    for recs, host in parts:
        singles = [r.evaluate_batch(recs) for r in refs]
        for i, nr in enumerate(recs["nr"].tolist()):
            value = bpfjit_reference.run_stack([int(s[i]) for s in singles])
            out[(str(bpfjit.Action.from_value(value)), syscalls.name("x86_64", nr) or str(nr),
                 host)] += 1
    return dict(out)


def _as_dict(frame) -> dict:
    assert list(frame.columns) == list(bdask.COUNT_COLUMNS)
    return {(a, s, h): int(c) for a, s, h, c in frame.itertuples(index=False)}


def test_replay_parquet_on_a_two_worker_local_cluster_equals_the_reference(dataset):
    root, parts = dataset
    f = bpfjit.compile(DOCKER, backend="llvm", arch="x86_64")
    got = bdask.replay_parquet(f, root, n_workers=2, processes=False)
    assert _as_dict(got) == _reference_counts([DOCKER], parts)
    inprocess = columnar.evaluate_parquet(f, sorted(root.glob("*.parquet")))
    pd.testing.assert_frame_equal(got, inprocess)


def test_evaluate_adds_retval_action_and_matching_filter_columns_for_a_stack():
    programs, arch = workloads.corpus_filter("systemd-nspawn-252")
    stack = bpfjit.Stack(programs, backend="llvm", arch=arch)
    recs = workloads.mix("arg_dependent", 1200, seed=9)
    recs["arch"][::5] = 0x40000003
    frame = pd.DataFrame({"nr": recs["nr"], "arch": recs["arch"],
                          "instruction_pointer": recs["instruction_pointer"],
                          **{f"args{i}": recs["args"][:, i] for i in range(6)},
                          "host": "h1"})
    ddf = dd.from_pandas(frame, npartitions=3)
    import dask
    with dask.config.set(scheduler="threads"):
        out = bdask.evaluate(stack, ddf).compute()
    want, match = stack.evaluate_batch_matching(recs)
    np.testing.assert_array_equal(out["retval"].to_numpy(), want)
    np.testing.assert_array_equal(out["filter"].to_numpy(), match)
    assert out["action"].tolist() == [str(bpfjit.Action.from_value(int(v))) for v in want]
    singles = [bpfjit.compile(p, backend="reference", arch=arch).evaluate_batch(recs[:200])
               for p in programs]
    assert [bpfjit_reference.run_stack([int(s[i]) for s in singles]) for i in range(200)] == \
        out["retval"].tolist()[:200]


def test_count_over_a_dask_dataframe_and_a_missing_column_is_named():
    recs = workloads.mix("realistic", 900, seed=2)
    frame = pd.DataFrame({"nr": recs["nr"], **{f"args{i}": recs["args"][:, i] for i in range(6)}})
    ddf = dd.from_pandas(frame, npartitions=2)
    f = bpfjit.compile(DOCKER, backend="llvm", arch="x86_64")
    import dask
    with dask.config.set(scheduler="sync"):
        got = bdask.count(f, ddf)               # no arch column: the filter's layout
    recs["instruction_pointer"] = 0
    assert _as_dict(got) == _reference_counts([DOCKER], [(recs, "")])
    with pytest.raises(SchemaError, match="no column 'nr'"):
        bdask.evaluate(f, ddf.rename(columns={"nr": "syscall"}))


def test_a_bad_file_in_a_dataset_is_named_before_anything_runs(tmp_path, dataset):
    root, _ = dataset
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"nr": pa.array([1.5]), "host": ["x"]}), bad)
    f = bpfjit.compile(DOCKER, backend="llvm", arch="x86_64")
    with pytest.raises(SchemaError, match=r"bad.parquet: column 'nr' has type double"):
        bdask.replay_parquet(f, [root / "alpha.parquet", bad], processes=False, n_workers=1)
    with pytest.raises(InputError, match="no such file"):
        bdask.replay_parquet(f, [tmp_path / "missing.parquet"], processes=False, n_workers=1)
    with pytest.raises(InputError, match="scheduler must be an address"):
        bdask.replay_parquet(f, root, scheduler="localhost")


def test_shipping_sends_program_bytes_and_a_layout_name():
    import pickle
    programs, arch = workloads.corpus_filter("sniffglue-0.15.0")
    stack = bpfjit.Stack(programs, backend="llvm", arch=arch)
    shipped = bdask.ship(stack)
    assert shipped.arch == "x86_64" and len(shipped.programs) == 2
    assert len(pickle.dumps(shipped)) < 4096
    again = pickle.loads(pickle.dumps(shipped)).build()
    assert again is pickle.loads(pickle.dumps(shipped)).build()       # compiled once per process
    recs = workloads.mix("uniform_nr", 5000, seed=1)
    np.testing.assert_array_equal(again.evaluate_batch(recs), stack.evaluate_batch(recs))


# --- a real cluster: dask-scheduler and dask-worker processes on 127.0.0.1 -----------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture
def real_cluster(tmp_path):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "reference")]))
    common = dict(env=env, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
                  stderr=open(tmp_path / "cluster.log", "w"))
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], **common)]
    address = f"tcp://127.0.0.1:{port}"
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                       address, "--nworkers", "2", "--nthreads", "1",
                                       "--host", "127.0.0.1", "--no-dashboard",
                                       "--local-directory", str(tmp_path)], **common))
        from distributed import Client
        deadline = time.monotonic() + 60
        with Client(address, timeout=60, set_as_default=False) as c:
            while len(c.scheduler_info()["workers"]) < 2:
                assert time.monotonic() < deadline, (tmp_path / "cluster.log").read_text()
                time.sleep(0.2)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_the_same_job_through_real_scheduler_and_worker_processes(dataset, real_cluster):
    root, parts = dataset
    programs, arch = workloads.corpus_filter("sniffglue-0.15.0")
    stack = bpfjit.Stack(programs, backend="llvm", arch=arch)
    got = bdask.replay_parquet(stack, root, scheduler=real_cluster)
    assert _as_dict(got) == _reference_counts(programs, parts)
    f = bpfjit.compile(DOCKER, backend="llvm", arch="x86_64")
    pd.testing.assert_frame_equal(bdask.replay_parquet(f, root, scheduler=real_cluster),
                                  columnar.evaluate_parquet(f, sorted(root.glob("*.parquet"))))
