"""Backends turn a ``Graph`` into a kernel: a callable of floats returning a sequence of floats.

Each backend is a module with ``compile(graph)`` and ``source(graph)``, imported on
first use so that ``import tracegrad`` stays light. Everything compiled (kernels, row
maps, training loops) is kept in one bounded LRU in memory (``cached``), keyed by graph
fingerprint (or module text), backend and variant; an evicted llvm artefact frees its
machine code once nothing else holds it. It is safe to use from several threads. On
disk, each backend keys its entries by the code version too (``cache``).

With no backend named, graphs of every size go to llvm (``DEFAULT``): its kernels are
called as native function objects, faster than generated Python even for tiny graphs
(see docs/backends.md for the measurements).

>>> import tracegrad as tg
>>> kernel = compile(tg.trace(lambda x: x + 1.0, 0.0), "python")
>>> kernel(1.0)
(2.0,)
"""
import importlib
import threading
from collections import OrderedDict

from . import cache

NAMES = ("interp", "python", "llvm", "numba", "sympy")
DEFAULT = "llvm"
_CACHE_SIZE = 1024
_cache = OrderedDict()
_lock = threading.Lock()


def module(name):
    """The backend module called ``name``; a clear ``ValueError`` for unknown names."""
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def compile(graph, backend=None, cache_dir=None):
    """The compiled kernel of ``graph`` for ``backend`` (default: ``DEFAULT``), cached.

    ``cache_dir`` overrides where artefacts are stored on disk for this compile.
    """
    backend = backend or DEFAULT

    def build():
        with cache.using(cache_dir):
            return module(backend).compile(graph)
    return cached((graph.fingerprint, backend, None), build)


def cached(key, build):
    """The artefact stored under ``key`` = (fingerprint, backend, variant), else ``build()``, stored.

    The one in-memory cache of compiled code: least recently used entries go first,
    past ``_CACHE_SIZE``.
    """
    with _lock:
        value = _cache.get(key)
        if value is not None:
            _cache.move_to_end(key)
            return value
    value = build()
    with _lock:
        _cache[key] = value
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def llvm_lanes():
    """SIMD width (doubles) of the host, as the llvm backend's lane kernels use it."""
    return module("llvm").lanes()


def source(graph, backend=None):
    """The code ``backend`` generates for ``graph``, as text."""
    return module(backend or DEFAULT).source(graph)
