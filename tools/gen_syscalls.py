#!/usr/bin/env python3
"""Generate bpfjit's syscall name <-> number tables from the Linux UAPI headers.

Input: a snapshot of the kernel's generated ``asm/unistd*.h`` headers, one
directory per source package under ``tools/syscall_sources/`` (see
``tools/syscall_sources/PROVENANCE.md``).  These headers are what the kernel's
own ``scripts/syscallhdr.sh`` writes from ``arch/*/.../syscall*.tbl`` (and, for
the generic ABIs, ``scripts/syscall.tbl`` filtered by each architecture's
``syscall_abis_*``), so they hold exactly the syscall set each ABI is built
with.  Each ABI is read the way a C compiler for that ABI would read it: a small
C preprocessor below starts at the ABI's entry header with the macros the
compiler predefines for that ABI (``__i386__``, ``__ILP32__``, ``__ARM_EABI__``,
``_MIPS_SIM``...), follows ``#include``/``#if``, and evaluates every ``__NR_*``
(and ARM's ``__ARM_NR_*``) macro to its final number, base included (the x32
bit 0x40000000, MIPS' 4000/5000/6000, ARM's 0x0f0000 private range).

Output: ``bpfjit/seccomp/syscalls/_<abi>.py``, one per ABI, deterministic (the
same snapshot always gives byte-identical files).

Usage::

    python tools/gen_syscalls.py            # regenerate the tables (offline)
    python tools/gen_syscalls.py --check    # exit 1 if a committed table differs
    python tools/gen_syscalls.py --import-deb linux-libc-dev_X_all.deb
        # replace the snapshot with the headers of another linux-libc-dev
        # (Debian's all-architecture package), then regenerate

Licence of the input data: Linux kernel UAPI headers, GPL-2.0 WITH
Linux-syscall-note.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import sys
import tarfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES_DIR = ROOT / "tools" / "syscall_sources"
OUT_DIR = ROOT / "bpfjit" / "seccomp" / "syscalls"
GENERATOR = "tools/gen_syscalls.py"


@dataclass(frozen=True)
class AbiSpec:
    """How to read one ABI's syscall numbers out of the snapshot."""

    abi: str                 # libseccomp's arch name
    arch: str                # kernel arch directory: uapi/<arch>/asm/...
    entry: str               # header a C program includes, relative to uapi/<arch>
    predefined: dict = field(default_factory=dict)  # compiler-predefined macros
    note: str = ""


