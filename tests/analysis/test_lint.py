"""bpfjit lint: every rule fires on a small filter that has the problem and not on its fixed twin.

Findings about behaviour carry witness inputs; the tests re-run each witness on
the reference interpreter (``bpfjit_reference``, not the lint's own oracle
code) and check that it shows what the message claims.
"""
from __future__ import annotations

import json

import pytest

import bpfjit_reference as ref
from bpfjit.analysis.lint import RULES, Finding, at_least, lint
from bpfjit.cli import main
from bpfjit.formats import load
from bpfjit.seccomp import layouts
from bpfjit.seccomp.actions import SECCOMP_RET_ALLOW

X86_64 = layouts.layout("x86_64")

HEAD = """
        ld   [arch]
        jne  #AUDIT_ARCH_X86_64, kill
        ld   [nr]
        jge  #0x40000000, kill
"""


def run_lint(text: str, arch: str = "x86_64") -> list[Finding]:
    return lint(load(text, format="asm", arch=arch), arch)


def codes(text: str, arch: str = "x86_64") -> dict[str, list[int | None]]:
    out: dict[str, list[int | None]] = {}
    for f in run_lint(text, arch):
        out.setdefault(f.code, []).append(f.index)
    return out


def reference(text: str, witness: dict, arch: str = "x86_64") -> int:
    """The reference interpreter's retval for a witness of a finding."""
    prog = load(text, format="asm", arch=arch)
    lay = layouts.layout(arch)
    return ref.run_seccomp([tuple(i) for i in prog], witness["nr"], witness["audit_arch"],
                           witness["instruction_pointer"], witness["args"], lay.byteorder)


def allows(retval: int) -> bool:
    return retval & 0xFFFF0000 == SECCOMP_RET_ALLOW


