"""Hex text: plain, 0x-and-commas, xxd and hexdump -C output; byte order from the text or the opcodes."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from bpfjit.errors import LoadError
from bpfjit.formats import detect_format, hexdump, load
from bpfjit.program import Instruction, Program

from corpora import REAL_FILTERS, VECTORS

LD_ARCH = bytes.fromhex("2000000004000000")     # ld [4], little-endian
RET_ALLOW = bytes.fromhex("060000000000ff7f")   # ret #0x7fff0000, little-endian


@pytest.mark.parametrize("text", [
    "20 00 00 00 04 00 00 00\n06 00 00 00 00 00 ff 7f\n",
    "2000000004000000060000000000ff7f",
    "0x20, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,\n0x06,0x00,0x00,0x00,0x00,0x00,0xff,0x7f",
    "# a comment\n2000 0000 0400 0000 ; ld [arch]\n0600 0000 0000 FF7F // ret ALLOW\n",
    "20:00:00:00:04:00:00:00:06:00:00:00:00:00:ff:7f",
])
def test_spellings_of_the_same_bytes(text):
    assert detect_format(text.encode()) == "hex"
    prog = load(text)
    assert prog.to_bytes() == LD_ARCH + RET_ALLOW and prog.endian == "little"


def test_dump_writes_the_byte_order():
    prog = Program([Instruction(0x20, 0, 0, 4), Instruction(0x06, 0, 0, 0x7FFF0000)],
                   endian="big")
    text = hexdump.dump(prog)
    assert text == ("# struct sock_filter[2], code and k big-endian\n# endian: big\n"
                    "00 20 00 00 00 00 00 04\n00 06 00 00 7f ff 00 00\n")
    assert hexdump.parse(text) == prog and hexdump.parse(text).endian == "big"
    assert hexdump.dump(prog, endian="little").splitlines()[2] == "20 00 00 00 04 00 00 00"
    with pytest.raises(LoadError, match="says '# endian: big'"):
        hexdump.parse(text, endian="little")


def test_byte_order_is_detected_without_a_header():
    for name in ("070ec48277729505.bpf", "dc30bee267989ee5.bpf"):   # libseccomp's big-endian ones
        data = (VECTORS / "filters" / name).read_bytes()
        assert load(data.hex()).endian == "big"
        assert load(data.hex(), endian="little").to_bytes("little") == data


@pytest.mark.skipif(shutil.which("xxd") is None, reason="xxd not installed")
def test_xxd_output(tmp_path):
    path = REAL_FILTERS / "docker-default.x86_64.bpf"
    text = subprocess.run(["xxd", str(path)], check=True, capture_output=True, text=True).stdout
    assert detect_format(text.encode()) == "hex"
    assert load(text).to_bytes() == path.read_bytes()


@pytest.mark.skipif(shutil.which("hexdump") is None, reason="hexdump not installed")
def test_hexdump_canonical_output(tmp_path):
    path = REAL_FILTERS / "openssh-9.2p1.sshd-preauth.x86_64.bpf"
    text = subprocess.run(["hexdump", "-v", "-C", str(path)], check=True, capture_output=True,
                          text=True).stdout
    assert detect_format(text.encode()) == "hex"
    assert load(text).to_bytes() == path.read_bytes()
    # without -v, hexdump replaces repeated lines by '*': refused, with the fix in the message
    repeated = tmp_path / "rep.bpf"
    repeated.write_bytes(RET_ALLOW * 8)
    text = subprocess.run(["hexdump", "-C", str(repeated)], check=True, capture_output=True,
                          text=True).stdout
    assert "*" in text
    with pytest.raises(LoadError, match="hexdump -v -C"):
        load(text)
