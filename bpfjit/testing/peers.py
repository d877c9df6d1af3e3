"""Fuzzing stage, real peers: classic-BPF evaluators nobody here wrote, as candidates.

Two packet-filter engines packaged in Debian are fuzzed against the kernel's
seccomp semantics through the candidate protocol (:mod:`.protocol`), by one C
program, ``peer_candidate.c`` beside this module:

- ``pcap``: libpcap's ``bpf_validate()`` and ``bpf_filter()`` interpreter
  (Debian ``libpcap0.8-dev``);
- ``dpdk``: DPDK's ``rte_bpf_convert()`` (classic BPF to eBPF, a port of the
  kernel's ``bpf_convert_filter``), ``rte_bpf_load()`` (its eBPF validator)
  and its eBPF interpreter ``rte_bpf_exec()`` (Debian ``librte-bpf23``);
- ``dpdk-jit``: the same eBPF through DPDK's x86-64 JIT (``rte_bpf_get_jit``);
- ``dpdk-both``: interpreter and JIT on every record, cross-checked (a
  difference aborts the process, which the fuzzer reports as a crash with
  the record).

Each record becomes a 64-byte packet whose 32-bit words are the values the
kernel's seccomp ``ld [k]`` reads, stored big-endian, so a packet filter's
network-order ``ld [k]`` reads the same value; ``ld len`` is 64. The peers
declare themselves verdicts-only, so the fuzzer sends them only programs
Linux installs, where a packet filter is meant to agree with seccomp: every
difference it reports is real. :data:`PACKET_DIFFERENCES` lists what a packet
filter does differently outside that set.

The program is compiled on first use with ``cc`` into
``$XDG_CACHE_HOME/bpfjit/peers/<hash>/`` (one build with DPDK when its
library links, one without); :func:`reason` says why a peer cannot run here.

    bpfjit fuzz --peer dpdk-jit --peer pcap --seconds 60
    python3 -m bpfjit.testing.peers dpdk-jit      # prints the --candidate-cmd line
"""
from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import numpy as np

from ..program import Program
from ..seccomp import layouts
from ..seccomp.layouts import Layout
from .candidates import Candidate, CandidateError, Rejected
from .external import DEFAULT_TIMEOUT, command_candidate

SOURCE = Path(__file__).with_name("peer_candidate.c")
#: DPDK's ABI as peer_candidate.c and bpfjit.baselines use it (no DPDK headers needed)
ABI_HEADER = Path(__file__).with_name("rte_bpf_abi.h")

#: peer name -> (engine argument, needs DPDK, what it is)
PEERS = {
    "pcap": ("pcap", False, "libpcap bpf_filter()"),
    "dpdk": ("dpdk", True, "DPDK rte_bpf_exec() (eBPF interpreter, after rte_bpf_convert)"),
    "dpdk-jit": ("dpdk-jit", True, "DPDK rte_bpf JIT (x86-64, after rte_bpf_convert)"),
    "dpdk-both": ("dpdk-both", True, "DPDK interpreter and JIT, cross-checked"),
}

#: DPDK's librte_bpf ABI versions whose declarations peer_candidate.c carries (22.11 = ABI 23)
DPDK_ABIS = ("23",)

#: what a packet filter does differently from seccomp, on programs seccomp refuses; the peers
#: are only given programs seccomp accepts, where none of these can happen
PACKET_DIFFERENCES = (
    "a load past the end of the packet (ld [k] with k > 60, ldh/ldb, ld [x+k]) is accepted and "
    "makes the filter return 0; seccomp refuses any ld [k] but aligned k < 64",
    "misaligned ld [k] is accepted (big-endian bytes k..k+3); seccomp refuses it",
    "ldh, ldb, ld [x+k] (BPF_IND) and ldxb 4*([k]&0xf) (BPF_MSH) exist; seccomp refuses them",
    "negative k (Linux's SKF_AD_OFF ancillary data): libpcap returns 0 (out of range); DPDK's "
    "rte_bpf_convert refuses the listed SKF_AD_* offsets and treats other negative offsets as "
    "unsigned offsets into the packet",
    "ret returns the full 32-bit value and nothing else happens: there is no seccomp action, "
    "no ERRNO cap and no stack of filters",
    "division by X == 0 returns 0 from the filter in libpcap, DPDK and Linux alike",
    "programs need not pass Linux's checker: libpcap's bpf_validate and DPDK's converter and "
    "eBPF validator are the only gates (DPDK refuses unreachable code; Linux does not)",
)

_lock = threading.Lock()
_built: dict[bool, Path] = {}
_failed: dict[bool, str] = {}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bpfjit" / "peers"


def dpdk_libraries() -> list[str]:
    """The linker flags for DPDK's librte_bpf and librte_eal of the ABI the declarations match."""
    abi = DPDK_ABIS[0]
    return [f"-l:librte_bpf.so.{abi}", f"-l:librte_eal.so.{abi}"]


