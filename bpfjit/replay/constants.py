"""Seccomp knowledge for replay: the values of the names strace prints for flags and constants.

strace decodes arguments symbolically (``O_RDONLY|O_CLOEXEC``, ``AT_FDCWD``,
``SOCK_STREAM|SOCK_CLOEXEC``). To evaluate a filter the raw register value is
needed back. The values below are the Linux UAPI values (include/uapi/asm-generic/
fcntl.h, mman-common.h, signal.h, socket.h, linux/sched.h, linux/futex.h, ...) that
hold on the architectures listed in :data:`GENERIC_ARCHES`; the few places where
one of those arches has its own value are in :data:`OVERRIDES`. On the other
arches (MIPS, PA-RISC, PowerPC) several families have private values that are
not tabulated here, so a symbolic argument there is reported as unknown: record
such traces with ``strace -X raw`` (or ``-e raw=all``).

Tests check these values against the host's Python ``os``/``socket``/``mmap``/
``signal``/``resource`` modules (the host C library's headers).
"""
from __future__ import annotations

#: arches whose constants are the asm-generic / x86 ones below (plus OVERRIDES)
GENERIC_ARCHES = frozenset({"x86_64", "x86", "x32", "aarch64", "arm", "riscv64",
                            "loongarch64", "s390x", "s390"})


def _family(prefix: str, names: str, start: int = 0) -> dict[str, int]:
    return {prefix + n: start + i for i, n in enumerate(names.split()) if n != "-"}


def _bits(prefix: str, pairs: dict[str, int]) -> dict[str, int]:
    return {prefix + k: v for k, v in pairs.items()}


GENERIC: dict[str, int] = {"NULL": 0}

# include/uapi/asm-generic/fcntl.h (x86 uses it unchanged)
GENERIC.update(_bits("O_", {
    "RDONLY": 0, "WRONLY": 1, "RDWR": 2, "ACCMODE": 3, "CREAT": 0o100, "EXCL": 0o200,
    "NOCTTY": 0o400, "TRUNC": 0o1000, "APPEND": 0o2000, "NONBLOCK": 0o4000, "NDELAY": 0o4000,
    "DSYNC": 0o10000, "ASYNC": 0o20000, "DIRECT": 0o40000, "LARGEFILE": 0o100000,
    "DIRECTORY": 0o200000, "NOFOLLOW": 0o400000, "NOATIME": 0o1000000, "CLOEXEC": 0o2000000,
    "SYNC": 0o4010000, "RSYNC": 0o4010000, "PATH": 0o10000000, "TMPFILE": 0o20200000}))
GENERIC.update({"FASYNC": 0o20000, "__O_SYNC": 0o4000000, "__O_TMPFILE": 0o20000000})
GENERIC.update(_bits("AT_", {
    "FDCWD": -100, "SYMLINK_NOFOLLOW": 0x100, "REMOVEDIR": 0x200, "EACCESS": 0x200,
    "SYMLINK_FOLLOW": 0x400, "NO_AUTOMOUNT": 0x800, "EMPTY_PATH": 0x1000,
    "STATX_SYNC_AS_STAT": 0, "STATX_FORCE_SYNC": 0x2000, "STATX_DONT_SYNC": 0x4000,
    "RECURSIVE": 0x8000}))
GENERIC.update({"F_OK": 0, "X_OK": 1, "W_OK": 2, "R_OK": 4})
GENERIC.update(_family("F_", "DUPFD GETFD SETFD GETFL SETFL GETLK SETLK SETLKW SETOWN GETOWN "
                             "SETSIG GETSIG"))
GENERIC.update(_bits("F_", {
    "SETOWN_EX": 15, "GETOWN_EX": 16, "OFD_GETLK": 36, "OFD_SETLK": 37, "OFD_SETLKW": 38,
    "SETLEASE": 1024, "GETLEASE": 1025, "NOTIFY": 1026, "DUPFD_QUERY": 1027,
    "DUPFD_CLOEXEC": 1030, "SETPIPE_SZ": 1031, "GETPIPE_SZ": 1032, "ADD_SEALS": 1033,
    "GET_SEALS": 1034, "RDLCK": 0, "WRLCK": 1, "UNLCK": 2}))
