"""Backend stage: ``backend="llvm"`` — a checked program compiled to native code for this CPU.

The pipeline, one module per step:

1. :mod:`bpfjit.analysis` — dispatch regions and the constant-verdict table;
2. :mod:`.lower` — the program as an LLVM IR module (llvmlite.ir);
3. :mod:`.engine` — optimisation and code generation (llvmlite.binding);
4. :mod:`.image` — the object linked into a flat position-independent image
   and mapped executable (Linux x86-64); elsewhere, or for anything the image
   loader does not handle, LLVM's MCJIT compiles and loads the code;
5. :mod:`.cache` — the result kept in memory and on disk, so a known filter
   costs neither LLVM's optimiser nor, in a new process, even loading LLVM;
6. :mod:`.abi` — ctypes bindings of the native entry points.

Nothing here imports llvmlite until a program has to be compiled.
"""
from __future__ import annotations

import itertools
import logging
import struct
import threading
import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ...check import CheckedProgram, vouched
from ...errors import BackendUnavailable, InputError
from ...program import Program
from ...seccomp.layouts import Layout
from ...seccomp.records import SECCOMP_DATA
from . import abi, image
from .cache import CodeCache, cache_dir, entry_key, host_profile, llvmlite_spec

if TYPE_CHECKING:  # pragma: no cover
    from .stacked import LlvmStackEvaluator

log = logging.getLogger("bpfjit")

LOADERS = ("image", "mcjit")
_MISSED = threading.local()              # the key this thread's last recall() did not find


def _layout_fields(layout: Layout) -> dict[str, Any]:
    return {"name": layout.name, "audit_arch": layout.audit_arch, "byteorder": layout.byteorder,
            "bits": layout.bits, "syscall_abi": layout.syscall_abi, "nr_bit": layout.nr_bit}


class LlvmEvaluator:
    """Native code for one (program, layout): batch, one record, scalars, nr only."""

    releases_gil = True

    def __init__(self, code: Any, program: CheckedProgram, layout: Layout, info: dict[str, Any]):
        fns = abi.bind(code.addresses, code)
        self._code = code                      # owns the executable memory / the MCJIT engine
        self.program = program
        self.layout = layout
        self.info = info
        self._batch = fns[abi.ENTRY_BATCH]
        self._args = fns[abi.ENTRY_ARGS]
        self._one = fns[abi.ENTRY_ONE]
        #: ``evaluate_nr(nr) -> int``: the layout's arch, ip 0, args 0 (``nr`` as u32 or signed)
        self.evaluate_nr = fns[abi.ENTRY_NR]
        #: ``evaluate_packed(record) -> int``: one record as 64 ``bytes`` in SECCOMP_DATA layout
        self.evaluate_packed = fns["packed"]
        self._describe: dict[str, str] | None = None

    def evaluate_batch(self, records: np.ndarray, out: np.ndarray) -> None:
        n = len(records)
        if (records.dtype != SECCOMP_DATA or not records.flags.c_contiguous or records.ndim != 1
                or out.dtype != np.uint32 or out.shape != (n,) or not out.flags.c_contiguous
                or not out.flags.writeable):
            raise InputError("LlvmEvaluator.evaluate_batch needs a 1-D contiguous SECCOMP_DATA "
                             "array and a writable uint32 array of the same length "
                             "(Filter.evaluate_batch checks and explains)")
        if n:
            self._batch(records.ctypes.data, n, out.ctypes.data)

    def evaluate_one(self, nr: int, arch: int, instruction_pointer: int, args) -> int:
        return self._args(nr, arch, instruction_pointer, *args)

    def evaluate_record(self, record: np.ndarray) -> int:
        """The return value for a length-1 ``SECCOMP_DATA`` array (or a record view)."""
        rec = np.ascontiguousarray(record, dtype=SECCOMP_DATA).reshape(-1)
        if len(rec) != 1:
            raise InputError(f"evaluate_record takes one record, not {len(rec)}")
        return self._one(rec.ctypes.data)

    def describe(self) -> dict[str, str]:
        """``ir`` (as lowered), ``optimized_ir``, ``asm``, and how the code was built."""
        if self._describe is None:
            from ...analysis import dispatch, verdicts
            from . import engine, lower
            table = verdicts.build(self.program, self.layout)
            regions = dispatch.find_dispatches(self.program)
            module = lower.lower(self.program, self.layout, dispatches=regions, table=table)
            lean = _lean(module)
            ir_text = str(module)
            kind = "jit" if self.info.get("kind") == "mcjit" else "image"
            mod = engine.optimize(ir_text, kind, lean)
            self._describe = {"ir": ir_text, "optimized_ir": str(mod),
                              "asm": engine.assembly(mod, kind, lean)}
            self._describe.update({k: str(v) for k, v in self.info.items()})
        return dict(self._describe)


