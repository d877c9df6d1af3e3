"""Bad input gives a LoadError naming the problem and the line, never a traceback from inside."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfjit.errors import LoadError
from bpfjit.formats import asm, disasm, load

from corpora import REAL_FILTERS

DOCKER = (REAL_FILTERS / "docker-default.x86_64.bpf").read_bytes()

# (id, input, load() keyword arguments, expected line, fragments the message must contain)
MALFORMED = [
    ("truncated raw", DOCKER[:13], {}, None, ["13 bytes", "whole number", "truncated"]),
    ("odd length raw", DOCKER[:8] + b"\x06\x00\x00", {"format": "raw"}, None, ["11 bytes"]),
    ("empty bytes", b"", {}, None, ["empty"]),
    ("empty text", "", {}, None, ["empty"]),
    ("only comments", "; nothing here\n/* nor here */\n", {"format": "asm"}, None,
     ["no instructions"]),
    ("garbage text", "hello world\n", {}, 1, ["unknown mnemonic", "'hello'"]),
    ("unknown mnemonic", "ld [nr]\njeq #1, +0\nlda [4]\nret #0\n", {}, 3,
     ["unknown mnemonic 'lda'", "did you mean 'ld'"]),
    ("undefined label", "ld [nr]\njeq #1, allow, deny\nallow: ret ALLOW\n", {}, 2,
     ["undefined label 'deny'", "jeq #1, allow, deny"]),
    ("duplicate label", "a1: ld [nr]\na1: ret #0\n", {}, 2, ["'a1' defined twice", "line 1"]),
    ("backward jump", "top: ld [nr]\njeq #1, top\nret #0\n", {}, 2, ["backward"]),
    ("jump too far", "jeq #1, far\n" + "ret #0\n" * 256 + "far: ret #1\n", {}, 1,
     ["256 instructions ahead", "at most 255"]),
    ("raw offset too far", "jeq #1, +256\nret #0\n", {}, 1, ["+256", "at most +255"]),
    ("number too large", "ld [nr]\nret #0x100000000\n", {}, 2, ["too large", "0x100000000"]),
    ("negative too small", "ld #-2147483649\n", {}, 1, ["out of range"]),
    ("octal ambiguity", "ld [016]\nret #0\n", {}, 1, ["leading zero", "0o16"]),
    ("missing target", "jeq #1\nret #0\n", {}, 1, ["one or two labels"]),
    ("bad operand", "ld foo\nret #0\n", {}, 1, ["'ld' takes", "'foo'"]),
    ("bad field", "ld [args[6].lo]\nret #0\n", {}, 1, ["args[0] to args[5]"]),
    ("64-bit field without half", "ld [ip]\nret #0\n", {}, 1, ["ip.lo or ip.hi"]),
    ("unknown syscall", "ld [nr]\njeq #opennat, +0\nret #0\n", {}, 2,
     ["unknown syscall 'opennat'", "openat"]),
    ("unknown arch constant", "ld [arch]\njeq #AUDIT_ARCH_VAX, +0\nret #0\n", {}, 2,
     ["AUDIT_ARCH_VAX"]),
    ("unknown action", "ret ALLOWED\n", {}, 1, ["unknown action 'ALLOWED'"]),
    ("action data too large", "ret ERRNO(65536)\n", {}, 1, ["16 bits"]),
    ("bad .insn", ".insn 0x20, 0, 0\n", {}, 1, ["four numbers"]),
    (".insn code too large", ".insn 0x10000, 0, 0, 0\n", {}, 1, ["0x10000", "16 bits"]),
    ("unknown directive", ".org 5\nret #0\n", {}, 1, ["unknown directive '.org'"]),
    ("unknown .arch", ".arch vax\nret #0\n", {}, 1, ["unknown architecture 'vax'"]),
    ("unknown arch argument", "ret #0\n", {"arch": "vax"}, None, ["unknown architecture"]),
    ("label without instruction", "ret #0\nend:\n", {}, 2, ["'end' is not followed"]),
    ("unterminated comment", "ret #0\n/* open\n", {}, 2, ["unterminated /*"]),
    ("binary junk as asm", b"\x8f\xff\x00\x01garbage", {"format": "asm"}, None, ["not UTF-8"]),
    ("NUL bytes as asm", b"ld [nr]\n\x00\x00\x00\x00\x06\x00", {"format": "asm"}, 2,
     ["control character U+0000", "format='raw'"]),
    ("raw filter as asm", DOCKER, {"format": "asm"}, None, ["raw"]),
    ("bad C: three fields", "{ 0x20, 0, 0 },\n", {}, 1, ["expected ','", "code, jt, jf, k"]),
    ("bad C: unknown name", "{ 0x06, 0, 0, 0 },\n{ 0x20, 0, 0, ARCH_NR },\n", {}, 2,
     ["unknown name 'ARCH_NR'"]),
    ("bad C: jt too large", "{ 0x15, 256, 0, 0 },\n", {}, 1, ["jt = 256", "0xff"]),
    ("bad C: code too large", "{ 0x10000, 0, 0, 0 },\n", {}, 1, ["code = 65536"]),
    ("bad C: k too large", "BPF_STMT(BPF_RET|BPF_K, 0x100000000),\n", {}, 1, ["k = 4294967296"]),
    ("bad C: not closed", "struct sock_filter f[] = {\n  { 6, 0, 0, 0 },\n", {}, 1,
     ["never closed"]),
    ("bad C: unfinished element", "{ 0x06, 0, 0, 0x7fff0000\n", {}, 1, ["expected '}'"]),
    ("bad C: function-like macro", "struct sock_filter f[] = {\n  ALLOW(read),\n};\n", {}, 2,
     ["ALLOW(...)", "cc -E"]),
    ("bad C: #ifdef inside", "struct sock_filter f[] = {\n#ifdef __NR_x\n { 6,0,0,0 },\n"
     "#endif\n};\n", {}, 2, ["#ifdef", "cc -E"]),
    ("bad C: octal", "{ 0x06, 0, 0, 09 },\n", {}, 1, ["octal"]),
    ("bad C: division by zero", "BPF_STMT(BPF_RET|BPF_K, 1/0),\n", {}, 1, ["division by zero"]),
    ("bad C: errno that differs by arch", "BPF_STMT(BPF_RET|BPF_K, ENOSYS),\n",
     {"arch": "mips"}, 1, ["ENOSYS differs"]),
    ("bad C as c", "not C at all\n", {"format": "c"}, 1, ["expected '{ code, jt, jf, k }'"]),
    ("bad hex token", "20 00 00 00 zz 00 00 00\n", {"format": "hex"}, 1, ["'zz' is not hex"]),
    ("odd hex digits", "20 00 00 00 4 00 00 00\n", {"format": "hex"}, 1, ["odd number"]),
    ("hex not whole instructions", "20 00 00 00 04 00\n", {"format": "hex"}, None,
     ["6 bytes"]),
    ("empty hex", "# nothing\n", {"format": "hex"}, None, ["no hex bytes"]),
    ("unknown format", "ret #0\n", {"format": "elf"}, None, ["unknown format 'elf'"]),
    ("bad endian", DOCKER, {"endian": "middle"}, None, ["'little' or 'big'"]),
    ("missing file", "/nonexistent/filter.bpf", {}, None, ["no such file"]),
]


@pytest.mark.parametrize("source, kwargs, line, fragments",
                         [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_input(source, kwargs, line, fragments):
    with pytest.raises(LoadError) as err:
        load(source, **kwargs)
    message = str(err.value)
    assert err.value.line == line, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    if line is not None:
        assert f"line {line}:" in message


def test_errors_name_the_source_path(tmp_path):
    path = tmp_path / "policy.asm"
    path.write_text("ld [nr]\nbogus\n")
    with pytest.raises(LoadError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: line 2: ") and err.value.source == str(path)


_TEXT = st.text(st.characters(codec="utf-8"), max_size=200)
_ASMISH = st.lists(st.sampled_from(
    ["ld", "ldx", "jeq", "ret", "#", "[", "]", "x", "a", "M", ",", ":", "+", "-", "0x", "4",
     "*", "(", ")", "&", "nr", "args[1].hi", "L1", "L1:", "\n", " ", ";", "/*", "*/", "ALLOW",
     "ERRNO(", ".insn", ".arch", "s390x", "{", "}", "BPF_STMT", "0", "255", "256", "#len"]),
    max_size=40).map("".join)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_TEXT, _ASMISH), st.sampled_from([None, "asm", "c", "hex"]))
def test_any_text_loads_or_raises_load_error(text, fmt):
    try:
        prog = load(text, format=fmt)
    except LoadError:
        return
    assert len(prog) >= 1
    assert asm.parse(disasm.disassemble(prog)) == prog


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256), st.sampled_from([None, "raw", "asm", "c", "hex"]),
       st.sampled_from([None, "little", "big"]))
def test_any_bytes_load_or_raise_load_error(data, fmt, endian):
    try:
        prog = load(data, format=fmt, endian=endian)
    except LoadError:
        return
    assert len(prog) >= 1
