"""``bpfjit replay``: output, exit status, --json, --trace, bad input and the Parquet dispatch."""
from __future__ import annotations

import json
import sys
import types

from collections import namedtuple

import pytest

import bpfjit
from bpfjit.cli import main
from bpfjit.replay import replay
from corpora import REAL_FILTERS

DOCKER = str(REAL_FILTERS / "docker-default.x86_64.bpf")


class FakeFrame:
    """The part of the pandas DataFrame replay_parquet returns that the verb uses."""

    def __init__(self, columns: dict[str, list]):
        self.columns = columns

    def itertuples(self, index: bool = False):
        row = namedtuple("Row", list(self.columns))
        return (row(*values) for values in zip(*self.columns.values()))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_json_counts_equal_the_reference_interpreters(capsys, data):
    traces = [str(data / "threads.strace"), str(data / "pipeline.raw.strace")]
    rc, out, err = run(capsys, "replay", DOCKER, *traces, "--json")
    got = json.loads(out)                                   # stdout is one JSON object
    ref = replay(bpfjit.compile(bpfjit.load(DOCKER), backend="reference", arch="x86_64"), traces)
    assert got["actions"] == dict(ref.actions()) and got["calls"] == ref.calls > 1000
    assert rc == (1 if ref.would_not_run else 0)


def test_refused_calls_are_listed_with_their_first_line_and_path(capsys, data, tmp_path):
    asm = tmp_path / "f.asm"
    asm.write_text("ld [0]\njeq #41, deny\nret #0x7fff0000\ndeny:\nret #0x50001\n")   # socket
    rc, out, _ = run(capsys, "replay", str(asm), str(data / "files_and_sockets.strace"),
                     "--trace")
    assert rc == 1
    line = next(no for no, text in enumerate(
        (data / "files_and_sockets.strace").read_text().splitlines(), 1) if " socket(" in text)
    assert f"files_and_sockets.strace:{line}: socket -> ERRNO(1) (3 calls)" in out
    assert "jeq #41" in out and "ret ERRNO(1)" in out
    rc, out, _ = run(capsys, "replay", str(asm), str(data / "files_and_sockets.strace"),
                     "--json", "--trace")
    refused = json.loads(out)["refused"]
    assert [(r["syscall"], r["first_line"], r["count"]) for r in refused] == [("socket", line, 3)]
    assert [s["index"] for s in refused[0]["trace"]] == [0, 1, 3]


def test_all_allowed_exits_0(capsys, data, tmp_path):
    asm = tmp_path / "allow.asm"
    asm.write_text("ret #0x7fff0000\n")
    rc, out, _ = run(capsys, "replay", str(asm), str(data / "sh.strace"))
    assert rc == 0 and "ALLOW" in out


def test_bad_lines_are_counted_with_line_numbers_never_a_traceback(capsys, tmp_path):
    trace = tmp_path / "bad.strace"
    trace.write_bytes(b"1 openat(AT_FDCWD, \"/x\", O_RDONLY) = 3\n\xff\xfe garbage\n"
                      b"1 frobnicate(1, 2) = 0\n1 close(3\n1 close(3) = 0\n"
                      b"1 write(1, \"" + b"a" * (3 << 20) + b"\", 3) = 3\n1 close(1) = 0\n")
    rc, out, err = run(capsys, "replay", "--json", DOCKER, str(trace))
    got = json.loads(out)
    assert got["calls"] == 3 and rc == 0 and got["lines"] == 7
    assert [(p["line"], p["reason"]) for p in got["problems"]["examples"]] == [
        (2, "not a strace line"), (3, "unknown syscall 'frobnicate' on x86_64"),
        (4, "truncated close(...): no closing parenthesis"),
        (6, "truncated write(...): no closing parenthesis")]          # cut at 1 MiB
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["/nonexistent.strace"], "no such trace file"),
    (["x.parquet"], "bpfjit.dask"),
])
def test_unreadable_input_exits_2(capsys, argv, message, monkeypatch):
    monkeypatch.setitem(sys.modules, "bpfjit.dask", None)      # as if not installed
    rc, out, err = run(capsys, "replay", DOCKER, *argv)
    assert rc == 2 and message in err and out == ""


def test_parquet_datasets_go_to_bpfjit_dask(capsys, monkeypatch, tmp_path):
    seen = {}

    def replay_parquet(target, paths, arch=None, scheduler=None, progress=False):
        seen.update(target=target, paths=paths, arch=arch, scheduler=scheduler)
        return FakeFrame({"action": ["ALLOW", "KILL_PROCESS"],
                                      "syscall": ["read", "ptrace"], "host": ["a", "b"],
                                      "count": [10, 1]})

    monkeypatch.setitem(sys.modules, "bpfjit.dask",
                        types.SimpleNamespace(replay_parquet=replay_parquet))
    dataset = tmp_path / "calls"
    dataset.mkdir()
    rc, out, _ = run(capsys, "replay", DOCKER, str(dataset), "--scheduler", "threads",
                     "--arch", "x86_64", "--json")
    assert rc == 1 and json.loads(out)["calls"] == 11
    assert seen["paths"] == [str(dataset)] and seen["scheduler"] == "threads"
    assert isinstance(seen["target"], bpfjit.Filter)