# (id, code, filter that has the problem, index of the finding, the same filter fixed)
CASES = [
    ("no arch check before ld [nr]", "BJ101", """
        ld   [nr]
        jeq  #execve, kill
        ret  ALLOW
    kill: ret KILL_PROCESS
    """, 0, HEAD + """
        jeq  #execve, kill
        ret  ERRNO(38)
    kill: ret KILL_PROCESS
    """),
    ("an arch check that only rejects i386 lets every other arch reach the nr dispatch", "BJ102", """
        ld   [arch]
        jeq  #AUDIT_ARCH_I386, kill
        ld   [nr]
        jeq  #execve, kill
        ret  ALLOW
    kill: ret KILL_PROCESS
    """, 2, HEAD + """
        jeq  #execve, kill
        ret  ALLOW
    kill: ret KILL_PROCESS
    """),
    ("a deny-list without the x32 check lets x32 execve through", "BJ103", """
        ld   [arch]
        jne  #AUDIT_ARCH_X86_64, kill
        ld   [nr]
        jeq  #execve, kill
        ret  ALLOW
    kill: ret KILL_PROCESS
    """, 4, HEAD + """
        jeq  #execve, kill
        ret  ALLOW
    kill: ret KILL_PROCESS
    """),
    ("allowing every other arch lets i386 execve through", "BJ104", """
        ld   [arch]
        jeq  #AUDIT_ARCH_X86_64, native
        ret  ALLOW
    native: ld [nr]
        jge  #0x40000000, kill
        jeq  #execve, kill
        ret  ERRNO(38)
    kill: ret KILL_PROCESS
    """, 2, HEAD + """
        jeq  #execve, kill
        ret  ERRNO(38)
    kill: ret KILL_PROCESS
    """),
    ("a deny-list: numbers no syscall has yet are allowed", "BJ105", HEAD + """
        jeq  #execve, kill
        ret  ALLOW
    kill: ret KILL_PROCESS
    """, 5, HEAD + """
        jeq  #read, allow
        ret  ERRNO(38)
    allow: ret ALLOW
    kill: ret KILL_PROCESS
    """),
    ("flags checked in the low half only", "BJ106", HEAD + """
        jeq  #openat, check
        ret  ERRNO(38)
    check: ld [args[2].lo]
        jset #3, kill
        ret  ALLOW
    kill: ret KILL_PROCESS
    """, 6, HEAD + """
        jeq  #openat, check
        ret  ERRNO(38)
    check: ld [args[2].hi]
        jne  #0, kill
        ld   [args[2].lo]
        jset #3, kill
        ret  ALLOW
    kill: ret KILL_PROCESS
    """),
    ("the instruction pointer decides", "BJ107", HEAD + """
        jeq  #openat, check
        ret  ERRNO(38)
    check: ld [instruction_pointer.lo]
        jeq  #0x401000, allow
        ret  ERRNO(1)
    allow: ret ALLOW
    kill: ret KILL_PROCESS
    """, 6, HEAD + """
        jeq  #openat, allow
        ret  ERRNO(38)
    allow: ret ALLOW
    kill: ret KILL_PROCESS
    """),
    ("ERRNO(5000) is capped at 4095", "BJ108", HEAD + """
        jeq  #read, allow
        ret  ERRNO(5000)
    allow: ret ALLOW
    kill: ret KILL_PROCESS
    """, 5, HEAD + """
        jeq  #read, allow
        ret  ERRNO(4095)
    allow: ret ALLOW
    kill: ret KILL_PROCESS
    """),
    ("KILL_THREAD", "BJ109", HEAD + """
        jeq  #read, allow
        ret  ERRNO(38)
    allow: ret ALLOW
    kill: ret KILL_THREAD
    """, 7, HEAD + """
        jeq  #read, allow
        ret  ERRNO(38)
    allow: ret ALLOW
    kill: ret KILL_PROCESS
    """),
    ("an instruction after the last ret nobody jumps to", "BJ110", HEAD + """
        jeq  #read, allow
        ret  ERRNO(38)
    allow: ret ALLOW
    kill: ret KILL_PROCESS
        ret  KILL_PROCESS
    """, 8, HEAD + """
        jeq  #read, allow
        ret  ERRNO(38)
    allow: ret ALLOW
    kill: ret KILL_PROCESS
    """),
    ("a second rule for openat is shadowed by the first", "BJ111", HEAD + """
        jeq  #openat, allow
        jeq  #openat, deny
        ret  ERRNO(38)
    allow: ret ALLOW
    deny: ret ERRNO(1)
    kill: ret KILL_PROCESS
    """, 5, HEAD + """
        jeq  #openat, allow
        jeq  #open, deny
        ret  ERRNO(38)
    allow: ret ALLOW
    deny: ret ERRNO(1)
    kill: ret KILL_PROCESS
    """),
    ("USER_NOTIF has no answer without a listener", "BJ112", HEAD + """
        jeq  #openat, notify
        ret  ERRNO(38)
    notify: ret USER_NOTIF
    kill: ret KILL_PROCESS
    """, 6, HEAD + """
        jeq  #openat, allow
        ret  ERRNO(38)
    allow: ret ALLOW
    kill: ret KILL_PROCESS
    """),
    ("TRACE has no answer without a tracer", "BJ112", HEAD + """
        jeq  #openat, trace
        ret  ERRNO(38)
    trace: ret TRACE(1)
    kill: ret KILL_PROCESS
    """, 6, HEAD + """
        jeq  #openat, allow
        ret  ERRNO(38)
    allow: ret ALLOW
    kill: ret KILL_PROCESS
    """),
    ("a chain of 40 comparisons", "BJ113", HEAD
     + "".join(f"        jeq  #{n}, allow\n" for n in range(40)) + """
        ret  ERRNO(38)
    allow: ret ALLOW
    kill: ret KILL_PROCESS
    """, 3, HEAD + "".join(f"        jeq  #{n}, allow\n" for n in range(10)) + """
        ret  ERRNO(38)
    allow: ret ALLOW
    kill: ret KILL_PROCESS
    """),
]


@pytest.mark.parametrize("desc, code, bad, index, good", CASES, ids=[c[0] for c in CASES])
def test_rule_fires_on_the_problem(desc, code, bad, index, good):
    found = codes(bad)
    assert code in found, f"{code} not reported; got {found}"
    assert index in found[code]


@pytest.mark.parametrize("desc, code, bad, index, good", CASES, ids=[c[0] for c in CASES])
def test_rule_is_silent_on_the_fixed_filter(desc, code, bad, index, good):
    assert code not in codes(good)


def test_every_rule_has_a_case():
    assert {c[1] for c in CASES} | {"BJ001"} == set(RULES)


