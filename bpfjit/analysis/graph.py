"""Analysis stage: the control-flow graph of a filter as a graphviz picture (DOT source).

Nodes are basic blocks (their instructions as the disassembler writes them),
one node per distinct ``ret #k`` value coloured by action, and one *dispatch*
node per chain or tree of comparisons on one loaded word
(:mod:`bpfjit.analysis.dispatch`): Docker's 600-comparison syscall chain
becomes one node whose out-edges carry the syscall names (or number ranges)
that leave to each target. With ``highlight`` (a syscall), the path the
reference interpreter takes for it — arguments 0 — is drawn bold.

The picture is for reading; the exact facts live in :mod:`.dispatch` and the
verdict analyses. DOT is built with the ``graphviz`` package; rendering to SVG
or PNG needs Graphviz's ``dot`` program.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .. import opcodes as op
from ..program import Program
from ..seccomp import syscalls
from ..seccomp.actions import Action
from ..seccomp.layouts import ARCH_OFFSET, NR_OFFSET, Layout, audit_arch_name, by_audit_arch
from . import cfg, dispatch, paths

RET_K = op.BPF_RET | op.BPF_K
#: comparison regions of at least this many jumps are drawn as one dispatch node
MIN_MEMBERS = 3
#: block nodes show at most this many instructions
MAX_LINES = 12
#: an edge label lists names when the group has at most this many members
MAX_NAMES = 6
#: ranges shown in a label before "…"
MAX_RANGES = 4
X32_BIT = 0x40000000

#: action name -> (fill colour, font colour)
COLOURS = {
    "ALLOW": ("#b7e4b0", "black"),
    "LOG": ("#e8f0a0", "black"),
    "ERRNO": ("#ffd08a", "black"),
    "TRACE": ("#a9c8f0", "black"),
    "USER_NOTIF": ("#a9c8f0", "black"),
    "TRAP": ("#d8b4f0", "black"),
    "KILL_THREAD": ("#e06060", "white"),
    "KILL_PROCESS": ("#b00020", "white"),
    "UNKNOWN": ("#b00020", "white"),
}
HIGHLIGHT = "#1f5fd0"


@dataclass
class Picture:
    """What :func:`build` made: the DOT graph plus the node/edge facts tests look at."""

    dot: object                                   # graphviz.Digraph
    nodes: dict[str, str] = field(default_factory=dict)      # node id -> label
    edges: dict[tuple[str, str], str] = field(default_factory=dict)   # (from, to) -> label
    highlighted: list[str] = field(default_factory=list)     # node ids on the path, in order

    @property
    def source(self) -> str:
        return self.dot.source


def _ranges(values: list[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for v in sorted(values):
        if out and out[-1][1] == v - 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return [(a, b) for a, b in out]


def _count(n: int, what: str) -> str:
    return "" if not n else f"{n} {what}" + ("s" if n > 1 else "")


def _num(v: int) -> str:
    return f"{v:#x}" if v >= 0x10000 else str(v)


class _Namer:
    """Names for the values a dispatch compares: syscalls (per arch) or AUDIT_ARCH values."""

    def __init__(self, layout: Layout):
        self.layout = layout

    def value(self, word: int | None, arch: int | None, v: int) -> str:
        if word == ARCH_OFFSET:
            return audit_arch_name(v) or _num(v)
        if word != NR_OFFSET:
            return _num(v)
        lays = by_audit_arch(arch) if arch is not None else [self.layout]
        if v & X32_BIT:
            x32 = [lay for lay in lays if lay.nr_bit]
            if x32 and syscalls.has_table(x32[0].syscall_abi):
                name = syscalls.name(x32[0].syscall_abi, v)
                return f"{name} (x32)" if name else _num(v)
        plain = [lay for lay in lays if not lay.nr_bit] or lays
        if plain and syscalls.has_table(plain[0].syscall_abi):
            return syscalls.name(plain[0].syscall_abi, v) or _num(v)
        return _num(v)

    def known(self, arch: int | None) -> list[int]:
        """Every syscall number of the arch (x32 numbers too where the arch value has them)."""
        lays = by_audit_arch(arch) if arch is not None else [self.layout]
        out: set[int] = set()
        for lay in lays:
            if syscalls.has_table(lay.syscall_abi):
                out.update(v & 0xFFFFFFFF for v in syscalls.table(lay.syscall_abi).values())
        return sorted(out)

    def group(self, word: int | None, arch: int | None, spans: list[tuple[int, int]],
              must: str | None, elsewhere: frozenset = frozenset()) -> str:
        """Label for the values ``spans`` (inclusive intervals) that lead along one edge.

        ``elsewhere``: single values that go another way (the dispatch's
        cases); they are cut out of the intervals first.
        """
        spans = sorted(set(_cut(spans, elsewhere)))
        if all(a == b for a, b in spans) and len(spans) <= MAX_NAMES:
            names = [self.value(word, arch, a) for a, _ in spans]
            return "\\n".join(", ".join(names[i:i + 3]) for i in range(0, len(names), 3))
        spans = _merge(spans)
        text = ", ".join(_num(a) if a == b else f"{_num(a)}-{_num(b)}" for a, b in spans[:MAX_RANGES])
        if len(spans) > MAX_RANGES:
            text += ", …"
        if word != NR_OFFSET:
            return text
        import bisect
        table = self.known(arch)
        inside = [v for a, b in spans
                  for v in table[bisect.bisect_left(table, a):bisect.bisect_right(table, b)]]
        names = [self.value(word, arch, v) for v in inside[:2]]
        head = f"{len(inside)} syscalls" + (f": {', '.join(names)}, …" if names else "")
        if must and must not in names and must in (self.value(word, arch, v) for v in inside):
            head += f"\\n(incl. {must})"
        return f"{head}\\n{text}"


def _cut(spans: list[tuple[int, int]], elsewhere: frozenset) -> list[tuple[int, int]]:
    """The intervals without the values of ``elsewhere`` (single values are kept as they are)."""
    if not elsewhere:
        return spans
    holes = sorted(elsewhere)
    import bisect
    out = []
    for a, b in spans:
        if a == b:
            out.append((a, b))
            continue
        lo = a
        for v in holes[bisect.bisect_left(holes, a):bisect.bisect_right(holes, b)]:
            if lo <= v - 1:
                out.append((lo, v - 1))
            lo = v + 1
        if lo <= b:
            out.append((lo, b))
    return out


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _arch_at(feas: paths.Feasibility, pc: int) -> int | None:
    lo, hi, _ = feas.possible(pc, ARCH_OFFSET)
    return lo if lo == hi else None


def build(program: Program, layout: Layout, *, highlight: tuple[int, int, str] | None = None
          ) -> Picture:
    """The picture of ``program``. ``highlight``: (arch value, nr, label) of the path to draw bold."""
    import graphviz
    from ..formats.disasm import instruction_text
    graph = cfg.build(program)
    feas = paths.analyse(program)
    namer = _Namer(layout)
    regions = {h: r for h, r in dispatch.find_dispatches(program, min_cases=0).items()
               if len(r.members) >= MIN_MEMBERS}

    # which dispatch node stands for each instruction
    owner: dict[int, int] = {}
    chosen: dict[int, dispatch.Dispatch] = {}
    for head in sorted(regions):
        if head in owner:
            continue
        region = regions[head]
        chosen[head] = region
        for pc in region.members:
            owner.setdefault(pc, head)
        owner[graph.block_of(head).start] = head

    def node_of(pc: int) -> str:
        if pc in owner:
            return f"d{owner[pc]}"
        block = graph.block_of(pc)
        if block.start in owner:
            return f"d{owner[block.start]}"
        insn = program[block.start]
        if block.start == block.end and insn.code == RET_K:
            return f"r{insn.k}"
        return f"b{block.start}"

    dot = graphviz.Digraph("filter", graph_attr={
        "rankdir": "TB", "fontname": "Helvetica", "nodesep": "0.25", "ranksep": "0.45",
        "label": f"{len(program)} instructions · {layout.name}"
                 + (f" · path of {highlight[2]} (arguments 0)" if highlight else ""),
        "labelloc": "t", "fontsize": "16"},
        node_attr={"fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9"})
    pic = Picture(dot)

    path_nodes: list[str] = []
    path_edges: set[tuple[str, str]] = set()
    if highlight is not None:
        import bpfjit_reference
        arch_value, nr, _ = highlight
        image = bpfjit_reference.seccomp_data_image(nr & 0xFFFFFFFF, arch_value, 0, [0] * 6,
                                                    layout.byteorder)
        trail: list[int] = []
        bpfjit_reference.run([tuple(i) for i in program], image, byteorder=layout.byteorder,
                             on_step=lambda pc, *rest: trail.append(pc))
        for pc in trail:
            n = node_of(pc)
            if not path_nodes or path_nodes[-1] != n:
                if path_nodes:
                    path_edges.add((path_nodes[-1], n))
                path_nodes.append(n)
    pic.highlighted = path_nodes
    on_path = set(path_nodes)

    def add_node(nid: str, label: str, **attrs) -> None:
        if nid in pic.nodes:
            return
        if nid in on_path:
            attrs.update(penwidth="3", color=HIGHLIGHT)
        pic.nodes[nid] = label
        dot.node(nid, label, **attrs)

    edge_attrs: dict[tuple[str, str], dict] = {}

    def add_edge(a: str, b: str, label: str = "", **attrs) -> None:
        key = (a, b)
        if key in pic.edges:
            if label and label not in pic.edges[key].split(" / "):
                pic.edges[key] = " / ".join(filter(None, (pic.edges[key], label)))
            return
        if key in path_edges:
            attrs.update(penwidth="3", color=HIGHLIGHT, fontcolor=HIGHLIGHT)
        pic.edges[key] = label
        edge_attrs[key] = attrs

    def action_node(k: int) -> str:
        nid = f"r{k}"
        act = Action.from_value(k)
        fill, font = COLOURS.get(act.name, COLOURS["UNKNOWN"])
        add_node(nid, str(act), shape="box", style="filled,rounded", fillcolor=fill,
                 fontcolor=font, fontsize="12")
        return nid

    must = highlight[2] if highlight else None
    for start in sorted(graph.reachable):
        block = graph.blocks[start]
        nid = node_of(start)
        if nid.startswith("r"):
            action_node(program[start].k)
            continue
        if nid.startswith("d"):
            head = int(nid[1:])
            if nid in pic.nodes:
                continue                                   # a member block: drawn with its head
            region = chosen[head]
            word = feas.word_in_a(head)
            arch = _arch_at(feas, head)
            what = (layout.describe_offset(word) or "A") if word is not None else "A"
            pre = [instruction_text(program, pc, arch=layout).split(";")[0].strip()
                   for pc in range(graph.block_of(head).start, head)]
            members = sorted(region.members)
            where = f"{members[0]}..{members[-1]}" if members[-1] - members[0] < 2 * len(members) \
                else ", ".join(map(str, members)) if len(members) <= 4 \
                else f"{members[0]}.. ({len(members)} jumps)"
            size = " + ".join(filter(None, (_count(len(region.cases), "value"),
                                            _count(len(region.ranges), "range"))))
            label = "\\n".join(pre + [f"{where}: dispatch on {what}",
                                      size + (f" · {audit_arch_name(arch)}"
                                              if arch and word == NR_OFFSET else "")])
            add_node(nid, label, shape="hexagon", style="filled", fillcolor="#eeeeee")
            groups: dict[str, list[tuple[int, int]]] = {}
            for value, target in region.cases:
                groups.setdefault(_target(program, target, node_of, action_node), []).append(
                    (value, value))
            for lo, hi, target in region.ranges:
                groups.setdefault(_target(program, target, node_of, action_node), []).append((lo, hi))
            cases = frozenset(v for v, _ in region.cases)
            for to, spans in groups.items():
                text = namer.group(word, arch, spans, must if (nid, to) in path_edges else None,
                                   cases - {a for a, b in spans if a == b})
                shown = {t.strip() for t in text.replace("\\n", ",").split(",")}
                if (nid, to) in path_edges and must and word == NR_OFFSET and must not in shown \
                        and f"(incl. {must})" not in shown:
                    text += f"\\n({must} after re-entering)"    # the path came back into the chain
                add_edge(nid, to, text, color="#555555")
            if region.default is not None:
                add_edge(nid, _target(program, region.default, node_of, action_node), "other",
                         style="dashed")
            continue
        lines = [f"{pc}: {instruction_text(program, pc, arch=layout).split(';')[0].strip()}"
                 for pc in range(block.start, block.end + 1)]
        if len(lines) > MAX_LINES:
            lines = lines[:MAX_LINES - 2] + ["…", lines[-1]]
        last = program[block.end]
        ends_ret = last.code == RET_K
        if ends_ret:
            lines = lines[:-1]
        add_node(nid, "\\l".join(lines) + "\\l", shape="box", style="rounded")
        if ends_ret:
            add_edge(nid, action_node(last.k))
            continue
        succ = cfg.successors(block.end, last)
        if last.code in op.CONDITIONAL_JUMPS and len(succ) == 2:
            yes, no = _conditions(last, namer, feas.word_in_a(block.end), _arch_at(feas, block.end))
            for s, what, style in ((succ[0], yes, "solid"), (succ[1], no, "dashed")):
                to = _target(program, s, node_of, action_node)
                add_edge(nid, to, " ".join(filter(None, (what, _entry(to, s, graph)))), style=style)
        else:
            for s in succ:
                to = _target(program, s, node_of, action_node)
                add_edge(nid, to, _entry(to, s, graph))
    for (a, b), label in pic.edges.items():
        dot.edge(a, b, label=label, **edge_attrs[(a, b)])
    return pic


#: jump op -> (condition when taken, condition when not)
_WORDS = {op.BPF_JEQ: ("==", "!="), op.BPF_JGT: (">", "<="), op.BPF_JGE: (">=", "<"),
          op.BPF_JSET: ("&", "no bit of")}


def _conditions(insn, namer: _Namer, word: int | None, arch: int | None) -> tuple[str, str]:
    """Edge labels of a conditional jump: ``== openat`` / ``!= openat``, ``> 0`` / ``<= 0``..."""
    yes, no = _WORDS[op.bpf_op(insn.code)]
    if op.bpf_src(insn.code) == op.BPF_X:
        return f"{yes} X", f"{no} X"
    if op.bpf_op(insn.code) == op.BPF_JSET:
        return f"& {insn.k:#x}", f"no bit of {insn.k:#x}"
    k = namer.value(word, arch, insn.k) if op.bpf_op(insn.code) == op.BPF_JEQ else _num(insn.k)
    return f"{yes} {k}", f"{no} {k}"


def _target(program: Sequence, pc: int, node_of, action_node) -> str:
    nid = node_of(pc)
    if nid.startswith("r"):
        return action_node(program[pc].k)
    return nid


def _entry(nid: str, pc: int, graph: cfg.Cfg) -> str:
    """Edge-label suffix for a jump into the middle of a dispatch node."""
    if nid.startswith("d") and graph.block_of(int(nid[1:])).start != pc and int(nid[1:]) != pc:
        return f"re-enters at {pc}"
    return ""


def render(pic: Picture, path: str) -> None:
    """Write ``pic`` to ``path``: ``.dot``/``.gv`` as DOT source, ``.svg``/``.png``/``.pdf`` via ``dot``."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix in ("dot", "gv"):
        with open(path, "w") as fh:
            fh.write(pic.source)
        return
    if suffix not in ("svg", "png", "pdf"):
        raise ValueError(f"output {path!r}: the name must end in .svg, .png, .pdf or .dot")
    data = pic.dot.pipe(format=suffix)
    with open(path, "wb") as fh:
        fh.write(data)
