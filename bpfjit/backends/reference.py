"""The reference interpreter (``bpfjit_reference``) as a backend: the oracle, slow and plain."""
from __future__ import annotations

import numpy as np

import bpfjit_reference as ref

from ..check import CheckedProgram
from ..seccomp.layouts import Layout


class ReferenceEvaluator:
    releases_gil = False

    def __init__(self, program: CheckedProgram, layout: Layout):
        self._insns = [tuple(i) for i in program]
        self._byteorder = layout.byteorder

    def evaluate_one(self, nr: int, arch: int, instruction_pointer: int, args) -> int:
        return ref.run_seccomp(self._insns, nr, arch, instruction_pointer, args, self._byteorder)

    def evaluate_batch(self, records: np.ndarray, out: np.ndarray) -> None:
        run = self.evaluate_one
        columns = zip(records["nr"].tolist(), records["arch"].tolist(),
                      records["instruction_pointer"].tolist(), records["args"].tolist())
        for i, (nr, arch, ip, args) in enumerate(columns):
            out[i] = run(nr, arch, ip, args)

    def trace(self, nr: int, arch: int, instruction_pointer: int, args, on_step) -> int:
        image = ref.seccomp_data_image(nr, arch, instruction_pointer, args, self._byteorder)
        return ref.run(self._insns, image, byteorder=self._byteorder, on_step=on_step)


class ReferenceBackend:
    name = "reference"

    def compile(self, program: CheckedProgram, layout: Layout) -> ReferenceEvaluator:
        return ReferenceEvaluator(program, layout)


BACKEND = ReferenceBackend()
