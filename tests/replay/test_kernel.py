"""Acceptance: programs really run under a filter (installed with PR_SET_NO_NEW_PRIVS + seccomp
before exec) and traced by strace; the calls the kernel refused (strace shows them failing
with the filter's errno) are exactly the calls replay reports as refused."""
from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import bpfjit
from bpfjit.formats import dump
from bpfjit.replay import Replayer, TraceReader

pytestmark = pytest.mark.kernel

HERE = Path(__file__).parent
EHWPOISON = 133      # an errno no call of these programs returns by itself
#: ERRNO(EHWPOISON) for socket(AF_UNIX, ...), openat(..., O_CREAT ...), mkdir, mkdirat, uname
FILTER = f"""
    ld [4]
    jne #0xc000003e, allow
    ld [0]
    jeq #41, sock
    jeq #257, open
    jeq #83, deny
    jeq #258, deny
    jeq #63, deny
allow:
    ret #0x7fff0000
sock:
    ld [16]
    jeq #1, deny
    ret #0x7fff0000
open:
    ld [32]
    jset #0x40, deny
    ret #0x7fff0000
deny:
    ret #{0x50000 | EHWPOISON}
"""
PROGRAMS = {
    "shell pipeline": ["/bin/sh", "-c", "echo hello > /tmp/bpfjit-replay-k; uname; "
                       "echo hi | tr a-z A-Z | wc -c; mkdir /tmp/bpfjit-replay-kd; true"],
    "python files and sockets": [sys.executable, "-S", "-I", "-B",
                                 str(HERE / "data" / "files_and_sockets.py")],
    "multi-threaded python": [sys.executable, "-S", "-I", "-B", str(HERE / "data" / "threads.py")],
}
STRACE_OPTIONS = {
    "-ff -o": ["-ff"],
    "-f": ["-f"],
    "-f -X raw -i -n -tt -T": ["-f", "-X", "raw", "-i", "-n", "-tt", "-T"],
    "-f -e raw=all -y": ["-f", "-e", "raw=all", "-y"],
}


def _skip_reason() -> str | None:
    if platform.machine() != "x86_64":
        return "the filter and the programs' syscall numbers are x86_64's"
    if shutil.which("strace") is None:
        return "strace is not installed (apt-get install strace)"
    from bpfjit.backends.kernel import kernel_unavailable_reason
    return kernel_unavailable_reason()


@pytest.fixture(scope="module")
def filter_bin(tmp_path_factory) -> tuple[Path, bpfjit.Filter]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    prog = bpfjit.load(FILTER.encode(), format="asm")
    path = tmp_path_factory.mktemp("filter") / "filter.bin"
    path.write_bytes(dump(prog, format="raw"))
    return path, bpfjit.compile(prog, arch="x86_64")


def _run(tmp_path: Path, filter_path: Path, program: list[str], options: list[str]) -> list[Path]:
    out = tmp_path / "trace"
    subprocess.run(["strace", *options, "-o", str(out), sys.executable,
                    str(HERE / "seccomp_exec.py"), str(filter_path), *program],
                   check=False, capture_output=True, timeout=120, cwd=tmp_path)
    files = sorted(tmp_path.glob("trace*"))
    # the wrapper's own calls before seccomp() ran unfiltered: keep what follows the install
    for f in files:
        lines = f.read_text().splitlines(keepends=True)
        for i, line in enumerate(lines):
            if re.search(r"\bseccomp\(", line) and re.search(r"\) += 0", line):
                f.write_text("".join(lines[i + 1:]))
                break
    return files


@pytest.mark.parametrize("options", list(STRACE_OPTIONS), ids=list(STRACE_OPTIONS))
@pytest.mark.parametrize("program", list(PROGRAMS), ids=list(PROGRAMS))
def test_replay_refuses_exactly_the_calls_the_kernel_refused(tmp_path, filter_bin, program,
                                                             options):
    filter_path, compiled = filter_bin
    files = _run(tmp_path, filter_path, PROGRAMS[program], STRACE_OPTIONS[options])
    assert files
    # what the kernel did: strace shows each refused call failing with EHWPOISON
    refused_by_kernel = Counter()
    lines_by_kernel = set()
    for f in files:
        for no, line in enumerate(f.read_text().splitlines(), 1):
            if "EHWPOISON" in line or re.search(rf"= -{EHWPOISON}\b|= 0x{(-EHWPOISON) & (2**64 - 1):x}\b", line):
                m = re.search(r"(?:<\.\.\. )?([a-z_0-9]+)(?:\(| resumed>)", re.sub(
                    r"^(\[pid +\d+\] |\d+ +)?([\d:.]+ +)?(\[ *\d+\] +)?(\[[0-9a-f]+\] +)?", "", line))
                refused_by_kernel[m.group(1)] += 1
                if "resumed>" not in line and "unfinished" not in line:
                    lines_by_kernel.add((str(f), no))
    # what replay says
    replayed = Counter()
    lines_by_replay = set()
    unfinished_firsts = set()

    def each(call, retval, depends):
        if retval == 0x50000 | EHWPOISON:
            replayed[call.name] += 1
            lines_by_replay.add((call.source, call.line))
            if "<unfinished" in call.text:
                unfinished_firsts.add((call.source, call.line))
            assert not depends, call.text

    reader = TraceReader([str(f) for f in files])
    summary = Replayer(compiled).feed(reader, each=each)
    assert summary.problems == 0, summary.problem_examples
    assert sum(refused_by_kernel.values()) >= 2
    assert replayed == refused_by_kernel
    assert lines_by_replay - unfinished_firsts == lines_by_kernel


def test_the_instruction_pointer_strace_i_prints_is_the_one_the_filter_sees(tmp_path, filter_bin):
    """uname gets ERRNO(instruction_pointer & 0xfff) from the kernel; replay of the -i trace
    must compute the same errno for every call."""
    prog = bpfjit.load(b"ld [0]\njeq #63, u\nret #0x7fff0000\nu:\nld [8]\nand #0xfff\n"
                       b"or #0x50000\nret a\n", format="asm")
    path = tmp_path / "ip.bin"
    path.write_bytes(dump(prog, format="raw"))
    files = _run(tmp_path, path, ["/bin/sh", "-c", "uname; uname -a; uname -r"], ["-f", "-i"])
    kernel = [int(m.group(1)) for f in files for m in
              re.finditer(r"uname\(.*\) = -1 (?:\(errno (\d+)\))", f.read_text())]
    replayed = []
    Replayer(bpfjit.compile(prog, arch="x86_64")).feed(
        TraceReader([str(f) for f in files]),
        each=lambda call, rv, dep: replayed.append(rv & 0xFFFF) if call.name == "uname" else None)
    assert len(kernel) == 3 and replayed == kernel


@pytest.mark.parametrize("program", list(PROGRAMS), ids=list(PROGRAMS))
def test_under_dockers_default_filter_replay_matches_the_kernel(tmp_path, filter_bin, program):
    """A real policy: Docker's default x86_64 filter (ERRNO(ENOSYS) for clone3, EPERM for
    others). Every call replay refuses fails in reality with that errno, and every ENOSYS the
    kernel returned is a call replay refuses."""
    import errno as errno_names
    docker = Path(bpfjit.__file__).parent / "examples" / "docker-default.x86_64.bpf"
    files = _run(tmp_path, docker, PROGRAMS[program], ["-ff"])
    texts = {str(f): f.read_text().splitlines() for f in files}
    refused = {}

    def each(call, retval, depends):
        if bpfjit.Action.from_value(retval).name != "ALLOW":
            assert not depends, call.text
            refused[(call.source, call.line)] = retval & 0xFFFF

    Replayer(bpfjit.compile(bpfjit.load(str(docker)), arch="x86_64")).feed(
        TraceReader(list(texts)), each=each)
    for (source, line), err in refused.items():
        assert f"= -1 {errno_names.errorcode[err]} " in texts[source][line - 1]
    enosys = {(s, no) for s, lines in texts.items() for no, text in enumerate(lines, 1)
              if "= -1 ENOSYS " in text}
    assert enosys <= set(refused)
    if program == "multi-threaded python":
        assert len(enosys) >= 4                     # glibc tries clone3 for each thread
