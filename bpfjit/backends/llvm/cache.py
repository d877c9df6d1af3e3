"""Cache stage: compiled machine code kept in memory and on disk, so a known filter skips LLVM.

Key: SHA-256 over the program's bytes, the layout, the backend and its code
format, the bpfjit version, the llvmlite and LLVM versions, the target triple
and the host CPU's name and features (as LLVM reports them). Anything that can
change the machine code changes the key.

Disk: ``$BPFJIT_CACHE_DIR`` if set (an empty value turns the disk cache off),
else ``~/.cache/bpfjit``. One file per entry, written to a temporary name and
renamed into place; each holds a header, the payload and an HMAC-SHA256 of
both under a per-user secret key, so a truncated, bit-flipped or forged entry
is detected, reported at debug level and rebuilt.

Trust (issue 14.4; the README's "Compile cache: threat model"): a cache entry
is native code that runs in the process, so the directory must be as private
as the process. It is created ``0700``, and refused — a
:class:`CacheRefused` warning, then memory only — when it is not a directory,
is owned by another user, or is writable by group or others. The secret key
(32 random bytes) lives in it as ``secret.key``, ``0600``, and is refused on
the same grounds. Every file is opened ``O_NONBLOCK | O_NOFOLLOW`` and read
only if ``fstat`` says it is a regular file (a FIFO planted as an entry must
not block ``compile()``), and a loaded entry's stored program bytes must equal
the program being compiled. A directory that cannot be created, or a
read-only one without a key, is refused the same way; a read-only one with a
key still serves its entries.

LLVM's own description of the host (its version, CPU name and features) needs
``llvmlite.binding``, whose import alone costs tens of milliseconds. So it is
recorded once per host in a small checksummed *host profile*, found by a
cheap identity (llvmlite's version, its shared library's size and mtime, the
kernel's description of the CPU — vendor, family, model, every feature flag —
and the machine); a new process with a warm cache then never loads LLVM.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import platform
import stat
import struct
import threading
import warnings
from collections import OrderedDict
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("bpfjit")

MAGIC = b"BPFJITC2"
DIGEST = 32
MEMORY_ENTRIES = 128
#: bump whenever lowering, the entry points or the payload format change
CODE_FORMAT = 2
#: the per-user secret key, beside the entries
KEY_FILE = "secret.key"
KEY_SIZE = 32
#: no entry is larger (a 4096-instruction filter's image is well under 1 MB)
MAX_FILE = 64 << 20


class CacheRefused(UserWarning):
    """The disk cache directory (or its key) is not private to this user; it is not used."""

_VOLATILE_CPUINFO = ("cpu mhz", "bogomips", "processor", "core id", "apicid", "initial apicid",
                     "physical id", "siblings", "cpu cores", "power management")


def cache_dir() -> Path | None:
    """The disk cache directory, or None when ``BPFJIT_CACHE_DIR`` is set to an empty value."""
    configured = os.environ.get("BPFJIT_CACHE_DIR")
    if configured is not None:
        return Path(configured).expanduser() if configured.strip() else None
    return Path.home() / ".cache" / "bpfjit"


# --- entries: header + payload + sha256 -----------------------------------------------------
# The header is ``name=value`` lines (values: str, int, float, or a nested dict flattened
# as ``name.sub=value``): cheap to read in a fresh process, no json import on the fast path.

def _encode_header(header: dict[str, Any], prefix: str = "") -> list[str]:
    lines = []
    for name in sorted(header):
        value = header[name]
        if "=" in name or "\n" in name or "." in name:
            raise ValueError(f"bad header name {name!r}")
        if isinstance(value, dict):
            lines += _encode_header(value, f"{prefix}{name}.")
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"header value {name}={value!r} must be str, int or float")
        text = repr(value) if not isinstance(value, str) else "s" + value
        if "\n" in text:
            raise ValueError(f"header value {name} has a newline")
        lines.append(f"{prefix}{name}={text}")
    return lines


def _decode_header(text: str) -> dict[str, Any]:
    header: dict[str, Any] = {}
    for line in text.splitlines():
        name, sep, raw = line.partition("=")
        if not sep or not name:
            raise Corrupt(f"bad header line {line!r}")
        if raw.startswith("s"):
            value: Any = raw[1:]
        else:
            try:
                value = float(raw) if any(c in raw for c in ".en") else int(raw)
            except ValueError:
                raise Corrupt(f"bad header value {line!r}") from None
        *parents, leaf = name.split(".")
        node = header
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise Corrupt(f"header name {name!r} clashes")
        node[leaf] = value
    return header


def pack(header: dict[str, Any], payload: bytes, secret: bytes = b"") -> bytes:
    """Header, payload and their HMAC-SHA256 under ``secret``."""
    head = "\n".join(_encode_header(header)).encode()
    body = MAGIC + struct.pack("<II", len(head), len(payload)) + head + payload
    return body + hmac.new(secret, body, hashlib.sha256).digest()


class Corrupt(Exception):
    """A cache entry failed its checks (truncated, bit-flipped, or not ours)."""


def unpack(data: bytes, secret: bytes = b"") -> tuple[dict[str, Any], bytes]:
    if len(data) < len(MAGIC) + 8 + DIGEST or not data.startswith(MAGIC):
        raise Corrupt("too short or wrong magic")
    body, digest = data[:-DIGEST], data[-DIGEST:]
    if not hmac.compare_digest(hmac.new(secret, body, hashlib.sha256).digest(), digest):
        raise Corrupt("authentication failed (damaged, or not written with this user's key)")
    head_len, payload_len = struct.unpack_from("<II", body, len(MAGIC))
    start = len(MAGIC) + 8
    if start + head_len + payload_len != len(body):
        raise Corrupt("length fields do not match the file size")
    try:
        text = body[start:start + head_len].decode()
    except UnicodeDecodeError:
        raise Corrupt("header is not UTF-8") from None
    return _decode_header(text), body[start + head_len:]


def _read(path: Path) -> bytes | None:
    """The bytes of a regular file; None (never a block) for anything else or on error."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.debug("bpfjit cache: cannot open %s: %s", path, exc)
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE:
            log.debug("bpfjit cache: %s is not a regular file of at most %d bytes; ignored",
                      path, MAX_FILE)
            return None
        chunks, left = [], st.st_size
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        log.debug("bpfjit cache: cannot read %s: %s", path, exc)
        return None
    finally:
        os.close(fd)


