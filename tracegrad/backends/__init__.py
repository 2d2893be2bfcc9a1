"""Backends turn a ``Graph`` into a kernel: a callable of floats returning a list of floats.

Each backend is a module with ``compile(graph)`` and ``source(graph)``, imported on
first use so that ``import tracegrad`` stays light. Kernels are cached in memory per
(graph fingerprint, backend), in a bounded LRU, safe to use from several threads.

>>> import tracegrad as tg
>>> kernel = compile(tg.trace(lambda x: x + 1.0, 0.0), "python")
>>> kernel(1.0)
(2.0,)
"""
import importlib
import threading
from collections import OrderedDict

NAMES = ("interp", "python")
DEFAULT = "python"
_CACHE_SIZE = 1024
_cache = OrderedDict()
_lock = threading.Lock()


def module(name):
    """The backend module called ``name``; a clear ``ValueError`` for unknown names."""
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def compile(graph, backend=None):
    """The compiled kernel of ``graph`` for ``backend`` (default: ``DEFAULT``), cached."""
    backend = backend or DEFAULT
    key = (graph.fingerprint, backend)
    with _lock:
        kernel = _cache.get(key)
        if kernel is not None:
            _cache.move_to_end(key)
            return kernel
    kernel = module(backend).compile(graph)
    with _lock:
        _cache[key] = kernel
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return kernel


def source(graph, backend=None):
    """The code ``backend`` generates for ``graph``, as text."""
    return module(backend or DEFAULT).source(graph)