# Debian installs one copy per kernel architecture under /usr/lib/linux/uapi/<arch>
# (the per-triplet /usr/include/<triplet>/asm entries are symlinks to it); the
# snapshot mirrors that layout as uapi/<arch>/.
ABI_SPECS: tuple[AbiSpec, ...] = (
    AbiSpec("x86_64", "x86", "asm/unistd.h", {},
            "x86-64 native 64-bit ABI (syscall_64.tbl: common, 64)"),
    AbiSpec("x86", "x86", "asm/unistd.h", {"__i386__": "1"},
            "i386 (syscall_32.tbl)"),
    AbiSpec("x32", "x86", "asm/unistd.h",
            {"__x86_64__": "1", "__ILP32__": "1"},
            "x32 (syscall_64.tbl: common, x32); numbers include "
            "__X32_SYSCALL_BIT 0x40000000"),
    AbiSpec("arm", "arm", "asm/unistd.h", {"__ARM_EABI__": "1"},
            "32-bit ARM EABI (arch/arm/tools/syscall.tbl: common, eabi) plus the "
            "ARM private syscalls __ARM_NR_* at 0x0f0000"),
    AbiSpec("aarch64", "arm64", "asm/unistd.h", {},
            "arm64 (scripts/syscall.tbl, arm64's syscall_abis_64)"),
    # unistd.h selects unistd_64.h through __BITS_PER_LONG (asm/bitsperlong.h,
    # not kept); start at the 64-bit header directly.
    AbiSpec("riscv64", "riscv", "asm/unistd_64.h", {},
            "RISC-V 64 (scripts/syscall.tbl, riscv's syscall_abis_64)"),
    AbiSpec("loongarch64", "loongarch", "asm/unistd_64.h", {},
            "LoongArch 64 (scripts/syscall.tbl, loongarch's syscall_abis_64)"),
    AbiSpec("mips", "mips", "asm/unistd.h",
            {"_MIPS_SIM": "_MIPS_SIM_ABI32"},
            "MIPS o32 (syscall_o32.tbl), numbers include __NR_Linux 4000"),
    AbiSpec("mips64", "mips", "asm/unistd.h",
            {"_MIPS_SIM": "_MIPS_SIM_ABI64"},
            "MIPS n64 (syscall_n64.tbl), numbers include __NR_Linux 5000"),
    AbiSpec("mips64n32", "mips", "asm/unistd.h",
            {"_MIPS_SIM": "_MIPS_SIM_NABI32"},
            "MIPS n32 (syscall_n32.tbl), numbers include __NR_Linux 6000"),
    AbiSpec("parisc", "parisc", "asm/unistd.h", {},
            "PA-RISC 32-bit (parisc syscall.tbl: common, 32)"),
    AbiSpec("parisc64", "parisc", "asm/unistd.h", {"__LP64__": "1"},
            "PA-RISC 64-bit (parisc syscall.tbl: common, 64)"),
    AbiSpec("ppc", "powerpc", "asm/unistd.h", {},
            "PowerPC 32-bit (powerpc syscall.tbl: common, 32, nospu)"),
    AbiSpec("ppc64", "powerpc", "asm/unistd.h",
            {"__powerpc64__": "1"},
            "PowerPC 64-bit, both endians (powerpc syscall.tbl: common, 64, nospu)"),
    AbiSpec("s390x", "s390", "asm/unistd.h", {"__s390__": "1", "__s390x__": "1"},
            "s390x 64-bit (s390 syscall.tbl)"),
    AbiSpec("m68k", "m68k", "asm/unistd.h", {},
            "m68k (m68k syscall.tbl)"),
    AbiSpec("sh", "sh", "asm/unistd.h", {},
            "SuperH, both endians (sh syscall.tbl)"),
)

# libseccomp arch names whose table is another ABI's (endian variants).
ABI_ALIASES: dict[str, str] = {
    "ppc64le": "ppc64",
    "mipsel": "mips",
    "mipsel64": "mips64",
    "mipsel64n32": "mips64n32",
    "sheb": "sh",
}

# Files copied from a linux-libc-dev package into the snapshot: per kernel arch,
# from /usr/lib/linux/uapi/<arch>/; "." is /usr/include/.
SNAPSHOT_FILES: dict[str, tuple[str, ...]] = {
    "x86": ("asm/unistd.h", "asm/unistd_64.h", "asm/unistd_32.h",
                         "asm/unistd_x32.h"),
    "arm": ("asm/unistd.h", "asm/unistd-eabi.h"),
    "arm64": ("asm/unistd.h", "asm/unistd_64.h"),
    "riscv": ("asm/unistd_64.h",),
    "loongarch": ("asm/unistd_64.h",),
    "mips": ("asm/unistd.h", "asm/sgidefs.h", "asm/unistd_o32.h",
                         "asm/unistd_n64.h", "asm/unistd_n32.h"),
    "parisc": ("asm/unistd.h", "asm/unistd_32.h", "asm/unistd_64.h"),
    "powerpc": ("asm/unistd.h", "asm/unistd_32.h", "asm/unistd_64.h"),
    "s390": ("asm/unistd.h", "asm/unistd_64.h"),
    "m68k": ("asm/unistd.h", "asm/unistd_32.h"),
    "sh": ("asm/unistd.h", "asm/unistd_32.h"),
    ".": ("linux/version.h",),
}

# Macros named like syscalls that are not syscalls (bases, masks, counts).
NOT_SYSCALLS = frozenset({
    "__NR_Linux", "__NR_SYSCALL_BASE", "__NR_OABI_SYSCALL_BASE",
    "__NR_SYSCALL_MASK", "__ARM_NR_BASE", "__NR_syscalls",
    "__NR_Linux_syscalls", "__NR_arch_specific_syscall",
})
SYSCALL_MACRO = re.compile(r"^__(?:ARM_)?NR_([A-Za-z0-9_]+)$")

SHA256SUMS = "SHA256SUMS"
SOURCE_JSON = "source.json"


class GenError(Exception):
    pass


