"""`bpfjit diff`, `bpfjit explain` and the exact `table`: outputs checked against the reference.

Expected values never come from the analysis under test: differences are
re-run on the reference interpreter here, and the list of changed syscalls is
compared with an independent sampled search (constant-biased inputs per
syscall through the llvm backend, itself checked against the reference).
"""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
from click.testing import CliRunner

import bpfjit
import bpfjit_reference as ref
from bpfjit.cli import cli
from bpfjit.seccomp import layouts, syscalls
from bpfjit.testing import inputs_for
from corpora import REAL_FILTERS

DOCKER = str(REAL_FILTERS / "docker-default.x86_64.bpf")
DOCKER_OPT = str(REAL_FILTERS / "docker-default.x86_64.opt.bpf")
DOCKER_2021 = str(REAL_FILTERS / "docker-default-2021.x86_64.bpf")
CHANGED_X86_64 = {
    "socket", "name_to_handle_at", "pkey_mprotect", "pkey_alloc", "pkey_free",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "clone3",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "memfd_secret",
    "process_mrelease", "futex_waitv", "cachestat", "fchmodat2", "map_shadow_stack",
    "futex_wake", "futex_wait", "futex_requeue"}


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BPFJIT_CACHE_DIR", str(tmp_path_factory.mktemp("bpfjit-cache")))
        yield