GENERIC.update({"FD_CLOEXEC": 1})
GENERIC.update(_family("SEEK_", "SET CUR END DATA HOLE"))
GENERIC.update(_bits("LOCK_", {"SH": 1, "EX": 2, "NB": 4, "UN": 8}))
GENERIC.update(_bits("RENAME_", {"NOREPLACE": 1, "EXCHANGE": 2, "WHITEOUT": 4}))
GENERIC.update(_bits("CLOSE_RANGE_", {"UNSHARE": 2, "CLOEXEC": 4}))
# file modes (include/uapi/linux/stat.h)
GENERIC.update(_bits("S_", {
    "IFMT": 0o170000, "IFSOCK": 0o140000, "IFLNK": 0o120000, "IFREG": 0o100000,
    "IFBLK": 0o60000, "IFDIR": 0o40000, "IFCHR": 0o20000, "IFIFO": 0o10000,
    "ISUID": 0o4000, "ISGID": 0o2000, "ISVTX": 0o1000, "IRWXU": 0o700, "IRUSR": 0o400,
    "IWUSR": 0o200, "IXUSR": 0o100, "IRWXG": 0o70, "IRGRP": 0o40, "IWGRP": 0o20,
    "IXGRP": 0o10, "IRWXO": 0o7, "IROTH": 0o4, "IWOTH": 0o2, "IXOTH": 0o1}))
GENERIC.update(_bits("STATX_", {
    "TYPE": 0x1, "MODE": 0x2, "NLINK": 0x4, "UID": 0x8, "GID": 0x10, "ATIME": 0x20,
    "MTIME": 0x40, "CTIME": 0x80, "INO": 0x100, "SIZE": 0x200, "BLOCKS": 0x400,
    "BASIC_STATS": 0x7FF, "BTIME": 0x800, "ALL": 0xFFF, "MNT_ID": 0x1000, "DIOALIGN": 0x2000,
    "MNT_ID_UNIQUE": 0x4000, "SUBVOL": 0x8000}))

# include/uapi/asm-generic/mman-common.h, mman.h (x86 and arm64 use them)
GENERIC.update(_bits("PROT_", {"NONE": 0, "READ": 1, "WRITE": 2, "EXEC": 4, "SEM": 8,
                               "GROWSDOWN": 0x01000000, "GROWSUP": 0x02000000}))
GENERIC.update(_bits("MAP_", {
    "FILE": 0, "SHARED": 1, "PRIVATE": 2, "SHARED_VALIDATE": 3, "DROPPABLE": 8, "FIXED": 0x10,
    "ANONYMOUS": 0x20, "ANON": 0x20, "GROWSDOWN": 0x100, "DENYWRITE": 0x800,
    "EXECUTABLE": 0x1000, "LOCKED": 0x2000, "NORESERVE": 0x4000, "POPULATE": 0x8000,
    "NONBLOCK": 0x10000, "STACK": 0x20000, "HUGETLB": 0x40000, "SYNC": 0x80000,
    "FIXED_NOREPLACE": 0x100000, "UNINITIALIZED": 0x4000000, "HUGE_SHIFT": 26}))
GENERIC.update(_bits("MREMAP_", {"MAYMOVE": 1, "FIXED": 2, "DONTUNMAP": 4}))
GENERIC.update(_bits("MS_", {"ASYNC": 1, "INVALIDATE": 2, "SYNC": 4}))   # msync
GENERIC.update(_bits("MADV_", {
    "NORMAL": 0, "RANDOM": 1, "SEQUENTIAL": 2, "WILLNEED": 3, "DONTNEED": 4, "FREE": 8,
    "REMOVE": 9, "DONTFORK": 10, "DOFORK": 11, "MERGEABLE": 12, "UNMERGEABLE": 13,
    "HUGEPAGE": 14, "NOHUGEPAGE": 15, "DONTDUMP": 16, "DODUMP": 17, "WIPEONFORK": 18,
    "KEEPONFORK": 19, "COLD": 20, "PAGEOUT": 21, "POPULATE_READ": 22, "POPULATE_WRITE": 23,
    "DONTNEED_LOCKED": 24, "COLLAPSE": 25, "HWPOISON": 100, "SOFT_OFFLINE": 101,
    "GUARD_INSTALL": 102, "GUARD_REMOVE": 103}))
