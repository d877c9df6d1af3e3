"""Actions, precedence and the kernel's outcome (kernel/seccomp.c)."""
from __future__ import annotations

import pytest

from bpfjit import Action
from bpfjit.seccomp import actions as a

import bpfjit_reference


@pytest.mark.parametrize("value,text", [
    (0x7FFF0000, "ALLOW"), (0x7FFC0000, "LOG"), (0x7FF00003, "TRACE(3)"),
    (0x7FC00000, "USER_NOTIF"), (0x00050001, "ERRNO(1)"), (0x00030005, "TRAP(5)"),
    (0x00030000, "TRAP(0)"), (0x00000000, "KILL_THREAD"), (0x80000000, "KILL_PROCESS"),
    (0x00010000, "UNKNOWN(0x00010000)"), (0x7FFF0005, "ALLOW(5)"),
])
def test_names(value, text):
    assert str(Action.from_value(value)) == text
    if not text.startswith("UNKNOWN"):
        assert Action.parse(text).value == value


def test_parse_spellings():
    assert Action.parse("KILL").value == 0
    assert Action.parse("NOTIFY").value == 0x7FC00000
    assert Action.parse("SCMP_ACT_ERRNO(13)").value == 0x5000D
    assert Action.parse("0x7fff0000").value == 0x7FFF0000
    with pytest.raises(ValueError, match="unknown action"):
        Action.parse("PERMIT")
    with pytest.raises(ValueError, match="outside 0..65535"):
        Action.parse("ERRNO(70000)")


def test_precedence_is_signed_on_the_action_bits():
    order = [0x80000000, 0x00000000, 0x00030000, 0x00050000, 0x7FC00000, 0x7FF00000,
             0x7FFC0000, 0x7FFF0000]
    keys = [Action(v).precedence for v in order]
    assert keys == sorted(keys)
    assert Action(0x00010000).effective.name == "KILL_PROCESS"


def test_stack_rule_matches_the_reference_on_all_pairs_and_triples():
    vals = [0x80000000, 0x80000005, 0x00000000, 0x00010000, 0x00030001, 0x00050001, 0x00050002,
            0x7FC00000, 0x7FF00001, 0x7FFC0000, 0x7FFF0000, 0x7FFF0001, 0xFFFF0000, 0x12345678]
    for x in vals:
        for y in vals:
            assert a.stack_retval([x, y]) == bpfjit_reference.run_stack([x, y])
            for z in vals[::3]:
                assert a.stack_retval([x, y, z]) == bpfjit_reference.run_stack([x, y, z])
    assert a.stack_retval([0x7FFF0001]) == 0x7FFF0000          # ALLOW data dropped
    assert a.stack_retval([0x00050001, 0x00050002]) == 0x00050002   # ties: newest


def test_outcomes():
    assert a.outcome(0x0005FFFF).errno == 4095                 # capped at MAX_ERRNO
    assert a.outcome(0x00050001).kind == "errno"
    assert a.outcome(0x00010000).kind == "kill_process"        # unknown actions
    assert a.outcome(0x7FFF0000, arch_name="x86_64", nr=335, audit_arch=0xC000003E).kind == "bypass"
    assert a.outcome(0, arch_name="x86_64", nr=335, audit_arch=0x40000003).kind == "kill_thread"
