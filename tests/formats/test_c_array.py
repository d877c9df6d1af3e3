"""C arrays: tcpdump -dd / bpf_asm -c lines and BPF_STMT/BPF_JUMP macros, checked against a C compiler."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from bpfjit.errors import LoadError
from bpfjit.formats import c_array, detect_format, load, symbols
from bpfjit.program import Instruction, Program
from bpfjit.seccomp.layouts import host_layout

CC = shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler to compare with")


def fields(prog: Program) -> list[tuple[int, int, int, int]]:
    return [tuple(i) for i in prog]


def test_tcpdump_dd_lines():
    text = ("{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 1, 0x00000800 },\n"
            "{ 0x6, 0, 0, 0x00040000 },\n{ 0x6, 0, 0, 0x00000000 },\n")
    assert detect_format(text.encode()) == "c"
    assert fields(load(text)) == [(0x28, 0, 0, 12), (0x15, 0, 1, 0x800), (6, 0, 0, 0x40000),
                                  (6, 0, 0, 0)]


def test_bpf_asm_c_output_with_its_octal_zeros():
    # bpf_asm -c prints "%#04x" and "%#010x": zero comes out as 0000 / 0000000000 (octal 0 in C)
    text = "{ 0000,  0,  0, 0000000000 },\n{ 0x06,  0,  0, 0x7fff0000 },\n"
    assert fields(c_array.parse(text)) == [(0, 0, 0, 0), (6, 0, 0, 0x7FFF0000)]
    assert fields(c_array.parse("{ 010, 0, 0, 017 }")) == [(8, 0, 0, 15)]   # C octal


def test_dump_format():
    prog = Program([Instruction(0x20, 0, 0, 4), Instruction(0x15, 1, 0, 0xC000003E),
                    Instruction(0x1234, 255, 7, 0xFFFFFFFF)])
    assert c_array.dump(prog) == ("{ 0x20,  0,  0, 0x00000004 },\n"
                                  "{ 0x15,  1,  0, 0xc000003e },\n"
                                  "{ 0x1234, 255,  7, 0xffffffff },\n")


def test_declaration_comments_and_surroundings_are_ignored():
    text = """
    #include <linux/filter.h>
    /* a filter */
    static const struct sock_filter insns[] = {
        { 0x20, 0, 0, 0x00000004 },   // ld [arch]
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = 2, .filter = (struct sock_filter *)insns };
    int main(void) { return 0; }
    """
    assert detect_format(text.encode()) == "c"
    assert fields(load(text)) == [(0x20, 0, 0, 4), (6, 0, 0, 0x7FFF0000)]


def test_designated_initialisers():
    text = "{ .code = BPF_LD|BPF_W|BPF_ABS, .k = 4 }, { .jt = 1, .code = 0x15, .jf = 2, .k = 3 },"
    assert fields(c_array.parse(text)) == [(0x20, 0, 0, 4), (0x15, 1, 2, 3)]


def test_defines_casts_and_arithmetic():
    text = """
    #define ARCH_NR AUDIT_ARCH_AARCH64
    #define LO(n) (offsetof(struct seccomp_data, args[n]))
    #define MASK (0xff << 8 | \\
                  0x0f)
    struct sock_filter f[] = {
        BPF_JUMP(BPF_JMP+BPF_JEQ+BPF_K, ARCH_NR, 1, 0),
        BPF_STMT(BPF_LD+BPF_W+BPF_ABS, offsetof(struct seccomp_data, args[1]) + 4),
        BPF_STMT(BPF_ALU+BPF_AND+BPF_K, MASK),
        BPF_STMT(BPF_RET+BPF_K, SECCOMP_RET_ERRNO | (EACCES & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET+BPF_K, (__u16)-1),
        BPF_STMT(BPF_RET+BPF_K, -1),
        BPF_STMT(BPF_RET+BPF_K, (7 - 10) / 2 + 100 % 7),
        BPF_JUMP(BPF_JMP|BPF_JGE|BPF_K, __NR_openat, 0, 1),
    };
    """
    assert fields(c_array.parse(text, arch="aarch64")) == [
        (0x15, 1, 0, 0xC00000B7), (0x20, 0, 0, 28), (0x54, 0, 0, 0xFF0F),
        (0x06, 0, 0, 0x5000D), (0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0xFFFFFFFF),
        (0x06, 0, 0, 1), (0x35, 0, 1, 56)]   # aarch64 openat is 56; C division truncates


def test_line_numbers_in_errors():
    text = "struct sock_filter f[] = {\n  BPF_STMT(BPF_RET|BPF_K, 0),\n\n  { 0x06, 0, 0, NOPE },\n};"
    with pytest.raises(LoadError) as err:
        c_array.parse(text)
    assert err.value.line == 4 and "NOPE" in str(err.value)


def _compile_and_run(source: str, tmp_path) -> str:
    (tmp_path / "t.c").write_text(source)
    subprocess.run([CC, "-o", str(tmp_path / "t"), str(tmp_path / "t.c")], check=True,
                   capture_output=True, timeout=120)
    return subprocess.run([str(tmp_path / "t")], check=True, capture_output=True,
                          text=True, timeout=60).stdout


ARRAY = """struct sock_filter filter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 12, 0),
    BPF_JUMP(BPF_JMP + BPF_JEQ + BPF_K, __NR_openat, 0, 4),
    BPF_STMT(BPF_LD + BPF_W + BPF_ABS, offsetof(struct seccomp_data, args[2]) + 4),
    BPF_JUMP(BPF_JMP + BPF_JEQ + BPF_K, 0, 0, 8),
    BPF_STMT(BPF_LD + BPF_W + BPF_ABS, offsetof(struct seccomp_data, args[2])),
    BPF_JUMP(BPF_JMP + BPF_JSET + BPF_K, 01 | 02 | 0x40 | 0x200, 5, 6),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execve, 5, 0),
    BPF_STMT(BPF_MISC | BPF_TAX, 0),
    BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 3),
    BPF_STMT(BPF_LDX | BPF_MEM, 1 + 1),
    { 0x06, 0, 0, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA) },
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE | 0x1234U),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_RET + BPF_K, SECCOMP_RET_USER_NOTIF | SECCOMP_RET_LOG),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, sizeof(struct seccomp_data) - 4),
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, SKF_AD_OFF + SKF_AD_PROTOCOL),
    BPF_STMT(BPF_RET | BPF_K, ~0U & ~(unsigned short)0),
};
"""

PRELUDE = """#include <stdio.h>
#include <stddef.h>
#include <errno.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/audit.h>
#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif
"""


@needs_cc
def test_macros_match_the_c_compiler(tmp_path):
    """Every field c_array computes equals what cc computes from the same text and kernel headers."""
    source = PRELUDE + ARRAY + """
