"""Error types of tracegrad and the helper that points at the user's source line."""
import os
import sys
import linecache

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class TracingError(Exception):
    """Raised when a traced function does something that cannot be recorded.

    Example: ``if x > 0:`` on a traced ``x`` raises it; use ``tg.where(x > 0, a, b)``.

    >>> import tracegrad as tg
    >>> def f(x):
    ...     return x if x > 0 else -x
    >>> try:
    ...     tg.grad(f)(1.0)
    ... except tg.TracingError as e:
    ...     print("use tg.where" in str(e))
    True
    >>> tg.grad(lambda x: tg.where(x > 0, x, -x))(1.0)
    1.0
    """


def user_location():
    """Return ``"file.py:12 (`source line`)"`` for the innermost frame outside tracegrad."""
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "an unknown location"
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    line = linecache.getline(filename, lineno).strip()
    where = f"{os.path.basename(filename)}:{lineno}"
    return f"{where} (`{line}`)" if line else where
