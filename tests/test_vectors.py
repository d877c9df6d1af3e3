"""libseccomp's bpf-sim regression vectors through the public API (load → compile → evaluate)."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

import bpfjit
from bpfjit.cli.sim import sim_line

from corpora import VECTORS


def _by_filter(vectors):
    groups = defaultdict(list)
    for case in vectors:
        groups[(case["filter"], case["arch_name"], case["endian"])].append(case)
    return groups


def test_every_vector_through_the_reference_backend(vectors):
    """100 % of the 9,490 cases, all 23 arches, both byte orders, all 32 bits of `expect`."""
    assert len(vectors) == 9490
    failures = []
    for (name, arch, endian), cases in _by_filter(vectors).items():
        prog = bpfjit.load(VECTORS / "filters" / name)
        assert prog.endian == endian, f"{name}: byte order detected as {prog.endian}"
        f = bpfjit.compile(prog, backend="reference", arch=arch)
        recs = np.zeros(len(cases), dtype=bpfjit.SECCOMP_DATA)
        recs["nr"] = [c["nr"] for c in cases]
        recs["arch"] = [c["arch"] for c in cases]
        recs["instruction_pointer"] = [c["ip"] for c in cases]
        recs["args"] = [c["args"] for c in cases]
        got = f.evaluate_batch(recs)
        for case, value in zip(cases, got.tolist()):
            if value != case["expect"]:
                failures.append((case["case_id"], arch, value, case["expect"]))
    assert not failures, failures[:10]


def test_single_calls_agree_with_batches(vectors):
    for case in vectors[::97]:
        f = bpfjit.compile(bpfjit.load(VECTORS / "filters" / case["filter"]), backend="reference",
                           arch=case["arch_name"])
        assert f.evaluate(case["nr"], case["args"], case["arch"], case["ip"]) == case["expect"]


def test_sim_prints_sim_action_for_every_vector(vectors):
    for case in vectors:
        assert sim_line(case["expect"]) == case["sim_action"], case["case_id"]


@pytest.mark.parametrize("step", [1013])
def test_sim_command_end_to_end(vectors, step):
    from click.testing import CliRunner

    from bpfjit.cli.sim import command
    runner = CliRunner()
    for case in vectors[::step]:
        argv = ["-f", str(VECTORS / "filters" / case["filter"]), "-a", case["arch_name"],
                "-s", str(case["nr"])]
        for i, a in enumerate(case["args"]):
            argv += [f"-{i}", str(a)]
        res = runner.invoke(command, argv)
        assert res.exit_code == 0, res.output
        assert res.output.strip() == case["sim_action"], case["case_id"]
