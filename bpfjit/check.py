"""The checker: accept exactly the programs seccomp(SECCOMP_SET_MODE_FILTER) accepts.

The kernel runs, in this order (Linux 6.x):

1. ``bpf_check_basics_ok``   (net/core/filter.c): 1 <= len <= BPF_MAXINSNS (4096).
2. ``bpf_check_classic``     (net/core/filter.c): every code in the classic table
   (``chk_code_allowed``), per-opcode rules (constant division by zero, constant
   shift >= 32, scratch index >= 16, jump targets inside the program,
   unknown ancillary loads), last instruction a return, then
3. ``check_load_and_stores`` (net/core/filter.c): a scratch cell is written on
   every path before it is read (a linear scan over masks; the state after a
   ``ret`` carries into the next instruction, exactly as the kernel does).
4. ``seccomp_check_filter``  (kernel/seccomp.c): the seccomp opcode whitelist,
   32-bit ``ld [k]`` only, aligned, inside the 64 bytes of ``seccomp_data``.

Each rule is one function named after its kernel function, and the first
failure (in kernel order) becomes an :class:`InvalidProgram` carrying the
instruction index and the rule. All of them make seccomp(2) fail with EINVAL.

One more refusal belongs to a kernel build, not to the seccomp rules: with
CONFIG_BPF_JIT_ALWAYS_ON, seccomp(2) refuses with ENOTSUPP (524) a program
these rules accept when the architecture's BPF JIT fails on its eBPF
translation (on x86-64 Linux 6.18 the JIT's size passes do not converge, a
few programs per million; ``bpf_jit: fatal error`` in dmesg). ``check()``
alone answers for every kernel; ``check(program, kernel=NAME)`` also replays
that JIT for a named configuration (:mod:`bpfjit.kernelcfg`, e.g.
``"linux-6.18-x86_64-jit-always-on"`` or ``"host"``) and raises
InvalidProgram with ``rule="bpf_int_jit_compile"`` and ``errno="ENOTSUPP"``
("refused by the x86-64 JIT (did not converge in N passes: ...)").
"""
from __future__ import annotations

from . import opcodes as op
from .errors import InvalidProgram
from .program import Instruction, Program

SECCOMP_DATA_SIZE = 64   # sizeof(struct seccomp_data)

_CHECKED = object()      # only this module can make a CheckedProgram


class CheckedProgram(Program):
    """A program the kernel accepts. Backends take nothing else; made only by :func:`check`."""

    __slots__ = ()

    def __init__(self, program: Program, *, _token: object = None):
        if _token is not _CHECKED:
            raise TypeError("CheckedProgram is made by Program.check() / bpfjit.check.check()")
        self._insns = program.instructions          # already Instructions: no re-validation
        self.endian = program.endian
        self.source = program.source
        self._hash = None

    def check(self, *, kernel=None) -> "CheckedProgram":
        return self if kernel is None else check(self, kernel=kernel)


def bpf_check_basics_ok(program: Program) -> None:
    """net/core/filter.c ``bpf_check_basics_ok``: 1..BPF_MAXINSNS instructions."""
    if len(program) == 0:
        raise InvalidProgram("empty program (seccomp needs 1 to 4096 instructions)",
                             rule="bpf_check_basics_ok")
    if len(program) > op.BPF_MAXINSNS:
        raise InvalidProgram(f"{len(program)} instructions; the kernel allows at most "
                             f"{op.BPF_MAXINSNS}", rule="bpf_check_basics_ok")


