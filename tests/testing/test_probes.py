"""Probe programs: valid, built around their focus, and steered by coverage feedback."""
from __future__ import annotations

import random

from bpfjit.program import Program
from bpfjit.testing import probes
from bpfjit.testing.fuzz import Coverage
from bpfjit.testing.programs import program_stream


def test_every_probe_is_valid_and_contains_its_focus():
    rng = random.Random(4)
    for focus in probes.FOCI:
        for _ in range(60):
            prog = probes.probe_program(rng, focus)
            prog.check()                               # the kernel's rules
            assert focus in {i.code for i in prog}


def test_probes_join_the_stream_and_the_feedback_picks_unobserved_edges():
    stream = program_stream(3, kinds=("probe",), focus=probes.focus_chooser(lambda: [0x7C]))
    kinds_codes = [next(stream) for _ in range(200)]
    assert {k for k, _ in kinds_codes} == {"probe"}
    with_rsh_x = sum(1 for _, data in kinds_codes
                     if 0x7C in {i.code for i in Program.from_bytes(data)})
    assert with_rsh_x >= 80                            # about half the probes, as asked
    cov = Coverage()
    assert 0x7C in cov.missing_edges()                 # nothing observed yet
    step = cov.on_step("little")
    for A, X in ((5, 32), (0x80000005, 31), (5, 0), (0x80000000, 3)) * probes.MIN_EDGE_HITS:
        step(0, 0x7C, 0, 0, 0, A, X)
    assert 0x7C not in cov.missing_edges()


def test_edge_classes():
    assert probes.edge_class(0x04, 0xFFFFFFFF, 0, 1) == "wrap"
    assert probes.edge_class(0x1C, 0, 1, 0) == "wrap"
    assert probes.edge_class(0x6C, 1, 33, 0) == "by >= 32"
    assert probes.edge_class(0x3C, 7, 0, 0) == "by 0"
    assert probes.edge_class(0x84, 0x80000000, 0, 0) == "0x80000000"
    assert probes.edge_class(0x2D, 0x80000000, 1, 0) == "different sign bits"
    assert probes.edge_class(0x35, 9, 0, 9) == "equal"
