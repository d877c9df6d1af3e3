"""Analysis: facts about a checked program, for the backends (faster code) and for people.

- :mod:`.cfg` — basic blocks, successors, predecessors, reachability;
- :mod:`.dispatch` — chains of ``jeq #k`` on one loaded word (syscall dispatch);
- :mod:`.verdicts` — the per-(arch, nr) constant-verdict table;
- :mod:`.paths` — which jump edges some input can take (value ranges of the loaded words);
- :mod:`.lint` — policy findings with stable codes (``bpfjit lint``);
- :mod:`.graph` — the control-flow picture with dispatch chains collapsed (``bpfjit graph``).
- :mod:`.semantics` — the exact semantics: per (arch, nr), regions of the argument space with one
  result each (:mod:`.conditions` holds the condition language, :mod:`.solver` the z3 fallback);
- :mod:`.compare` — semantic difference of two filters, with witnesses checked by the reference.
- :mod:`.budget` — the work-unit budgets that bound every analysis's time.

Nothing here changes what a program returns; every fact is proven exact by tests
against the reference interpreter.
"""