def _classic_instruction(pc: int, insn: Instruction, flen: int) -> None:
    """One iteration of the loop in ``bpf_check_classic``."""
    code, k = insn.code, insn.k
    if code not in op.CLASSIC_CODES:
        raise InvalidProgram(f"unknown opcode {code:#06x}", index=pc, rule="bpf_check_classic")
    name = op.CODE_NAMES[code]
    if code in (op.BPF_ALU | op.BPF_DIV | op.BPF_K, op.BPF_ALU | op.BPF_MOD | op.BPF_K):
        if k == 0:
            raise InvalidProgram(f"{name} by constant 0", index=pc, rule="bpf_check_classic")
    elif code in (op.BPF_ALU | op.BPF_LSH | op.BPF_K, op.BPF_ALU | op.BPF_RSH | op.BPF_K):
        if k >= 32:
            raise InvalidProgram(f"{name} by {k} (constant shifts must be < 32)",
                                 index=pc, rule="bpf_check_classic")
    elif code in (op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM, op.BPF_ST, op.BPF_STX):
        if k >= op.BPF_MEMWORDS:
            raise InvalidProgram(f"{name} uses scratch cell M[{k}]; there are only "
                                 f"{op.BPF_MEMWORDS}", index=pc, rule="bpf_check_classic")
    elif code == op.BPF_JMP | op.BPF_JA:
        if k >= flen - pc - 1:
            raise InvalidProgram(f"ja +{k} jumps to {pc + 1 + k}, past the last instruction "
                                 f"{flen - 1}", index=pc, rule="bpf_check_classic")
    elif code in op.CONDITIONAL_JUMPS:
        for label, off in (("jt", insn.jt), ("jf", insn.jf)):
            if pc + off + 1 >= flen:
                raise InvalidProgram(f"{label}={off} jumps to {pc + off + 1}, past the last "
                                     f"instruction {flen - 1}", index=pc, rule="bpf_check_classic")
    elif code in (op.BPF_LD | op.BPF_W | op.BPF_ABS, op.BPF_LD | op.BPF_H | op.BPF_ABS,
                  op.BPF_LD | op.BPF_B | op.BPF_ABS):
        # Ancillary loads (k >= SKF_AD_OFF) of known extensions pass here and
        # are refused by seccomp_check_filter; unknown ones are refused here.
        if k >= op.SKF_AD_OFF and not _known_ancillary(k):
            raise InvalidProgram(f"unknown ancillary load at {k:#x}", index=pc,
                                 rule="bpf_check_classic")


#: codes with a rule of their own in bpf_check_classic (other than jumps and ld [k])
_RULED_CODES = frozenset({
    op.BPF_ALU | op.BPF_DIV | op.BPF_K, op.BPF_ALU | op.BPF_MOD | op.BPF_K,
    op.BPF_ALU | op.BPF_LSH | op.BPF_K, op.BPF_ALU | op.BPF_RSH | op.BPF_K,
    op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM, op.BPF_ST, op.BPF_STX,
    op.BPF_JMP | op.BPF_JA, op.BPF_LD | op.BPF_H | op.BPF_ABS, op.BPF_LD | op.BPF_B | op.BPF_ABS})
_SCRATCH_READS = frozenset({op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM})


def _known_ancillary(k: int) -> bool:
    """bpf_anc_helper: SKF_AD_OFF + SKF_AD_PROTOCOL (0) .. SKF_AD_VLAN_TPID (60), step 4."""
    off = k - op.SKF_AD_OFF
    return 0 <= off <= 60 and off % 4 == 0


def bpf_check_classic(program: Program) -> None:
    """net/core/filter.c ``bpf_check_classic``: opcode table, per-opcode rules, final return."""
    flen = len(program)
    classic, jumps, ld_abs = op.CLASSIC_CODES, op.CONDITIONAL_JUMPS, op.BPF_LD | op.BPF_W | op.BPF_ABS
    others = _RULED_CODES
    for pc, insn in enumerate(program.instructions):
        # fast screening; _classic_instruction explains (and raises) whatever looks wrong
        code = insn[0]
        if code in jumps:
            if pc + insn[1] + 1 >= flen or pc + insn[2] + 1 >= flen:
                _classic_instruction(pc, insn, flen)
        elif code == ld_abs:
            if insn[3] >= op.SKF_AD_OFF:
                _classic_instruction(pc, insn, flen)
        elif code not in classic or code in others:
            _classic_instruction(pc, insn, flen)
    last = program[flen - 1]
    if last.code not in (op.BPF_RET | op.BPF_K, op.BPF_RET | op.BPF_A):
        raise InvalidProgram(f"the last instruction is {last.name}; it must be a return "
                             f"(ret #k or ret a)", index=flen - 1, rule="bpf_check_classic")
    check_load_and_stores(program)