# --------------------------------------------------------------------------
# A deliberately small C preprocessor: object-like macros, #include <...>,
# #if/#ifdef/#ifndef/#elif/#else/#endif, #undef.  Enough for the UAPI
# unistd headers; anything it does not understand is an error, not a guess.
# --------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFINED_ARG = re.compile(r"\s*(?:\(\s*([A-Za-z_]\w*)\s*\)|([A-Za-z_]\w*))")
_TOKEN = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*|(?P<id>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\|\||&&|==|!=|<=|>=|<<|>>|[-+*/%()!<>~&|^]))"
)


def _strip_comments(text: str) -> str:
    # keep line numbers: a comment becomes the newlines it spanned
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return text.replace("\\\n", " ")


class Preprocessor:
    def __init__(self, include_dir: Path, predefined: dict[str, str]):
        self.include_dir = include_dir
        self.macros: dict[str, str] = dict(predefined)
        self.order: list[str] = list(predefined)
        self.files: list[str] = []

    # -- expressions -------------------------------------------------------
    def _expand(self, expr: str, seen: frozenset = frozenset()) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        pos = 0
        expr = expr.strip()
        while pos < len(expr):
            m = _TOKEN.match(expr, pos)
            if not m or m.end() == pos:
                raise GenError(f"cannot parse expression {expr!r} at {expr[pos:]!r}")
            pos = m.end()
            if m.group("num"):
                out.append(("num", str(int(m.group("num"), 0))))
            elif m.group("id"):
                name = m.group("id")
                if name == "defined":
                    m2 = _DEFINED_ARG.match(expr, pos)
                    if not m2:
                        raise GenError(f"bad defined() in {expr!r}")
                    pos = m2.end()
                    target = m2.group(1) or m2.group(2)
                    out.append(("num", "1" if target in self.macros else "0"))
                elif name in self.macros and name not in seen:
                    out.append(("op", "("))
                    out.extend(self._expand(self.macros[name], seen | {name}))
                    out.append(("op", ")"))
                else:
                    out.append(("undef", name))
            else:
                out.append(("op", m.group("op")))
        return out

    def evaluate(self, expr: str, *, in_if: bool) -> int:
        toks = self._expand(expr)
        py: list[str] = []
        for kind, val in toks:
            if kind == "undef":
                if not in_if:
                    raise GenError(f"undefined macro {val!r} in {expr!r}")
                py.append("0")  # C: identifiers left after expansion are 0
            elif kind == "num":
                py.append(val)
            else:
                py.append({"||": " or ", "&&": " and ", "!": " not ", "/": "//"}.get(val, val))
        source = " ".join(py)
        if not re.fullmatch(r"[0-9a-z()+\-*/%<>=!~&|^ ]*", source):
            raise GenError(f"refusing to evaluate {source!r}")
        try:
            return int(eval(source, {"__builtins__": {}}, {}))  # noqa: S307 - checked above
        except Exception as exc:  # pragma: no cover - malformed header
            raise GenError(f"cannot evaluate {expr!r}: {exc}") from exc

    # -- files -------------------------------------------------------------
    def run(self, rel: str) -> None:
        path = self.include_dir / rel
        if not path.is_file():
            raise GenError(f"missing header {path}")
        self.files.append(rel)
        lines = _strip_comments(path.read_text(encoding="utf-8")).split("\n")
        stack: list[list[bool]] = []  # [taking, any_branch_taken]
        for lineno, line in enumerate(lines, 1):
            s = line.strip()
            if not s.startswith("#"):
                continue
            m = re.match(r"#\s*(\w+)\s*(.*)$", s)
            if not m:
                continue
            d, rest = m.group(1), m.group(2).strip()
            active = all(t for t, _ in stack)
            where = f"{path.relative_to(self.include_dir)}:{lineno}"
            if d in ("if", "ifdef", "ifndef"):
                if not active:
                    stack.append([False, True])
                    continue
                if d == "ifdef":
                    cond = rest.split()[0] in self.macros
                elif d == "ifndef":
                    cond = rest.split()[0] not in self.macros
                else:
                    cond = bool(self.evaluate(rest, in_if=True))
                stack.append([cond, cond])
            elif d == "elif":
                if not stack:
                    raise GenError(f"{where}: #elif without #if")
                top = stack.pop()
                outer = all(t for t, _ in stack)
                if top[1] or not outer:
                    stack.append([False, True])
                else:
                    cond = bool(self.evaluate(rest, in_if=True))
                    stack.append([cond, cond])
            elif d == "else":
                if not stack:
                    raise GenError(f"{where}: #else without #if")
                top = stack[-1]
                top[0] = not top[1]
                top[1] = True
            elif d == "endif":
                if not stack:
                    raise GenError(f"{where}: #endif without #if")
                stack.pop()
            elif not active:
                continue
            elif d == "define":
                m2 = re.match(r"([A-Za-z_]\w*)(\()?\s*(.*)$", rest)
                if not m2:
                    raise GenError(f"{where}: bad #define {rest!r}")
                if m2.group(2):
                    raise GenError(f"{where}: function-like macro {m2.group(1)} not supported")
                name, body = m2.group(1), m2.group(3).strip()
                if name not in self.macros:
                    self.order.append(name)
                self.macros[name] = body
            elif d == "undef":
                name = rest.split()[0]
                self.macros.pop(name, None)
                if name in self.order:
                    self.order.remove(name)
            elif d == "include":
                m2 = re.match(r"[<\"]([^>\"]+)[>\"]", rest)
                if not m2:
                    raise GenError(f"{where}: bad #include {rest!r}")
                self.run(m2.group(1))
            elif d in ("error", "warning"):
                raise GenError(f"{where}: #{d} {rest}")
            else:
                raise GenError(f"{where}: unsupported directive #{d}")
        if stack:
            raise GenError(f"{path}: unterminated #if")


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------

