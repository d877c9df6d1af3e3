"""load()'s format detection and its ways in (path, Path, bytes, text); dump() in every format."""
from __future__ import annotations

from pathlib import Path

import pytest

import bpfjit
from bpfjit.formats import FORMATS, detect_format, dump, load

from corpora import REAL_FILTERS

DOCKER = REAL_FILTERS / "docker-default.x86_64.bpf"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_detected_from_a_file(tmp_path, fmt):
    prog = load(DOCKER)
    path = tmp_path / f"filter.{fmt}"
    path.write_bytes(dump(prog, fmt))
    assert detect_format(path.read_bytes()) == fmt
    for source in (path, str(path), path.read_bytes()):
        assert load(source) == prog


@pytest.mark.parametrize("text, fmt", [
    ("ret #0", "asm"),
    ("ret ALLOW\n", "asm"),
    ("ld [nr] ; BPF_STMT( in a comment is not C\nret #0\n", "asm"),
    ("; { 0x06, 0, 0, 0 } in a comment\nret #0\n", "asm"),
    ("tax\ntxa\nret a\n", "asm"),
    ("06 00 00 00 00 00 ff 7f", "hex"),
    ("# endian: little\n06 00 00 00 00 00 ff 7f\n", "hex"),
    ("{ 6, 0, 0, 0 }", "c"),
    ("{ 0x06, 0, 0, 0 }", "c"),
    ("BPF_STMT(BPF_RET|BPF_K, 0),", "c"),
    ("/* comment */ struct sock_filter f[] = { BPF_STMT(6, 0) };", "c"),
])
def test_detect_text(text, fmt):
    assert detect_format(text.encode()) == fmt


def test_raw_is_anything_not_text():
    assert detect_format(DOCKER.read_bytes()) == "raw"
    assert detect_format(b"\x06\x00\x00\x00\x00\x00\xff\x7f") == "raw"


def test_utf8_byte_order_mark_is_ignored():
    assert load("\ufeffret #0\n".encode()) == load("ret #0\n")


def test_explicit_format_overrides_detection():
    # "ad dd ..." is valid hex: as asm it is an unknown mnemonic, as hex 8 bytes
    text = "ad dd ad dd 00 00 00 00"
    assert detect_format(text.encode()) == "hex"
    assert load(text, format="hex").to_bytes() == bytes.fromhex(text)
    with pytest.raises(bpfjit.LoadError, match="unknown mnemonic 'ad'"):
        load(text, format="asm")


def test_arch_reaches_the_assembler_and_the_c_reader():
    assert load("jeq #openat, +0\nret #0\n", arch="aarch64")[0].k == 56
    assert load("BPF_JUMP(BPF_JMP|BPF_JEQ|BPF_K, __NR_openat, 0, 0),", arch="aarch64")[0].k == 56


def test_load_names_its_source():
    assert load(DOCKER).source == str(DOCKER)
    assert load(DOCKER.read_bytes()).source == "<bytes>"
    assert load("ret #0").source == "<text>"


def test_dump_asm_uses_arch_for_names():
    prog = load(REAL_FILTERS / "docker-default.s390x.bpf")
    text = dump(prog, "asm", arch="s390x").decode()
    assert text.splitlines()[1] == ".arch s390x"
    assert load(text) == prog


def test_dump_raw_and_hex_honour_endian():
    prog = load(DOCKER)
    assert dump(prog, "raw", endian="big") == prog.to_bytes("big")
    big = load(dump(prog, "hex", endian="big"))
    assert big.endian == "big" and big == prog
    with pytest.raises(ValueError):
        dump(prog, "elf")


def test_path_objects_and_missing_files(tmp_path):
    with pytest.raises(bpfjit.LoadError, match="no such file"):
        load(str(tmp_path / "missing.bpf"))
    with pytest.raises(bpfjit.LoadError, match="no such file"):
        load(Path(tmp_path / "missing.bpf"))
