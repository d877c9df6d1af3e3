"""Testing: seeded generators of programs and inputs, for the kernel oracle, the checker and the fuzzer.

``programs``: :func:`valid_program`, :func:`realistic_program`,
:func:`near_valid_program` (and :func:`near_valid_case`), :func:`garbage_program`,
:func:`program_stream`. ``inputs``: :func:`constants`, :func:`inputs_for`.
Everything is reproducible from a ``random.Random`` or an integer seed.
"""
from __future__ import annotations

from .inputs import constants, inputs_for, word_constants
from .near_valid import BREAKAGES, NearValid, near_valid_case, near_valid_program
from .programs import (KINDS, garbage_program, program_stream, random_action, random_k,
                       realistic_program, valid_program)

__all__ = ["valid_program", "realistic_program", "near_valid_program", "near_valid_case",
           "garbage_program", "program_stream", "constants", "inputs_for", "word_constants",
           "random_action", "random_k", "BREAKAGES", "KINDS", "NearValid"]
