"""The x86-64 BPF JIT model (bpfjit.kernelcfg.x86_jit) on programs whose kernel answer is pinned.

``jit_cases.json`` holds programs with the answer Linux 6.18 (x86_64, BPF JIT
always on, AMD EPYC: BMI2, return thunk; loaded as root) gave at seccomp()
time, found by bpfjit.testing.jit_acceptance runs (ENOTSUPP reproducers and
accepted programs right at the jump-size boundary). The model runs here
always; tests/kernel/test_jit_model_vs_kernel.py asks the kernel again.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from bpfjit.check import check, is_valid
from bpfjit.cli import cli
from bpfjit.errors import InputError, InvalidProgram
from bpfjit.kernelcfg import KERNELS, KernelConfig, kernel_config
from bpfjit.kernelcfg.x86_jit import EXIT, FIXED, JA, JCOND, bpf_convert_filter, jit_result
from bpfjit.program import Instruction, Program
from bpfjit.stack import ebpf_length
from bpfjit.testing import program_stream
from bpfjit.testing.jit_stress import jit_stress_program

CASES = json.loads((Path(__file__).parent / "jit_cases.json").read_text())
KERNEL = "linux-6.18-x86_64-jit-always-on"
CFG = KERNELS[KERNEL]
#: the 34-instruction reproducer of tests/kernel/test_checker_parity.py (JIT_REFUSED)
PARITY_REPRODUCER = CASES["refused"][0]


def _prog(hexdata: str) -> Program:
    return Program.from_bytes(bytes.fromhex(hexdata))


@pytest.mark.parametrize("hexdata", CASES["refused"])
def test_every_pinned_kernel_refusal_is_predicted(hexdata):
    prog = _prog(hexdata)
    assert is_valid(prog)                                   # the rules accept it ...
    res = jit_result(prog.check(), CFG)
    assert not res.jited, res                               # ... and the JIT gives up


@pytest.mark.parametrize("hexdata", CASES["accepted"])
def test_no_pinned_kernel_acceptance_is_refused(hexdata):
    prog = _prog(hexdata)
    res = jit_result(prog.check(), CFG)
    assert res.jited, res


def test_pinned_cases_are_many_and_both_sides():
    assert len(CASES["refused"]) >= 20 and len(CASES["accepted"]) >= 20
    assert CASES["kernel"].startswith("6.18")
    # both ways of giving up, and the padding passes (>= PADDING_PASSES) on both sides
    refused = [jit_result(_prog(h), CFG) for h in CASES["refused"]]
    accepted = [jit_result(_prog(h), CFG) for h in CASES["accepted"]]
    assert any("fatal error" in r.reason for r in refused)
    assert any("padding" in r.reason for r in refused)
    assert sum(r.passes > CFG.padding_passes for r in refused) >= 10
    assert sum(r.passes > CFG.padding_passes for r in accepted) >= 10


def test_check_says_refused_by_the_x86_jit_only_when_asked():
    prog = _prog(PARITY_REPRODUCER)
    assert check(prog) is not None                          # the default: every kernel's rules
    with pytest.raises(InvalidProgram) as info:
        check(prog, kernel=KERNEL)
    exc = info.value
    assert exc.rule == "bpf_int_jit_compile" and exc.errno == "ENOTSUPP"
    assert str(exc).startswith("refused by the x86-64 JIT (did not converge in ")
    assert "passes" in str(exc)
    with pytest.raises(InvalidProgram):
        prog.check(kernel=KERNEL)
    with pytest.raises(InvalidProgram):
        prog.check().check(kernel=CFG)                      # a CheckedProgram, config object
    assert not is_valid(prog, kernel=KERNEL) and is_valid(prog)


def test_rules_still_come_first_with_a_kernel():
    bad = Program([Instruction(0x06, 0, 0, 0), Instruction(0xFFFF, 0, 0, 0)])
    with pytest.raises(InvalidProgram) as info:
        check(bad, kernel=KERNEL)
    assert info.value.errno == "EINVAL"


def test_kernel_configurations_are_named_and_bad_names_explained():
    assert kernel_config(KERNEL) is CFG
    with pytest.raises(InputError, match="unknown kernel configuration 'linux-9.9'.*known:"):
        kernel_config("linux-9.9")
    with pytest.raises(TypeError):
        kernel_config(6.18)
    with pytest.raises(InputError, match="bpf_jit_harden"):
        check(_prog(PARITY_REPRODUCER), kernel=CFG.replace(name="hardened", jit_harden=2))
    # without CONFIG_BPF_JIT_ALWAYS_ON a JIT failure falls back to the interpreter
    assert check(_prog(PARITY_REPRODUCER), kernel=CFG.replace(name="x", bpf_jit_always_on=False))


def test_the_cpu_properties_matter():
    """The epilogue's return (return thunk 5 bytes vs ret 1) decides this reproducer."""
    prog = _prog(PARITY_REPRODUCER).check()
    assert not jit_result(prog, CFG).jited
    assert jit_result(prog, KERNELS[KERNEL + "-ret"]).jited
    assert CFG.epilogue_size() == 9 and KERNELS[KERNEL + "-ret"].epilogue_size() == 5
    assert CFG.prologue_size(0) == 12 and CFG.prologue_size(4) == 19


