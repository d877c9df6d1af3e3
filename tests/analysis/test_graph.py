"""bpfjit graph: the DOT structure (nodes, edges, the highlighted path) for small filters.

The highlighted path is compared with the instructions the reference
interpreter executes; rendering to SVG runs when Graphviz's ``dot`` is present.
"""
from __future__ import annotations

import shutil

import pytest

import bpfjit_reference as ref
from bpfjit.cli import main
from bpfjit.formats import load
from bpfjit.seccomp import layouts
from corpora import REAL_FILTERS

graphviz = pytest.importorskip("graphviz", reason="the graphviz Python package is not installed")

from bpfjit.analysis import graph  # noqa: E402

X86_64 = layouts.layout("x86_64")

SMALL = """
        ld   [arch]
        jne  #AUDIT_ARCH_X86_64, kill
        ld   [nr]
        jeq  #read, allow
        jeq  #write, allow
        jeq  #close, allow
        jeq  #openat, check
        jeq  #execve, kill
        ret  ERRNO(1)
check:  ld   [args[2].hi]
        jne  #0, deny
        ld   [args[2].lo]
        jset #3, deny
allow:  ret  ALLOW
deny:   ret  ERRNO(13)
kill:   ret  KILL_PROCESS
"""


def picture(text: str = SMALL, highlight=None):
    return graph.build(load(text, format="asm"), X86_64, highlight=highlight)


def test_small_filter_nodes():
    pic = picture()
    # the arch check block, one dispatch node for the five jeq on nr, the argument check
    # blocks and one node per distinct action
    assert set(pic.nodes) == {"b0", "d3", "b9", "b11", "r2147418112", "r327681", "r327693",
                              "r2147483648"}
    assert pic.nodes["r2147418112"] == "ALLOW"
    assert pic.nodes["r327693"] == "ERRNO(13)"
    assert "dispatch on nr" in pic.nodes["d3"] and "5 values" in pic.nodes["d3"]


def test_small_filter_edges_carry_syscall_names():
    pic = picture()
    assert pic.edges[("d3", "r2147418112")] == "read, write, close"
    assert pic.edges[("d3", "b9")] == "openat"
    assert pic.edges[("d3", "r2147483648")] == "execve"
    assert pic.edges[("d3", "r327681")] == "other"
    assert pic.edges[("b0", "d3")] == "== x86_64"
    assert pic.edges[("b0", "r2147483648")] == "!= x86_64"
    assert pic.edges[("b11", "r327693")] == "& 0x3"
    assert pic.edges[("b11", "r2147418112")] == "no bit of 0x3"
    assert pic.edges[("b9", "r327693")] == "!= 0"


def test_dot_source_has_the_colours_and_labels():
    src = picture().source
    assert 'fillcolor="#b7e4b0"' in src                       # ALLOW
    assert 'fillcolor="#b00020"' in src                       # KILL_PROCESS
    assert "read, write, close" in src


@pytest.mark.parametrize("name, nr, want", [
    ("openat", 257, ["b0", "d3", "b9", "b11", "r2147418112"]),
    ("execve", 59, ["b0", "d3", "r2147483648"]),
    ("getpid", 39, ["b0", "d3", "r327681"]),
])
def test_highlighted_path_follows_the_reference(name, nr, want):
    pic = picture(highlight=(X86_64.audit_arch, nr, name))
    assert pic.highlighted == want
    # the nodes on the path are the ones whose instructions the reference executes
    prog = load(SMALL, format="asm")
    trail: list[int] = []
    image = ref.seccomp_data_image(nr, X86_64.audit_arch, 0, [0] * 6, "little")
    ref.run([tuple(i) for i in prog], image, on_step=lambda pc, *rest: trail.append(pc))
    starts = {"b0": 0, "b9": 9, "b11": 11}
    for node, pc in starts.items():
        assert (node in pic.highlighted) == (pc in trail)
    src = pic.source
    for a, b in zip(want, want[1:]):
        assert f"{a} -> {b}" in src
    highlighted_edges = [line for line in src.splitlines() if "penwidth=3" in line and "->" in line]
    assert len(highlighted_edges) == len(want) - 1


def test_docker_filter_collapses_to_a_readable_graph():
    prog = load(str(REAL_FILTERS / "docker-default.x86_64.bpf"))
    pic = graph.build(prog, X86_64, highlight=(X86_64.audit_arch, 56, "clone"))
    assert len(pic.nodes) < 40 and len(pic.edges) < 80
    dispatch = [n for n, label in pic.nodes.items() if n.startswith("d") and "dispatch on nr" in label]
    assert len(dispatch) == 2                                 # x86_64 (with x32) and i386
    assert any("clone" == label for (a, _), label in pic.edges.items() if a == dispatch[0])
    assert pic.highlighted[-1] == "r2147418112"               # clone(0) -> ALLOW


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_render_svg(tmp_path):
    out = tmp_path / "f.svg"
    graph.render(picture(highlight=(X86_64.audit_arch, 257, "openat")), str(out))
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert "openat" in text and "ALLOW" in text


def test_cli_writes_dot_and_rejects_unknown_suffix(tmp_path, capsys):
    src = tmp_path / "f.asm"
    src.write_text(SMALL)
    out = tmp_path / "f.dot"
    assert main(["graph", str(src), "-o", str(out), "--syscall", "openat"]) == 0
    assert "digraph" in out.read_text()
    assert main(["graph", str(src), "-o", str(tmp_path / "f.txt")]) == 2
    assert main(["graph", str(src), "-o", str(out), "--syscall", "nosuchcall"]) == 2
    err = capsys.readouterr().err
    assert "f.txt" in err and "nosuchcall" in err
