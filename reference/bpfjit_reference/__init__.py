"""bpfjit_reference: an independent reference interpreter for seccomp classic BPF.

Written from the Linux kernel sources (see reference/README.md); standard
library only, and shares no code with the bpfjit package.
"""

from .interpreter import run, run_seccomp
from .seccomp_data import load_word, seccomp_data_image
from .stack import run_stack

__all__ = ["run", "run_seccomp", "load_word", "seccomp_data_image", "run_stack"]