int main(void) {
    for (size_t i = 0; i < sizeof(filter) / sizeof(filter[0]); i++)
        printf("%u %u %u %u\\n", filter[i].code, filter[i].jt, filter[i].jf, filter[i].k);
    return 0;
}
"""
    out = _compile_and_run(source, tmp_path)
    expected = [tuple(int(x) for x in ln.split()) for ln in out.splitlines()]
    assert fields(c_array.parse(ARRAY, arch=host_layout())) == expected
    assert len(expected) == 22


@needs_cc
def test_audit_arch_table_matches_the_kernel_headers(tmp_path):
    lines = "\n".join(f"#ifdef {n}\n    printf(\"{n} %u\\n\", (unsigned){n});\n#endif"
                      for n in symbols.KERNEL_AUDIT_ARCHES)
    out = _compile_and_run("#include <stdio.h>\n#include <linux/audit.h>\n#include "
                           "<linux/elf-em.h>\nint main(void) {\n" + lines + "\nreturn 0; }\n",
                           tmp_path)
    seen = {name: int(value) for name, value in (ln.split() for ln in out.splitlines())}
    assert len(seen) >= 50, "too few AUDIT_ARCH_* in the host headers to compare"
    for name, value in seen.items():
        assert symbols.KERNEL_AUDIT_ARCHES[name] == value, name


@needs_cc
def test_errno_names_match_the_c_library(tmp_path):
    names = [*symbols.ERRNO_BASE, *symbols.ERRNO_GENERIC]
    body = "\n".join(f'    printf("{n} %d\\n", {n});' for n in names)
    out = _compile_and_run("#include <stdio.h>\n#include <errno.h>\nint main(void) {\n" + body
                           + "\nreturn 0; }\n", tmp_path)
    table = symbols.errno_table(host_layout())
    for ln in out.splitlines():
        name, value = ln.split()
        assert table[name] == int(value), name
