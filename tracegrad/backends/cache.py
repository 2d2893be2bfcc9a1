"""Where compiled artefacts live on disk: one file per graph fingerprint, written atomically.

The directory is, in order: the one set by ``using(path)`` (``tg.jit(f, cache_dir=...)``),
``$TRACEGRAD_CACHE_DIR``, ``$XDG_CACHE_HOME/tracegrad`` or ``~/.cache/tracegrad``; if that
cannot be written, or others can write to it, a private temporary directory that is removed
when the process ends. Directories it creates are private (mode 0700) whatever the umask. Binary entries
carry a header with their key and a SHA-256 of the payload, so a corrupt or foreign file
is detected and never loaded.

>>> import tempfile, os
>>> with using(tempfile.mkdtemp()) as base:
...     path = write_entry(os.path.join(cache_dir("demo"), "x.bin"), "key-1", b"payload")
...     read_entry(path, "key-1"), read_entry(path, "key-2")
(b'payload', None)

Generated Python is never run from these files (see ``backends.python.load``), and
numba's pickled cache files are checked against a manifest before numba reads them.
"""
import atexit
import contextlib
import contextvars
import hashlib
import os
import shutil
import tempfile

_fallback = None
_override = contextvars.ContextVar("tracegrad_cache_dir", default=None)
_MAGIC = b"tracegrad-cache-1\n"


@contextlib.contextmanager
def using(path):
    """Within the block, artefacts go under ``path`` (None: the default directory)."""
    token = _override.set(None if path is None else os.fspath(path))
    try:
        yield path
    finally:
        _override.reset(token)


def base_dir():
    """The cache directory in effect (see the module docstring)."""
    return _override.get() or os.environ.get("TRACEGRAD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tracegrad")


def cache_dir(subdir):
    """The directory for ``subdir`` artefacts, created if needed."""
    global _fallback
    base = base_dir()
    path = os.path.join(base, subdir)
    try:
        for directory in (base, path):  # each made 0700 itself: makedirs gives parents the umask's mode
            os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.access(path, os.W_OK) and private(base) and private(path):
            return path
    except OSError:
        pass
    if _fallback is None:
        _fallback = tempfile.mkdtemp(prefix="tracegrad-")  # mode 0700, removed when the process ends
        atexit.register(shutil.rmtree, _fallback, ignore_errors=True)
    path = os.path.join(_fallback, subdir)
    os.makedirs(path, exist_ok=True)
    return path


def private(path):
    """True if ``path`` belongs to this user and nobody else can write to it.

    Compiled code is loaded from the cache, so a directory that others can write is
    not used (the checksums would not stop someone who can write the files).
    """
    if not hasattr(os, "getuid"):
        return True
    st = os.stat(path)
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _replace(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def write_text(path, text):
    """Make ``path`` hold exactly ``text``: an existing file that differs (corrupt, foreign) is replaced."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return path
    except (OSError, UnicodeDecodeError):
        pass
    return _replace(path, text.encode("utf-8"))


def write_entry(path, key, payload):
    """Store ``payload`` (bytes) at ``path`` under ``key``, atomically, with a checksum."""
    header = _MAGIC + key.encode() + b"\n" + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    return _replace(path, header + payload)


def read_entry(path, key):
    """The payload stored at ``path`` under ``key``; None if missing, corrupt or written for another key."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    prefix = _MAGIC + key.encode() + b"\n"
    if not data.startswith(prefix) or len(data) < len(prefix) + 65:
        return None
    digest, payload = data[len(prefix):len(prefix) + 64], data[len(prefix) + 65:]
    return payload if hashlib.sha256(payload).hexdigest().encode() == digest else None