@dataclass
class Table:
    spec: AbiSpec
    syscalls: dict[str, int]      # canonical name -> number (numbers unique)
    aliases: dict[str, str]       # alias name -> canonical name
    files: list[str]


def read_table(snapshot: Path, spec: AbiSpec) -> Table:
    pp = Preprocessor(snapshot / "uapi" / spec.arch, spec.predefined)
    pp.run(spec.entry)
    syscalls: dict[str, int] = {}
    alias_of: dict[str, str] = {}
    for macro in pp.order:
        if macro in NOT_SYSCALLS or macro in spec.predefined:
            continue
        m = SYSCALL_MACRO.match(macro)
        if not m:
            continue
        name = m.group(1)
        body = pp.macros[macro].strip()
        inner = body.strip("() \t")
        if _IDENT.fullmatch(inner) and SYSCALL_MACRO.match(inner) and inner not in NOT_SYSCALLS:
            alias_of[name] = SYSCALL_MACRO.match(inner).group(1)
            continue
        value = pp.evaluate(body, in_if=False)
        if name in syscalls:
            raise GenError(f"{spec.abi}: {name} defined twice")
        syscalls[name] = value
    aliases: dict[str, str] = {}
    for alias, target in alias_of.items():
        while target in alias_of:
            target = alias_of[target]
        if target not in syscalls:
            raise GenError(f"{spec.abi}: alias {alias} -> unknown {target}")
        if alias in syscalls:
            raise GenError(f"{spec.abi}: {alias} is both a syscall and an alias")
        aliases[alias] = target
    by_number: dict[int, str] = {}
    for name, nr in syscalls.items():
        if nr < 0 or nr > 0xFFFFFFFF:
            raise GenError(f"{spec.abi}: {name} = {nr} is not a 32-bit number")
        if nr in by_number:
            raise GenError(f"{spec.abi}: {name} and {by_number[nr]} share number {nr}")
        by_number[nr] = name
    if not syscalls:
        raise GenError(f"{spec.abi}: no syscalls found")
    return Table(spec, syscalls, aliases, pp.files)


def load_source_info(snapshot: Path) -> dict:
    info = json.loads((snapshot / SOURCE_JSON).read_text(encoding="utf-8"))
    version_h = (snapshot / "linux" / "version.h").read_text(encoding="utf-8")
    parts = []
    for key in ("MAJOR", "PATCHLEVEL", "SUBLEVEL"):
        m = re.search(rf"#define LINUX_VERSION_{key} (\d+)", version_h)
        if not m:
            raise GenError(f"linux/version.h lacks LINUX_VERSION_{key}")
        parts.append(m.group(1))
    info["kernel_version"] = ".".join(parts)
    return info


