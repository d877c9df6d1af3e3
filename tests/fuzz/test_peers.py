"""Real peers: libpcap's bpf_filter and DPDK's rte_bpf (interpreter and JIT) as fuzz candidates.

The peers are packet filters; bpfjit.testing.peers feeds them each record as a
64-byte packet whose words are what seccomp's ``ld [k]`` reads, big-endian.
Expected values come from the reference interpreter (bpfjit_reference), never
from a peer; the packet-only cases at the end are derived by hand from the
packet bytes. Skipped, with the reason, where libpcap or DPDK is missing.
"""
from __future__ import annotations

import json
import shlex
import struct

import numpy as np
import pytest
from click.testing import CliRunner

import bpfjit_reference as ref
from bpfjit import check
from bpfjit.cli.fuzz import command
from bpfjit.formats.asm import parse
from bpfjit.program import Program
from bpfjit.seccomp import layouts
from bpfjit.seccomp.records import SECCOMP_DATA
from bpfjit.testing import external, fuzz, peers
from bpfjit.testing.candidates import CandidateFailed, Rejected

DPDK = ("dpdk", "dpdk-jit", "dpdk-both")


def need(name: str) -> None:
    why = peers.reason(name)
    if why:
        pytest.skip(f"peer {name}: {why}")


@pytest.fixture(scope="module")
def running():
    """One process per (peer, layout), shared by the tests of this module."""
    made = {}

    def get(name: str, arch: str = "x86_64", **kw):
        need(name)
        key = (name, arch, tuple(sorted(kw.items())))
        if key not in made:
            made[key] = peers.candidate(name, arch, mapped=False, **kw)
        return made[key]
    yield get
    for cand in made.values():
        cand.close()


def records(arch: str) -> np.ndarray:
    """Records whose words cover zero, sign bits, small and all-ones values."""
    lay = layouts.layout(arch)
    recs = np.zeros(6, dtype=SECCOMP_DATA)
    recs["nr"] = [0, 59, -1, 0x7FFFFFFF, 231, 1]
    recs["arch"] = lay.audit_arch
    recs["instruction_pointer"] = [0, 0x7FFF12345678, 2**64 - 1, 1, 0x80000000, 0xDEADBEEF]
    recs["args"] = [[0, 1, 2, 3, 4, 5],
                    [0x1234567890ABCDEF, 0xFFFFFFFF, 0x100000000, 31, 32, 33],
                    [2**64 - 1, 2**63, 0x80000000, 0x7FFFFFFF, 0, 64],
                    [7, 0, 0xFFFFFFFF00000000, 1, 2, 3],
                    [0x20, 0x1F, 0x3F, 0x40, 0xFFFFFFFF, 0x100],
                    [5, 3, 0, 0, 0, 0]]
    return recs


def expected(program, recs: np.ndarray, arch: str) -> list[int]:
    lay = layouts.layout(arch)
    insns = [tuple(i) for i in program]
    return [ref.run_seccomp(insns, int(r["nr"]), int(r["arch"]), int(r["instruction_pointer"]),
                            [int(a) for a in r["args"]], lay.byteorder) for r in recs]


# Seccomp-valid programs for every part of the packet view: each word, ld len, scratch,
# division by X == 0, shifts by X >= 32, unsigned jumps with k >= 2^31, ALU with big k.
PINNED = {f"ld [{k}]": f"ld [{k}]\nret a" for k in range(0, 64, 4)}
PINNED.update({
    "ld len": "ld len\nret a",
    "ldx len": "ldx len\ntxa\nret a",
    "scratch": "ld [16]\nst M[15]\nld #0\nld M[15]\nret a",
    "div x by args[1]": "ld [24]\ntax\nld [16]\ndiv x\nret a",
    "lsh x": "ld [16]\ntax\nld [24]\nlsh x\nret a",
    "rsh x": "ld [16]\ntax\nld [24]\nrsh x\nret a",
    "jgt big k": "ld [16]\njgt #0x80000000, yes, no\nyes: ret #1\nno: ret #2",
    "jge big k": "ld [20]\njge #0xffffffff, yes, no\nyes: ret #1\nno: ret #2",
    "jset big k": "ld [8]\njset #0x80000000, yes, no\nyes: ret #1\nno: ret #2",
    "jeq x": "ld [16]\ntax\nld [24]\njeq x, yes, no\nyes: ret #1\nno: ret #2",
    "jgt x": "ld [24]\ntax\nld [16]\njgt x, yes, no\nyes: ret a\nno: txa\nret a",
    "alu big k": "ld [16]\nadd #0xfffffff0\nmul #0x9e3779b9\nxor #0x80000001\n"
                 "and #0xfffffffe\nor #0x80000000\ndiv #0x80000001\nret a",
    "neg": "ld [0]\nneg\nret a",
    "ret k": "ret #0xfffffffe",
})


