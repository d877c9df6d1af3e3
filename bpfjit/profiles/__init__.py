"""Seccomp profiles → filters through the real libseccomp: Docker/OCI JSON, Firecracker JSON, LXC policies.

Policy authors hold profiles, not ``.bpf`` files. :func:`compile_profile`
turns one into the program its runtime would install, by making the same
libseccomp calls as that runtime (``oci``: dockerd/podman's profile
resolution + runc; ``firecracker``: seccompiler's rules, one filter per thread
category; ``lxc``: LXC's ``.seccomp`` policy parser), and returns a
:class:`CompiledProfile`: the :class:`~bpfjit.Program`, the ``seccomp()``
flags, the resolved choices and the warnings (names libseccomp does not know,
settings that cannot apply). ``bpfjit.load("profile.json")`` does the same and
returns just the program.

Resolved choices and their defaults:

* ``arch``: the target architecture (default: the host's). Its archMap
  sub-architectures (x86 and x32 for x86_64, arm for aarch64, s390 for s390x)
  are part of the filter.
* ``caps``: the container's capability bounding set for ``includes.caps`` /
  ``excludes.caps`` (default: :data:`DOCKER_DEFAULT_CAPS`; also the presets
  ``"docker"``, ``"podman"``, ``"all"``, ``"none"``).
* ``kernel``: the kernel version for ``minKernel`` (default: the host's).
* ``optimize``: libseccomp's ``SCMP_FLTATR_CTL_OPTIMIZE`` (1 linear, the
  default of libseccomp, runc 1.1 and crun; 2 binary tree; ``"runc"`` as
  runc >= 1.2: 2 when more than 32 syscalls).
* ``runtime``: ``"crun"`` (libseccomp's program as is, what crun loads and
  what the corpus filters are) or ``"runc"`` (runc's -ENOSYS prologue first).
* ``thread``: the Firecracker thread category (``vmm``, ``api``, ``vcpu``);
  ``path.json#vmm`` selects it in a path.

>>> from bpfjit.profiles import compile_profile
>>> cp = compile_profile("tests/corpus/real/profiles/docker-default.profile.json",
...                      arch="x86_64", kernel="6.1")        # doctest: +SKIP
>>> cp.program, cp.warnings                                    # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import ProfileError
from ..program import Program

FORMATS = ("oci", "firecracker", "lxc")

#: moby's default capability set of a container (oci/caps/defaults.go)
DOCKER_DEFAULT_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                       "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                       "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
#: Podman's default_capabilities (containers/common pkg/config/default.go)
PODMAN_DEFAULT_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                       "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
                       "CAP_SETUID", "CAP_SYS_CHROOT")
#: every capability of include/uapi/linux/capability.h (Linux 6.x)
ALL_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
            "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
            "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
            "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
            "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
            "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
            "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
            "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
            "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE")
CAP_PRESETS = {"docker": DOCKER_DEFAULT_CAPS, "podman": PODMAN_DEFAULT_CAPS, "all": ALL_CAPS,
               "none": ()}


@dataclass
class CompiledProfile:
    """A profile compiled by libseccomp: the program plus what a runtime would know about it."""
    program: Program
    format: str
    arch: str
    caps: tuple[str, ...]
    kernel: tuple[int, int]
    flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    thread: str | None = None
    libseccomp: str = ""

    def filter(self, backend: str = "auto"):
        """The program compiled for its target arch (a :class:`~bpfjit.Filter`)."""
        from ..filter import compile
        return compile(self.program, backend=backend, arch=self.arch)


def resolve_caps(caps: "str | Iterable[str] | None") -> tuple[str, ...]:
    """``None`` → Docker's default set; a preset name or comma list; or names (``CAP_`` optional)."""
    from .oci import normalise_caps
    if caps is None:
        caps = "docker"
    if isinstance(caps, str):
        key = caps.strip().lower()
        if key in CAP_PRESETS:
            return tuple(CAP_PRESETS[key])
        caps = caps.split(",")
    out = normalise_caps(caps)
    unknown = sorted(out - set(ALL_CAPS))
    if unknown:
        raise ProfileError(f"unknown capabilities {', '.join(unknown)}; use names such as "
                           f"CAP_SYS_ADMIN or a preset ({', '.join(CAP_PRESETS)})")
    return tuple(sorted(out))


def resolve_kernel(kernel: "str | tuple[int, int] | None") -> tuple[int, int]:
    from .oci import host_kernel, parse_kernel
    if kernel is None:
        return host_kernel()
    if isinstance(kernel, tuple):
        return (int(kernel[0]), int(kernel[1]))
    try:
        return parse_kernel(str(kernel))
    except ValueError as exc:
        raise ProfileError(str(exc)) from None


def detect(data: bytes) -> str | None:
    """``oci``, ``firecracker`` or ``lxc`` when ``data`` looks like such a profile, else None."""
    head = data.lstrip()[:1]
    if head == b"{":
        from .oci import looks_like
        from .firecracker import looks_like as looks_like_fc
        import json
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return "oci"             # broken JSON: let the OCI parser name the error
        if looks_like_fc(doc):
            return "firecracker"
        return "oci" if looks_like(doc) or isinstance(doc, dict) else None
    from .lxc import looks_like as looks_like_lxc
    return "lxc" if looks_like_lxc(data) else None


