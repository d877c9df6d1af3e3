"""The assembler: bpf_asm's syntax and encodings, and the seccomp names, give exact instructions.

Expected encodings are written out from include/uapi/linux/bpf_common.h and
tools/bpf/bpf_exp.y; syscall numbers and AUDIT_ARCH values from the kernel's
tables and audit.h.
"""
from __future__ import annotations

import pytest

import bpfjit
from bpfjit.errors import LoadError
from bpfjit.formats import asm
from bpfjit.program import Instruction

from bpfjit_reference import run_seccomp


def one(text: str, arch=None) -> tuple[int, int, int, int]:
    prog = asm.parse(text, arch=arch)
    assert len(prog) == 1, prog
    return tuple(prog[0])


# --- bpf_asm forms: (text, (code, jt, jf, k)) ---
BPF_ASM = [
    ("ld [4]", (0x20, 0, 0, 4)),
    ("ldh [12]", (0x28, 0, 0, 12)),
    ("ldb [23]", (0x30, 0, 0, 23)),
    ("ld [x + 8]", (0x40, 0, 0, 8)),
    ("ldh [%x+2]", (0x48, 0, 0, 2)),
    ("ldb [x + 0x10]", (0x50, 0, 0, 16)),
    ("ld #42", (0x00, 0, 0, 42)),
    ("ldi 42", (0x00, 0, 0, 42)),
    ("ldi #42", (0x00, 0, 0, 42)),
    ("ldx #7", (0x01, 0, 0, 7)),
    ("ldxi 7", (0x01, 0, 0, 7)),
    ("ld M[3]", (0x60, 0, 0, 3)),
    ("ldx M[15]", (0x61, 0, 0, 15)),
    ("st M[0]", (0x02, 0, 0, 0)),
    ("stx M[1]", (0x03, 0, 0, 1)),
    ("ld #len", (0x80, 0, 0, 0)),
    ("ld len", (0x80, 0, 0, 0)),
    ("ldx #len", (0x81, 0, 0, 0)),
    ("ldxb 4*([14]&0xf)", (0xB1, 0, 0, 14)),
    ("ldx 4 * ( [14] & 0xf )", (0xB1, 0, 0, 14)),
    ("ld #proto", (0x20, 0, 0, 0xFFFFF000)),
    ("ldh #type", (0x28, 0, 0, 0xFFFFF004)),
    ("ldb rand", (0x30, 0, 0, 0xFFFFF038)),
    ("ld #vlan_tpid", (0x20, 0, 0, 0xFFFFF03C)),
    ("add #1", (0x04, 0, 0, 1)),
    ("sub x", (0x1C, 0, 0, 0)),
    ("mul %x", (0x2C, 0, 0, 0)),
    ("div #3", (0x34, 0, 0, 3)),
    ("or #0x10", (0x44, 0, 0, 0x10)),
    ("and #0xff", (0x54, 0, 0, 0xFF)),
    ("lsh #2", (0x64, 0, 0, 2)),
    ("rsh x", (0x7C, 0, 0, 0)),
    ("neg", (0x84, 0, 0, 0)),
    ("mod #5", (0x94, 0, 0, 5)),
    ("xor x", (0xAC, 0, 0, 0)),
    ("tax", (0x07, 0, 0, 0)),
    ("txa", (0x87, 0, 0, 0)),
    ("ret #0", (0x06, 0, 0, 0)),
    ("ret a", (0x16, 0, 0, 0)),
    ("ret %a", (0x16, 0, 0, 0)),
    ("ret x", (0x0E, 0, 0, 0)),
    ("ja +0", (0x05, 0, 0, 0)),
    ("jmp +300", (0x05, 0, 0, 300)),
    ("jeq #1, +2, +3", (0x15, 2, 3, 1)),
    ("jeq #1, +2", (0x15, 2, 0, 1)),
    ("jgt x, +1, +255", (0x2D, 1, 255, 0)),
    ("jge %x, +4", (0x3D, 4, 0, 0)),
    ("jset #0x80, +1, +0", (0x45, 1, 0, 0x80)),
    ("jne #9, +5", (0x15, 0, 5, 9)),
    ("jneq x, +5", (0x1D, 0, 5, 0)),
    ("jlt #9, +5", (0x35, 0, 5, 9)),
    ("jle #9, +5", (0x25, 0, 5, 9)),
    ("jne #9, +1, +2", (0x15, 2, 1, 9)),
    (".insn 0x1234, 1, 2, 0x5", (0x1234, 1, 2, 5)),
    (".insn 0xffff, 255, 255, 0xffffffff", (0xFFFF, 255, 255, 0xFFFFFFFF)),
    # case-insensitive mnemonics and registers, as bpf_asm's lexer
    ("LD [4]", (0x20, 0, 0, 4)),
    ("Ret A", (0x16, 0, 0, 0)),
    ("ADD X", (0x0C, 0, 0, 0)),
    ("ld m[2]", (0x60, 0, 0, 2)),
]


