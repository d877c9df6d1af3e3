"""Benchmark workloads: seeded record mixes, corpus filter sets, baselines and `bpfjit bench`."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import bpfjit
from bpfjit import workloads
from bpfjit.seccomp import syscalls

ROOT = Path(__file__).resolve().parent.parent
ARCHES = ("x86_64", "x86", "x32", "aarch64", "riscv64", "s390x", "ppc64le", "arm", "mips")


@pytest.mark.parametrize("mix", workloads.MIXES)
@pytest.mark.parametrize("arch", ARCHES)
def test_mix_is_deterministic_typed_and_on_its_arch(mix, arch):
    a = workloads.mix(mix, 3000, seed=7, arch=arch)
    b = workloads.mix(mix, 3000, seed=7, arch=arch)
    c = workloads.mix(mix, 3000, seed=8, arch=arch)
    assert a.dtype == bpfjit.SECCOMP_DATA and a.shape == (3000,) and a.flags.c_contiguous
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    lay = bpfjit.layout(arch)
    assert (a["arch"] == lay.audit_arch).all()
    known = set(syscalls.table(lay.syscall_abi).values())
    assert set(int(x) & 0xFFFFFFFF for x in np.unique(a["nr"])) <= known
    if lay.bits == 32 or arch == "x32":     # 32-bit registers: nothing above bit 31
        assert (a["args"] >> np.uint64(32) == 0).all()
        assert (a["instruction_pointer"] >> np.uint64(32) == 0).all()


def test_realistic_distribution_is_server_like():
    recs = workloads.realistic(200_000, seed=1, arch="x86_64")
    nr = recs["nr"]
    share = {name: float((nr == syscalls.number("x86_64", name)).mean())
             for name in ("futex", "read", "epoll_wait", "write", "recvfrom", "getpid", "brk")}
    total = sum(w for _, w, _ in workloads._REALISTIC)
    assert share["futex"] == pytest.approx(14 / total, abs=0.01)
    assert share["read"] == pytest.approx(12 / total, abs=0.01)
    assert share["futex"] > share["write"] > share["getpid"] > 0
    assert len(np.unique(nr)) == len(workloads._REALISTIC)
    # plausible arguments: read(fd >= 3, user pointer, count > 0); mmap(fd == -1 or a file)
    reads = recs[nr == syscalls.number("x86_64", "read")]
    assert (reads["args"][:, 0] >= 3).all() and (reads["args"][:, 2] > 0).all()
    assert (reads["args"][:, 1] >= 0x55D000000000).all()
    opens = recs[nr == syscalls.number("x86_64", "openat")]
    assert (opens["args"][:, 0] == np.uint64(0xFFFFFFFFFFFFFF9C)).all()   # AT_FDCWD
    assert (recs["instruction_pointer"] >> np.uint64(40) == 0x7F).all()


def test_realistic_uses_the_abi_spelling():
    """aarch64 has no epoll_wait/poll/fstat: the mix falls back to epoll_pwait/ppoll."""
    recs = workloads.realistic(50_000, seed=0, arch="aarch64")
    names = {syscalls.name("aarch64", int(x)) for x in np.unique(recs["nr"])}
    assert {"epoll_pwait", "ppoll", "futex", "read"} <= names
    x32 = workloads.realistic(1000, seed=0, arch="x32")
    assert ((x32["nr"].astype(np.int64) & 0x40000000) != 0).all()


def test_uniform_nr_covers_the_table():
    recs = workloads.uniform_nr(100_000, seed=2, arch="x86_64")
    numbers = sorted(set(syscalls.table("x86_64").values()))
    seen = np.unique(recs["nr"])
    assert len(seen) == len(numbers)
    counts = np.unique(recs["nr"], return_counts=True)[1]
    expected = len(recs) / len(numbers)
    assert counts.min() > expected * 0.6 and counts.max() < expected * 1.4


def test_arg_dependent_hits_both_sides_of_docker_rules():
    """Against the Docker profile, the mix gets both verdicts for each rule (reference oracle)."""
    programs, arch = workloads.corpus_filter("docker-default.x86_64")
    f = bpfjit.compile(programs[0], backend="reference", arch=arch)
    recs = workloads.arg_dependent(1500, seed=0, arch=arch)
    out = f.evaluate_batch(recs)
    for name in ("clone", "socket", "personality"):
        sel = recs["nr"] == syscalls.number("x86_64", name)
        verdicts = set((out[sel] >> np.uint32(16)).tolist())
        assert 0x7FFF in verdicts, name          # ALLOW
        assert 0x0005 in verdicts, name          # ERRNO(EPERM)
    clone3 = recs["nr"] == syscalls.number("x86_64", "clone3")
    assert (out[clone3] == 0x50026).all()        # ERRNO(ENOSYS)


def test_s390x_clone_flags_are_the_second_argument():
    recs = workloads.arg_dependent(2000, seed=0, arch="s390x")
    clone = recs[recs["nr"] == syscalls.number("s390x", "clone")]
    assert set(clone["args"][:, 1].tolist()) & {0x003D0F00, 0x01200011}
    assert not set(clone["args"][:, 0].tolist()) & {0x003D0F00, 0x01200011}


def test_repeat_and_bad_arguments():
    recs = workloads.repeat("getppid", 5, arch="x86_64")
    assert (recs["nr"] == 110).all() and len(recs) == 5
    for mix in workloads.MIXES:
        assert workloads.mix(mix, 0).shape == (0,)
    with pytest.raises(ValueError, match="unknown record mix 'nope'"):
        workloads.mix("nope", 10)
    with pytest.raises(ValueError, match="n must be an int"):
        workloads.realistic(-1)
    with pytest.raises(bpfjit.UnknownArchError):
        workloads.realistic(10, arch="vax")


def test_corpus_filters_and_the_nspawn_stack():
    for name in workloads.BENCH_FILTERS:
        programs, arch = workloads.corpus_filter(name)
        assert programs and arch == "x86_64"
    programs, arch = workloads.corpus_filter("systemd-nspawn-252")
    # oldest first = PTRACE_SECCOMP_GET_FILTER index 0 first (systemd installs the
    # x86, x32, x86_64 allow-lists, then the audit-netlink filters)
    assert [len(p) for p in programs] == [566, 455, 470, 11, 16]
    stack = workloads.compile_subject(programs, "reference", arch)
    assert isinstance(stack, bpfjit.Stack) and len(stack) == 5
    with pytest.raises(FileNotFoundError, match="neither a corpus filter nor a stack"):
        workloads.corpus_filter("no-such-filter")
    with pytest.raises(FileNotFoundError, match="no such filter file"):
        workloads.corpus_filter("/nonexistent/x.bpf")


def test_bench_modules_import():
    """bench/*.py import (under private names, so nothing clashes with tests/ modules)."""
    bench = ROOT / "bench"
    sys.path.insert(0, str(bench))
    try:
        for mod in ("matrix", "conftest", "test_batch_throughput", "test_single_call",
                    "test_compile_time", "test_baselines"):
            name = f"_bpfjit_bench_{mod}"
            spec = importlib.util.spec_from_file_location(name, bench / f"{mod}.py")
            module = sys.modules[name] = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            finally:
                del sys.modules[name]
    finally:
        sys.path.remove(str(bench))
        sys.modules.pop("matrix", None)


def test_bench_cli_smoke():
    from bpfjit.cli.bench import command
    result = CliRunner().invoke(command, ["-f", "firecracker-vmm.x86_64", "-b", "reference",
                                          "-n", "1000", "-s", "0"])
    assert result.exit_code == 0, result.output
    assert "firecracker-vmm.x86_64" in result.output and "reference" in result.output
    assert "yes" in result.output                      # agreed with the reference check


def test_bench_cli_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from bpfjit.cli.bench import command
    plot = tmp_path / "bench.png"
    result = CliRunner().invoke(command, ["-f", "firecracker-vmm.x86_64", "-b", "reference",
                                          "-m", "realistic,uniform_nr", "-n", "500", "-s", "0",
                                          "--no-baselines", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_cli_bad_input(tmp_path):
    from bpfjit.cli.bench import command
    runner = CliRunner()
    result = runner.invoke(command, ["-b", "quantum"])
    assert result.exit_code == 2 and "unknown backend 'quantum'" in result.output
    result = runner.invoke(command, ["-m", "bursty", "-b", "reference"])
    assert result.exit_code == 2 and "unknown record mix 'bursty'" in result.output
    result = runner.invoke(command, ["-f", "nope", "-b", "reference", "--no-baselines"])
    assert result.exit_code == 2 and "'nope'" in result.output
    bad = tmp_path / "bad.bpf"                  # ret #0, then a jump past the end
    bad.write_bytes(bytes.fromhex("0600000000000000" "1500000000000000"))
    result = runner.invoke(command, ["-f", str(bad), "-b", "reference", "--no-baselines"])
    assert result.exit_code == 2 and "instruction 1" in result.output
    bad.write_bytes(b"\x06" * 13)
    result = runner.invoke(command, ["-f", str(bad), "-b", "reference", "--no-baselines"])
    assert result.exit_code == 2 and "8-byte" in result.output


def test_pcap_baseline_agrees_with_the_reference():
    """libpcap fed byte-swapped words sees what the kernel's ld sees (skipped without libpcap)."""
    from bpfjit import baselines
    why = baselines.pcap_reason()
    if why:
        pytest.skip(why)
    for name, arch in (("docker-default.x86_64", "x86_64"), ("docker-default.s390x", "s390x")):
        programs, _ = workloads.corpus_filter(name)
        recs = workloads.arg_dependent(300, seed=4, arch=arch)
        expected = bpfjit.compile(programs[0], backend="reference", arch=arch).evaluate_batch(recs)
        got = baselines.pcap_evaluate(programs[0], baselines.pcap_image(recs, arch))
        assert np.array_equal(got, expected), name


def test_kernel_calls_pick_allowed_calls():
    from bpfjit import baselines
    programs, arch = workloads.corpus_filter("docker-default.x86_64")
    calls = baselines.kernel_calls(programs, arch)
    assert [(c.name, c.cached) for c in calls] == [("getppid", True), ("personality", False)]
    programs, arch = workloads.corpus_filter("firecracker-vmm.x86_64")
    f = bpfjit.compile(programs[0], backend="reference", arch=arch)
    for call in baselines.kernel_calls(programs, arch):
        assert f.evaluate(call.nr, call.args) == 0x7FFF0000
