"""Testing: policy assertions for a project's own test suite, proven for every input.

::

    from bpfjit.testing.policy import policy, ANY

    def test_my_profile():
        p = policy("profile.bpf")                 # any format bpfjit.load reads
        assert p.allows("read")                   # every read, whatever its arguments
        assert p.allows("openat", ANY, ANY, 0)    # positional arguments; ANY = wildcard
        assert p.denies("ptrace")                 # no ptrace call is allowed
        assert p.returns("clone", "ERRNO(EPERM)", flags=0x10000000)
        p.expect("* on x32 -> not ALLOW")         # the expectation-file syntax; raises

Each check is exact (:mod:`bpfjit.analysis.expectations`); a failed one is a
falsy :class:`Proof` whose repr shows the counterexample input and its path
through the filter, so pytest's assertion message explains the failure. With
``pytest_plugins = ["bpfjit.testing.pytest_plugin"]`` in a conftest, the
``policy`` fixture gives the same function.
"""
from __future__ import annotations

from functools import lru_cache

from ..analysis import expectations as ex

#: an argument that may hold any value
ANY = None


class Proof:
    """The answer to one check: truthy when it holds for every input."""

    def __init__(self, text: str, failures: list, semantics):
        self.text, self.failures, self._sem = text, failures, semantics

    def __bool__(self) -> bool:
        return not self.failures

    def __repr__(self) -> str:
        if not self.failures:
            return f"<holds for every input: {self.text}>"
        from ..cli.expect import counterexample_text
        line, path = counterexample_text(self.failures[0], self._sem)
        return (f"<FAILS: {self.text}; counterexample {line}; path: {'; '.join(path)}>")


class Policy:
    """A filter loaded and analysed once; ask it questions with exact answers."""

    def __init__(self, source, arch: str | None = None):
        from ..check import check
        from ..formats import load
        from ..formats.disasm import infer_arch
        from ..analysis.semantics import analyse
        from ..seccomp import layouts
        program = load(source, arch=arch)
        layout = layouts.layout(arch) if arch else infer_arch(program)
        self.semantics = analyse(check(program), layout)
        self.layout = layout

    def _expectation(self, syscall, args, kwargs, on, action: str, negated: bool):
        values = [None] * 6
        for i, v in enumerate(args):
            values[i] = None if v is ANY else int(v) & ((1 << 64) - 1)
        for key, v in kwargs.items():
            names = ex.ARG_NAMES.get(syscall, ())
            if key.startswith("arg") and key[3:].isdigit():
                index = int(key[3:])
            elif key in names:
                index = names.index(key)
            else:
                raise ex.ExpectationError(f"{syscall}: unknown argument name {key!r}")
            values[index] = None if v is ANY else int(v) & ((1 << 64) - 1)
        shown = ", ".join("*" if v is None else hex(v) for v in values).rstrip(", *")
        text = f"{syscall or '*'}({shown})" + (f" on {on}" if on else "") + \
            f" -> {'not ' if negated else ''}{action}"
        base, with_data = ex._action(action, 0)
        return ex.Expectation(text, None if syscall in (None, "*") else syscall, tuple(values),
                              on, base, with_data, negated)

    def _prove(self, exp) -> Proof:
        return Proof(exp.text, ex.check(self.semantics, exp), self.semantics)

    def returns(self, syscall, action: str, *args, on: str | None = None, **kwargs) -> Proof:
        """Every matching call gets ``action`` (``ERRNO`` any errno, ``ERRNO(EPERM)`` one)."""
        return self._prove(self._expectation(syscall, args, kwargs, on, action, False))

    def allows(self, syscall, *args, on: str | None = None, **kwargs) -> Proof:
        """Every matching call is allowed (ALLOW)."""
        return self.returns(syscall, "ALLOW", *args, on=on, **kwargs)

    def denies(self, syscall, *args, on: str | None = None, **kwargs) -> Proof:
        """No matching call is allowed (neither ALLOW nor LOG)."""
        first = self._prove(self._expectation(syscall, args, kwargs, on, "ALLOW", True))
        if not first:
            return first
        return self._prove(self._expectation(syscall, args, kwargs, on, "LOG", True))

    def expect(self, line: str) -> None:
        """Assert one expectation in the file syntax; AssertionError with the counterexample."""
        proof = self._prove(ex.parse(line))
        if not proof:
            raise AssertionError(repr(proof))


@lru_cache(maxsize=32)
def policy(source, arch: str | None = None) -> Policy:
    """The :class:`Policy` of a filter file (cached per path and arch)."""
    return Policy(str(source), arch)


__all__ = ["ANY", "Policy", "Proof", "policy"]