GENERIC.update(_bits("MCL_", {"CURRENT": 1, "FUTURE": 2, "ONFAULT": 4}))
GENERIC.update(_bits("POSIX_FADV_", {"NORMAL": 0, "RANDOM": 1, "SEQUENTIAL": 2,
                                     "WILLNEED": 3, "DONTNEED": 4, "NOREUSE": 5}))
GENERIC.update(_bits("MFD_", {"CLOEXEC": 1, "ALLOW_SEALING": 2, "HUGETLB": 4,
                              "NOEXEC_SEAL": 8, "EXEC": 0x10}))

# include/uapi/linux/sched.h
GENERIC.update(_bits("CLONE_", {
    "NEWTIME": 0x80, "VM": 0x100, "FS": 0x200, "FILES": 0x400, "SIGHAND": 0x800,
    "PIDFD": 0x1000, "PTRACE": 0x2000, "VFORK": 0x4000, "PARENT": 0x8000, "THREAD": 0x10000,
    "NEWNS": 0x20000, "SYSVSEM": 0x40000, "SETTLS": 0x80000, "PARENT_SETTID": 0x100000,
    "CHILD_CLEARTID": 0x200000, "DETACHED": 0x400000, "UNTRACED": 0x800000,
    "CHILD_SETTID": 0x1000000, "NEWCGROUP": 0x2000000, "NEWUTS": 0x4000000,
    "NEWIPC": 0x8000000, "NEWUSER": 0x10000000, "NEWPID": 0x20000000, "NEWNET": 0x40000000,
    "IO": 0x80000000}))
GENERIC.update(_bits("SCHED_", {"OTHER": 0, "NORMAL": 0, "FIFO": 1, "RR": 2, "BATCH": 3,
                                "IDLE": 5, "DEADLINE": 6, "EXT": 7,
                                "RESET_ON_FORK": 0x40000000}))

# include/uapi/asm-generic/signal.h (x86 identical); strace prints SIGRTMIN, SIGRT_n
GENERIC.update(_family("SIG", "- HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE "
                              "ALRM TERM STKFLT CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ "
                              "VTALRM PROF WINCH IO PWR SYS"))
GENERIC.update({"SIGIOT": 6, "SIGPOLL": 29, "SIGRTMIN": 32})
GENERIC.update({f"SIGRT_{i}": 32 + i for i in range(1, 33)})
GENERIC.update(_family("SIG_", "BLOCK UNBLOCK SETMASK"))
GENERIC.update({"SIG_DFL": 0, "SIG_IGN": 1})

# wait(2), waitid(2) (include/uapi/linux/wait.h)
GENERIC.update({"WNOHANG": 1, "WUNTRACED": 2, "WSTOPPED": 2, "WEXITED": 4, "WCONTINUED": 8,
                "WNOWAIT": 0x01000000, "__WNOTHREAD": 0x20000000, "__WALL": 0x40000000,
                "__WCLONE": 0x80000000})
GENERIC.update(_family("P_", "ALL PID PGID PIDFD"))

# include/uapi/linux/futex.h; strace prints FUTEX_WAIT_PRIVATE etc. for op|FUTEX_PRIVATE_FLAG
_FUTEX_OPS = _family("FUTEX_", "WAIT WAKE FD REQUEUE CMP_REQUEUE WAKE_OP LOCK_PI UNLOCK_PI "
                               "TRYLOCK_PI WAIT_BITSET WAKE_BITSET WAIT_REQUEUE_PI "
                               "CMP_REQUEUE_PI LOCK_PI2")
GENERIC.update(_FUTEX_OPS)
GENERIC.update({k + "_PRIVATE": v | 128 for k, v in _FUTEX_OPS.items()})
GENERIC.update({"FUTEX_PRIVATE_FLAG": 128, "FUTEX_CLOCK_REALTIME": 256,
                "FUTEX_BITSET_MATCH_ANY": 0xFFFFFFFF})

