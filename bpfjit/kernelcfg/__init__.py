"""Named kernel configurations: what one kernel build does to a program beyond the seccomp rules.

:func:`bpfjit.check.check` answers with the rules every Linux kernel applies
(``bpf_check_classic``, ``check_load_and_stores``, ``seccomp_check_filter``).
One more refusal depends on the kernel build and the CPU: with
``CONFIG_BPF_JIT_ALWAYS_ON`` a valid program whose eBPF translation the
architecture's BPF JIT fails to compile is refused with ENOTSUPP (524). On
x86-64 that happens when the JIT's size passes do not converge
(:mod:`bpfjit.kernelcfg.x86_jit`). A :class:`KernelConfig` names everything the
x86-64 JIT's instruction sizes depend on for converted seccomp programs:

- ``bmi2``: X86_FEATURE_BMI2, ``shlx``/``shrx`` for ``lsh x``/``rsh x`` (5 bytes,
  else a 7-byte ``push rcx`` sequence);
- ``rethunk``: X86_FEATURE_RETHUNK, the epilogue returns through ``jmp
  __x86_return_thunk`` (5 bytes) instead of ``ret`` (1, 2 with ``sls``);
- ``bhb_barrier``: bytes of ``emit_spectre_bhb_barrier`` in the epilogue of a
  classic program loaded without CAP_SYS_ADMIN (0 on CPUs without
  CLEAR_BHB_LOOP/CLEAR_BHB_HW, and always 0 for root);
- ``ibt``: CONFIG_X86_KERNEL_IBT (``endbr64`` in the prologue).

Constant blinding (``net.core.bpf_jit_harden``: 2, or 1 for unprivileged
loaders) rewrites every immediate before the JIT and is not modelled: a
configuration with ``jit_harden`` set refuses to predict.

Names: ``linux-6.18-x86_64-jit-always-on`` is the kernel this model was
verified on (Linux 6.18, AMD EPYC with BMI2, SRSO "Safe RET" return thunk,
loader with CAP_SYS_ADMIN); ``-ret`` / ``-no-bmi2`` variants change one CPU
property; ``host`` is read from the running system (:func:`host_config`).
"""
from __future__ import annotations

import dataclasses
import gzip
import os
import platform
from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class KernelConfig:
    """One kernel build + CPU + loader, as far as the x86-64 BPF JIT's sizes depend on it."""

    name: str
    release: str = "6.18"
    arch: str = "x86_64"
    bpf_jit_always_on: bool = True
    bmi2: bool = True
    rethunk: bool = True
    sls: bool = False
    ibt: bool = False
    bhb_barrier: int = 0
    jit_harden: int = 0
    #: arch/x86/net/bpf_jit_comp.c MAX_PASSES and PADDING_PASSES (MAX_PASSES - 5)
    max_passes: int = 20
    padding_passes: int = 15
    #: is_imm8_jmp_offset(): the largest forward offset a 2-byte jump may take (123 since 6.13)
    imm8_jmp_max: int = 123

    def epilogue_size(self) -> int:
        """Bytes of the first BPF_EXIT: [bhb barrier] pop r13; pop rbx; leave; return."""
        ret = 5 if self.rethunk else (2 if self.sls else 1)
        return self.bhb_barrier + 3 + 1 + ret

    def prologue_size(self, stack_depth: int) -> int:
        """Bytes before the first instruction: [endbr] nop5; push rbp; mov rbp,rsp; [sub rsp]; push rbx; push r13."""
        return (4 if self.ibt else 0) + 5 + 1 + 3 + (4 if self.ibt else 0) + \
            (7 if stack_depth else 0) + 1 + 2

    def replace(self, **changes) -> "KernelConfig":
        return dataclasses.replace(self, **changes)


