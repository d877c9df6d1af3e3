"""The disassembler's text: labels, names per architecture, raw escapes, plain bpf_asm mode."""
from __future__ import annotations

import re

import pytest

import bpfjit
from bpfjit.formats import asm, disasm, load
from bpfjit.program import Instruction, Program

from corpora import REAL_FILTERS


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def test_small_program_reads_as_expected():
    prog = asm.parse("""
        ld [arch]
        jeq #AUDIT_ARCH_X86_64, ok
        ret KILL_PROCESS
    ok: ld [nr]
        jeq #openat, allow, deny
    deny: ret ERRNO(1)
    allow: ret ALLOW
    """)
    assert disasm.disassemble(prog) == (
        "; 7 instructions; names for x86_64\n"
        ".arch x86_64\n"
        "     ld   [arch]\n"
        "     jeq  #AUDIT_ARCH_X86_64, L3\n"
        "     ret  KILL_PROCESS\n"
        "\n"
        "L3:  ld   [nr]\n"
        "     jeq  #257, L6                       ; openat\n"
        "     ret  ERRNO(1)                       ; EPERM\n"
        "\n"
        "L6:  ret  ALLOW\n")


def test_numbered_and_plain():
    prog = asm.parse("ld [nr]\njeq #59, +1\nret #0x7fff0000\nret #0\n")
    text = disasm.disassemble(prog, numbered=True, names=False)
    assert text == ("/* 0 */      ld   [0]\n"
                    "/* 1 */      jeq  #59, L3\n"
                    "/* 2 */      ret  #0x7fff0000\n"
                    "\n"
                    "/* 3 */ L3:  ret  #0\n")


def test_plain_output_is_bpf_asm_only():
    prog = load(REAL_FILTERS / "docker-default.x86_64.bpf")
    text = disasm.disassemble(prog, names=False)
    assert ";" not in text and ".arch" not in text and "[nr]" not in text
    grammar = re.compile(r"(L\d+:)?\s+(ld\s+\[\d+\]|jeq\s+#\w+, L\d+(, L\d+)?|jne\s+#\w+, L\d+|"
                         r"jg[te]\s+#\w+, L\d+(, L\d+)?|jl[te]\s+#\w+, L\d+|jset\s+#\w+, L\d+(, L\d+)?|"
                         r"ja\s+L\d+|ret\s+#\w+|and\s+#\w+)")
    for ln in lines(text):
        assert grammar.fullmatch(ln), ln


def test_arch_is_inferred_from_the_first_arch_check():
    for name, arch in (("docker-default.aarch64.bpf", "aarch64"),
                       ("docker-default.s390x.bpf", "s390x"),
                       ("docker-default.riscv64.bpf", "riscv64"),
                       ("firejail-server.default32.x86.bpf", "x86")):
        text = disasm.disassemble(load(REAL_FILTERS / name))
        assert lines(text)[1] == f".arch {arch}", name


def test_big_endian_layout_names_the_high_half_first():
    prog = Program([Instruction(0x20, 0, 0, 16), Instruction(0x20, 0, 0, 20),
                    Instruction(0x06, 0, 0, 0)])
    assert "ld   [args[0].hi]" in disasm.disassemble(prog, arch="s390x")
    assert "ld   [args[0].lo]" in disasm.disassemble(prog, arch="x86_64")
    for arch in ("s390x", "x86_64"):
        assert asm.parse(disasm.disassemble(prog, arch=arch)) == prog


def test_syscall_names_follow_the_arch_checked_on_each_path():
    # docker-default for x86_64 holds an x86 section: its numbers are named from x86's table
    text = disasm.disassemble(load(REAL_FILTERS / "docker-default.x86_64.bpf"))
    assert "#AUDIT_ARCH_I386" in text
    assert re.search(r"jeq  #257, L\d+\s+; openat\n", text)               # x86_64 section
    assert re.search(r"jeq  #295, L\d+\s+; openat \(x86\)\n", text)       # x86 section
    assert re.search(r"jeq  #0x40000000, L\d+\s+; read \(x32\)\n", text)  # x32 section


def test_x32_numbers_are_named_from_the_x32_table():
    prog = asm.parse("""
        ld [arch]
        jeq #AUDIT_ARCH_X86_64, ok, kill
    ok: ld [nr]
        jeq #0x40000101, allow, kill
    allow: ret ALLOW
    kill: ret KILL
    """)
    assert "; openat (x32)" in disasm.disassemble(prog)