def word16(recs: np.ndarray, arch: str) -> list[int]:
    """What ``ld [16]`` reads from each record (the reference's load)."""
    order = layouts.layout(arch).byteorder
    return [ref.load_word(ref.seccomp_data_image(int(r["nr"]), int(r["arch"]),
                                                 int(r["instruction_pointer"]),
                                                 [int(a) for a in r["args"]], order), 16, order)
            for r in recs]


@pytest.mark.parametrize("peer", ("pcap",) + DPDK)
@pytest.mark.parametrize("arch", ["x86_64", "s390x"])        # both byte orders
def test_the_packet_view_is_pinned_by_hand_written_programs(running, peer, arch):
    cand = running(peer, arch)
    recs = records(arch)
    for name, text in PINNED.items():
        program = parse(text)
        check(program)                                         # Linux installs each of them
        got = cand.evaluate(program.to_bytes("little"), recs)
        assert not isinstance(got, Rejected), f"{peer} refuses {name!r}: {got}"
        want = expected(program, recs, arch)
        if peer == "pcap" and name in ("lsh x", "rsh x"):
            # libpcap's known difference: A = 0 when X >= 32 (Linux shifts by X & 31)
            want = [0 if x >= 32 else w for x, w in zip(word16(recs, arch), want)]
        assert list(got) == want, f"{peer}, {arch}: {name!r}"


def test_linux_shifts_by_x_mod_32_where_libpcap_gives_0(running):
    """Known difference: `lsh x` / `rsh x` with X >= 32. Our side (the reference, as Linux's
    ___bpf_prog_run "DST = (u32) DST OP ((u32) SRC & 31)" and the x86-64 JIT's shl/shr cl):
    A << (X & 31); libpcap 1.10 bpf_filter: 0."""
    program = parse("ld [16]\ntax\nld [24]\nlsh x\nret a")
    recs = np.zeros(3, dtype=SECCOMP_DATA)
    recs["arch"] = layouts.layout("x86_64").audit_arch
    recs["args"][:, 0] = [33, 32, 31]
    recs["args"][:, 1] = 0x40000001
    assert expected(program, recs, "x86_64") == [0x80000002, 0x40000001, 0x80000000]
    assert list(running("pcap").evaluate(program.to_bytes("little"), recs)) == \
        [0, 0, 0x80000000]
    assert list(peers.candidate("pcap").evaluate(program.to_bytes("little"), recs)) == \
        [0x80000002, 0x40000001, 0x80000000]                   # mapped: not compared


def test_the_peers_agree_with_the_reference_on_generated_programs():
    """libpcap and DPDK's interpreter, their known differences mapped: nothing else differs."""
    for name in ("pcap", "dpdk"):
        need(name)
    cands = [peers.candidate(name) for name in ("pcap", "dpdk")]
    report = fuzz.run(cands, max_programs=200, seed=11, use_kernel=False)
    assert report.ok, report.format()
    assert report.valid_programs > 60 and report.verdicts > 2 * 60 * 100
    assert not report.failures
    assert cands[0].mapped["shift-by-32"] > 0          # the generator does reach it