def split_thread(source: "str | os.PathLike") -> tuple["str | os.PathLike", str | None]:
    """``path.json#vmm`` → (``path.json``, ``vmm``) when ``path.json`` exists; else unchanged."""
    if isinstance(source, str) and "#" in source and "\n" not in source:
        path, _, thread = source.rpartition("#")
        if path and Path(path).is_file():
            return path, thread
    return source, None


def compile_profile(source: "str | bytes | os.PathLike", format: str | None = None, *,
                    arch: str | None = None, caps: "str | Iterable[str] | None" = None,
                    kernel: "str | tuple[int, int] | None" = None, optimize: "int | str" = 1,
                    thread: str | None = None, name: str | None = None,
                    runtime: str = "crun") -> CompiledProfile:
    """Compile a profile (a path, ``path.json#thread``, or the file's bytes) with libseccomp.

    ``runtime`` (OCI profiles): ``"crun"`` loads libseccomp's program as is;
    ``"runc"`` prepends runc's -ENOSYS prologue (:mod:`bpfjit.profiles.patchbpf`).
    """
    from . import libseccomp as scmp
    from .rules import compile_rules, host_arch, target_layout
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), name or "<bytes>"
    else:
        source, from_path = split_thread(source)
        thread = thread or from_path
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ProfileError(f"cannot read: {exc.strerror or exc}", source=str(source)) from None
        name = name or str(source)
    if isinstance(optimize, str) and optimize.isdigit():
        optimize = int(optimize)
    fmt = format or detect(data)
    if fmt not in FORMATS:
        raise ProfileError(f"not a seccomp profile (choose format from {', '.join(FORMATS)})"
                           if format is None else
                           f"unknown profile format {format!r}; choose from {', '.join(FORMATS)}",
                           source=name)
    target = target_layout(arch or host_arch()).name
    caps_ = resolve_caps(caps)
    kernel_ = resolve_kernel(kernel)
    if fmt == "oci":
        from . import oci
        rs = oci.rule_set(data, name, oci.choices(target, caps_, kernel_), optimize=optimize,
                          runtime=runtime)
    elif fmt == "firecracker":
        from . import firecracker
        rs, thread = firecracker.rule_set(data, name, target, thread, optimize=optimize)
    if runtime != "crun" and fmt != "oci":
        raise ProfileError(f"runtime={runtime!r} only applies to OCI/Docker profiles", source=name)
    if thread is not None and fmt != "firecracker":
        raise ProfileError(f"a thread category ({thread!r}) only applies to Firecracker JSON",
                           source=name)
    if fmt == "lxc":
        from . import lxc
        if optimize != 1:
            raise ProfileError("LXC leaves libseccomp's optimize level at 1", source=name)
        program, warnings = lxc.build(data, name, target)
        flags: list[str] = []
    else:
        label = f"{name}#{thread}" if thread else name
        program = compile_rules(rs, source=label)
        flags, warnings = rs.flags, rs.warnings
    return CompiledProfile(program=program, format=fmt, arch=target, caps=caps_, kernel=kernel_,
                           flags=flags, warnings=warnings, thread=thread,
                           libseccomp=".".join(map(str, scmp.version())))


class ProfileWarning(UserWarning):
    """Something in a profile was skipped or cannot apply (unknown syscall names, listenerPath...)."""


#: a sub-architecture → the main architecture whose profile filter handles it
MAIN_ARCH = {"x86": "x86_64", "x32": "x86_64", "arm": "aarch64", "s390": "s390x",
             "ppc": "ppc64", "mips": "mips64", "mips64n32": "mips64", "mipsel": "mipsel64",
             "mipsel64n32": "mipsel64"}


def profile_target(arch, profile_arch: str | None) -> str | None:
    """The target for a profile: ``profile_arch``, else ``arch``'s main architecture, else None (host)."""
    if profile_arch:
        return profile_arch
    if arch is None:
        return None
    from ..seccomp.layouts import layout
    name = layout(arch).name
    if name in MAIN_ARCH:
        from .rules import host_arch
        host = host_arch()
        # x86 on an x86_64 machine is served by the x86_64 filter (unless the host is x86)
        return name if name == host else MAIN_ARCH[name]
    return name


def load_profile(data: bytes, format: str, *, name: str, arch=None, profile_arch=None, caps=None,
                 kernel=None, optimize: "int | str" = 1, thread: str | None = None,
                 runtime: str = "crun") -> Program:
    """``bpfjit.load`` for profiles: compile, issue the warnings, return the program."""
    import warnings as _warnings
    cp = compile_profile(data, format, arch=profile_target(arch, profile_arch), caps=caps,
                         kernel=kernel, optimize=optimize, thread=thread, name=name,
                         runtime=runtime)
    for text in cp.warnings:
        _warnings.warn(f"{name}: {text}", ProfileWarning, stacklevel=3)
    return cp.program


__all__ = ["load_profile", "ProfileWarning", "profile_target", "compile_profile", "CompiledProfile", "detect", "FORMATS", "DOCKER_DEFAULT_CAPS",
           "PODMAN_DEFAULT_CAPS", "ALL_CAPS", "CAP_PRESETS", "resolve_caps", "resolve_kernel"]
