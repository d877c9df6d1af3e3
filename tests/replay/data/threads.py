"""Four threads that each open a file and a socket (a fixture program for bpfjit replay)."""
import os
import socket
import threading


def work(i: int) -> None:
    fd = os.open("/etc/hostname", os.O_RDONLY)
    os.close(fd)
    try:
        fd = os.open(f"/tmp/bpfjit-replay-thread-{i}", os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.unlink(f"/tmp/bpfjit-replay-thread-{i}")
    except OSError as exc:
        print("create:", exc.errno)
    try:
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()
    except OSError as exc:
        print("socket:", exc.errno)


threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
