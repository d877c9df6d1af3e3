"""Opens files and sockets (a fixture program for bpfjit replay; run with python3 -S -I -B)."""
import os
import socket

for path in ("/etc/hostname", "/etc/passwd"):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    os.read(fd, 64)
    os.close(fd)
try:
    fd = os.open("/tmp/bpfjit-replay-fixture.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"x")
    os.close(fd)
except OSError as exc:
    print("create:", exc.errno)
for family, kind in ((socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET6, socket.SOCK_DGRAM),
                     (socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)):
    try:
        socket.socket(family, kind).close()
    except OSError as exc:
        print("socket:", exc.errno)
try:
    os.mkdir("/tmp/bpfjit-replay-fixture.d")
    os.rmdir("/tmp/bpfjit-replay-fixture.d")
except OSError as exc:
    print("mkdir:", exc.errno)