class LlvmBackend:
    """Compiles with LLVM; caches machine code in memory and on disk (see :mod:`.cache`)."""

    name = "llvm"

    def __init__(self, loader: str | None = None, cache: CodeCache | None = None):
        if loader is not None and loader not in LOADERS:
            raise ValueError(f"loader must be one of {LOADERS}, not {loader!r}")
        self.loader = loader
        self._given_cache = cache
        self._cache: CodeCache | None = None

    @property
    def cache(self) -> CodeCache:
        """The code cache: the one given, else one in ``cache_dir()`` (followed if it changes)."""
        if self._given_cache is not None:
            return self._given_cache
        where = cache_dir()
        if self._cache is None or self._cache.directory != where:
            self._cache = CodeCache(where)
        return self._cache

    def unavailable_reason(self) -> str | None:
        if llvmlite_spec() is None:
            return "llvmlite is not installed (pip install llvmlite)"
        return None

    def _loader(self) -> str:
        return self.loader or ("image" if image.supported() else "mcjit")

    def key(self, program: CheckedProgram, layout: Layout, program_bytes: bytes | None = None
            ) -> str:
        from ... import __version__
        store = self.cache
        host = host_profile(store.disk(), _ask_llvm)
        return entry_key(program_bytes or _program_bytes(program), _layout_fields(layout),
                         f"llvm/{self._loader()}", host, __version__)

    def compile(self, program: CheckedProgram, layout: Layout) -> LlvmEvaluator:
        if not isinstance(program, CheckedProgram):
            raise TypeError("backends compile checked programs only (bpfjit.check(program))")
        if self.unavailable_reason():
            raise BackendUnavailable(self.unavailable_reason())
        raw = _program_bytes(program)
        try:
            key = self.key(program, layout, raw)
        except Exception as exc:  # noqa: BLE001 - LLVM cannot even describe the host
            raise BackendUnavailable(f"LLVM cannot target this host: {exc}") from exc
        code, info = self._code(key, lambda: _build(program, layout, self._loader()),
                                abi.ENTRIES, "program", raw)
        return LlvmEvaluator(code, program, layout, info)

    def compile_stack(self, programs: "Sequence[CheckedProgram]",
                      layout: Layout) -> "LlvmStackEvaluator":
        """One native function for a whole stack (programs OLDEST first), see :mod:`.lower_stack`.

        Cached like single programs, under a key over every program's bytes.
        """
        from .stacked import STACK_ENTRIES, LlvmStackEvaluator, build_stack, stack_bytes
        if not programs or not all(isinstance(p, CheckedProgram) for p in programs):
            raise TypeError("compile_stack takes a non-empty sequence of checked programs")
        if self.unavailable_reason():
            raise BackendUnavailable(self.unavailable_reason())
        from ... import __version__
        try:
            host = host_profile(self.cache.disk(), _ask_llvm)
        except Exception as exc:  # noqa: BLE001 - LLVM cannot even describe the host
            raise BackendUnavailable(f"LLVM cannot target this host: {exc}") from exc
        raw = stack_bytes([_program_bytes(p) for p in programs])
        key = entry_key(raw, _layout_fields(layout), f"llvm-stack/{self._loader()}", host,
                        __version__)
        code, info = self._code(key, lambda: build_stack(programs, layout, self._loader()),
                                STACK_ENTRIES, "stack", raw)
        return LlvmStackEvaluator(code, tuple(programs), layout, info)

    def recall(self, program: Program, layout: Layout) -> LlvmEvaluator | None:
        """The evaluator of a program compiled before — from memory or an authenticated disk
        entry whose stored bytes equal ``program``'s — else None. Only checked programs are
        ever compiled and stored, so a hit vouches for ``program`` without checking it again
        (the warm start's cheapest path); a miss means: check, then :meth:`compile`."""
        if self.unavailable_reason():
            return None
        raw = _program_bytes(program)
        try:
            key = self.key(program, layout, raw)
        except Exception:  # noqa: BLE001 - LLVM cannot describe the host: compile() says so
            return None
        found = self._cached(key, abi.ENTRIES, raw)
        if found is None:
            _MISSED.key = key                  # compile() right after need not look again
            return None
        return LlvmEvaluator(found[0], vouched(program), layout, found[1])

    def _cached(self, key: str, entries: tuple[str, ...], raw: bytes
                ) -> tuple[Any, dict] | None:
        """Loaded code for ``key`` from memory, else from disk (authenticated, ``raw`` program
        bytes re-compared), else None."""
        store = self.cache
        found = store.recall(key)
        if found is not None:
            code, info = found
            return code, dict(info, cache="memory")
        entry = store.load(key, raw)
        if entry is not None:
            header, payload = entry
            try:
                code = _load(header, payload, entries)
            except Exception as exc:  # noqa: BLE001 - a stale or foreign entry: rebuild it
                log.debug("bpfjit cache: entry %s could not be loaded (%s); recompiling", key, exc)
            else:
                info = dict(header.get("info", {}), kind=header["kind"])
                store.remember(key, (code, info))
                return code, dict(info, cache="disk")
        return None

    def _code(self, key: str, build, entries: tuple[str, ...], what: str,
              raw: bytes) -> tuple[Any, dict]:
        """Loaded code for ``key``: from memory, from disk (authenticated, ``raw`` program bytes
        re-compared), else ``build()`` and store it."""
        if getattr(_MISSED, "key", None) == key:
            _MISSED.key = None                 # recall() just missed it: build
        else:
            found = self._cached(key, entries, raw)
            if found is not None:
                return found
        store = self.cache
        from ...analysis.budget import gc_paused   # the analyses are imported on a miss only
        try:
            with gc_paused():                  # see analysis.budget: a third of a hostile compile
                code, header, payload = build()
        except BackendUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any codegen / JIT failure
            raise BackendUnavailable(f"LLVM could not compile this {what}: "
                                     f"{type(exc).__name__}: {exc}") from exc
        store.store(key, header, payload, raw)
        info = dict(header["info"], kind=header["kind"])
        store.remember(key, (code, info))
        return code, dict(info, cache="miss")