def _finding(text: str, code: str) -> Finding:
    return next(f for f in run_lint(text) if f.code == code)


def test_bj101_witness_reaches_the_nr_comparison_without_an_arch_check():
    text = CASES[0][2]
    w = _finding(text, "BJ101").evidence[0]
    assert w["audit_arch"] != X86_64.audit_arch
    assert reference(text, w) == w["retval"]


def test_bj102_witnesses_differ_only_in_nr_and_get_different_verdicts():
    text = CASES[1][2]
    w1, w2 = _finding(text, "BJ102").evidence
    assert w1["audit_arch"] == w2["audit_arch"] and w1["args"] == w2["args"]
    assert reference(text, w1) != reference(text, w2)


@pytest.mark.parametrize("code, case", [("BJ103", 2), ("BJ104", 3)])
def test_bypass_witnesses_deny_natively_and_allow_the_other_abi(code, case):
    text = CASES[case][2]
    native, other = _finding(text, code).evidence
    assert native["audit_arch"] == X86_64.audit_arch and native["nr"] == 59      # execve
    assert not allows(reference(text, native))
    assert allows(reference(text, other))
    if code == "BJ103":
        assert other["nr"] == 0x40000000 | 520                                 # x32 execve
    else:
        assert other["audit_arch"] == layouts.layout("x86").audit_arch and other["nr"] == 11


def test_bj105_witness_is_an_unassigned_number_that_is_allowed():
    text = CASES[4][2]
    w = _finding(text, "BJ105").evidence[0]
    from bpfjit.seccomp import syscalls
    assert w["nr"] not in syscalls.table("x86_64").values()
    assert allows(reference(text, w))


def test_bj111_dead_instruction_never_runs_on_the_reference():
    text = CASES[10][2]
    prog = load(text, format="asm")
    dead = 8                                            # deny: ret ERRNO(1)
    assert any(f.code == "BJ111" and f"instruction {dead}" in f.message for f in run_lint(text))
    insns = [tuple(i) for i in prog]
    for nr in list(range(0, 400)) + [0x40000000 | 257, 0xFFFFFFFF]:
        trail: list[int] = []
        image = ref.seccomp_data_image(nr, X86_64.audit_arch, 0, [0] * 6, "little")
        ref.run(insns, image, on_step=lambda pc, *rest: trail.append(pc))
        assert dead not in trail


def test_bj106_is_silent_for_the_i386_branch_of_an_x86_64_filter():
    # i386 arguments are 32 bits: checking the low half is the whole argument
    text = """
        ld   [arch]
        jeq  #AUDIT_ARCH_I386, i386
        jne  #AUDIT_ARCH_X86_64, kill
        ld   [nr]
        jge  #0x40000000, kill
        jeq  #openat, check64
        ret  ERRNO(38)
    check64: ld [args[2].hi]
        jne  #0, kill
        ld   [args[2].lo]
        jset #3, kill
        ret  ALLOW
    i386: ld [nr]
        jeq  #295, check32                   ; openat (x86)
        ret  ERRNO(38)
    check32: ld [args[2].lo]
        jset #3, kill
        ret  ALLOW
    kill: ret KILL_PROCESS
    """
    assert "BJ106" not in codes(text)


def test_a_comparison_that_is_redundant_but_kills_nothing_is_not_shadowing():
    # libseccomp's `jgt #0` then `jne #0` on the same high word: the second has an edge no
    # input takes, but its target is reached from elsewhere, so no rule is dead
    text = HEAD + """
        jeq  #openat, check
        ret  ERRNO(38)
    check: ld [args[2].hi]
        jgt  #0, kill
        jne  #0, kill
        ret  ALLOW
    kill: ret KILL_PROCESS
    """
    assert "BJ111" not in codes(text)


def test_invalid_program_is_one_bj001_finding():
    found = lint(load(bytes.fromhex("0600000000000000") * 0 + bytes.fromhex("1500000000000000")))
    assert [f.code for f in found] == ["BJ001"]


def test_at_least_filters_by_severity():
    found = run_lint(CASES[1][2])
    assert {f.severity for f in at_least(found, "error")} == {"error"}
    assert len(at_least(found, "info")) == len(found)


# --- the CLI ------------------------------------------------------------------------------