@pytest.mark.parametrize("text, fields", BPF_ASM, ids=[t for t, _ in BPF_ASM])
def test_bpf_asm_forms(text, fields):
    assert one(text) == fields


NUMBERS = [("0", 0), ("42", 42), ("0x2A", 42), ("0X2a", 42), ("0b101010", 42), ("0o52", 42),
           ("+42", 42), ("-1", 0xFFFFFFFF), ("-2147483648", 0x80000000),
           ("4294967295", 0xFFFFFFFF), ("0xffffffff", 0xFFFFFFFF)]


@pytest.mark.parametrize("text, value", NUMBERS)
def test_numbers(text, value):
    assert one(f"ld #{text}") == (0, 0, 0, value)


@pytest.mark.parametrize("text", ["4294967296", "0x100000000", "-2147483649", "017", "08",
                                  "1e3", "0x", "12abc"])
def test_bad_numbers_are_refused(text):
    with pytest.raises(LoadError) as err:
        asm.parse(f"ld #{text}")
    assert err.value.line == 1 and text in str(err.value)


# --- labels and jumps ---

def test_labels_resolve_to_forward_offsets():
    prog = asm.parse("""
        ld [nr]
        jeq #1, yes, no        ; jt = 1, jf = 2
        jeq #2, yes            ; falls through when false
    yes: ret ALLOW
    no:  ja done
        ret #1
    done: ret #2
    """)
    assert [tuple(i) for i in prog] == [
        (0x20, 0, 0, 0), (0x15, 1, 2, 1), (0x15, 0, 0, 2), (0x06, 0, 0, 0x7FFF0000),
        (0x05, 0, 0, 1), (0x06, 0, 0, 1), (0x06, 0, 0, 2)]


def test_several_labels_on_one_instruction_and_label_on_its_own_line():
    prog = asm.parse("a1:\nb2: c3: ret #0\n")
    assert list(prog) == [Instruction(6, 0, 0, 0)]
    prog = asm.parse("jeq #0, a1, b2\na1:\nb2: c3: ret #0\n")
    assert tuple(prog[0]) == (0x15, 0, 0, 0)


def test_labels_are_case_sensitive():
    with pytest.raises(LoadError, match="undefined label 'Yes'.*did you mean 'yes'"):
        asm.parse("jeq #1, Yes\nyes: ret #0\n")


def test_a_conditional_jump_reaches_255_but_not_256():
    body = "ret #0\n" * 255
    prog = asm.parse("jeq #1, far\n" + body + "far: ret #1\n")
    assert prog[0].jt == 255
    with pytest.raises(LoadError) as err:
        asm.parse("jeq #1, far\n" + body + "ret #0\nfar: ret #1\n")
    assert err.value.line == 1 and "256 instructions ahead" in str(err.value)
    # ja reaches anything forward
    prog = asm.parse("ja far\n" + "ret #0\n" * 1000 + "far: ret #1\n")
    assert prog[0].k == 1000


# --- comments ---

def test_comments():
    prog = asm.parse("""# a shell-style comment line
    ; a bpf_asm comment
    ld [nr]   ; trailing
    // C++ style
    /* a block
       over lines */ ld [arch] /* inline */
    ret #0 // trailing
    """)
    assert [tuple(i) for i in prog] == [(0x20, 0, 0, 0), (0x20, 0, 0, 4), (6, 0, 0, 0)]


def test_line_numbers_survive_block_comments():
    with pytest.raises(LoadError) as err:
        asm.parse("/* one\ntwo\nthree */\nret #0\nbogus\n")
    assert err.value.line == 5


# --- seccomp names ---