def test_conversion_length_matches_the_budget_count():
    """bpf_convert_filter's instruction count, counted independently in bpfjit.stack."""
    stream = program_stream(7, kinds=("valid", "realistic", "probe"))
    rng = random.Random(3)
    progs = [Program.from_bytes(next(stream)[1]) for _ in range(400)]
    progs += [jit_stress_program(rng) for _ in range(100)]
    for prog in progs:
        assert len(bpf_convert_filter(prog, CFG)) == ebpf_length(prog)


def test_conversion_shapes_of_small_programs():
    """Sizes read off arch/x86/net/bpf_jit_comp.c for a few instructions (see the module doc)."""
    ret0 = bpf_convert_filter(Program([Instruction(0x06, 0, 0, 0)]), CFG)
    assert ret0.kinds == (FIXED, FIXED, FIXED, FIXED, EXIT) and ret0.sizes[:4] == (2, 3, 3, 2)
    prog = Program([Instruction(0x15, 1, 2, 0x80000000),   # jeq #k (bit 31): mov esi + jeq + ja
                    Instruction(0x06, 0, 0, 5), Instruction(0x06, 0, 0, 0),
                    Instruction(0x06, 0, 0, 1)])
    shape = bpf_convert_filter(prog, CFG)
    assert shape.kinds[3:6] == (FIXED, JCOND, JA) and shape.sizes[3:5] == (5, 3)
    # the jump targets are addrs[] indexes: the first eBPF instruction of the classic target
    assert shape.targets[4] == 8 and shape.targets[5] == 10
    assert jit_result(Program([Instruction(0x06, 0, 0, 0)]), CFG).proglen == 12 + 8 + 2 + 9


def test_cli_check_with_a_kernel(tmp_path):
    path = tmp_path / "refused.bpf"
    path.write_bytes(bytes.fromhex(PARITY_REPRODUCER))
    runner = CliRunner()
    plain = runner.invoke(cli, ["check", str(path)])
    assert plain.exit_code == 0, plain.output
    res = runner.invoke(cli, ["check", "--jit", KERNEL, str(path)])
    assert res.exit_code == 1
    assert "refused by the x86-64 JIT (did not converge in" in res.output
    res = runner.invoke(cli, ["check", "--json", "--jit", KERNEL, str(path)])
    doc = json.loads(res.output)
    assert doc["valid"] is False and doc["errno"] == "ENOTSUPP" and doc["kernel"] == KERNEL
    res = runner.invoke(cli, ["check", "--jit", "nonsense", str(path)])
    assert res.exit_code == 2 and "Error: unknown kernel configuration 'nonsense'" in res.output


def test_config_is_a_frozen_value():
    assert isinstance(CFG, KernelConfig)
    with pytest.raises(Exception):
        CFG.bmi2 = False
