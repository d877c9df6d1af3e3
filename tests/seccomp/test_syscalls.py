"""Syscall tables: well-known numbers, API behaviour, generator reproducibility."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # allow running without an installed package
    sys.path.insert(0, str(ROOT))

from bpfjit.errors import InputError, UnknownArchError, UnknownSyscallError  # noqa: E402
from bpfjit.seccomp import syscalls  # noqa: E402

X32 = 0x40000000


def _load_generator():
    path = ROOT / "tools" / "gen_syscalls.py"
    spec = importlib.util.spec_from_file_location("gen_syscalls", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_syscalls", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gen():
    return _load_generator()


# --------------------------------------------------------------------------
# Well-known numbers
# --------------------------------------------------------------------------

KNOWN = [
    ("x86_64", "read", 0), ("x86_64", "write", 1), ("x86_64", "open", 2),
    ("x86_64", "execve", 59), ("x86_64", "exit", 60), ("x86_64", "openat", 257),
    ("x86_64", "seccomp", 317), ("x86_64", "uretprobe", 335), ("x86_64", "uprobe", 336),
    ("x86_64", "rt_sigaction", 13), ("x86_64", "mseal", 462),
    ("x86", "restart_syscall", 0), ("x86", "exit", 1), ("x86", "read", 3),
    ("x86", "execve", 11), ("x86", "socketcall", 102), ("x86", "ipc", 117),
    ("x86", "socket", 359), ("x86", "openat", 295),
    ("x32", "read", X32 | 0), ("x32", "openat", X32 | 257),
    ("x32", "rt_sigaction", 1073742336), ("x32", "execve", X32 | 520),
    ("x32", "execveat", X32 | 545),
    ("arm", "restart_syscall", 0), ("arm", "exit", 1), ("arm", "read", 3),
    ("arm", "execve", 11), ("arm", "openat", 322), ("arm", "socket", 281),
    ("arm", "breakpoint", 0x0F0001), ("arm", "cacheflush", 0x0F0002),
    ("arm", "usr26", 0x0F0003), ("arm", "usr32", 0x0F0004),
    ("arm", "set_tls", 0x0F0005), ("arm", "get_tls", 0x0F0006),
    ("arm", "arm_fadvise64_64", 270), ("arm", "arm_sync_file_range", 341),
    ("arm", "sync_file_range2", 341),
    ("aarch64", "io_setup", 0), ("aarch64", "renameat", 38), ("aarch64", "openat", 56),
    ("aarch64", "read", 63), ("aarch64", "write", 64), ("aarch64", "exit", 93),
    ("aarch64", "execve", 221), ("aarch64", "getrlimit", 163),
    ("aarch64", "memfd_secret", 447),
    ("riscv64", "openat", 56), ("riscv64", "read", 63), ("riscv64", "execve", 221),
    ("riscv64", "riscv_hwprobe", 258), ("riscv64", "riscv_flush_icache", 259),
    ("riscv64", "getrlimit", 163),
    ("loongarch64", "openat", 56), ("loongarch64", "execve", 221),
    ("mips", "syscall", 4000), ("mips", "read", 4003), ("mips", "execve", 4011),
    ("mipsel", "read", 4003),
    ("mips64", "read", 5000), ("mips64", "execve", 5057),
    ("mips64n32", "read", 6000), ("mips64n32", "execve", 6057),
    ("ppc", "read", 3), ("ppc", "execve", 11),
    ("ppc64", "read", 3), ("ppc64le", "execve", 11),
    ("s390x", "read", 3), ("s390x", "execve", 11),
    ("parisc", "read", 3), ("parisc64", "execve", 11),
    ("m68k", "read", 3), ("sh", "execve", 11), ("sheb", "read", 3),
]


@pytest.mark.parametrize("abi,sysname,nr", KNOWN)
def test_known_numbers(abi, sysname, nr):
    assert syscalls.number(abi, sysname) == nr
    assert syscalls.table(abi)[sysname] == nr


@pytest.mark.parametrize("abi,sysname", [
    ("aarch64", "open"), ("aarch64", "fork"), ("aarch64", "stat"), ("aarch64", "epoll_wait"),
    ("riscv64", "renameat"), ("riscv64", "open"), ("riscv64", "fork"),
    ("x86_64", "socketcall"), ("x86_64", "cacheflush"), ("x86_64", "riscv_flush_icache"),
    ("x86", "uretprobe"), ("x32", "uselib"), ("arm", "mmap"), ("arm", "time"),
])
def test_absent(abi, sysname):
    assert sysname not in syscalls.table(abi)
    with pytest.raises(UnknownSyscallError):
        syscalls.number(abi, sysname)


def test_x32_numbers_all_carry_the_x32_bit():
    t = syscalls.table("x32")
    assert all(nr & X32 for nr in t.values())
    assert syscalls.name("x32", X32 | 520) == "execve"
    assert syscalls.name("x32", 0) is None
    assert syscalls.name("x32", X32 | 13) is None  # rt_sigaction is 512 on x32
    assert syscalls.name("x32", X32 | 512) == "rt_sigaction"


def test_x32_shares_common_numbers_with_x86_64():
    x64, x32 = syscalls.table("x86_64"), syscalls.table("x32")
    for sysname in ("read", "write", "openat", "close", "mmap", "seccomp", "clone3"):
        assert x32[sysname] == X32 | x64[sysname]


def test_mips_bases():
    for abi, base in (("mips", 4000), ("mips64", 5000), ("mips64n32", 6000)):
        nrs = syscalls.table(abi).values()
        assert min(nrs) == base and max(nrs) < base + 1000


# --------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------

REQUIRED = ("x86_64", "x86", "x32", "aarch64", "arm", "riscv64")
ALIASES = {"ppc64le": "ppc64", "mipsel": "mips", "mipsel64": "mips64",
           "mipsel64n32": "mips64n32", "sheb": "sh"}


def test_abis():
    assert isinstance(syscalls.ABIS, tuple)
    assert list(syscalls.ABIS) == sorted(set(syscalls.ABIS))
    for abi in (*REQUIRED, *ALIASES, "loongarch64", "mips", "mips64", "mips64n32",
                "parisc", "parisc64", "ppc", "ppc64", "s390x", "m68k", "sh"):
        assert abi in syscalls.ABIS
        assert syscalls.has_table(abi)
    for alias, target in ALIASES.items():
        assert syscalls.table(alias) is syscalls.table(target)


@pytest.mark.parametrize("abi", ["s390", "arm64", "amd64", "i386", "", "X86_64", None, 3])
def test_has_table_false(abi):
    assert syscalls.has_table(abi) is False


def test_table_is_read_only():
    t = syscalls.table("x86_64")
    with pytest.raises(TypeError):
        t["read"] = 5  # type: ignore[index]
    with pytest.raises(TypeError):
        del t["read"]  # type: ignore[attr-defined]
    assert t["read"] == 0


def test_unknown_abi():
    with pytest.raises(UnknownArchError) as ei:
        syscalls.table("arm64")
    msg = str(ei.value)
    assert "'arm64'" in msg and "aarch64" in msg
    for call in (lambda: syscalls.number("nope", "read"), lambda: syscalls.name("nope", 0),
                 lambda: syscalls.table(None)):
        with pytest.raises(UnknownArchError):
            call()
    assert issubclass(UnknownArchError, InputError)


def test_s390_known_but_without_table():
    assert not syscalls.has_table("s390")
    with pytest.raises(UnknownArchError, match="s390"):
        syscalls.number("s390", "read")


def test_unknown_syscall_message_names_abi_and_suggests():
    with pytest.raises(UnknownSyscallError) as ei:
        syscalls.number("aarch64", "open")
    msg = str(ei.value)
    assert msg.startswith("aarch64:")
    assert "'open'" in msg and "openat" in msg
    assert isinstance(ei.value, KeyError) and isinstance(ei.value, InputError)

    with pytest.raises(UnknownSyscallError, match=r"did you mean 'read'"):
        syscalls.number("x86_64", "sys_read")
    with pytest.raises(UnknownSyscallError, match=r"did you mean 'cacheflush'"):
        syscalls.number("arm", "__ARM_NR_cacheflush")
    with pytest.raises(UnknownSyscallError) as ei:
        syscalls.number("x86_64", "qqqqzzzz")
    assert "did you mean" not in str(ei.value) and "x86_64" in str(ei.value)
    with pytest.raises(UnknownSyscallError, match="riscv64"):
        syscalls.number("x86_64", "riscv_flush_icache")  # says where it exists
    with pytest.raises(UnknownSyscallError):
        syscalls.number("x86_64", 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("nr", [-1, -0x40000000, 2**32, 2**64, 100000, 0x0F0002])
def test_name_out_of_range_is_none(nr):
    assert syscalls.name("x86_64", nr) is None


def test_name_basics():
    assert syscalls.name("x86_64", 59) == "execve"
    assert syscalls.name("arm", 0x0F0002) == "cacheflush"
    assert syscalls.name("arm", 341) == "arm_sync_file_range"  # canonical over the alias
    assert syscalls.name("aarch64", 2) == "io_submit"
    assert syscalls.name("x86_64", 387) is None  # reserved gap 387..423
    with pytest.raises(TypeError):
        syscalls.name("x86_64", "59")  # type: ignore[arg-type]


@pytest.mark.parametrize("abi", syscalls.ABIS)
def test_round_trip_every_entry(abi):
    t = syscalls.table(abi)
    assert len(t) > 250
    names_by_number: dict[int, list[str]] = {}
    for sysname, nr in t.items():
        assert isinstance(nr, int) and 0 <= nr < 2**32
        assert syscalls.number(abi, sysname) == nr
        names_by_number.setdefault(nr, []).append(sysname)
    for nr, names in names_by_number.items():
        canonical = syscalls.name(abi, nr)
        assert canonical in names
        if len(names) == 1:
            assert canonical == names[0]
    # The only alternative name in the kernel headers is ARM's sync_file_range2.
    shared = {nr: sorted(ns) for nr, ns in names_by_number.items() if len(ns) > 1}
    expected = {341: ["arm_sync_file_range", "sync_file_range2"]} if abi == "arm" else {}
    assert shared == expected


def test_kernel_version_matches_generated(gen):
    for abi in gen.ABI_SPECS:
        mod = importlib.import_module(f"bpfjit.seccomp.syscalls._{abi.abi}")
        assert mod.KERNEL_VERSION == syscalls.KERNEL_VERSION
        assert mod.ABI == abi.abi


# --------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------

def test_runtime_abi_list_matches_generator(gen):
    assert syscalls._CANONICAL == tuple(s.abi for s in gen.ABI_SPECS)
    assert syscalls._ALIASES == gen.ABI_ALIASES


def test_committed_tables_equal_generator_output(gen):
    outputs, tables, info = gen.generate()
    assert info["kernel_version"] == syscalls.KERNEL_VERSION
    assert len(outputs) == len(gen.ABI_SPECS)
    for path, text in outputs.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run python tools/gen_syscalls.py")
    out_dir = ROOT / "bpfjit" / "seccomp" / "syscalls"
    on_disk = {p.name for p in out_dir.glob("_*.py") if p.name != "__init__.py"}
    assert on_disk == {p.name for p in outputs}


def test_generator_is_deterministic(gen):
    first, _, _ = gen.generate()
    second, _, _ = gen.generate()
    assert first == second
    for text in first.values():
        assert "DO NOT EDIT" in text.splitlines()[0]
        assert "Linux 7.2" in text and "linux-libc-dev" in text


def test_generator_check_mode(gen, capsys):
    assert gen.main(["--check"]) == 0


def test_snapshot_checksums(gen):
    gen.verify_snapshot(gen.find_snapshot())  # raises on any edited/missing file


def test_preprocessor_evaluates_like_c(gen, tmp_path):
    inc = tmp_path / "asm"
    inc.mkdir()
    (inc / "unistd.h").write_text(
        "/* comment\n spanning */\n"
        "#define BASE 0x100\n"
        "#if defined(FOO) || BAR == 2\n#define __NR_a (BASE + 1)\n"
        "#elif !defined FOO\n#define __NR_a (BASE + 2)\n#else\n#define __NR_a 0\n#endif\n"
        "#ifdef FOO\n#include <asm/missing.h>\n#endif\n"
        "#define __NR_b __NR_a\n")
    pp = gen.Preprocessor(tmp_path, {"BAR": "2"})
    pp.run("asm/unistd.h")
    assert pp.evaluate(pp.macros["__NR_a"], in_if=False) == 0x101
    pp = gen.Preprocessor(tmp_path, {})
    pp.run("asm/unistd.h")
    assert pp.evaluate(pp.macros["__NR_a"], in_if=False) == 0x102
    assert pp.evaluate("__NR_b", in_if=False) == 0x102
    with pytest.raises(gen.GenError):
        pp.evaluate("UNDEFINED + 1", in_if=False)
    with pytest.raises(gen.GenError):
        gen.Preprocessor(tmp_path, {"FOO": "1"}).run("asm/unistd.h")  # missing include
