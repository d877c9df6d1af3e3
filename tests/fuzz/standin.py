"""Fuzzing tests, stand-in generators: a small program/input source used until bpfjit.testing.programs lands."""
from __future__ import annotations

import random

import numpy as np

from bpfjit.seccomp.records import SECCOMP_DATA

X86_64 = 0xC000003E
RET = [0x7FFF0000, 0x80000000, 0x00000000, 0x00050001, 0x00030000, 0x7FFC0000]


def _valid(rng: random.Random) -> list[tuple[int, int, int, int]]:
    body = []
    n = rng.randint(1, 10)
    stored = False
    for i in range(n):
        left = n - i  # instructions after this one in body, plus the 2 returns
        c = rng.randrange(9)
        if c == 0:
            body.append((0x20, 0, 0, 4 * rng.randrange(16)))
        elif c == 1:
            body.append((rng.choice([0x25, 0x35, 0x15, 0x45, 0x2D, 0x3D]), rng.randrange(left + 1),
                         rng.randrange(left + 1), rng.choice([0, 1, 59, 0x80000000, 0xFFFFFFFF,
                                                              rng.getrandbits(32)])))
        elif c == 2:
            body.append((rng.choice([0x01, 0x00]), 0, 0, rng.choice([0, 1, 31, 32, 33, 40])))
        elif c == 3:
            body.append((rng.choice([0x3C, 0x6C, 0x7C, 0x0C, 0x1C, 0x2C]), 0, 0, 0))
        elif c == 4:
            body.append((rng.choice([0x04, 0x14, 0x54, 0x44, 0xA4, 0x24]), 0, 0, rng.getrandbits(8)))
        elif c == 5:
            body.append((0x02, 0, 0, 3))
            stored = True
        elif c == 6 and stored:
            body.append((rng.choice([0x60, 0x61]), 0, 0, 3))
        elif c == 7:
            body.append((rng.choice([0x07, 0x87, 0x84, 0x80, 0x81]), 0, 0, 0))
        else:
            body.append((0x06, 0, 0, rng.choice(RET)))
    return body + [(0x16, 0, 0, 0), (0x06, 0, 0, rng.choice(RET))]


def _bytes(insns) -> bytes:
    import struct
    return b"".join(struct.pack("<HBBI", *i) for i in insns)


def program_stream(seed: int, kinds=("valid", "near_valid")):
    rng = random.Random(seed)
    while True:
        kind = rng.choice(kinds)
        insns = _valid(rng)
        if kind == "near_valid":   # a scratch read before any write
            at = rng.randrange(len(insns) - 1)
            insns.insert(at, (rng.choice([0x60, 0x61]), 0, 0, rng.randrange(16)))
        yield kind, _bytes(insns)


def inputs_for(program, rng: random.Random, n: int, layout: str = "x86_64") -> np.ndarray:
    ks = sorted({i.k for i in program} | {0, 1, 0xFFFFFFFF, 0x80000000, 32, 59})
    r = np.zeros(n, dtype=SECCOMP_DATA)
    for j in range(n):
        nr = rng.choice(ks)
        r[j]["nr"] = nr - (1 << 32) if nr >= 1 << 31 else nr
        r[j]["arch"] = X86_64 if rng.random() < 0.7 else rng.choice(ks)
        r[j]["instruction_pointer"] = rng.choice(ks) | rng.choice(ks) << 32
        r[j]["args"] = [rng.choice(ks) | rng.choice(ks) << 32 for _ in range(6)]
    return r


def inputs(program, rng, n, layout):
    return inputs_for(program, rng, n, layout)
