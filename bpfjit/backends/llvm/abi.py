"""ABI stage: the native entry points generated code exports, their C signatures and ctypes prototypes.

:mod:`.lower` defines these functions; the backend calls them through ctypes
(a ``CFUNCTYPE`` call releases the GIL, so batches run in parallel threads)::

    uint32_t bpfjit_one(const struct seccomp_data *rec);
    void     bpfjit_batch(const struct seccomp_data *recs, int64_t n, uint32_t *out);
    uint32_t bpfjit_args(uint32_t nr, uint32_t arch, uint64_t ip, uint64_t a0, ..., uint64_t a5);
    uint32_t bpfjit_nr(uint32_t nr);     /* the layout's arch, ip = 0, args = 0 */

Records are ``bpfjit.SECCOMP_DATA`` (64 bytes, host byte order, logical values).
"""
from __future__ import annotations

import ctypes

ENTRY_ONE = "bpfjit_one"
ENTRY_BATCH = "bpfjit_batch"
ENTRY_ARGS = "bpfjit_args"
ENTRY_NR = "bpfjit_nr"
ENTRIES = (ENTRY_ONE, ENTRY_BATCH, ENTRY_ARGS, ENTRY_NR)

U32, U64 = ctypes.c_uint32, ctypes.c_uint64
PROTOTYPES = {
    ENTRY_ONE: ctypes.CFUNCTYPE(U32, ctypes.c_void_p),
    ENTRY_BATCH: ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p),
    ENTRY_ARGS: ctypes.CFUNCTYPE(U32, U32, U32, U64, U64, U64, U64, U64, U64, U64),
    ENTRY_NR: ctypes.CFUNCTYPE(U32, U32),
}


#: ``bpfjit_one`` called with a 64-byte ``bytes`` record (ctypes passes its buffer, no copy)
PACKED = ctypes.CFUNCTYPE(U32, ctypes.c_char_p)


def bind(addresses: dict[str, int], owner: object) -> dict[str, ctypes._CFuncPtr]:
    """ctypes callables for every entry point, from their addresses (plus ``packed``).

    A ctypes function made from an address does not keep the code it points
    to alive, so each callable holds ``owner`` (the object that owns the
    executable memory): a callable kept after its Filter and the compile cache
    have let go still has its code mapped (issue 14.2: it used to SIGSEGV).
    """
    missing = [name for name in ENTRIES if not addresses.get(name)]
    if missing:
        raise RuntimeError(f"native code lacks entry points: {', '.join(missing)}")
    found = {name: PROTOTYPES[name](addresses[name]) for name in ENTRIES}
    found["packed"] = PACKED(addresses[ENTRY_ONE])
    for fn in found.values():
        fn._bpfjit_code = owner
    return found
