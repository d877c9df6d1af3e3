"""Every command and code block of README.md runs as written from the clone root (issue 13).

Conventions the README follows (so that this test can read it):

- a fenced block whose lines start with ``$ `` holds commands; each runs with a shell from the
  clone root, with the installed ``bpfjit`` script on PATH. Lines without ``$`` are sample output
  (not compared: timings and sizes vary). A command ending in ``# exits N`` must exit N (default
  0); one containing ``# needs: REASON`` is skipped with that reason (a live process, ...);
  one using ``--peer NAME`` is skipped when that peer cannot be built here (no DPDK/libpcap);
- a ```` ```python ```` block runs as a script from the clone root; when the line before the
  fence is ``<!-- file: NAME -->`` the block is that file's content instead, written to a
  scratch directory that is on PYTHONPATH for the commands that follow (``mybug.py``);
- the two set-up commands (no ``$``) are what CI runs; they are not re-run here.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"(?:<!-- file: (?P<file>[\w./-]+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```",
                   re.DOTALL)


def _blocks():
    text = (ROOT / "README.md").read_text()
    for m in FENCE.finditer(text):
        line = text[: m.start()].count("\n") + 1
        yield line, m.group("lang"), m.group("body"), m.group("file")


def _items():
    items = []
    for line, lang, body, file in _blocks():
        if file:
            items.append(pytest.param("file", file, body, id=f"line{line}-file-{file}"))
        elif lang == "python":
            items.append(pytest.param("python", None, body, id=f"line{line}-python"))
        else:
            for k, cmd in enumerate(body.splitlines()):
                if cmd.startswith("$ "):
                    items.append(pytest.param("shell", None, cmd[2:],
                                              id=f"line{line + 1 + k}-{cmd[2:40].strip()}"))
    return items


ITEMS = _items()
FILES = {p.values[1]: p.values[2] for p in ITEMS if p.values[0] == "file"}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    d = tmp_path_factory.mktemp("readme")
    for name, body in FILES.items():
        (d / name).write_text(body)
    return d


def _env(scratch: Path) -> dict:
    bindir = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}",
                PYTHONPATH=os.pathsep.join([str(scratch), str(ROOT)]), NO_COLOR="1",
                COLUMNS="100")


def test_the_readme_has_commands_and_code():
    kinds = [p.values[0] for p in ITEMS]
    assert kinds.count("shell") >= 10 and kinds.count("python") >= 1


@pytest.mark.parametrize("kind, name, body", [p for p in ITEMS if p.values[0] != "file"])
def test_readme_block_runs_as_written(kind, name, body, scratch, tmp_path):
    env = _env(scratch)
    if kind == "python":
        done = subprocess.run([sys.executable, "-c", body], cwd=ROOT, env=env, text=True,
                              capture_output=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return
    needs = re.search(r"#\s*needs:\s*(.+)$", body)
    if needs:
        pytest.skip(f"README command needs {needs.group(1).strip()}")
    for peer in re.findall(r"--peer\s+([\w-]+)", body):
        from bpfjit.testing import peers
        why = peers.reason(peer)
        if why:
            pytest.skip(f"README command needs the {peer} peer: {why}")
    want = re.search(r"#\s*exits\s+(\d+)\s*$", body)
    done = subprocess.run(body, shell=True, cwd=ROOT, env=env, text=True, capture_output=True,
                          timeout=600, executable="/bin/bash")
    expected = int(want.group(1)) if want else 0
    assert done.returncode == expected, (body, done.returncode, done.stdout[-2000:],
                                         done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr
