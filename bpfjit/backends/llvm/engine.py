"""Code-generation stage: LLVM IR text becomes machine code for this CPU (llvmlite.binding only).

- :func:`host` — what the code is generated for: LLVM version, triple, host CPU
  name and features (all of it goes into the compile-cache key);
- :func:`optimize` — parse, verify and run the optimisation pipeline;
- :func:`emit_object` — a relocatable object for the host CPU (small code
  model, position independent: :mod:`.image` links it into a flat image);
- :func:`assembly` — the same code as text, for ``describe()``;
- :func:`mcjit` / :func:`mcjit_object` — the portable path: LLVM's MCJIT
  compiles (or loads a cached object) and resolves the entry points.

The pipeline is deliberately lean. Lowering already produces SSA (no allocas),
recognised dispatch regions are already ``switch`` instructions and every record
word is loaded once, so after inlining the small entry points only
``instcombine`` and ``simplifycfg`` are worth their time; instruction selection
at ``-O2`` does the rest. It keeps a cold compile of the 1,001-instruction
Docker filter near 30 ms, where the full ``O2`` module pipeline adds little
speed (the loop is memory-bound) for more time.

A hostile program can make LLVM's passes and instruction selection
superlinear (thousands of blocks that test the same value, thousands of
``ret`` of one register...): a valid 4096-instruction filter took 4.7 s in
``instcombine`` and 1.4 s in ``-O2`` code generation. So each module comes in
one of two modes, chosen by the backend from the lowered module's size
(deterministically: the same program always gives the same code):
``lean=False`` (the pipeline above, every real filter) and ``lean=True`` —
only the always-inliner and code generation at ``-O0`` (fast instruction
selection), which stays linear: under 0.1 s for every shape measured.

LLVM is process-global state: everything here runs under one lock.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import llvmlite
import llvmlite.binding as llvm

LOCK = threading.RLock()

#: the optimisation level of instruction selection / code generation (lean mode: 0)
CODEGEN_OPT = 2


@dataclass(frozen=True)
class Host:
    """What machine code is generated for; every field is part of the cache key."""

    llvmlite_version: str
    llvm_version: str
    triple: str
    cpu: str
    features: str

    def as_dict(self) -> dict[str, str]:
        return {"llvmlite_version": self.llvmlite_version, "llvm_version": self.llvm_version,
                "triple": self.triple, "cpu": self.cpu, "features": self.features}


@lru_cache(maxsize=None)
def host() -> Host:
    with LOCK:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        features = llvm.get_host_cpu_features().flatten()
        return Host(llvmlite.__version__, ".".join(map(str, llvm.llvm_version_info)),
                    llvm.get_process_triple(), llvm.get_host_cpu_name(), features)


def _target_machine(kind: str, lean: bool = False) -> "llvm.TargetMachine":
    """``image``: small code model, PIC (for :mod:`.image`); ``jit``: MCJIT's own settings.

    An MCJIT engine takes ownership of its target machine and frees it with
    itself, so ``jit`` machines are made fresh for each engine.
    """
    if kind == "image":
        return _image_target_machine(lean)
    return _new_target_machine("jit", lean)


@lru_cache(maxsize=None)
def _image_target_machine(lean: bool = False) -> "llvm.TargetMachine":
    return _new_target_machine("image", lean)


def _new_target_machine(kind: str, lean: bool = False) -> "llvm.TargetMachine":
    h = host()
    target = llvm.Target.from_triple(h.triple)
    opt = 0 if lean else CODEGEN_OPT
    if kind == "image":
        return target.create_target_machine(cpu=h.cpu, features=h.features, opt=opt,
                                            reloc="pic", codemodel="small")
    return target.create_target_machine(cpu=h.cpu, features=h.features, opt=opt,
                                        codemodel="jitdefault", jit=True)


def optimize(ir_text: str, kind: str = "image", lean: bool = False) -> "llvm.ModuleRef":
    """Parse and verify the IR, then run the pipeline (only inlining when ``lean``)."""
    with LOCK:
        tm = _target_machine(kind, lean)
        mod = llvm.parse_assembly(ir_text)
        mod.triple = host().triple
        mod.data_layout = str(tm.target_data)
        mod.verify()
        pto = llvm.create_pipeline_tuning_options(speed_level=2)
        pb = llvm.create_pass_builder(tm, pto)
        mpm = llvm.create_new_module_pass_manager()
        mpm.add_always_inliner_pass()
        if not lean:
            mpm.add_instruction_combine_pass()
            mpm.add_simplify_cfg_pass()
        mpm.add_global_dead_code_eliminate_pass()
        mpm.run(mod, pb)
        return mod


def emit_object(mod: "llvm.ModuleRef", lean: bool = False) -> bytes:
    """Machine code for the host CPU as a relocatable (ELF on Linux) object."""
    with LOCK:
        return _target_machine("image", lean).emit_object(mod)


def assembly(mod: "llvm.ModuleRef", kind: str = "image", lean: bool = False) -> str:
    with LOCK:
        return _target_machine(kind, lean).emit_assembly(mod)


class Jitted:
    """Entry-point addresses inside an MCJIT engine, which this object keeps alive."""

    def __init__(self, engine: "llvm.ExecutionEngine", names: tuple[str, ...]):
        self._engine = engine
        self.addresses = {}
        for name in names:
            address = engine.get_function_address(name)
            if not address:
                raise RuntimeError(f"MCJIT did not produce the entry point {name!r}")
            self.addresses[name] = address


def mcjit(mod: "llvm.ModuleRef", names: tuple[str, ...], lean: bool = False
          ) -> tuple[Jitted, bytes]:
    """Compile ``mod`` (optimised with ``kind='jit'``) with MCJIT; also return its object code."""
    with LOCK:
        engine = llvm.create_mcjit_compiler(mod, _target_machine("jit", lean))
        captured: list[bytes] = []
        engine.set_object_cache(lambda _module, buf: captured.append(bytes(buf)), None)
        engine.finalize_object()
        jitted = Jitted(engine, names)
        if not captured:
            raise RuntimeError("MCJIT produced no object code to cache")
        return jitted, captured[0]


def mcjit_object(obj: bytes, names: tuple[str, ...]) -> Jitted:
    """Load object code that :func:`mcjit` produced earlier (no optimiser, no codegen)."""
    with LOCK:
        empty = llvm.parse_assembly("")
        empty.triple = host().triple
        engine = llvm.create_mcjit_compiler(empty, _target_machine("jit"))
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        engine.finalize_object()
        return Jitted(engine, names)