def verify_snapshot(snapshot: Path) -> None:
    sums = (snapshot / SHA256SUMS).read_text(encoding="utf-8").splitlines()
    listed = set()
    for line in sums:
        digest, rel = line.split(None, 1)
        rel = rel.lstrip("*")
        listed.add(rel)
        actual = hashlib.sha256((snapshot / rel).read_bytes()).hexdigest()
        if actual != digest:
            raise GenError(f"{snapshot.name}/{rel}: SHA-256 mismatch (snapshot edited?)")
    present = {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*")
               if p.is_file() and p.name not in (SHA256SUMS, SOURCE_JSON)}
    if present != listed:
        raise GenError(f"{snapshot.name}: files differ from {SHA256SUMS}: "
                       f"{sorted(present ^ listed)}")


def find_snapshot() -> Path:
    dirs = sorted(p for p in SOURCES_DIR.iterdir() if p.is_dir() and (p / SOURCE_JSON).exists())
    if len(dirs) != 1:
        raise GenError(f"expected exactly one snapshot directory in {SOURCES_DIR}, found {dirs}")
    return dirs[0]


def _py_str(s: str) -> str:
    return json.dumps(s)  # ASCII-only, double-quoted: a valid Python literal


def render(table: Table, info: dict, snapshot: Path) -> str:
    spec = table.spec
    kv = info["kernel_version"]
    src_rel = f"tools/syscall_sources/{snapshot.name}"
    headers = ", ".join(f"uapi/{spec.arch}/{f}" for f in table.files)
    predefined = ", ".join(f"{k}={v}" for k, v in sorted(spec.predefined.items())) or "none"
    aliases_of_this = sorted(a for a, t in ABI_ALIASES.items() if t == spec.abi)
    lines = [
        f"# Generated by {GENERATOR} -- DO NOT EDIT.",
        f"# Regenerate with: python {GENERATOR}",
        f"# ABI: {spec.abi}"
        + (f" (also used for: {', '.join(aliases_of_this)})" if aliases_of_this else ""),
        *textwrap.wrap(spec.note, 76, initial_indent="#   ", subsequent_indent="#   "),
        f"# Source: Linux {kv} UAPI headers (kernel's generated asm/unistd*.h),",
        f"#   as shipped in Debian {info['package']} {info['package_version']}:",
        *textwrap.wrap(info["distribution"], 76, initial_indent="#   ",
                       subsequent_indent="#   "),
        f"#   .deb sha256 {info['sha256']}",
        f"#   snapshot: {src_rel}/",
        "#   (see tools/syscall_sources/PROVENANCE.md)",
        *textwrap.wrap(f"Headers read: {headers}", 76, initial_indent="# ",
                       subsequent_indent="#   "),
        f"# Predefined macros: {predefined}",
        "# Licence of the source data: GPL-2.0 WITH Linux-syscall-note.",
        f'"""Linux {kv} syscall numbers for the {spec.abi} ABI (generated)."""',
        "",
        f"ABI = {_py_str(spec.abi)}",
        f"KERNEL_VERSION = {_py_str(kv)}",
        f"SOURCE = {_py_str(info['package'] + ' ' + info['package_version'])}",
        "HEADERS = (",
        *(f"    {_py_str(f'uapi/{spec.arch}/{f}')}," for f in table.files),
        ")",
        "",
        "# name -> number, ordered by number",
        "SYSCALLS = {",
    ]
    for name, nr in sorted(table.syscalls.items(), key=lambda kv_: (kv_[1], kv_[0])):
        lines.append(f"    {_py_str(name)}: {nr},")
    lines.append("}")
    lines.append("")
    lines.append("# alternative name -> canonical name (same number)")
    if table.aliases:
        lines.append("ALIASES = {")
        for alias, target in sorted(table.aliases.items()):
            lines.append(f"    {_py_str(alias)}: {_py_str(target)},")
        lines.append("}")
    else:
        lines.append("ALIASES = {}")
    lines.append("")
    return "\n".join(lines)


def render_index(tables: list[Table], info: dict) -> str:
    """Not written to disk: a summary printed by the generator."""
    out = [f"Linux {info['kernel_version']} ({info['package']} {info['package_version']})"]
    for t in tables:
        out.append(f"  {t.spec.abi:12} {len(t.syscalls):4} syscalls"
                   + (f", {len(t.aliases)} alias(es)" if t.aliases else ""))
    return "\n".join(out)


