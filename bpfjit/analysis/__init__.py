"""Analysis: facts about a checked program that backends use to generate faster code.

- :mod:`.cfg` — basic blocks, successors, predecessors, reachability;
- :mod:`.dispatch` — chains of ``jeq #k`` on one loaded word (syscall dispatch);
- :mod:`.verdicts` — the per-(arch, nr) constant-verdict table;
- :mod:`.budget` — the work-unit budgets that bound every analysis's time.

Nothing here changes what a program returns; every fact is proven exact by tests
against the reference interpreter.
"""