# sockets: include/linux/socket.h, linux/net.h, uapi/linux/in.h, asm-generic/socket.h
GENERIC.update(_family("AF_", "UNSPEC UNIX INET AX25 IPX APPLETALK NETROM BRIDGE ATMPVC X25 "
                              "INET6 ROSE DECnet NETBEUI SECURITY KEY NETLINK PACKET ASH "
                              "ECONET ATMSVC RDS SNA IRDA PPPOX WANPIPE LLC IB MPLS CAN TIPC "
                              "BLUETOOTH IUCV RXRPC ISDN PHONET IEEE802154 CAIF ALG NFC VSOCK "
                              "KCM QIPCRTR SMC XDP MCTP"))
GENERIC.update({"AF_LOCAL": 1, "AF_FILE": 1, "AF_ROUTE": 16})
GENERIC.update({"PF" + k[2:]: v for k, v in list(GENERIC.items()) if k.startswith("AF_")})
GENERIC.update(_bits("SOCK_", {"STREAM": 1, "DGRAM": 2, "RAW": 3, "RDM": 4, "SEQPACKET": 5,
                               "DCCP": 6, "PACKET": 10, "CLOEXEC": 0o2000000,
                               "NONBLOCK": 0o4000}))
GENERIC.update(_bits("IPPROTO_", {
    "IP": 0, "ICMP": 1, "IGMP": 2, "IPIP": 4, "TCP": 6, "EGP": 8, "PUP": 12, "UDP": 17,
    "IDP": 22, "TP": 29, "DCCP": 33, "IPV6": 41, "RSVP": 46, "GRE": 47, "ESP": 50, "AH": 51,
    "ICMPV6": 58, "MTP": 92, "BEETPH": 94, "ENCAP": 98, "PIM": 103, "COMP": 108, "L2TP": 115,
    "SCTP": 132, "UDPLITE": 136, "MPLS": 137, "ETHERNET": 143, "RAW": 255, "MPTCP": 262}))
GENERIC.update(_family("NETLINK_", "ROUTE UNUSED USERSOCK FIREWALL SOCK_DIAG NFLOG XFRM "
                                   "SELINUX ISCSI AUDIT FIB_LOOKUP CONNECTOR NETFILTER IP6_FW "
                                   "DNRTMSG KOBJECT_UEVENT GENERIC - SCSITRANSPORT ECRYPTFS "
                                   "RDMA CRYPTO SMC"))
GENERIC.update({"SOL_IP": 0, "SOL_SOCKET": 1, "SOL_TCP": 6, "SOL_UDP": 17, "SOL_IPV6": 41,
                "SOL_RAW": 255, "SOL_NETLINK": 270})
GENERIC.update(_family("SO_", "- DEBUG REUSEADDR TYPE ERROR DONTROUTE BROADCAST SNDBUF RCVBUF "
                              "KEEPALIVE OOBINLINE NO_CHECK PRIORITY LINGER BSDCOMPAT "
                              "REUSEPORT PASSCRED PEERCRED RCVLOWAT SNDLOWAT RCVTIMEO_OLD "
                              "SNDTIMEO_OLD"))
GENERIC.update(_bits("SO_", {"PEERSEC": 31, "SNDBUFFORCE": 32, "RCVBUFFORCE": 33,
                             "PASSSEC": 34, "MARK": 36, "PROTOCOL": 38, "DOMAIN": 39}))