def generate() -> tuple[dict[Path, str], list[Table], dict]:
    snapshot = find_snapshot()
    verify_snapshot(snapshot)
    info = load_source_info(snapshot)
    tables = [read_table(snapshot, spec) for spec in ABI_SPECS]
    outputs = {OUT_DIR / f"_{t.spec.abi}.py": render(t, info, snapshot) for t in tables}
    return outputs, tables, info


# --------------------------------------------------------------------------
# Snapshot import from a Debian linux-libc-dev package (.deb = ar archive)
# --------------------------------------------------------------------------

def _deb_members(data: bytes) -> dict[str, bytes]:
    if not data.startswith(b"!<arch>\n"):
        raise GenError("not a .deb (ar) archive")
    pos, out = 8, {}
    while pos + 60 <= len(data):
        hdr = data[pos:pos + 60]
        name = hdr[:16].decode().strip().rstrip("/")
        size = int(hdr[48:58].decode().strip())
        out[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    return out


def import_deb(deb: Path, distribution: str) -> Path:
    raw = deb.read_bytes()
    members = _deb_members(raw)
    control_name = next(n for n in members if n.startswith("control.tar"))
    data_name = next(n for n in members if n.startswith("data.tar"))
    with tarfile.open(fileobj=io.BytesIO(members[control_name])) as tf:
        control = tf.extractfile("./control").read().decode()
    fields = dict(re.findall(r"^(Package|Version): (.+)$", control, flags=re.M))
    package, version = fields["Package"], fields["Version"]
    snapshot = SOURCES_DIR / f"{package}_{version}"
    wanted = {}
    for arch, files in SNAPSHOT_FILES.items():
        for f in files:
            if arch == ".":
                wanted[f"./usr/include/{f}"] = f
            else:
                wanted[f"./usr/lib/linux/uapi/{arch}/{f}"] = f"uapi/{arch}/{f}"
    got: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(members[data_name])) as tf:
        for member in tf.getmembers():
            if member.name in wanted and member.isfile():
                got[wanted[member.name]] = tf.extractfile(member).read()
    missing = sorted(set(wanted.values()) - set(got))
    if missing:
        raise GenError(f"{deb.name} lacks {missing}")
    for old in SOURCES_DIR.iterdir():
        if old.is_dir() and (old / SOURCE_JSON).exists():
            shutil.rmtree(old)
    for rel, content in got.items():
        path = snapshot / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (snapshot / SHA256SUMS).write_text(
        "".join(f"{hashlib.sha256(got[rel]).hexdigest()}  {rel}\n" for rel in sorted(got)),
        encoding="utf-8")
    info = {
        "package": package,
        "package_version": version,
        "distribution": distribution,
        "deb_file": deb.name,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "license": "GPL-2.0 WITH Linux-syscall-note",
    }
    (snapshot / SOURCE_JSON).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n",
                                        encoding="utf-8")
    return snapshot


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if a committed table is stale")
    ap.add_argument("--import-deb", type=Path, metavar="DEB",
                    help="replace the snapshot with the headers of this linux-libc-dev .deb")
    ap.add_argument("--distribution", default="Debian",
                    help="where the .deb came from, recorded with --import-deb")
    args = ap.parse_args(argv)
    try:
        if args.import_deb:
            snap = import_deb(args.import_deb, args.distribution)
            print(f"imported {args.import_deb.name} into {snap.relative_to(ROOT)}")
        outputs, tables, info = generate()
    except GenError as exc:
        print(f"gen_syscalls: error: {exc}", file=sys.stderr)
        return 2
    stale = []
    for path, text in outputs.items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    known = {p.name for p in outputs}
    extra = sorted(p for p in OUT_DIR.glob("_*.py")
                   if p.name not in known and p.name != "__init__.py")
    print(render_index(tables, info))
    if args.check:
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)}", file=sys.stderr)
        for p in extra:
            print(f"not generated: {p.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale or extra else 0
    for p in stale:
        print(f"wrote {p.relative_to(ROOT)}")
    for p in extra:
        print(f"warning: {p.relative_to(ROOT)} is not generated by this script", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
