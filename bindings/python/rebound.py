"""rebound for Python applications: librebound through ctypes (standard library only,
so it runs on a device without pip).

    import rebound
    rebound.write("/data/etc/app.conf", b"threshold=20\\n")   # replace + commit, atomically
    rebound.commit("/data/etc/net.conf")                    # after an in-place edit
    rebound.verify()                                         # raises DamageFound on damage
    rebound.boot()                                           # repairs
    rebound.status()                                         # rebound status --json, parsed

The module-level functions use one handle on the configuration the command line would
use ($REBOUND_CONFIG, else /etc/rebound.toml); ``rebound.open(path)`` gives a handle on
another (a ``Rebound``, also a context manager). Every call returns None or raises:

    ReboundError   status 2: usage, configuration, I/O error, lock still held
    DamageFound    status 1 (verify only): damage that a boot would repair
    Lost           status 3: a file has no intact copy left

each with ``.status`` (the command line's exit status) and ``.message`` (the library's
text: the file and what to do). The library is $REBOUND_LIB if set, else
librebound.so.0 as the dynamic loader finds it (``ctypes.util.find_library``).
"""

import ctypes
import ctypes.util
import json
import os
import threading

__all__ = [
    "ReboundError",
    "DamageFound",
    "Lost",
    "Rebound",
    "open",
    "write",
    "commit",
    "verify",
    "boot",
    "status",
]


class ReboundError(Exception):
    """A librebound call that did not succeed: ``status`` is its exit status (2 for an
    error), ``message`` the library's explanation."""

    def __init__(self, status, message):
        super().__init__(message or "rebound: status %d" % status)
        self.status = status
        self.message = message


class DamageFound(ReboundError):
    """Status 1: verify found damage that a boot would repair (listed in message)."""


class Lost(ReboundError):
    """Status 3: some file has no intact copy left (named in message)."""


_lib = None
_lib_lock = threading.Lock()


def _load():
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        name = os.environ.get("REBOUND_LIB") or ctypes.util.find_library("rebound") or "librebound.so.0"
        try:
            lib = ctypes.CDLL(name)
        except OSError as e:
            raise ReboundError(
                2,
                "cannot load librebound (%s): %s; install librebound.so.0 where the "
                "dynamic loader finds it, or set REBOUND_LIB to its path" % (name, e),
            ) from None
        p, s = ctypes.c_void_p, ctypes.c_char_p
        lib.rebound_open.argtypes, lib.rebound_open.restype = [s], p
        lib.rebound_close.argtypes, lib.rebound_close.restype = [p], None
        lib.rebound_set_wait.argtypes, lib.rebound_set_wait.restype = [p, ctypes.c_uint32], ctypes.c_int
        lib.rebound_write.argtypes = [p, s, ctypes.c_char_p, ctypes.c_size_t]
        lib.rebound_write.restype = ctypes.c_int
        for f in (lib.rebound_commit, lib.rebound_boot, lib.rebound_verify):
            f.argtypes, f.restype = [p, s], ctypes.c_int
        # c_void_p, not c_char_p: the string must be freed by the library.
        lib.rebound_status_json.argtypes, lib.rebound_status_json.restype = [p], p
        lib.rebound_free_string.argtypes, lib.rebound_free_string.restype = [p], None
        lib.rebound_last_error.argtypes, lib.rebound_last_error.restype = [], s
        _lib = lib
        return lib


def _path(p):
    """A path argument as bytes (str is encoded as the file system does, so a name
    that is not UTF-8 reaches the library, which refuses it with a message)."""
    return None if p is None else os.fsencode(p)


def _check(lib, status):
    if status == 0:
        return None
    message = (lib.rebound_last_error() or b"").decode("utf-8", "replace")
    cls = {1: DamageFound, 3: Lost}.get(status, ReboundError)
    raise cls(status, message)


class Rebound:
    """A handle on one configuration file (None: $REBOUND_CONFIG, else
    /etc/rebound.toml). Safe to share between threads. Close it (or use ``with``)."""

    def __init__(self, config=None, wait=None):
        self._lib = _load()
        self._h = self._lib.rebound_open(_path(config))
        if not self._h:
            _check(self._lib, 2)
        if wait is not None:
            self.set_wait(wait)

    def close(self):
        if self._h:
            self._lib.rebound_close(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _handle(self):
        if not self._h:
            raise ReboundError(2, "this rebound handle is closed")
        return self._h

    def set_wait(self, seconds):
        """How long writers wait for another rebound's lock (default 60 s)."""
        _check(self._lib, self._lib.rebound_set_wait(self._handle(), int(seconds)))

    def write(self, path, data):
        """Replaces the protected file ``path`` with ``data`` (bytes, or str written as
        UTF-8) and commits it, as one power-fail-safe change; keeps its recorded mode."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        data = bytes(data)
        _check(self._lib, self._lib.rebound_write(self._handle(), _path(path), data, len(data)))

    def commit(self, path):
        """Records the content the protected file ``path`` has now."""
        _check(self._lib, self._lib.rebound_commit(self._handle(), _path(path)))

    def verify(self, set=None):
        """Checks ``set`` (None: every set); writes nothing. Raises DamageFound (1),
        Lost (3) or ReboundError (2)."""
        _check(self._lib, self._lib.rebound_verify(self._handle(), None if set is None else set.encode()))

    def boot(self, set=None):
        """Verifies and repairs ``set`` (None: every set), as ``rebound boot``."""
        _check(self._lib, self._lib.rebound_boot(self._handle(), None if set is None else set.encode()))

    def status(self):
        """``rebound status --json``, parsed: a list with one dict per set."""
        p = self._lib.rebound_status_json(self._handle())
        if not p:
            _check(self._lib, 2)
        try:
            return json.loads(ctypes.string_at(p).decode("utf-8"))
        finally:
            self._lib.rebound_free_string(p)


def open(config=None, wait=None):  # noqa: A001 (the module's API: rebound.open)
    """A handle on ``config`` (None: $REBOUND_CONFIG, else /etc/rebound.toml)."""
    return Rebound(config, wait)


_default = None
_default_lock = threading.Lock()


def _shared():
    global _default
    with _default_lock:
        if _default is None:
            _default = Rebound()
        return _default


def write(path, data):
    """``Rebound.write`` on the default configuration."""
    _shared().write(path, data)


def commit(path):
    """``Rebound.commit`` on the default configuration."""
    _shared().commit(path)


def verify(set=None):
    """``Rebound.verify`` on the default configuration."""
    _shared().verify(set)


def boot(set=None):
    """``Rebound.boot`` on the default configuration."""
    _shared().boot(set)


def status():
    """``Rebound.status`` on the default configuration."""
    return _shared().status()