X86_64_FIELDS = [("nr", 0), ("arch", 4), ("ip.lo", 8), ("ip.hi", 12),
                 ("instruction_pointer.lo", 8), ("instruction_pointer.hi", 12),
                 ("args[0].lo", 16), ("args[0].hi", 20), ("args[2].lo", 32), ("args[2].hi", 36),
                 ("args[5].lo", 56), ("args[5].hi", 60), ("ARGS[1].HI", 28), ("args [3] . lo", 40)]
S390X_FIELDS = [("nr", 0), ("arch", 4), ("ip.hi", 8), ("ip.lo", 12), ("args[0].hi", 16),
                ("args[0].lo", 20), ("args[2].hi", 32), ("args[2].lo", 36), ("args[5].hi", 56),
                ("args[5].lo", 60)]


@pytest.mark.parametrize("name, offset", X86_64_FIELDS)
def test_seccomp_data_words_little_endian(name, offset):
    assert one(f"ld [{name}]") == (0x20, 0, 0, offset)              # default arch x86_64
    assert one(f"ld [{name}]", arch="aarch64") == (0x20, 0, 0, offset)


@pytest.mark.parametrize("name, offset", S390X_FIELDS)
def test_seccomp_data_words_big_endian(name, offset):
    assert one(f"ld [{name}]", arch="s390x") == (0x20, 0, 0, offset)
    assert one(f".arch s390x\nld [{name}]") == (0x20, 0, 0, offset)
    assert one(f".arch ppc64\nld [{name}]") == (0x20, 0, 0, offset)


def test_arch_directive_wins_over_the_argument_and_can_change_mid_text():
    prog = asm.parse(".arch s390x\nld [args[0].hi]\n.arch x86_64\nld [args[0].hi]\n",
                     arch="aarch64")
    assert [i.k for i in prog] == [16, 20]


SYSCALLS = [  # (arch, name, number) from the kernel's syscall tables
    ("x86_64", "openat", 257), ("x86_64", "read", 0), ("x86_64", "execve", 59),
    ("x86", "openat", 295), ("x86", "socketcall", 102), ("aarch64", "openat", 56),
    ("x32", "openat", 0x40000000 | 257), ("s390x", "openat", 288), ("arm", "openat", 322),
    ("riscv64", "openat", 56), ("mips", "openat", 4288), ("ppc64le", "openat", 286),
]


@pytest.mark.parametrize("arch, name, nr", SYSCALLS)
def test_syscall_names(arch, name, nr):
    assert one(f"jeq #{name}, +1", arch=arch) == (0x15, 1, 0, nr)
    assert one(f".arch {arch}\njeq #__NR_{name}, +1") == (0x15, 1, 0, nr)
    assert one(f"jge #SYS_{name}, +0, +1", arch=arch) == (0x35, 0, 1, nr)


AUDIT = [("AUDIT_ARCH_X86_64", 0xC000003E), ("AUDIT_ARCH_I386", 0x40000003),
         ("AUDIT_ARCH_X86", 0x40000003), ("AUDIT_ARCH_X32", 0xC000003E),
         ("AUDIT_ARCH_AARCH64", 0xC00000B7), ("AUDIT_ARCH_ARM", 0x40000028),
         ("AUDIT_ARCH_S390X", 0x80000016), ("AUDIT_ARCH_PPC64LE", 0xC0000015),
         ("AUDIT_ARCH_RISCV64", 0xC00000F3), ("AUDIT_ARCH_MIPSEL64N32", 0xE0000008),
         ("AUDIT_ARCH_LOONGARCH64", 0xC0000102), ("AUDIT_ARCH_SH", 0x2A),
         ("AUDIT_ARCH_SHEL", 0x4000002A), ("AUDIT_ARCH_SHEB", 0x2A),
         ("AUDIT_ARCH_PARISC64", 0x8000000F), ("AUDIT_ARCH_M68K", 0x4)]


@pytest.mark.parametrize("name, value", AUDIT)
def test_audit_arch_names(name, value):
    assert one(f"jeq #{name}, +1, +0") == (0x15, 1, 0, value)


def test_every_layout_has_an_audit_arch_name():
    for lay in bpfjit.LAYOUTS.values():
        if lay.name == "sh":   # audit.h's AUDIT_ARCH_SH is big-endian; libseccomp's sh is SHEL
            continue
        assert one(f"jeq #AUDIT_ARCH_{lay.name.upper()}, +1") == (0x15, 1, 0, lay.audit_arch)


