"""Analysis: facts about a checked program, for the backends (faster code) and for people.

- :mod:`.cfg` — basic blocks, successors, predecessors, reachability;
- :mod:`.dispatch` — chains of ``jeq #k`` on one loaded word (syscall dispatch);
- :mod:`.verdicts` — the per-(arch, nr) constant-verdict table;
- :mod:`.paths` — which jump edges some input can take (value ranges of the loaded words);
- :mod:`.lint` — policy findings with stable codes (``bpfjit lint``);
- :mod:`.graph` — the control-flow picture with dispatch chains collapsed (``bpfjit graph``).

Nothing here changes what a program returns; every fact is proven exact by tests
against the reference interpreter.
"""