GENERIC.update({"TCP_NODELAY": 1, "SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2})
GENERIC.update(_bits("MSG_", {
    "OOB": 1, "PEEK": 2, "DONTROUTE": 4, "CTRUNC": 8, "PROXY": 0x10, "TRUNC": 0x20,
    "DONTWAIT": 0x40, "EOR": 0x80, "WAITALL": 0x100, "FIN": 0x200, "SYN": 0x400,
    "CONFIRM": 0x800, "RST": 0x1000, "ERRQUEUE": 0x2000, "NOSIGNAL": 0x4000, "MORE": 0x8000,
    "WAITFORONE": 0x10000, "BATCH": 0x40000, "ZEROCOPY": 0x4000000, "FASTOPEN": 0x20000000,
    "CMSG_CLOEXEC": 0x40000000}))

# *_CLOEXEC / *_NONBLOCK of the fd-creating calls equal O_CLOEXEC / O_NONBLOCK
for _p in ("EFD", "TFD", "IN", "EPOLL", "SFD", "PIDFD"):
    GENERIC[_p + "_CLOEXEC"] = 0o2000000
    GENERIC[_p + "_NONBLOCK"] = 0o4000
del GENERIC["EPOLL_NONBLOCK"]
GENERIC.update({"EFD_SEMAPHORE": 1, "TFD_TIMER_ABSTIME": 1, "TFD_TIMER_CANCEL_ON_SET": 2,
                "EPOLL_CTL_ADD": 1, "EPOLL_CTL_DEL": 2, "EPOLL_CTL_MOD": 3,
                "GRND_NONBLOCK": 1, "GRND_RANDOM": 2, "GRND_INSECURE": 4})

# time, limits, priorities
GENERIC.update(_family("CLOCK_", "REALTIME MONOTONIC PROCESS_CPUTIME_ID THREAD_CPUTIME_ID "
                                 "MONOTONIC_RAW REALTIME_COARSE MONOTONIC_COARSE BOOTTIME "
                                 "REALTIME_ALARM BOOTTIME_ALARM - TAI"))
GENERIC.update({"TIMER_ABSTIME": 1})
GENERIC.update(_family("ITIMER_", "REAL VIRTUAL PROF"))
GENERIC.update(_family("RLIMIT_", "CPU FSIZE DATA STACK CORE RSS NPROC NOFILE MEMLOCK AS LOCKS "
                                  "SIGPENDING MSGQUEUE NICE RTPRIO RTTIME"))
GENERIC.update(_family("RUSAGE_", "SELF"))
GENERIC.update({"RUSAGE_CHILDREN": -1, "RUSAGE_THREAD": 1})
GENERIC.update(_family("PRIO_", "PROCESS PGRP USER"))

# prctl(2), arch_prctl(2), seccomp(2)
GENERIC.update(_bits("PR_", {
    "SET_PDEATHSIG": 1, "GET_PDEATHSIG": 2, "GET_DUMPABLE": 3, "SET_DUMPABLE": 4,
    "GET_KEEPCAPS": 7, "SET_KEEPCAPS": 8, "SET_NAME": 15, "GET_NAME": 16, "GET_SECCOMP": 21,
    "SET_SECCOMP": 22, "CAPBSET_READ": 23, "CAPBSET_DROP": 24, "GET_SECUREBITS": 27,
    "SET_SECUREBITS": 28, "SET_TIMERSLACK": 29, "GET_TIMERSLACK": 30, "SET_MM": 35,
    "SET_CHILD_SUBREAPER": 36, "GET_CHILD_SUBREAPER": 37, "SET_NO_NEW_PRIVS": 38,
    "GET_NO_NEW_PRIVS": 39, "SET_THP_DISABLE": 41, "GET_THP_DISABLE": 42, "CAP_AMBIENT": 47,
    "SET_VMA": 0x53564D41}))
GENERIC.update(_bits("ARCH_", {
    "SET_GS": 0x1001, "SET_FS": 0x1002, "GET_FS": 0x1003, "GET_GS": 0x1004,
    "GET_CPUID": 0x1011, "SET_CPUID": 0x1012, "GET_XCOMP_SUPP": 0x1021,
    "GET_XCOMP_PERM": 0x1022, "REQ_XCOMP_PERM": 0x1023, "MAP_VDSO_X32": 0x2001,
    "MAP_VDSO_32": 0x2002, "MAP_VDSO_64": 0x2003}))
GENERIC.update(_bits("SECCOMP_", {
    "SET_MODE_STRICT": 0, "SET_MODE_FILTER": 1, "GET_ACTION_AVAIL": 2, "GET_NOTIF_SIZES": 3,
    "FILTER_FLAG_TSYNC": 1, "FILTER_FLAG_LOG": 2, "FILTER_FLAG_SPEC_ALLOW": 4,
    "FILTER_FLAG_NEW_LISTENER": 8, "FILTER_FLAG_TSYNC_ESRCH": 16,
    "FILTER_FLAG_WAIT_KILLABLE_RECV": 32, "MODE_DISABLED": 0, "MODE_STRICT": 1,
    "MODE_FILTER": 2}))

# mount(2), umount2(2) (include/uapi/linux/mount.h)
GENERIC.update(_bits("MS_", {
    "RDONLY": 1, "NOSUID": 2, "NODEV": 4, "NOEXEC": 8, "SYNCHRONOUS": 16, "REMOUNT": 32,
    "MANDLOCK": 64, "DIRSYNC": 128, "NOSYMFOLLOW": 256, "NOATIME": 1024, "NODIRATIME": 2048,
    "BIND": 4096, "MOVE": 8192, "REC": 16384, "SILENT": 32768, "POSIXACL": 1 << 16,
    "UNBINDABLE": 1 << 17, "PRIVATE": 1 << 18, "SLAVE": 1 << 19, "SHARED": 1 << 20,
    "RELATIME": 1 << 21, "KERNMOUNT": 1 << 22, "I_VERSION": 1 << 23, "STRICTATIME": 1 << 24,
    "LAZYTIME": 1 << 25, "MGC_VAL": 0xC0ED0000}))
GENERIC.update({"MNT_FORCE": 1, "MNT_DETACH": 2, "MNT_EXPIRE": 4, "UMOUNT_NOFOLLOW": 8})

# tty and file ioctls of include/uapi/asm-generic/ioctls.h (x86 and arm64 use it)
GENERIC.update({
    "TCGETS": 0x5401, "TCSETS": 0x5402, "TCSETSW": 0x5403, "TCSETSF": 0x5404,
    "TCGETA": 0x5405, "TCSETA": 0x5406, "TCSETAW": 0x5407, "TCSETAF": 0x5408,
    "TCSBRK": 0x5409, "TCXONC": 0x540A, "TCFLSH": 0x540B, "TIOCEXCL": 0x540C,
    "TIOCNXCL": 0x540D, "TIOCSCTTY": 0x540E, "TIOCGPGRP": 0x540F, "TIOCSPGRP": 0x5410,
    "TIOCOUTQ": 0x5411, "TIOCSTI": 0x5412, "TIOCGWINSZ": 0x5413, "TIOCSWINSZ": 0x5414,
    "TIOCMGET": 0x5415, "TIOCMBIS": 0x5416, "TIOCMBIC": 0x5417, "TIOCMSET": 0x5418,
    "TIOCGSOFTCAR": 0x5419, "TIOCSSOFTCAR": 0x541A, "FIONREAD": 0x541B, "TIOCINQ": 0x541B,
    "TIOCLINUX": 0x541C, "TIOCCONS": 0x541D, "TIOCGSERIAL": 0x541E, "TIOCSSERIAL": 0x541F,
    "TIOCPKT": 0x5420, "FIONBIO": 0x5421, "TIOCNOTTY": 0x5422, "TIOCSETD": 0x5423,
    "TIOCGETD": 0x5424, "TIOCGPTN": 0x80045430, "TIOCSPTLCK": 0x40045431,
    "FIONCLEX": 0x5450, "FIOCLEX": 0x5451, "FIOASYNC": 0x5452, "FIOQSIZE": 0x5460,
})

#: per-arch values that differ from GENERIC (arch/<arch>/include/uapi/asm/*.h)
OVERRIDES: dict[str, dict[str, int]] = {
    # arch/arm{,64}/include/uapi/asm/fcntl.h
    "arm": {"O_DIRECTORY": 0o40000, "O_NOFOLLOW": 0o100000, "O_DIRECT": 0o200000,
            "O_LARGEFILE": 0o400000},
    "aarch64": {"O_DIRECTORY": 0o40000, "O_NOFOLLOW": 0o100000, "O_DIRECT": 0o200000,
                "O_LARGEFILE": 0o400000, "PROT_BTI": 0x10, "PROT_MTE": 0x20},
    # arch/s390/include/uapi/asm/fcntl.h has none; fadvise differs on 64-bit s390
    "s390x": {"POSIX_FADV_DONTNEED": 6, "POSIX_FADV_NOREUSE": 7},
    "x86_64": {"MAP_32BIT": 0x40},
    "x32": {"MAP_32BIT": 0x40},
    "x86": {"MAP_32BIT": 0x40},
}


def table(arch: str) -> dict[str, int] | None:
    """name -> value for ``arch`` (a libseccomp arch name), or None where not tabulated."""
    if arch not in GENERIC_ARCHES:
        return None
    found = _TABLES.get(arch)
    if found is None:
        found = dict(GENERIC)
        found.update(OVERRIDES.get(arch, {}))
        _TABLES[arch] = found
    return found


_TABLES: dict[str, dict[str, int]] = {}