def run(*argv: str, code: int = 0) -> str:
    res = CliRunner().invoke(cli, list(argv), catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res.output


def sampled_differences(a: str, b: str, abi: str, per_syscall: int = 64) -> set[str]:
    """Syscalls of ``abi`` where constant-biased inputs find a difference (llvm backend)."""
    lay = layouts.layout(abi)
    pa, pb = bpfjit.load(a), bpfjit.load(b)
    fa = bpfjit.compile(pa, backend="llvm", arch="x86_64")
    fb = bpfjit.compile(pb, backend="llvm", arch="x86_64")
    names = syscalls.table(abi)
    numbers = sorted(set(names.values()))
    rng = random.Random(abi)
    recs = np.concatenate([inputs_for(pa, rng, per_syscall, layout="x86_64"),
                           inputs_for(pb, rng, per_syscall, layout="x86_64")])
    recs = np.tile(recs, len(numbers))
    recs["nr"] = np.repeat(np.array(numbers, dtype=np.int64), 2 * per_syscall).astype(np.int32)
    recs["arch"] = lay.audit_arch
    differ = fa.evaluate_batch(recs) != fb.evaluate_batch(recs)
    return {syscalls.name(abi, int(nr)) for nr in np.unique(recs["nr"][differ])}


def test_docker_linear_and_optimized_diff_equal():
    out = run("diff", DOCKER, DOCKER_OPT)
    assert out.startswith("equal:")
    data = json.loads(run("diff", DOCKER, DOCKER_OPT, "--json"))
    assert data["equal"] and data["abis"] == ["x86_64", "x32", "x86"]
    assert sampled_differences(DOCKER, DOCKER_OPT, "x86_64") == set()


def test_docker_2021_vs_current_lists_exactly_the_changed_syscalls():
    data = json.loads(run("diff", DOCKER_2021, DOCKER, "--json", code=1))
    assert not data["equal"] and not data["undecided"]
    insns_a = [tuple(i) for i in bpfjit.load(DOCKER_2021)]
    insns_b = [tuple(i) for i in bpfjit.load(DOCKER)]
    by_abi: dict[str, set[str]] = {}
    for d in data["differences"]:
        w = d["witness"]
        got_a = ref.run_seccomp(insns_a, w["nr"], w["arch"], w["instruction_pointer"], w["args"],
                                "little")
        got_b = ref.run_seccomp(insns_b, w["nr"], w["arch"], w["instruction_pointer"], w["args"],
                                "little")
        assert (got_a, got_b) == (d["retval_a"], d["retval_b"]) and got_a != got_b
        by_abi.setdefault(d["abi"], set()).add(d["syscall"])
    assert by_abi["x86_64"] == CHANGED_X86_64
    for abi in ("x86_64", "x32", "x86"):
        assert by_abi[abi] == sampled_differences(DOCKER_2021, DOCKER, abi), abi
    socket = [d for d in data["differences"] if d["syscall"] == "socket" and d["abi"] == "x86_64"]
    assert socket[0]["when"] == ["args[0].lo in {0x26, 0x28}", "args[0].hi == 0"]


def test_diff_across_formats_and_on_bad_input(tmp_path):
    text = tmp_path / "docker.asm"
    text.write_text(run("disasm", DOCKER, "--arch", "x86_64"))
    assert run("diff", str(text), DOCKER_OPT).startswith("equal:")
    bad = tmp_path / "bad.bpf"
    bad.write_bytes(b"\x06\x00")
    assert "Error" in run("diff", str(bad), DOCKER, code=2)


def test_diff_finds_an_argument_difference_in_small_filters(tmp_path):
    a, b = tmp_path / "a.asm", tmp_path / "b.asm"
    head = "ld [4]\njeq #0xc000003e, ok\nret KILL_PROCESS\nok: ld [0]\njeq #1, w\nret ALLOW\n"
    a.write_text(head + "w: ld [16]\njgt #2, no\nret ALLOW\nno: ret ERRNO(9)\n")
    b.write_text(head + "w: ld [16]\njgt #3, no\nret ALLOW\nno: ret ERRNO(9)\n")
    data = json.loads(run("diff", str(a), str(b), "--json", code=1))
    [d] = data["differences"]
    assert (d["syscall"], d["a"], d["b"]) == ("write", "ERRNO(9)", "ALLOW")
    assert d["when"] == ["args[0].lo == 3"]
    assert d["witness"]["args"][0] & 0xFFFFFFFF == 3


def test_explain_clone_in_words():
    out = run("explain", DOCKER, "clone", "0x10000000")
    first = out.splitlines()[0]
    assert first.startswith("arch is x86_64;") and "nr 56 is clone" in first
    assert "args[0].lo & 0x7e020000 = 0x10000000 != 0; -> ERRNO(1)" in first
    assert "ALLOW when args[0].lo & 0x7e020000 == 0" in out
    want = bpfjit.compile(bpfjit.load(DOCKER), backend="reference", arch="x86_64")
    data = json.loads(run("explain", DOCKER, "clone", "0x10000000", "--json"))
    assert data["retval"] == want.evaluate("clone", (0x10000000,))
    assert [o["action"] for o in data["other_verdicts"]] == ["ALLOW"]
    assert want.evaluate("clone", tuple(data["other_verdicts"][0]["example_args"])) == 0x7FFF0000


def test_explain_constant_verdicts_and_compat_abis():
    out = run("explain", DOCKER, "read")
    assert "nr 0 is read" in out and "no other argument" in out
    data = json.loads(run("explain", DOCKER, "--arch", "x86", "socket", "40", "--json"))
    want = ref.run_seccomp([tuple(i) for i in bpfjit.load(DOCKER)], 359, 0x40000003, 0,
                           [40, 0, 0, 0, 0, 0], "little")
    assert data["retval"] == want and data["path"][0].startswith("arch x86 is not x86_64")
    assert "Error" in run("explain", DOCKER, "nosuchcall", code=2)
    assert "Error" in run("explain", DOCKER, "--arch", "aarch64x", "read", code=2)


def test_table_shows_argument_conditions_and_constant_actions_hold():
    out = run("table", DOCKER, "--arch", "x86_64")
    clone = next(line for line in out.splitlines() if " clone " in line)
    assert clone.split(None, 2)[2] == "ALLOW if args[0].lo & 0x7e020000 == 0; ERRNO(1) otherwise"
    rows = [json.loads(line) for line in run("table", DOCKER, "--arch", "x86_64",
                                             "--json").splitlines()]
    insns = [tuple(i) for i in bpfjit.load(DOCKER)]
    rng = random.Random(3)
    for row in rows[::5]:
        if row["action"] is None:
            continue
        args = [rng.getrandbits(64) for _ in range(6)]
        got = ref.run_seccomp(insns, row["nr"], 0xC000003E, rng.getrandbits(64), args, "little")
        assert str(bpfjit.Action(got)) == row["action"], row["name"]


def test_diff_covers_other_numbers_other_arches_and_compat_halves(tmp_path):
    a, b = tmp_path / "a.asm", tmp_path / "b.asm"
    a.write_text("ld [4]\njeq #0x1234, odd\nld [0]\njeq #1000, odd\nld [20]\njeq #1, odd\n"
                 "ret ALLOW\nodd: ret ERRNO(1)\n")
    b.write_text("ret ALLOW\n")
    data = json.loads(run("diff", str(a), str(b), "--arch", "x86_64", "--json", code=1))
    insns = [tuple(i) for i in bpfjit.load(str(a))]
    kinds = set()
    for d in data["differences"]:
        w = d["witness"]
        assert ref.run_seccomp(insns, w["nr"], w["arch"], w["instruction_pointer"], w["args"],
                               "little") == d["retval_a"] == 0x50001
        if d["syscall"] is None:
            kinds.add((d["abi"], w["nr"], w["arch"]))
        else:
            assert d["when"] == ["args[0].hi == 1"] and d["abi"] in ("x86_64", "x32")
    # nr 1000 is no syscall on x86_64 (x32 numbers carry bit 30, i386 stops below 1000)
    assert ("x86_64", 1000, 0xC000003E) in kinds
    assert any(abi is None and arch == 0x1234 for abi, _, arch in kinds)
    # i386 calls cannot set args[0].hi: no x86 difference from that test
    assert not any(d["abi"] == "x86" and d["syscall"] for d in data["differences"])


def test_a_filter_with_too_many_paths_is_reported_not_guessed(tmp_path, monkeypatch):
    from bpfjit.analysis import semantics
    monkeypatch.setattr(semantics, "MAX_PATHS", 50)
    monkeypatch.setattr(semantics, "FALLBACK_PATHS", 50)
    # 8 independent tests of args[0] bits: 256 paths, all distinct (ret a)
    lines = []
    for i in range(8):
        lines += ["ld [16]", f"jset #{1 << i}, s{i}", f"ld #{i}", f"s{i}: ld [24]"]
    lines += ["ret a"]
    f = tmp_path / "wide.asm"
    f.write_text("\n".join(lines) + "\n")
    out = run("diff", str(f), str(f), "--arch", "x86_64", code=3)
    assert "undecided: read on x86_64: too many paths" in out and "not proven equal" in out
    out = run("explain", str(f), "--arch", "x86_64", "read", "5")
    assert "not listed: the filter has too many paths" in out
    assert "(not analysed: too many paths)" in run("table", str(f), "--arch", "x86_64")
