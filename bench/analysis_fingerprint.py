"""What the llvm backend makes of every real corpus filter, as digests: compare before/after a change.

Run from the worktree root: ``python3 bench/analysis_fingerprint.py --json before.json``,
change the analyses (budgets, lean-mode thresholds, lowering), then
``python3 bench/analysis_fingerprint.py --compare before.json``: exit 1 and
the differing filters named if any verdict table (every window's arch, base,
verdicts and known mask; the work spent; the abandoned arches), dispatch
region, lowered IR text or codegen mode (full / lean) changed. A tuning that
must not touch real filters (issue 14.1: "real filters keep today's speed")
keeps every row identical; then their machine code is the same too.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from bpfjit import check, load
from bpfjit.analysis import dispatch, verdicts
from bpfjit.backends.llvm import _lean, lower
from bpfjit.seccomp.layouts import layout
from bpfjit.workloads import _native_arch

ROOT = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "real" / "filters"


def _sha(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else repr(p).encode())
    return h.hexdigest()[:24]


def fingerprint(path: Path) -> dict:
    program = check(load(path))
    lay = layout(_native_arch(path.with_suffix(".json")))
    table = verdicts.build(program, lay)
    regions = dispatch.find_dispatches(program)
    module = lower.lower(program, lay, dispatches=regions, table=table)
    units, blocks = lower.size(module)
    return {
        "filter": path.stem, "insns": len(program),
        "table": _sha(*[(w.arch, w.base, w.verdicts.tobytes(), w.known.tobytes())
                        for w in table.windows]),
        "table_entries": table.entries, "table_known": table.known, "table_steps": table.steps,
        "abandoned": list(table.abandoned),
        "dispatch": _sha(sorted(regions.items())), "switches": len(regions),
        "ir": _sha(str(module).encode()), "units": units, "blocks": blocks,
        "codegen": "lean" if _lean(module) else "full",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--compare", help="rows written before; exit 1 if any differs")
    args = parser.parse_args()
    rows = [fingerprint(p) for p in sorted(ROOT.glob("*.bpf"))]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"{len(rows)} filters; {sum(r['codegen'] == 'full' for r in rows)} full codegen; "
          f"table work max {max(r['table_steps'] for r in rows)} units; "
          f"abandoned {sum(bool(r['abandoned']) for r in rows)}; "
          f"IR max {max(r['units'] for r in rows)} units / {max(r['blocks'] for r in rows)} blocks")
    if args.compare:
        before = {r["filter"]: r for r in json.loads(Path(args.compare).read_text())}
        differ = [r["filter"] for r in rows if before.get(r["filter"]) != r]
        missing = sorted(set(before) - {r["filter"] for r in rows})
        for name in differ:
            old = before.get(name, {})
            changed = [k for k in set(old) | set(next(r for r in rows if r["filter"] == name))
                       if old.get(k) != next(r for r in rows if r["filter"] == name).get(k)]
            print(f"DIFFERS {name}: {', '.join(sorted(changed))}", file=sys.stderr)
        for name in missing:
            print(f"MISSING {name}", file=sys.stderr)
        print(f"compared with {args.compare}: {len(rows) - len(differ)} identical, "
              f"{len(differ)} differ, {len(missing)} missing")
        return 1 if differ or missing else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