def test_cli_exit_status_and_json(tmp_path, capsys):
    bad = tmp_path / "bad.asm"
    bad.write_text(CASES[8][2])                          # KILL_THREAD: a warning
    assert main(["lint", str(bad)]) == 1
    assert "BJ109" in capsys.readouterr().out
    assert main(["lint", "--fail-on", "error", str(bad)]) == 0
    capsys.readouterr()
    assert main(["lint", "--json", "--ignore", "BJ109", str(bad)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["findings"] == [] and doc["arch"] == "x86_64"
    good = tmp_path / "good.asm"
    good.write_text(CASES[8][4])
    assert main(["lint", "--json", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_cli_bad_input_exits_2(tmp_path, capsys):
    assert main(["lint", str(tmp_path / "missing.bpf")]) == 2
    assert main(["lint", "--ignore", "BJ999", str(tmp_path / "missing.bpf")]) == 2
    assert "BJ999" in capsys.readouterr().err


# --- real filters -------------------------------------------------------------------------

from corpora import REAL_FILTERS, real_filter_arch, real_filters  # noqa: E402

REAL_FINDINGS = {   # looked at by hand: see the report of issue 10 (lint)
    "apt-2.6.1.method-file.x86_64.bpf": "BJ109 BJ113",
    "arping-2.23.x86_64.bpf": "BJ109",
    "chromium-156.renderer.x86_64.bpf": "",
    "docker-default-2021.x86_64.bpf": "BJ109 BJ110 BJ113x2",
    "docker-default.aarch64.bpf": "BJ109 BJ110 BJ113x2",
    "docker-default.ppc64le.opt.bpf": "BJ109 BJ110",
    "docker-default.riscv64.bpf": "BJ109 BJ110 BJ113",
    "docker-default.s390x.bpf": "BJ109 BJ110 BJ113x2",
    "docker-default.x86_64.bpf": "BJ106 BJ109 BJ110 BJ113x2",
    "docker-default.x86_64.opt.bpf": "BJ106 BJ109 BJ110",
    "firecracker-api.aarch64.bpf": "BJ109",
    "firecracker-api.x86_64.bpf": "BJ109 BJ113",
    "firecracker-api.x86_64.opt.bpf": "BJ109",
    "firecracker-vcpu.aarch64.bpf": "BJ109",
    "firecracker-vcpu.aarch64.opt.bpf": "BJ109",
    "firecracker-vmm.aarch64.opt.bpf": "BJ109",
    "firecracker-vmm.x86_64.bpf": "BJ109 BJ113",
    "firecracker-vmm.x86_64.opt.bpf": "BJ109",
    "firefox-esr-153.content.x86_64.bpf": "",
    "firefox-esr-153.socket.x86_64.bpf": "",
    "firejail-server.default.x86_64.bpf": "BJ104 BJ105 BJ113",
    "firejail-server.default32.x86.bpf": "BJ105 BJ113",
    "firejail-server.namespaces.x86_64.bpf": "BJ104 BJ105 BJ106x3 BJ110",
    "firejail-server.namespaces32.x86.bpf": "BJ105 BJ110",
    "firejail-server.protocol.x86_64.bpf": "BJ102 BJ105 BJ106 BJ111",
    "firejail-shipped.block-secondary.x86_64.bpf": "",
    "firejail-shipped.debug.x86_64.bpf": "BJ104 BJ105 BJ113",
    "firejail-shipped.mdwx.x86_64.bpf": "BJ104 BJ105 BJ106x4 BJ110",
    "lxc-5.0.2.common-seccomp.x86_64.bpf": "BJ105x2 BJ109",
    "man-db-2.11.2.x86_64.bpf": "BJ109 BJ113x2",
    "openssh-9.2p1.sshd-preauth.x86_64.bpf": "BJ109x2 BJ113",
    "podman-default.aarch64.opt.bpf": "BJ109 BJ110",
    "podman-default.x86_64.bpf": "BJ106x2 BJ109 BJ110 BJ113x2",
    "qemu-7.2-sandbox-on.x86_64.bpf": "BJ105 BJ109",
    "runc-1.1.5.docker-default.x86_64.bpf": "BJ106 BJ109 BJ110x2 BJ113x2",
    "sniffglue-0.15.0.stage1.x86_64.bpf": "BJ109 BJ113",
    "sniffglue-0.15.0.stage2.x86_64.bpf": "BJ109 BJ113",
    "systemd-nspawn-252.allowlist.x32.bpf": "",
    "systemd-nspawn-252.allowlist.x86.bpf": "",
    "systemd-nspawn-252.allowlist.x86_64.bpf": "BJ103 BJ104",
    "systemd-nspawn-252.audit-netlink.x32.bpf": "BJ106x2",
    "systemd-nspawn-252.audit-netlink.x86_64.bpf": "",
    "tor-0.4.9.11.x86_64.bpf": "BJ109 BJ110 BJ113",
    "universal-ctags-5.9.sandbox.x86_64.bpf": "BJ109",
    "vsftpd-3.0.3.postlogin.x86_64.bpf": "BJ106x18 BJ109x2 BJ111x2 BJ113",
    "vsftpd-3.0.3.prelogin.x86_64.bpf": "BJ106x7 BJ109x2",
}


def _summary(found: list[Finding]) -> str:
    counts: dict[str, int] = {}
    for f in found:
        counts[f.code] = counts.get(f.code, 0) + 1
    return " ".join(c if n == 1 else f"{c}x{n}" for c, n in sorted(counts.items()))


@pytest.mark.parametrize("path", real_filters(), ids=lambda p: p.name)
def test_real_filter_findings_and_their_witnesses(path):
    arch = real_filter_arch(path)
    prog = load(str(path))
    found = lint(prog, arch)
    assert _summary(found) == REAL_FINDINGS[path.name]
    lay = layouts.layout(arch)
    insns = [tuple(i) for i in prog]
    for f in found:
        for w in f.evidence:
            got = ref.run_seccomp(insns, w["nr"], w["audit_arch"], w["instruction_pointer"],
                                  w["args"], lay.byteorder)
            assert got == w["retval"], (f.code, w)


def test_nspawn_stack_handles_i386_and_x32_in_its_other_filters():
    # alone, the x86_64 filter allows every i386 and x32 call (BJ103, BJ104); systemd installs
    # the x86 and x32 filters next to it, and the stack denies what the x86_64 filter denies
    # (a false positive of an early version: it called x86 an arch "the filter does not name")
    main_filter = REAL_FILTERS / "systemd-nspawn-252.allowlist.x86_64.bpf"
    others = [load(str(REAL_FILTERS / f"systemd-nspawn-252.allowlist.{a}.bpf")) for a in ("x86", "x32")]
    alone = {f.code for f in lint(load(str(main_filter)), "x86_64")}
    assert {"BJ103", "BJ104"} <= alone
    stacked = {f.code for f in lint(load(str(main_filter)), "x86_64", stack=others)}
    assert not stacked & {"BJ101", "BJ102", "BJ103", "BJ104", "BJ105"}


def test_firejail_stack_lets_i386_bpf_through():
    # the whole five-filter stack of firejail's server profile: x86_64 bpf is EPERM, i386 bpf runs
    names = ["protocol.x86_64", "default32.x86", "default.x86_64", "namespaces.x86_64",
             "namespaces32.x86"]
    progs = [load(str(REAL_FILTERS / f"firejail-server.{n}.bpf")) for n in names]
    found = [f for f in lint(progs[2], "x86_64", stack=progs[:2] + progs[3:]) if f.code == "BJ104"]
    assert len(found) == 1
    native, i386 = found[0].evidence
    images = [(w, [ref.run_seccomp([tuple(i) for i in p], w["nr"], w["audit_arch"], 0, w["args"],
                                   "little") for p in progs]) for w in (native, i386)]
    (_, native_each), (_, i386_each) = images
    assert not allows(ref.run_stack(native_each))
    assert allows(ref.run_stack(i386_each))


def test_cli_stack_option(capsys):
    base = REAL_FILTERS / "systemd-nspawn-252.allowlist"
    assert main(["lint", f"{base}.x86_64.bpf"]) == 1                     # BJ103, BJ104 alone
    capsys.readouterr()
    assert main(["lint", "--json", f"{base}.x86_64.bpf", "--stack", f"{base}.x86.bpf",
                 "--stack", f"{base}.x32.bpf"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []
