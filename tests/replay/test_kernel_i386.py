"""Replay of a 32-bit (i386) task's 64-bit arguments against the kernel: strace prints each as
one number, the kernel's seccomp_data has two registers (low word first); a filter that
returns ERRNO(args[3] ^ args[4]) shows any shift or swap. The program is a libc-free i386
binary built at test time (gcc -m32 without multilib works for -nostdlib -static)."""
from __future__ import annotations

import errno
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bpfjit
from bpfjit import dump
from bpfjit.replay import Replayer, strace

pytestmark = pytest.mark.kernel
HERE = Path(__file__).parent

FILTER = """
    ld [4]
    jeq #0x40000003, i386
    ret #0x7fff0000
i386:
    ld [0]
    jeq #180, pair
    jeq #324, pair
    ret #0x7fff0000
pair:
    ld [48]
    tax
    ld [40]
    xor x
    and #0xfff
    or #0x50000
    ret a
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    from bpfjit.backends.kernel import kernel_unavailable_reason
    reason = kernel_unavailable_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("strace") is None or shutil.which("gcc") is None:
        pytest.skip("needs strace and gcc")
    out = tmp_path_factory.mktemp("i386") / "wide"
    built = subprocess.run(["gcc", "-m32", "-nostdlib", "-static", "-ffreestanding", "-fno-pic",
                            "-O1", "-o", str(out), str(HERE / "data" / "i386_wide.c")],
                           capture_output=True, text=True)
    if built.returncode:
        pytest.skip(f"gcc cannot build an i386 binary here: {built.stderr.strip()[:200]}")
    if subprocess.run([str(out)]).returncode != 0:
        pytest.skip("this kernel does not run i386 binaries (IA32_EMULATION off)")
    return out


def test_i386_register_pairs_replay_as_the_kernel_evaluated_them(program, tmp_path):
    prog = bpfjit.load(FILTER.encode(), format="asm")
    (tmp_path / "f.bin").write_bytes(dump(prog, format="raw"))
    trace = tmp_path / "trace"
    # -o: strace writes its "runs in 32 bit mode" notice to stderr, not to the file, so the
    # trace must say it some other way: -i's 8-digit instruction pointers
    subprocess.run(["strace", "-f", "-i", "-o", str(trace), sys.executable,
                    str(HERE / "seccomp_exec.py"), str(tmp_path / "f.bin"), str(program)],
                   check=True, capture_output=True, timeout=60)
    lines = trace.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if re.search(r"\bseccomp\(.*\) += 0", line))
    lines = lines[start + 1:]
    kernel = {}                       # what each call got from the kernel (errno)
    for line in lines:
        m = re.search(r"\b(pread64|fallocate)\(.*= -1 (E[A-Z0-9]+)", line)
        if m:
            kernel[m.group(1)] = getattr(errno, m.group(2))
    assert kernel == {"pread64": 3 ^ 5, "fallocate": 1 ^ 9}, kernel
    seen = {}
    summary = Replayer(bpfjit.compile(prog, arch="x86_64")).feed(
        strace.parse(lines, "trace"),
        each=lambda c, rv, dep: seen.__setitem__(c.name, (rv & 0xFFF, dep))
        if c.name in kernel else None)
    assert seen == {name: (value, False) for name, value in kernel.items()}
    assert summary.inferred_32 >= 2 and summary.problems == 0
