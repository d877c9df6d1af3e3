"""Parsing audit logs into calls: ``type=SECCOMP`` (1326) records, streaming.

Three spellings of the same record are read:

* audit.log: ``type=SECCOMP msg=audit(1700000000.123:456): ... arch=c000003e syscall=257 compat=0 ip=0x7f... code=0x50000``
* the kernel log (``dmesg``, ``/dev/kmsg``, journal): ``audit: type=1326 audit(1700000000.123:456): ...``
* ``ausearch -i``: ``type=SECCOMP msg=audit(12/05/2026 08:00:00.123:456) : ... arch=x86_64 syscall=openat ... code=errno``

The kernel's record (kernel/auditsc.c ``audit_seccomp``) names the arch, the
syscall, the instruction pointer and the action it took (``code``), but no
arguments: every argument is unknown. Other audit records are skipped.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from ..seccomp import layouts
from .calls import Call, Problem

_SECCOMP = re.compile(r"type=(?:SECCOMP|1326)\b")
_FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')
_AUDIT_LINE = re.compile(r"type=\w+ (?:msg=)?audit\(|^----$|audit: type=\d+")
_MAX_TEXT = 200

#: ausearch -i arch names (libaudit's machine table) -> libseccomp arch names
_AUSEARCH_ARCHES = {"i386": "x86", "i486": "x86", "i586": "x86", "i686": "x86",
                    "armeb": "arm", "armv5tejl": "arm", "armv7l": "arm", "arm": "arm",
                    "ppc64le": "ppc64le", "ppc64": "ppc64", "ppc": "ppc", "s390x": "s390x",
                    "s390": "s390", "x86_64": "x86_64", "aarch64": "aarch64",
                    "riscv64": "riscv64", "loongarch64": "loongarch64", "mips": "mips",
                    "mipsel": "mipsel", "mips64": "mips64", "mips64el": "mipsel64"}


def looks_like_audit(lines: list[str]) -> bool:
    """Do these first lines of a file look like audit records rather than strace output?"""
    return any(_AUDIT_LINE.search(line) for line in lines)


def _arch(text: str) -> str | None:
    try:
        value = int(text, 16)
    except ValueError:
        name = _AUSEARCH_ARCHES.get(text, text)
        try:
            return layouts.layout(name).name
        except Exception:  # noqa: BLE001 - any unknown name: reported by the caller
            return None
    found = layouts.by_audit_arch(value)
    return found[0].name if found else None


def parse(lines: Iterable[str], source: str = "<audit>") -> Iterator[Call | Problem]:
    """Calls (one per SECCOMP record) and problems of an audit log (1-based line numbers)."""
    for no, line in enumerate(lines, 1):
        m = _SECCOMP.search(line)
        if not m:
            continue
        fields = dict(_FIELD.findall(line[m.end():]))
        text = line.strip()[:_MAX_TEXT]
        arch_text, sc = fields.get("arch"), fields.get("syscall")
        if arch_text is None or sc is None:
            yield Problem(source, no, "SECCOMP record without arch= and syscall=", text)
            continue
        arch = _arch(arch_text)
        if arch is None:
            yield Problem(source, no, f"unknown arch={arch_text}", text)
            continue
        name, nr = None, None
        try:
            nr = int(sc, 10)
        except ValueError:
            name = sc
        ip = None
        if "ip" in fields:
            try:
                ip = int(fields["ip"], 16)
            except ValueError:
                yield Problem(source, no, f"bad ip={fields['ip']}", text)
                continue
        recorded = None
        code = fields.get("code", "")
        if code.startswith("0x"):
            try:
                recorded = int(code, 16)
            except ValueError:
                recorded = None
        pid = fields.get("pid")
        yield Call(source, no, int(pid) if pid and pid.isdigit() else None, name, nr, None, ip,
                   text, arch=arch, values=(None,) * 6, recorded=recorded)
