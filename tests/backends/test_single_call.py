"""Filter.evaluate(nr, args): the packed fast path (1-6 plain int arguments) gives the same
value as the reference interpreter for every argument count and edge value, and everything
else (negative, too large, bool, float, IntEnum, numpy ints, lists) goes through the checked
path: the same value or the same clear error."""
from __future__ import annotations

import enum
import itertools
import re

import numpy as np
import pytest

import bpfjit
from bpfjit.errors import InputError

ASM = """
ld [0]
jeq #1, args
ld [16]
add x
ret a
args:
ld [16]
tax
ld [20]
xor x
tax
ld [48]
add x
tax
ld [52]
xor x
tax
ld [56]
add x
ret a
"""
# sum/xor of nr, args[0] and the halves of args[4], args[5]: every field lands in the result
VALUES = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, (1 << 64) - 1, 0x0123456789ABCDEF)


@pytest.fixture(scope="module")
def pair():
    program = bpfjit.load(ASM, format="asm")
    return (bpfjit.compile(program, backend="llvm", arch="x86_64"),
            bpfjit.compile(program, backend="reference", arch="x86_64"))


@pytest.mark.parametrize("n", range(7))
def test_every_argument_count_and_edge_value_matches_the_reference(pair, n):
    fast, ref = pair
    for i, combo in enumerate(itertools.product(VALUES, repeat=min(n, 2))):
        args = tuple(combo) + tuple(VALUES[(i + k) % len(VALUES)] for k in range(n - len(combo)))
        for nr in (1, 0, -1, 0x7FFFFFFF):
            assert fast.evaluate(nr, args) == ref.evaluate(nr, args), (nr, args)
            assert fast.evaluate(nr, args, instruction_pointer=7) == \
                ref.evaluate(nr, args, instruction_pointer=7)


def test_values_outside_the_packed_range_take_the_checked_path(pair):
    fast, ref = pair
    class Nr(enum.IntEnum):
        ONE = 1
    for args in [(-1,), (-(1 << 63), 5), (np.uint64(2**64 - 1),), [3, 4], (Nr.ONE,)]:
        assert fast.evaluate(1, args) == ref.evaluate(1, args), args
    assert fast.evaluate(0xFFFFFFFF, (1,)) == ref.evaluate(0xFFFFFFFF, (1,))
    for bad, words in [((True,), "args[0] must be an int, not bool"),
                       ((1.5,), "args[0] must be an int, not float"),
                       ((1 << 64,), "does not fit 64 bits"),
                       ((1, 2, 3, 4, 5, 6, 7), "6 arguments")]:
        with pytest.raises(InputError, match=re.escape(words)):
            fast.evaluate(1, bad)
