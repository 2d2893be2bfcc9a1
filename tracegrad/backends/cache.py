"""Where generated code lives on disk: one file per graph fingerprint, written atomically.

The directory is ``$TRACEGRAD_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/tracegrad``
or ``~/.cache/tracegrad``; if that cannot be written, a temporary directory.
"""
import os
import tempfile

_fallback = None


def cache_dir(subdir):
    """The directory for ``subdir`` artefacts, created if needed."""
    global _fallback
    base = os.environ.get("TRACEGRAD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tracegrad")
    path = os.path.join(base, subdir)
    try:
        os.makedirs(path, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    if _fallback is None:
        _fallback = tempfile.mkdtemp(prefix="tracegrad-")
    path = os.path.join(_fallback, subdir)
    os.makedirs(path, exist_ok=True)
    return path


def write_text(path, text):
    """Make ``path`` hold exactly ``text``: an existing file that differs (corrupt, foreign) is replaced."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return path
    except (OSError, UnicodeDecodeError):
        pass
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path