def test_dpdk_jit_differences_are_its_own(tmp_path):
    """DPDK's JIT, `jset #k<=127` mapped: what is still reported (jumps that land inside an
    instruction, see test_dpdk_jit_jump_into_an_instruction) is the JIT's alone - DPDK's
    interpreter, on the same eBPF, agrees with Linux on each reproducer."""
    need("dpdk-jit")
    jit, interp = peers.candidate("dpdk-jit"), peers.candidate("dpdk")
    try:
        report = fuzz.run([jit, interp], max_programs=150, seed=5, use_kernel=False,
                          out_dir=tmp_path, shrink=False)
        assert report.valid_programs > 40 and jit.mapped["jset-imm8"] > 0
        for d in report.disagreements:
            assert d.candidates == ("dpdk-jit",) and d.kind in ("crash", "verdict"), d.summary()
            batch = json.loads((d.path / "reproducer.json").read_text()).get("batch")
            recs = batch_records(batch) if batch else None
            if recs is not None:
                want = [expected(d.programs[0], recs[i:i + 1], "x86_64")[0]
                        for i in range(len(recs))]
                got = interp.evaluate(program_bytes(d.programs[0]), recs)
                assert list(got) == want
    finally:
        jit.close()
        interp.close()


def program_bytes(insns) -> bytes:
    return b"".join(struct.pack("<HBBI", *i) for i in insns)


def batch_records(batch: list[dict]) -> np.ndarray:
    recs = np.zeros(len(batch), dtype=SECCOMP_DATA)
    for i, r in enumerate(batch):
        recs[i]["nr"], recs[i]["arch"] = r["nr"], r["arch"]
        recs[i]["instruction_pointer"], recs[i]["args"] = r["instruction_pointer"], r["args"]
    return recs


# raw (unmapped) refusals DPDK gives on programs Linux installs, by reason
KNOWN_REFUSALS = ("division by 0",)


def test_bpfjit_fuzz_candidate_cmd_runs_the_dpdk_peer(tmp_path):
    """The raw peer through --candidate-cmd: no difference but DPDK's known refusals."""
    need("dpdk")
    cmd = shlex.join(peers.argv("dpdk"))
    result = CliRunner().invoke(command, ["--candidate-cmd", cmd, "--programs", "120",
                                          "--seed", "4", "--no-kernel", "--json", "-",
                                          "--out", str(tmp_path)])
    assert result.exit_code in (0, 1), result.output
    doc = json.loads(result.stdout)
    assert doc["programs"] == 120 and doc["valid_programs"] > 30
    for d in doc["disagreements"]:
        assert d["kind"] == "rejects-valid", d["summary"]
        answers = json.loads(open(f"{d['path']}/reproducer.json").read())["answers"]
        assert any(why in answers[cmd]["rejected"] for why in KNOWN_REFUSALS), answers


