#!/bin/sh
# Issue 14 acceptance: pytest (llvm vs kernel, kernel backend, CLI) under a fresh user cache, hostile
# caches (0777, another owner, FIFO entries, forged entries) and a read-only one (root: chown, unshare).
# A planted kernel child (.so whose constructor appends to $T/PWNED) sits in every hostile directory.
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD"
T=$(mktemp -d /tmp/bpfjit-hostile-XXXXXX)
TESTS="tests/kernel/test_llvm_vs_kernel.py tests/kernel/test_kernel_backend.py tests/cli"
cat > $T/evil.c <<C
#include <stdio.h>
#include <stdint.h>
__attribute__((constructor)) static void pwn(void) { FILE *f = fopen("$T/PWNED", "a"); if (f) { fputs("loaded\n", f); fclose(f); } }
uint64_t bpfjit_site_address(void) { return 0xdead; }
C
cc -shared -fPIC -o $T/evil.so $T/evil.c
plant() {  # plant the evil library as legacy .so and as a kernel-child entry under a foreign key
  python3 - "$1" "$T/evil.so" <<'PY'
import sys, os, pathlib
from bpfjit.backends import kernel_child as kc
from bpfjit.backends.llvm import cache
d = pathlib.Path(sys.argv[1]); evil = pathlib.Path(sys.argv[2]).read_bytes()
(d / f"kernel_child-{kc.SOURCE_SHA256[:16]}.so").write_bytes(evil)
(d / kc.ENTRY_NAME).write_bytes(cache.pack({"kind": "kernel_child", "source": kc.SOURCE_SHA256}, evil, os.urandom(32)))
PY
}
run() { name=$1; shift; printf '%-14s ' "$name"; timeout 1200 env "$@" python3 -m pytest $TESTS -q -p no:cacheprovider -W always 2>&1 | grep -E "passed|failed|error" | tail -1; }
mkdir -p $T/home; run fresh-home -u BPFJIT_CACHE_DIR HOME=$T/home
ls -la $T/home/.cache/bpfjit | head -4
run warm-home -u BPFJIT_CACHE_DIR HOME=$T/home
cp -a $T/home/.cache/bpfjit $T/c777; plant $T/c777; chmod 0777 $T/c777; run mode-0777 BPFJIT_CACHE_DIR=$T/c777
cp -a $T/home/.cache/bpfjit $T/cown; plant $T/cown; chown -R 65534 $T/cown; run other-owner BPFJIT_CACHE_DIR=$T/cown
cp -a $T/home/.cache/bpfjit $T/cfifo; for f in $T/cfifo/llvm-*.bin $T/cfifo/kernel_child-*.bin; do rm $f; mkfifo -m 600 $f; done; run fifo-entries BPFJIT_CACHE_DIR=$T/cfifo
cp -a $T/home/.cache/bpfjit $T/cforge; plant $T/cforge; python3 - $T/cforge <<'PY'
import sys, pathlib, os
from bpfjit.backends.llvm import cache
d = pathlib.Path(sys.argv[1]); es = sorted(d.glob("llvm-*.bin")); data = [e.read_bytes() for e in es]
other = os.urandom(32)
for i, e in enumerate(es):
    h, p = cache.unpack(data[(i + 1) % len(es)], (d / cache.KEY_FILE).read_bytes())
    h["key"] = e.name[5:-4]
    e.write_bytes(cache.pack(h, p, other))
print("forged", len(es), "llvm entries + the kernel child", file=sys.stderr)
PY
run forged BPFJIT_CACHE_DIR=$T/cforge
cp -a $T/home/.cache/bpfjit $T/cro; printf '%-14s ' read-only; unshare -m sh -c "mount --bind $T/cro $T/cro && mount -o remount,bind,ro $T/cro && BPFJIT_CACHE_DIR=$T/cro timeout 1200 python3 -m pytest $TESTS -q -p no:cacheprovider 2>&1 | grep -E 'passed|failed|error' | tail -1"
if [ -e $T/PWNED ]; then echo "PLANTED LIBRARY LOADED: $(cat $T/PWNED | wc -l) times"; else echo "planted library never loaded"; fi