class _Refused(Exception):
    pass


def _private(st: os.stat_result, what: str, group_other_bits: int) -> None:
    uid = os.geteuid()
    if st.st_uid != uid:
        raise _Refused(f"{what} is owned by uid {st.st_uid}, not by this user (uid {uid})")
    if st.st_mode & group_other_bits:
        raise _Refused(f"{what} has mode {stat.S_IMODE(st.st_mode):04o}: "
                       f"{'writable' if group_other_bits == 0o022 else 'accessible'} by group "
                       f"or others")


def open_private(directory: Path) -> bytes:
    """Create (0700) or check ``directory`` and return its secret key; raises _Refused."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.stat(directory)
    except OSError as exc:
        raise _Refused(f"cannot create {directory}: {exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise _Refused(f"{directory} is not a directory")
    _private(st, str(directory), 0o022)
    if st.st_mode & 0o077:                   # ours, but readable by others (made by another tool)
        try:
            os.chmod(directory, 0o700)
        except OSError as exc:
            log.debug("bpfjit cache: cannot make %s private (0700): %s", directory, exc)
    path = directory / KEY_FILE
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            _create_key(path)
            continue
        except OSError as exc:
            raise _Refused(f"cannot open the key {path}: {exc}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size != KEY_SIZE:
                raise _Refused(f"the key {path} is not a regular file of {KEY_SIZE} bytes")
            _private(st, f"the key {path}", 0o077)
            secret = os.read(fd, KEY_SIZE)
        finally:
            os.close(fd)
        if len(secret) == KEY_SIZE:
            return secret
    raise _Refused(f"cannot read the key {path}")


def _create_key(path: Path) -> None:
    """Write a new random key, 0600, atomically (a concurrent process's key wins)."""
    tmp = path.with_name(f".key-{os.getpid()}-{os.urandom(6).hex()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            os.write(fd, os.urandom(KEY_SIZE))
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise _Refused(f"cannot create the key {path}: {exc}") from None


def _write(path: Path, data: bytes) -> bool:
    """Atomically write ``data`` to ``path``; False (and a debug message) if that is impossible."""
    import tempfile
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return True
    except OSError as exc:
        log.debug("bpfjit cache: cannot write %s: %s", path, exc)
        return False


# --- the host profile -------------------------------------------------------------------------

def _cpu_identity() -> str:
    """The CPU as the kernel describes it: vendor, family, model and every feature flag.

    ``/sys/devices/system/cpu/modalias`` is one short line; without it, the
    first block of ``/proc/cpuinfo`` minus the lines that change at run time.
    """
    try:
        return _read_small("/sys/devices/system/cpu/modalias")
    except OSError:
        pass
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor()
    first = text.split("\n\n", 1)[0]
    keep = []
    for line in first.splitlines():
        name = line.split(":", 1)[0].strip().lower()
        if name and name not in _VOLATILE_CPUINFO:
            keep.append(line.strip())
    return "\n".join(keep)


def _read_small(path: str) -> str:
    """A small text file's contents, os-level (a third of ``Path.read_text``'s cost)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 1 << 16).decode(errors="replace")
    finally:
        os.close(fd)


def _llvmlite_identity() -> str:
    """llvmlite's version file and its shared library's name, size and mtime."""
    spec = llvmlite_spec()
    if spec is None or not spec.submodule_search_locations:
        return "llvmlite missing"
    root = list(spec.submodule_search_locations)[0]
    parts = []
    try:
        parts.append(_read_small(os.path.join(root, "_version.py")))
    except OSError:
        pass
    binding = os.path.join(root, "binding")
    try:
        try:
            st = os.stat(os.path.join(binding, "libllvmlite.so"))
            found = [("libllvmlite.so", st)]
        except FileNotFoundError:
            found = [(e.name, e.stat()) for e in sorted(Path(binding).iterdir())
                     if "llvmlite" in e.name and e.suffix in (".so", ".dylib", ".dll")]
        for name, st in found:
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    except OSError:
        pass
    return "\n".join(parts)


_SPEC: list = []


def llvmlite_spec() -> Any:
    """``find_spec("llvmlite")``, looked up once per process (None when not installed)."""
    if not _SPEC:
        _SPEC.append(find_spec("llvmlite"))
    return _SPEC[0]


_profile_lock = threading.Lock()
_profile: dict[str, str] | None = None


def host_profile(disk: "tuple[Path, bytes] | None", compute: Callable[[], dict[str, str]]
                 ) -> dict[str, str]:
    """LLVM's view of this host (see the module docstring); ``compute`` asks LLVM itself.

    ``disk``: (directory, secret key) of the cache (:meth:`CodeCache.disk`), or None.
    """
    directory, secret = disk if disk else (None, b"")
    global _profile
    with _profile_lock:
        if _profile is not None:
            return _profile
        light = hashlib.sha256("\0".join([platform.machine(), platform.system(), _cpu_identity(),
                                           _llvmlite_identity()]).encode()).hexdigest()
        path = directory / f"host-{light[:32]}.profile" if directory else None
        data = _read(path) if path else None
        if data is not None:
            try:
                header, _ = unpack(data, secret)
                if header.get("identity") == light and isinstance(header.get("host"), dict):
                    _profile = {str(k): str(v) for k, v in header["host"].items()}
                    return _profile
            except Corrupt as exc:
                log.debug("bpfjit cache: host profile %s is corrupt (%s); rebuilding", path, exc)
        _profile = dict(compute())
        if path:
            _write(path, pack({"identity": light, "host": _profile}, b"", secret))
        return _profile


def forget_host_profile() -> None:
    """Drop the in-process host profile (tests use it to simulate a new process)."""
    global _profile
    with _profile_lock:
        _profile = None


def entry_key(program_bytes: bytes, layout_fields: dict[str, Any], backend: str,
              host: dict[str, str], bpfjit_version: str) -> str:
    """SHA-256 (hex) of everything that can change the machine code."""
    text = "\n".join(_encode_header({
        "program": hashlib.sha256(program_bytes).hexdigest(), "layout": layout_fields,
        "backend": backend, "format": CODE_FORMAT, "bpfjit": bpfjit_version, "host": host}))
    return hashlib.sha256(text.encode()).hexdigest()


# --- the caches -------------------------------------------------------------------------------

class CodeCache:
    """In-memory LRU of loaded code objects plus the on-disk store of their bytes."""

    def __init__(self, directory: Path | None = None, entries: int = MEMORY_ENTRIES):
        self.directory = directory
        self.entries = entries
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = {"memory_hits": 0, "disk_hits": 0, "misses": 0, "corrupt": 0,
                      "write_failures": 0, "refused": 0}
        self._disk: tuple[Path, bytes] | None = None
        self._checked = False
        self.refused: str | None = None      # why the directory is not used, if it is not

    def disk(self) -> tuple[Path, bytes] | None:
        """(directory, secret key) when the disk cache is usable; checked once, warned once."""
        if not self._checked:
            with self._lock:
                if not self._checked:
                    if self.directory is not None:
                        try:
                            self._disk = (self.directory, open_private(self.directory))
                        except _Refused as exc:
                            self.refused = str(exc)
                            self.stats["refused"] += 1
                            warnings.warn(f"bpfjit: compile cache not used: {exc}",
                                          CacheRefused, stacklevel=5)
                    self._checked = True
        return self._disk

    # memory
    def recall(self, key: str) -> Any | None:
        with self._lock:
            found = self._memory.get(key)
            if found is not None:
                self._memory.move_to_end(key)
                self.stats["memory_hits"] += 1
            return found

    def remember(self, key: str, value: Any) -> None:
        with self._lock:
            self._memory[key] = value
            self._memory.move_to_end(key)
            while len(self._memory) > self.entries:
                self._memory.popitem(last=False)

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()

    # disk
    def path(self, key: str) -> Path | None:
        return self.directory / f"llvm-{key}.bin" if self.directory else None

    def load(self, key: str, program: bytes | None = None) -> tuple[dict[str, Any], bytes] | None:
        """The header and payload stored under ``key``; None if absent, corrupt or forged.

        ``program``: the program's bytes, which the entry must have stored.
        """
        disk = self.disk()
        path = self.path(key) if disk else None
        data = _read(path) if path else None
        if data is None:
            self.stats["misses"] += 1
            return None
        try:
            header, payload = unpack(data, disk[1])
            if header.get("key") != key:
                raise Corrupt("entry belongs to another key")
            if program is not None and header.get("program") != program.hex():
                raise Corrupt("entry was compiled from other program bytes")
        except Corrupt as exc:
            self.stats["corrupt"] += 1
            log.debug("bpfjit cache: %s is corrupt (%s); recompiling", path, exc)
            return None
        self.stats["disk_hits"] += 1
        return header, payload

    def store(self, key: str, header: dict[str, Any], payload: bytes,
              program: bytes | None = None) -> bool:
        disk = self.disk()
        path = self.path(key) if disk else None
        if path is None:
            return False
        if program is not None:
            header = dict(header, program=program.hex())
        ok = _write(path, pack(dict(header, key=key), payload, disk[1]))
        if not ok:
            self.stats["write_failures"] += 1
        return ok
