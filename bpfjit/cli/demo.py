"""``bpfjit demo``: the bundled Docker default profile, evaluated on x86_64 and aarch64."""
from __future__ import annotations

import time
from importlib import resources

import click

#: (syscall, args, why it is interesting)
CALLS = [
    ("read", (0, 0, 4096), "ordinary I/O"),
    ("openat", (0xFFFFFF9C, 0, 0o2000000), "ordinary I/O"),
    ("execve", (), "allowed in containers"),
    ("clone", (0x01200011,), "fork-style clone: allowed"),
    ("clone", (0x10000000,), "CLONE_NEWUSER: needs CAP_SYS_ADMIN"),
    ("unshare", (0x10000000,), "namespaces: not for a default container"),
    ("personality", (0,), "PER_LINUX: allowed"),
    ("personality", (0x0400000,), "other personalities: refused"),
    ("socket", (2, 1, 0), "AF_INET: allowed"),
    ("socket", (40, 1, 0), "AF_VSOCK: refused"),
    ("mount", (), "needs CAP_SYS_ADMIN"),
    ("ptrace", (), "allowed on kernels >= 4.8"),
    ("kexec_load", (), "never"),
    ("bpf", (), "needs CAP_SYS_ADMIN or CAP_BPF"),
]


@click.command()
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice(["auto", "llvm", "numba", "reference"]))
@click.option("--records", "n", default=1_000_000, show_default=True,
              help="Records in the batch throughput run.")
def command(backend: str, n: int) -> None:
    """Evaluate Docker's default seccomp profile (bundled) for a few syscalls, then a batch."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    import bpfjit
    from bpfjit.errors import UnknownSyscallError
    from bpfjit.seccomp import syscalls

    console = Console()
    examples = resources.files("bpfjit") / "examples"
    filters = {}
    for arch in ("x86_64", "aarch64"):
        with resources.as_file(examples / f"docker-default.{arch}.bpf") as path:
            prog = bpfjit.load(path)
        t0 = time.perf_counter()
        filters[arch] = bpfjit.compile(prog, backend=backend, arch=arch)
        ms = (time.perf_counter() - t0) * 1e3
        console.print(f"[bold]docker-default.{arch}.bpf[/]: {len(prog)} instructions, "
                      f"backend {filters[arch].backend}, compiled in {ms:.1f} ms")
    table = Table(title="Docker default profile (moby/profiles), args as shown")
    table.add_column("syscall")
    table.add_column("args")
    for arch in filters:
        table.add_column(arch)
    table.add_column("note")
    for name, args, note in CALLS:
        cells = []
        for arch, f in filters.items():
            try:
                cells.append(str(f.action(name, args)))
            except UnknownSyscallError:
                cells.append("[dim](no such syscall)[/]")
        pretty = ", ".join(hex(a) if a > 9 else str(a) for a in args)
        table.add_row(name, pretty, *[c if "ALLOW" not in c else f"[green]{c}[/]" for c in cells],
                      note)
    console.print(table)
    f = filters["x86_64"]
    rng = np.random.default_rng(0)
    common = [syscalls.number("x86_64", s) for s in
              ("read", "write", "futex", "epoll_wait", "recvfrom", "sendto", "close", "openat",
               "mmap", "fstat")]
    recs = np.zeros(n, dtype=bpfjit.SECCOMP_DATA)
    recs["nr"] = rng.choice(common, n)
    recs["arch"] = f.layout.audit_arch
    f.evaluate_batch(recs[:4096])      # warm-up: the first call loads/compiles (numba), faults in
    dt = float("inf")
    for _ in range(3):                 # best of three, as bench reports the best run
        t0 = time.perf_counter()
        out = f.evaluate_batch(recs)
        dt = min(dt, time.perf_counter() - t0)
    allowed = int((out == 0x7FFF0000).sum())
    console.print(f"Batch: {n:,} x86_64 records (common syscalls) in {dt * 1e3:.1f} ms with "
                  f"{f.backend} (best of 3, after a warm-up): {n / dt / 1e6:.1f} M records/s; "
                  f"{allowed:,} allowed.")