def check_load_and_stores(program: Program) -> None:
    """net/core/filter.c ``check_load_and_stores``: no scratch read before a write on every path.

    A faithful copy of the kernel's linear scan: ``memvalid`` is ANDed with the
    mask jumps left on each instruction; jumps reset it to all-valid (their
    targets carry the state); ``ret`` does not, so the state after a return
    flows into the next (unreachable) instruction.
    """
    flen = len(program)
    insns = program.instructions
    if not any(i[0] in _SCRATCH_READS for i in insns):
        return                      # only scratch reads can fail this rule
    masks = [0xFFFF] * flen
    memvalid = 0
    for pc, insn in enumerate(program):
        memvalid &= masks[pc]
        code = insn.code
        if code in (op.BPF_ST, op.BPF_STX):
            memvalid |= 1 << insn.k
        elif code in (op.BPF_LD | op.BPF_MEM, op.BPF_LDX | op.BPF_MEM):
            if not memvalid & (1 << insn.k):
                raise InvalidProgram(f"reads scratch cell M[{insn.k}] which is not written on "
                                     f"every path to here", index=pc, rule="check_load_and_stores")
        elif code == op.BPF_JMP | op.BPF_JA:
            masks[pc + 1 + insn.k] &= memvalid
            memvalid = 0xFFFF
        elif code in op.CONDITIONAL_JUMPS:
            masks[pc + 1 + insn.jt] &= memvalid
            masks[pc + 1 + insn.jf] &= memvalid
            memvalid = 0xFFFF


def seccomp_check_filter(program: Program) -> None:
    """kernel/seccomp.c ``seccomp_check_filter``: the seccomp whitelist and data bounds."""
    allowed = op.SECCOMP_CODES
    for pc, (code, _, _, k) in enumerate(program.instructions):
        if code == op.BPF_LD | op.BPF_W | op.BPF_ABS:
            if k >= SECCOMP_DATA_SIZE or k & 3:
                why = "outside the 64 bytes of seccomp_data" if k >= SECCOMP_DATA_SIZE \
                    else "not 4-byte aligned"
                raise InvalidProgram(f"ld [{k}] is {why}", index=pc, rule="seccomp_check_filter")
        elif code not in allowed:
            raise InvalidProgram(f"{op.code_name(code)} is not allowed in seccomp filters",
                                 index=pc, rule="seccomp_check_filter")


def check(program: Program, *, kernel=None) -> CheckedProgram:
    """Run the kernel's checks in the kernel's order; return a CheckedProgram or raise.

    ``kernel``: None (the rules every kernel applies), or a configuration name
    / :class:`bpfjit.kernelcfg.KernelConfig` whose BPF JIT is replayed too
    (:func:`bpf_prog_select_runtime`), so that a program that kernel would
    refuse with ENOTSUPP raises InvalidProgram as well.
    """
    if not isinstance(program, Program):
        raise TypeError(f"check() takes a bpfjit.Program, not {type(program).__name__}")
    if not isinstance(program, CheckedProgram):
        bpf_check_basics_ok(program)
        bpf_check_classic(program)
        seccomp_check_filter(program)
        program = CheckedProgram(program, _token=_CHECKED)
    if kernel is not None:
        bpf_prog_select_runtime(program, kernel)
    return program


def vouched(program: Program) -> CheckedProgram:
    """``program`` as a CheckedProgram WITHOUT running the checks: only for a caller holding
    proof that these exact bytes passed :func:`check` before — the llvm backend's
    authenticated compile-cache entries (only checked programs are ever compiled and stored;
    the key covers the bpfjit version, the entry the program's bytes)."""
    if isinstance(program, CheckedProgram):
        return program
    return CheckedProgram(program, _token=_CHECKED)


def bpf_prog_select_runtime(program: Program, kernel) -> None:
    """kernel/bpf/core.c ``bpf_prog_select_runtime`` for a checked program on ``kernel``.

    With CONFIG_BPF_JIT_ALWAYS_ON a program the JIT leaves un-compiled is
    refused with ENOTSUPP; the x86-64 JIT is modelled by
    :mod:`bpfjit.kernelcfg.x86_jit`.
    """
    from .errors import InputError
    from .kernelcfg import kernel_config
    from .kernelcfg.x86_jit import jit_result
    cfg = kernel_config(kernel)
    if cfg.arch != "x86_64":        # pragma: no cover - only x86_64 configurations exist
        raise InputError(f"no BPF JIT model for {cfg.arch}")
    if cfg.jit_harden:
        raise InputError(f"kernel configuration {cfg.name!r} blinds constants "
                         f"(bpf_jit_harden={cfg.jit_harden}); the JIT model does not cover it")
    if not cfg.bpf_jit_always_on:
        return                      # a JIT failure falls back to the interpreter
    result = jit_result(program, cfg)
    if not result.jited:
        raise InvalidProgram(result.message(), rule="bpf_int_jit_compile", errno="ENOTSUPP")


def is_valid(program: Program, *, kernel=None) -> bool:
    """True when :func:`check` accepts ``program`` (for ``kernel``, when given)."""
    try:
        check(program, kernel=kernel)
    except InvalidProgram:
        return False
    return True