ACTIONS = [("ALLOW", 0x7FFF0000), ("ERRNO(1)", 0x00050001), ("ERRNO(0x26)", 0x00050026),
           ("ERRNO(EPERM)", 0x00050001), ("ERRNO(ENOSYS)", 0x00050026), ("KILL", 0),
           ("KILL_THREAD", 0), ("KILL_PROCESS", 0x80000000), ("TRAP", 0x00030000),
           ("TRAP(5)", 0x00030005), ("TRACE(3)", 0x7FF00003), ("LOG", 0x7FFC0000),
           ("USER_NOTIF", 0x7FC00000), ("NOTIFY", 0x7FC00000), ("allow", 0x7FFF0000),
           ("SECCOMP_RET_ALLOW", 0x7FFF0000), ("#0x7fff0000", 0x7FFF0000),
           ("ERRNO( 65535 )", 0x0005FFFF), ("ALLOW(7)", 0x7FFF0007)]


@pytest.mark.parametrize("text, value", ACTIONS)
def test_ret_actions(text, value):
    assert one(f"ret {text}") == (0x06, 0, 0, value)


def test_errno_names_follow_the_architecture():
    # ENOSYS is 38 in asm-generic, 89 on MIPS: the name is refused where it would mislead
    assert one("ret ERRNO(ENOSYS)", arch="aarch64")[3] == 0x00050026
    with pytest.raises(LoadError):
        asm.parse("ret ERRNO(ENOSYS)", arch="mips")
    assert one("ret ERRNO(EACCES)", arch="mips")[3] == 0x0005000D   # errno-base: same everywhere


def test_named_constants_in_other_operands():
    assert one("ld #AUDIT_ARCH_AARCH64") == (0, 0, 0, 0xC00000B7)
    assert one("and #SECCOMP_RET_ACTION_FULL") == (0x54, 0, 0, 0xFFFF0000)
    assert one("jge #X32_SYSCALL_BIT, +1") == (0x35, 1, 0, 0x40000000)


# --- hand-written programs behave as written (checked by the reference interpreter) ---

def test_package_docstring_program():
    prog = bpfjit.load("ld [nr]\njeq #59, kill, allow\nkill: ret KILL_PROCESS\n"
                       "allow: ret ALLOW\n")
    assert [tuple(i) for i in prog] == [(0x20, 0, 0, 0), (0x15, 0, 1, 59),
                                        (0x06, 0, 0, 0x80000000), (0x06, 0, 0, 0x7FFF0000)]


OPENAT_POLICY = [  # (arch, syscall nr, args, expected action), from the policy's comment
    ("x86_64", 257, (3, 0x1000, 0, 0, 0, 0), 0x7FFF0000),                # openat O_RDONLY
    ("x86_64", 257, (3, 0x1000, 0x241, 0, 0, 0), 0x0005000D),            # O_WRONLY|O_CREAT|O_TRUNC
    ("x86_64", 257, (3, 0x1000, 0x2, 0, 0, 0), 0x0005000D),              # O_RDWR
    ("x86_64", 257, (3, 0x1000, 0x80000, 0, 0, 0), 0x7FFF0000),          # O_CLOEXEC only
    ("x86_64", 257, (3, 0x1000, 1 << 32, 0, 0, 0), 0x00050016),          # high half set
    ("x86_64", 0, (0,) * 6, 0x7FFF0000),                                 # read
    ("x86_64", 231, (0,) * 6, 0x7FFF0000),                               # exit_group
    ("x86_64", 59, (0,) * 6, 0x80000000),                                # execve
    ("x86_64", 322, (0,) * 6, 0x80000000),                               # execveat
    ("x86_64", 39, (0,) * 6, 0x00050001),                                # getpid: EPERM
    ("x86_64", 0x40000000 | 257, (0,) * 6, 0x80000000),                  # x32 openat
    ("aarch64", 56, (0,) * 6, 0x80000000),                               # another arch
]


@pytest.mark.parametrize("arch, nr, args, expected", OPENAT_POLICY)
def test_bundled_openat_policy(arch, nr, args, expected):
    from importlib.resources import files
    path = files("bpfjit") / "examples" / "openat-policy.asm"
    prog = bpfjit.load(str(path))
    prog.check()
    lay = bpfjit.layout(arch)
    got = run_seccomp([tuple(i) for i in prog], nr, lay.audit_arch, 0, list(args), lay.byteorder)
    assert got == expected
