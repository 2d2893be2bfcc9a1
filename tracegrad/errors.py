"""Error types of tracegrad, the helper that points at the user's source line, and the
check that a traced function can take its arguments."""
import inspect
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


def check_arguments(fn, args):
    """Raise a ``TypeError`` naming ``fn`` and its parameters if ``fn(*args)`` cannot bind.

    Run before tracing, so that a wrong number of arguments is reported as such, not as
    an error from inside the trace. Functions whose signature is unknown pass.

    >>> def f(x, y): return x * y
    >>> check_arguments(f, (1.0,))
    Traceback (most recent call last):
    ...
    TypeError: f(x, y) was called with 1 argument: missing a required argument: 'y'; pass one value (a float or a pytree of floats) per parameter, positionally
    """
    try:
        signature = inspect.signature(fn, follow_wrapped=False)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args)
    except TypeError as e:
        name = getattr(fn, "__qualname__", None) or type(fn).__name__
        count = f"{len(args)} argument" + ("" if len(args) == 1 else "s")
        raise TypeError(f"{name}{str(signature):.200} was called with {count}: {e}; pass one value "
                        "(a float or a pytree of floats) per parameter, positionally") from None