def test_bpfjit_fuzz_peer_option():
    need("dpdk")
    need("pcap")
    result = CliRunner().invoke(command, ["--peer", "dpdk", "--peer", "pcap", "--programs",
                                          "60", "--seed", "2", "--no-kernel", "--json", "-"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] and doc["candidates"] == ["dpdk", "pcap"]


@pytest.mark.parametrize("peer", ["pcap", "dpdk"])
def test_a_planted_difference_is_found_and_shrunk(peer, tmp_path):
    need(peer)
    cand = peers.candidate(peer, plant="jge-for-jgt")
    report = fuzz.run([cand], max_programs=400, seed=1, use_kernel=False, out_dir=tmp_path,
                      max_disagreements=1)
    assert [d.kind for d in report.disagreements] == ["verdict"], report.format()
    d = report.disagreements[0]
    assert any(c & 0xF7 == 0x25 for p in d.programs for c, *_ in p)    # a jgt survived
    assert d.instructions <= 8 and (d.path / "program.asm").exists()


# --- the disagreements fuzzing found: Linux's side pinned, the peers' side documented ---------
def nr_records(*nrs: int) -> np.ndarray:
    recs = np.zeros(len(nrs), dtype=SECCOMP_DATA)
    recs["nr"] = nrs
    recs["arch"] = layouts.layout("x86_64").audit_arch
    return recs


#: name -> (program, the records' nr, Linux's values (the reference's, asserted below and by
#: the kernel in test_the_kernel_agrees_on_each_reproducer), peer, what the peer does instead)
REPRODUCERS = {
    # DPDK x86-64 JIT: `test $imm8, %rax` for jset #k, k <= 127 (F7 /0 takes an imm32)
    "jset-imm8": ("ld [0]\njset #1, odd, even\nodd: ret #7\neven: ret #9", (1, 2), [7, 9],
                  "dpdk-jit", "fails"),
    # DPDK x86-64 JIT: jump targets 4 bytes off (the size-only convergence of its passes)
    "jit-jump-into-an-instruction": (
        "ld [0]\njne #0x80000000, l10, l2\nl2: ld [0]\njeq #0, l6, l4\n"
        "l4: jeq #128, l8, l5\nl5: ja l12\nl6: or #0x80\nret #0\nl8: jgt #0, l9, l9\n"
        "l9: jeq #0, l10, l10\nl10: ld [0]\njge #0, l12, l12\nl12: ret #0", (40,), [0],
        "dpdk-jit", "fails"),
    # DPDK x86-64 JIT: a backward `jmp` to the epilogue 129 bytes back emitted as rel8 (its
    # size check uses the distance from the jump's start; the displacement counts from its end):
    # -129 wraps to +127 (a 12-instruction reproducer, the fuzzer's, shrunk)
    "jit-rel8-backward-overflow": (
        "hex:200000000000000015000200110000001500050000000000060000000000000020000000080000"
        "002500000100000000060000000100000006000000010000002000000000000000150000000000008020"
        "000000040000000600000000000000", (17,), [1], "dpdk-jit", "fails"),
    # DPDK validator: A and X constants, X == 0: "division by 0" (convert guards it anyway)
    "division-by-0-refusal": ("div x\nret #0", (1,), [0], "dpdk", "division by 0"),
    # ... and it tracks the stack in 8-byte slots: M[0] = 0 overwrites what it knows of M[1]
    "division by 0, M[0] and M[1] share a slot": (
        "ld [0]\nst M[1]\nld #0\nst M[0]\nldx M[1]\nld #8\ndiv x\nret a", (1, 4, 9),
        [8, 2, 0], "dpdk", "division by 0"),
    # rte_bpf_convert copies the unused k of `jeq x` into imm: "invalid imm field"
    "unused-k-refusal": (".insn 0x1d, 0, 1, 0x1\nret #1\nret #2", (0, 5), [1, 1],
                         "dpdk --keep-unused-k", "invalid imm field"),
    # DPDK's validator refuses unreachable code, Linux installs it
    "dead-code-refusal": ("ld [0]\njeq #59, yes, no\nyes: ret #1\nno: ret #2\nret #3", (59, 1),
                          [1, 2], "dpdk --keep-dead-code", "unreachable"),
}


def as_program(text: str) -> Program:
    if text.startswith("hex:"):
        return Program.from_bytes(bytes.fromhex(text[4:]), "little")
    return parse(text)


def raw_peer(spec: str):
    name, *extra = spec.split()
    need(name)
    return external.command_candidate(peers.argv(name) + extra, "x86_64", name=spec)


@pytest.mark.parametrize("case", REPRODUCERS)
def test_each_disagreement_found(case):
    text, nrs, linux, spec, peer_does = REPRODUCERS[case]
    program = as_program(text)
    check(program)                                             # Linux installs it
    recs = nr_records(*nrs)
    assert expected(program, recs, "x86_64") == linux          # our side
    peer = raw_peer(spec)
    try:
        try:
            got = peer.evaluate(program.to_bytes("little"), recs)
        except CandidateFailed as exc:
            got = exc
        if peer_does == "fails":
            if not isinstance(got, CandidateFailed) and list(got) == linux:
                pytest.skip(f"{spec} no longer gets {case!r} wrong: update KNOWN_DIFFERENCES")
        else:
            assert isinstance(got, Rejected) and peer_does in got.reason, got
    finally:
        peer.close()
    if case in peers.KNOWN_DIFFERENCES:                        # `--peer` does not compare it
        cand = peers.candidate(spec)
        try:
            assert cand.answer(program.to_bytes("little"), recs) is None
            assert cand.mapped[case] == 1
        finally:
            cand.close()
    adapted = peers.candidate("dpdk")                          # DPDK's interpreter, adapted
    try:
        got = adapted.answer(program.to_bytes("little"), recs)
        assert got is None if case.startswith("division") else list(got) == linux
    finally:
        adapted.close()


@pytest.mark.kernel
@pytest.mark.parametrize("case", REPRODUCERS)
def test_the_kernel_agrees_on_each_reproducer(case):
    from bpfjit.backends.kernel import kernel_unavailable_reason
    why = kernel_unavailable_reason()
    if why:
        pytest.skip(f"the kernel oracle is unavailable: {why}")
    import bpfjit
    text, nrs, linux, *_ = REPRODUCERS[case]
    got = bpfjit.compile(as_program(text), backend="kernel", arch="x86_64").evaluate_batch(
        nr_records(*nrs))
    assert list(got) == linux


# --- outside seccomp: packet-only semantics, derived by hand ----------------------------
def test_packet_only_loads_behave_as_documented(running):
    """Programs Linux refuses as seccomp filters, on the record nr=59 (x86_64): the packet is
    00 00 00 3b | c0 00 00 3e | ... (each word big-endian). Values derived from those bytes."""
    recs = records("x86_64")[1:2]
    cases = {                                   # text: (libpcap, DPDK)
        "ldb [3]\nret a": (0x3B, 0x3B),          # low byte of nr, big-endian word
        "ldh [4]\nret a": (0xC000, 0xC000),      # top half of AUDIT_ARCH_X86_64
        "ld [2]\nret a": (0x003BC000, 0x003BC000),   # misaligned word straddling nr and arch
        "ld [61]\nret a": (0, 0),                # past the end: the filter returns 0
        "ldxb 4*([3]&0xf)\ntxa\nret a": (44, 44),  # BPF_MSH: 4 * (0x3b & 0xf)
        # ld [x + k] (BPF_IND) reads at X + k in libpcap and Linux's socket filters; DPDK's
        # rte_bpf_convert sets the eBPF src_reg from BPF_SRC(code), which is 0 (BPF_K) for
        # every BPF_LD|BPF_IND, so it reads at A + k (A = 0 here): a DPDK bug
        "ldx #56\nld [x + 0]\nret a": (33, 59),        # args[5] low word | DPDK: [0] = nr
        "ldx #61\nld [x + 0]\nret #7": (0, 7),         # past the end | DPDK: [0], in range
        "ld #4\nldx #0\nldb [x + 3]\nret a": (0x3B, 0x3E),   # [3] | DPDK: [4 + 3]
    }
    for peer in ("pcap", "dpdk", "dpdk-jit"):
        cand = running(peer)
        for text, want in cases.items():
            got = cand.evaluate(parse(text, arch="x86_64").to_bytes("little"), recs)
            assert not isinstance(got, Rejected), f"{peer}: {text!r}: {got}"
            assert list(got) == [want[peer != "pcap"]], f"{peer}: {text!r}"


def test_a_missing_dpdk_is_a_clear_reason(monkeypatch, tmp_path):
    """Without the library (here: an ABI no system has) the peer says what to install."""
    if peers.reason("pcap"):
        pytest.skip(f"peer pcap: {peers.reason('pcap')}")
    monkeypatch.setattr(peers, "DPDK_ABIS", ("999",))
    monkeypatch.setattr(peers, "_built", {})
    monkeypatch.setattr(peers, "_failed", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    why = peers.reason("dpdk-jit")
    assert why and "librte_bpf.so.999" in why and "apt-get install librte-bpf23" in why
    assert peers.reason("pcap") is None                 # libpcap alone still builds
    result = CliRunner().invoke(command, ["--peer", "dpdk", "--programs", "1", "--no-kernel"])
    assert result.exit_code == 2 and "apt-get install librte-bpf23" in result.output