def test_no_names_where_the_arch_is_unknown():
    prog = asm.parse("ld [arch]\njeq #0x1234, ok\nret #0\nok: ld [nr]\njeq #257, +0, +0\n"
                     "ret #0\n")
    text = disasm.disassemble(prog)
    assert "openat" not in text
    assert "jeq  #0x1234, L3" in text


def test_raw_escapes_and_their_comments():
    prog = Program([Instruction(0x1234, 1, 2, 5),          # not a classic opcode
                    Instruction(0x0E, 0, 0, 0),            # ret x: not classic either
                    Instruction(0x07, 0, 0, 5),            # tax with k set
                    Instruction(0x20, 3, 0, 4),            # ld [arch] with jt set
                    Instruction(0x1D, 0, 0, 9),            # jeq x with k set
                    Instruction(0x06, 0, 0, 0x7FFF0000)])
    text = disasm.disassemble(prog)
    assert ".insn 0x1234, 1, 2, 0x5" in text and "not a classic BPF opcode" in text
    assert ".insn 0x0e, 0, 0, 0x0" in text
    assert re.search(r"\.insn 0x07, 0, 0, 0x5\s+; tax, with unused k=0x5", text)
    assert re.search(r"\.insn 0x20, 3, 0, 0x4\s+; ld \[arch\], with unused jt=0x3", text)
    assert re.search(r"\.insn 0x1d, 0, 0, 0x9\s+; jeq x, L5, L5, with unused k=0x9", text)
    assert asm.parse(text) == prog


def test_comments_for_invalid_loads_and_unknown_actions():
    prog = Program([Instruction(0x20, 0, 0, 64), Instruction(0x20, 0, 0, 2),
                    Instruction(0x06, 0, 0, 0x00010000)])
    text = disasm.disassemble(prog)
    assert text.count("not a 32-bit word of seccomp_data") == 2
    assert "ret  #0x00010000" in text and "unknown action" in text


def test_jump_forms():
    prog = Program([Instruction(0x15, 0, 1, 1),   # jt falls through: jne
                    Instruction(0x25, 0, 1, 2),   # jgt, jt falls through: jle
                    Instruction(0x35, 0, 1, 3),   # jge: jlt
                    Instruction(0x45, 0, 1, 4),   # jset has no negation: both labels
                    Instruction(0x15, 0, 0, 5),   # both fall through
                    Instruction(0x15, 1, 0, 6),   # jf falls through
                    Instruction(0x06, 0, 0, 0), Instruction(0x06, 0, 0, 0)])
    body = [ln.split(";")[0].split(":")[-1].strip() for ln in lines(
        disasm.disassemble(prog, names=False))]
    assert body[:6] == ["jne  #1, L2", "jle  #2, L3", "jlt  #3, L4", "jset #4, L4, L5",
                        "jeq  #5, L5, L5", "jeq  #6, L7"]
    assert asm.parse(disasm.disassemble(prog)) == prog


def test_instruction_text():
    prog = load(REAL_FILTERS / "docker-default.x86_64.bpf")
    assert disasm.instruction_text(prog, 0) == "ld [arch]"
    assert disasm.instruction_text(prog, 1) == "jeq #AUDIT_ARCH_X86_64, L3"
    assert disasm.instruction_text(prog, 4) == "jeq #0, L228  ; read"
    with pytest.raises(IndexError):
        disasm.instruction_text(prog, len(prog))


def test_program_method_and_dump():
    prog = load(REAL_FILTERS / "openssh-9.2p1.sshd-preauth.x86_64.bpf")
    assert prog.disassemble() == disasm.disassemble(prog)
    assert bpfjit.dump(prog, "asm", arch="x86_64").decode() == disasm.disassemble(prog,
                                                                                   arch="x86_64")


def test_bundled_policy_disassembles_to_the_same_program():
    from importlib.resources import files
    path = files("bpfjit") / "examples" / "openat-policy.asm"
    prog = load(str(path))
    text = disasm.disassemble(prog)
    assert re.search(r"jge  #0x40000000, L\d+\s+; __X32_SYSCALL_BIT\n", text)
    assert "ld   [args[2].hi]" in text and "ret  ERRNO(13)" in text
    assert asm.parse(text) == prog