def _program_bytes(program: CheckedProgram) -> bytes:
    """``program.to_bytes("little")``, three times faster (it is on the warm-cache path)."""
    insns = program.instructions
    return struct.pack("<" + "HBBI" * len(insns), *itertools.chain.from_iterable(insns))


def _ask_llvm() -> dict[str, str]:
    from . import engine
    return engine.host().as_dict()


def _load(header: dict[str, Any], payload: bytes, entries: tuple[str, ...] = abi.ENTRIES) -> Any:
    kind = header.get("kind")
    if kind == "image":
        symbols = {str(k): int(v) for k, v in header["symbols"].items()}
        return image.Mapped(image.Image(payload, int(header["exec_size"]), symbols))
    if kind == "mcjit":
        from . import engine
        return engine.mcjit_object(payload, entries)
    raise ValueError(f"unknown cache entry kind {kind!r}")


def _build(program: CheckedProgram, layout: Layout, loader: str) -> tuple[Any, dict, bytes]:
    """Analyse, lower, optimise, generate and load; returns (code, cache header, payload)."""
    from ...analysis import dispatch, verdicts
    from . import lower
    t0 = time.perf_counter()
    table = verdicts.build(program, layout)
    regions = dispatch.find_dispatches(program)
    t1 = time.perf_counter()
    module = lower.lower(program, layout, dispatches=regions, table=table)
    lean = _lean(module)
    ir_text = str(module)
    info: dict[str, Any] = {"table_entries": table.entries, "table_known": table.known,
                            "table_windows": len(table.windows), "switches": len(regions),
                            "table_abandoned": len(table.abandoned),
                            "codegen": "lean" if lean else "full"}
    return _generate(ir_text, loader, abi.ENTRIES, info, t0, t1, lean)


def _generate(ir_text: str, loader: str, entries: tuple[str, ...], info: dict[str, Any],
              t0: float, t1: float, lean: bool = False) -> tuple[Any, dict, bytes]:
    """Optimise and generate IR text, load it with ``loader`` (image, else MCJIT);
    ``lean``: LLVM's cheap pipeline for very large modules (see :mod:`.engine`)."""
    from . import engine
    t2 = time.perf_counter()
    if loader == "image":
        mod = engine.optimize(ir_text, "image", lean)
        t3 = time.perf_counter()
        obj = engine.emit_object(mod, lean)
        try:
            img = image.link(obj, entries)
            code = image.Mapped(img)
        except (image.Unsupported, OSError) as exc:
            log.debug("bpfjit: flat image unavailable (%s); using MCJIT", exc)
        else:
            t4 = time.perf_counter()
            info.update(_timings(t0, t1, t2, t3, t4), loader="image")
            header = {"kind": "image", "exec_size": img.exec_size, "symbols": img.symbols,
                      "info": info}
            return code, header, img.code
    t2b = time.perf_counter()
    mod = engine.optimize(ir_text, "jit", lean)
    t3 = time.perf_counter()
    code, obj = engine.mcjit(mod, entries, lean)
    t4 = time.perf_counter()
    info.update(_timings(t0, t1, t2b, t3, t4), loader="mcjit")
    return code, {"kind": "mcjit", "info": info}, obj


def _lean(module: Any) -> bool:
    """Whether LLVM compiles ``module`` in lean mode (:mod:`.engine`): only when it is large."""
    from . import lower
    units, blocks = lower.size(module)
    return units > lower.LEAN_UNITS or blocks > lower.LEAN_BLOCKS


def _timings(t0: float, t1: float, t2: float, t3: float, t4: float) -> dict[str, float]:
    return {"analysis_ms": round(1000 * (t1 - t0), 3), "lower_ms": round(1000 * (t2 - t1), 3),
            "optimize_ms": round(1000 * (t3 - t2), 3), "codegen_ms": round(1000 * (t4 - t3), 3)}


BACKEND = LlvmBackend()
