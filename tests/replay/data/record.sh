#!/bin/sh
# How the strace fixtures in this folder were recorded (strace 6.x, Linux 6.18, x86_64, root).
# Re-run from this folder to refresh them; the kernel test records its own traces.
set -e
PY=$(python3 -c 'import sys; print(sys.executable)')
strace -f -o pipeline.strace sh -c 'echo hello world | tr a-z A-Z | wc -c'
strace -f -X raw -i -n -o pipeline.raw.strace sh -c 'echo hello world | tr a-z A-Z | wc -c'
strace -f -o files_and_sockets.strace "$PY" -S -I -B files_and_sockets.py
strace -f -e raw=all -o files_and_sockets.rawall.strace "$PY" -S -I -B files_and_sockets.py
strace -f -tt -T -i -n -y -o threads.strace "$PY" -S -I -B threads.py
strace -f -e trace=openat,socket,clone3,clone -o threads.filtered.strace "$PY" -S -I -B threads.py
strace -f -ttt -o threads.ttt.strace "$PY" -S -I -B threads.py && sed -i 301,\$d threads.ttt.strace   # first 300 lines kept
strace -o sh.strace sh -c 'echo a > /dev/null; cat /etc/hostname; exec 3</etc/passwd'
strace -e raw=all -o sh.rawall.strace sh -c 'echo a > /dev/null; cat /etc/hostname; exec 3</etc/passwd'