def _compile(dpdk: bool) -> Path:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise CandidateError(f"no C compiler ({cc}) on PATH to build the peer candidate")
    if not SOURCE.is_file():
        raise CandidateError(f"the peer candidate's source is missing: {SOURCE}")
    src = SOURCE.read_bytes() + ABI_HEADER.read_bytes()
    libs = ["-lpcap"]
    defines = []
    if dpdk:
        libs = dpdk_libraries() + libs
        defines = ["-DWITH_DPDK"]
    flags = ["-O2", "-Wall", *defines]
    key = hashlib.sha256(b"\0".join([src, " ".join(flags + libs).encode(),
                                     platform.machine().encode()])).hexdigest()[:16]
    exe = cache_dir() / key / "peer_candidate"
    if exe.is_file() and os.access(exe, os.X_OK):
        return exe
    exe.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=exe.parent) as tmp:
        out = Path(tmp) / "peer_candidate"
        proc = subprocess.run([cc, *flags, "-o", str(out), str(SOURCE), *libs],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            err = proc.stderr.strip().splitlines()
            # the most telling line: a missing library or header, else the first error
            last = next((line for word in ("cannot find", "fatal error", "error")
                         for line in err if word in line),
                        err[-1] if err else f"exit status {proc.returncode}")
            raise CandidateError(f"building the peer candidate failed: {last.strip()}")
        os.replace(out, exe)
    return exe


def _missing(dpdk: bool) -> str:
    if dpdk:
        return ("DPDK's librte_bpf (ABI " + "/".join(DPDK_ABIS) + ") and libpcap's headers are "
                "needed: apt-get install librte-bpf23 libpcap0.8-dev")
    return "libpcap's headers and library are needed: apt-get install libpcap0.8-dev"


def executable(dpdk: bool) -> Path:
    """The compiled peer candidate (with DPDK or without), building it once per user."""
    with _lock:
        if dpdk in _built:
            return _built[dpdk]
        if dpdk in _failed:
            raise CandidateError(_failed[dpdk])
        try:
            if dpdk and platform.machine() not in ("x86_64", "AMD64"):
                raise CandidateError(f"the DPDK peer is built for x86-64 only (this is "
                                     f"{platform.machine()})")
            exe = _compile(dpdk)
        except CandidateError as exc:
            why = str(exc)
            if "building" in why:
                why += f" ({_missing(dpdk)})"
            _failed[dpdk] = why
            raise CandidateError(why) from None
        _built[dpdk] = exe
        return exe


def _entry(name: str) -> tuple:
    try:
        return PEERS[name]
    except KeyError:
        raise CandidateError(f"unknown peer {name!r}; choose from {', '.join(PEERS)}") from None


def argv(name: str, *, plant: str | None = None) -> list[str]:
    """The command line of peer ``name`` (building it first); ``plant`` a planted difference
    for tests (``jge-for-jgt``)."""
    engine, dpdk, _ = _entry(name)
    out = [str(executable(dpdk)), "--engine", engine]
    if plant:
        out += ["--plant", plant]
    return out


def reason(name: str) -> str | None:
    """None when peer ``name`` can run here, else why not (for skips and error messages)."""
    try:
        argv(name)
    except CandidateError as exc:
        return str(exc)
    return None


class Mapped(Exception):
    """A program or record on which the peer is known to differ from Linux (not compared)."""


def _shift_by_32_or_more(insns, records, lay) -> np.ndarray:
    """Per record: does the reference interpreter run ``lsh x``/``rsh x`` with X >= 32?"""
    import bpfjit_reference as ref
    hit = np.zeros(len(records), dtype=bool)
    for i, r in enumerate(records):
        image = ref.seccomp_data_image(int(r["nr"]), int(r["arch"]),
                                       int(r["instruction_pointer"]),
                                       [int(a) for a in r["args"]], lay.byteorder)

        def step(index, code, jt, jf, k, a, x, _i=i):
            if code in (0x6C, 0x7C) and x >= 32:
                hit[_i] = True
        ref.run(insns, image, byteorder=lay.byteorder, on_step=step)
    return hit


#: Known, explained differences between a peer and Linux on programs Linux installs, found by
#: fuzzing (README, "Real peers"; each pinned by tests/fuzz/test_peers.py with Linux's value from
#: the reference interpreter). ``--peer`` does not count them against the peer.
KNOWN_DIFFERENCES = {
    "shift-by-32": "libpcap: `lsh x` / `rsh x` with X >= 32 give A = 0; Linux shifts by X & 31 "
                   "(___bpf_prog_run, x86-64 shl/shr %cl)",
    "division-by-0-refusal": "DPDK rte_bpf_load: its validator refuses `div x` where it believes "
                             "A and X are constants with X == 0 (\"division by 0\"), although "
                             "rte_bpf_convert guards the division (0 is returned, as in Linux); "
                             "it tracks the stack in 8-byte slots, so a store to M[2j] also "
                             "overwrites what it believes of M[2j+1] (or the reverse), and it "
                             "can believe X == 0 when X is not",
    "jset-imm8": "DPDK's x86-64 JIT emits `test $imm8, %reg` (F7 /0 with one immediate byte) "
                 "for `jset #k` with k <= 127, but F7 /0 always takes four: the next three "
                 "code bytes are swallowed (wrong results, SIGSEGV, SIGILL)",
}
#: Differences the peer candidate removes before DPDK sees a program, without changing what it
#: returns (peer_candidate.c; --keep-dead-code / --keep-unused-k show DPDK's refusal)
ADAPTATIONS = {
    "dead-code-refusal": "DPDK's eBPF validator refuses unreachable instructions (\"unreachable "
                         "instructions\"); Linux installs classic programs with dead code. The "
                         "candidate drops unreachable instructions and fixes the jumps",
    "unused-k-refusal": "DPDK rte_bpf_convert copies k into the eBPF imm of X-form ALU and jump "
                        "instructions and of `neg`, where Linux ignores it; a nonzero k makes "
                        "the validator refuse the program (\"invalid imm field\"). The "
                        "candidate zeroes those k",
}

#: which known differences each peer has, and how they are recognised
_PEER_KNOWN = {
    "pcap": ("shift-by-32",),
    "dpdk": ("division-by-0-refusal",),
    "dpdk-jit": ("division-by-0-refusal", "jset-imm8"),
    "dpdk-both": ("division-by-0-refusal", "jset-imm8"),
}
_REFUSALS = {"division-by-0-refusal": "division by 0"}


def jset_imm8(insns) -> bool:
    """Does the program hold a `jset #k` DPDK's JIT miscompiles (k <= 127)?"""
    return any(code == 0x45 and k <= 127 for code, _, _, k in insns)


def candidate(name: str, layout: "str | Layout" = "x86_64", *, timeout: float = DEFAULT_TIMEOUT,
              plant: str | None = None, mapped: bool = True) -> Candidate:
    """Peer ``name`` as a fuzzing candidate (a process speaking the candidate protocol).

    With ``mapped`` (the default) the peer's :data:`KNOWN_DIFFERENCES` are not
    compared: a program DPDK refuses for a known reason, or one its JIT
    miscompiles, is skipped, and a record on which libpcap's shift difference
    runs gets Linux's value. ``cand.mapped`` counts each, by name."""
    label = name if plant is None else f"{name}+{plant}"
    inner = command_candidate(argv(name, plant=plant), layout, timeout=timeout, name=label)
    known = _PEER_KNOWN.get(name, ()) if mapped else ()
    if not known:
        inner.mapped = Counter()
        return inner
    lay = layouts.layout(layout)
    counts: Counter = Counter()

    def evaluate(program_bytes, records):
        insns = [tuple(i) for i in Program.from_bytes(bytes(program_bytes), "little")]
        if "jset-imm8" in known and jset_imm8(insns):
            counts["jset-imm8"] += 1
            raise Mapped("jset #k with k <= 127")
        got = inner.evaluate(program_bytes, records)
        if isinstance(got, Rejected):
            for what, text in _REFUSALS.items():
                if what in known and text in got.reason:
                    counts[what] += 1
                    raise Mapped(got.reason)
            return got
        if "shift-by-32" in known and any(code in (0x6C, 0x7C) for code, *_ in insns):
            hit = _shift_by_32_or_more(insns, records, lay)
            if hit.any():
                import bpfjit_reference as ref
                got = np.array(got, dtype=np.uint32)
                for i in np.nonzero(hit)[0]:
                    r = records[i]
                    got[i] = ref.run_seccomp(insns, int(r["nr"]), int(r["arch"]),
                                             int(r["instruction_pointer"]),
                                             [int(a) for a in r["args"]], lay.byteorder)
                counts["shift-by-32"] += int(hit.sum())
        return got

    cand = Candidate(label, evaluate=evaluate, verdicts_only=inner.verdicts_only,
                     unsupported=(Mapped,), close=inner.close, timeout=inner.timeout,
                     description=inner.description + " (known differences mapped: " +
                     ", ".join(known) + ")")
    cand.mapped = counts
    return cand


def main(args: list[str]) -> int:
    if len(args) != 1 or args[0] not in PEERS:
        print(f"usage: python3 -m bpfjit.testing.peers {{{','.join(PEERS)}}}", file=sys.stderr)
        return 2
    try:
        print(shlex.join(argv(args[0])))
    except CandidateError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