_BASE = KernelConfig("linux-6.18-x86_64-jit-always-on")
KERNELS: dict[str, KernelConfig] = {c.name: c for c in (
    _BASE,
    _BASE.replace(name="linux-6.18-x86_64-jit-always-on-ret", rethunk=False),
    _BASE.replace(name="linux-6.18-x86_64-jit-always-on-no-bmi2", bmi2=False),
    _BASE.replace(name="linux-6.18-x86_64-jit-always-on-ret-no-bmi2", rethunk=False, bmi2=False),
)}


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def _kconfig() -> dict[str, str]:
    text = ""
    try:
        with gzip.open("/proc/config.gz", "rt") as fh:
            text = fh.read()
    except OSError:
        text = _read(f"/boot/config-{platform.release()}")
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            out[key] = value
    return out


def host_config() -> KernelConfig | None:
    """The running kernel's configuration, or None when it is not an x86-64 kernel we model.

    Read from uname, /proc/config.gz (or /boot/config-*), /proc/cpuinfo,
    /proc/sys/net/core/bpf_jit_harden and /sys/devices/system/cpu/vulnerabilities.
    X86_FEATURE_RETHUNK is not shown in /proc/cpuinfo: it is inferred from the
    mitigations that install a return thunk (retbleed untrained return thunk /
    IBPB, SRSO safe RET, ITS aligned return thunks).
    """
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return None
    release = platform.release()
    try:
        major, minor = (int(x) for x in release.split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < (6, 13):
        return None                      # no is_imm8_jmp_offset(): another pass rule
    kc = _kconfig()
    cpu = _read("/proc/cpuinfo")
    flags = set()
    for line in cpu.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    vul = "/sys/devices/system/cpu/vulnerabilities/"
    retbleed = _read(vul + "retbleed")
    srso = _read(vul + "spec_rstack_overflow")
    its = _read(vul + "indirect_target_selection")
    rethunk = ("return thunk" in retbleed.lower() or "IBPB" in retbleed
               or "Safe RET" in srso or "return thunk" in its.lower())
    harden = _read("/proc/sys/net/core/bpf_jit_harden").strip()
    root = os.geteuid() == 0
    return KernelConfig(
        name="host", release=f"{major}.{minor}",
        bpf_jit_always_on=kc.get("CONFIG_BPF_JIT_ALWAYS_ON") == "y",
        bmi2="bmi2" in flags, rethunk=rethunk,
        sls=kc.get("CONFIG_MITIGATION_SLS") == "y" or kc.get("CONFIG_SLS") == "y",
        ibt=kc.get("CONFIG_X86_KERNEL_IBT") == "y",
        # emit_spectre_bhb_barrier: only Intel CPUs have CLEAR_BHB_LOOP/CLEAR_BHB_HW, and
        # CAP_SYS_ADMIN skips it; other loaders on such CPUs are not modelled (see below)
        bhb_barrier=0,
        jit_harden=int(harden) if harden.isdigit() and (int(harden) >= 2 or
                                                       (int(harden) == 1 and not root)) else 0)


def kernel_config(kernel: "str | KernelConfig") -> KernelConfig:
    """A KernelConfig from a name in :data:`KERNELS`, ``"host"``, or a KernelConfig."""
    if isinstance(kernel, KernelConfig):
        return kernel
    if not isinstance(kernel, str):
        raise TypeError(f"kernel must be a name or a KernelConfig, not {type(kernel).__name__}")
    if kernel == "host":
        cfg = host_config()
        if cfg is None:
            raise InputError(f"the running kernel ({platform.system()} {platform.release()} "
                             f"{platform.machine()}) is not one whose BPF JIT bpfjit models "
                             f"(x86_64 Linux >= 6.13)")
        return cfg
    try:
        return KERNELS[kernel]
    except KeyError:
        raise InputError(f"unknown kernel configuration {kernel!r}; known: "
                         f"{', '.join(sorted(KERNELS))}, host") from None


__all__ = ["KernelConfig", "KERNELS", "host_config", "kernel_config"]
