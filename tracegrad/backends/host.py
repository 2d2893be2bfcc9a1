"""The machine compiled code is built for, described once: CPU, features, SIMD lanes, vector math.

Every code-generation choice asks this record (``host()``); none infers the instruction
set from a vector width. By default it describes this machine. ``TRACEGRAD_CPU`` names
another target, for code that must run on other machines too (a cache shared between
hosts, a cluster of mixed CPUs, or tests that must pass on every CPU):

- ``generic``: the architecture's baseline (x86-64: SSE2, 2 lanes; AArch64: NEON);
- ``x86-64-v2``, ``x86-64-v3`` (AVX2, 4 lanes), ``x86-64-v4`` (AVX-512, 8 lanes);
- ``host`` (or unset): this machine's own CPU.

A target this machine cannot run is refused with a ``ValueError``, never run.

``target_id()`` names what compiled code depends on besides the graph (this target, the
compiler, the Python ABI) for cache keys. On x86-64 Linux it is read without llvmlite, from
the CPU the kernel reports (``/proc/cpuinfo``: vendor, family, model, stepping, flags),
``TRACEGRAD_CPU`` and the identity of llvmlite's library file, so that a process whose
kernels are all in the disk cache never imports llvmlite. Two machines with the same
``target_id`` get the same ``host()``: the same CPU model and flags give LLVM the same
answer; any difference in them (another CPU, a hypervisor hiding AVX-512, another llvmlite)
gives another id, and code compiled afresh.

>>> avx2 = {"sse": True, "sse2": True, "avx": True, "avx2": True, "fma": True, "avx512f": False}
>>> h = describe("generic", "haswell", avx2, "x86_64-unknown-linux-gnu")
>>> h.cpu, h.lanes, h.vector_variant(8)
('x86-64', 2, ('b', 2))
>>> describe(None, "haswell", avx2, "x86_64-unknown-linux-gnu").vector_variant(8)
('d', 4)
"""
import dataclasses
import functools
import hashlib
import os
import sys

# What each x86-64 micro-architecture level guarantees (the features code generation asks about).
_V1 = frozenset({"sse", "sse2"})
_V2 = _V1 | {"sse3", "ssse3", "sse4.1", "sse4.2", "popcnt"}
_V3 = _V2 | {"avx", "avx2", "fma", "bmi", "bmi2", "f16c", "lzcnt", "movbe"}
_V4 = _V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
_X86_LEVELS = {"x86-64": _V1, "x86-64-v2": _V2, "x86-64-v3": _V3, "x86-64-v4": _V4}
_GENERIC = {"x86_64": ("x86-64", _V1), "aarch64": ("generic", frozenset({"neon"}))}

# glibc's libmvec variants (x86-64 vector ABI letter, doubles per call) and the feature each needs.
_LIBMVEC = (("e", 8, "avx512f"), ("d", 4, "avx2"), ("b", 2, "sse2"))
_LANES = (("avx512f", 8), ("avx", 4), ("sse2", 2), ("neon", 2))


@dataclasses.dataclass(frozen=True)
class Host:
    """A compilation target: LLVM's ``cpu`` name and ``features`` string, what it guarantees
    (``flags``), doubles per SIMD register (``lanes``), and the libmvec variants it may
    call (``vector_variants``, widest first)."""
    cpu: str
    features: str
    flags: frozenset
    lanes: int
    vector_variants: tuple

    def vector_variant(self, width):
        """The libmvec variant ``(letter, doubles)`` for a ``width``-lane value, or None for scalar calls.

        The widest one this target may run whose width divides ``width``: a value wider
        than the target's registers is computed a part at a time.
        """
        for letter, doubles in self.vector_variants:
            if doubles <= width and width % doubles == 0:
                return letter, doubles
        return None


def describe(request, host_cpu, host_features, triple):
    """The ``Host`` for a ``TRACEGRAD_CPU`` value (``None`` or ``"host"``: this machine).

    ``host_features`` maps LLVM feature names to whether this machine has them; the
    ones it lacks are passed to LLVM too, since a virtual machine may hide features
    that its CPU's name implies.
    """
    arch = triple.split("-", 1)[0]
    host_flags = frozenset(name for name, on in host_features.items() if on)
    if request in (None, "", "host"):
        cpu, flags = host_cpu, host_flags
        features = ",".join(("+" if on else "-") + name for name, on in sorted(host_features.items()))
    else:
        if request == "generic" and arch in _GENERIC:
            cpu, flags = _GENERIC[arch]
        elif arch == "x86_64" and request in _X86_LEVELS:
            cpu, flags = request, _X86_LEVELS[request]
        else:
            choices = ["host", "generic"] + (list(_X86_LEVELS) if arch == "x86_64" else [])
            raise ValueError(f"TRACEGRAD_CPU={request!r} is not a target tracegrad knows on {arch}; "
                             f"use one of {', '.join(choices)}")
        missing = flags - host_flags if request != "generic" else ()  # the baseline runs on every CPU
        if missing:
            raise ValueError(f"TRACEGRAD_CPU={request!r} needs {', '.join(sorted(missing))}, which this CPU "
                             f"({host_cpu}) lacks: its code would not run here; use 'generic' or 'host'")
        features = ""
    lanes = next((w for flag, w in _LANES if flag in flags), 1)
    variants = tuple((letter, doubles) for letter, doubles, need in _LIBMVEC if arch == "x86_64" and need in flags)
    return Host(cpu, features, flags, lanes, variants)


@functools.lru_cache(maxsize=None)
def host():
    """The target of this process, from ``TRACEGRAD_CPU`` and this machine (computed once)."""
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    return describe(os.environ.get("TRACEGRAD_CPU"), llvm.get_host_cpu_name(), dict(llvm.get_host_cpu_features()),
                    llvm.get_process_triple())


_CPUINFO_KEYS = ("vendor_id", "cpu family", "model", "model name", "stepping", "flags")


def _cpuinfo():
    """The fields of the first processor in ``/proc/cpuinfo`` that say what it can run, or None."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:  # the first block only: later ones cost time on a large machine
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                if key.strip() in _CPUINFO_KEYS:
                    fields[key.strip()] = value.strip()
    except OSError:
        return None
    return fields if len(fields) == len(_CPUINFO_KEYS) and fields["flags"] else None


def _llvmlite_file():
    """``(path, size, mtime)`` of llvmlite's shared library, found without importing llvmlite, or None."""
    import importlib.machinery
    try:
        module = sys.modules.get("llvmlite")  # the one in use, else the one an import would find
        folder = os.path.dirname(module.__file__) if module else importlib.machinery.PathFinder.find_spec(
            "llvmlite").submodule_search_locations[0]
        path = os.path.join(folder, "binding", "libllvmlite.so")
        st = os.stat(path)
    except (AttributeError, ImportError, IndexError, OSError, TypeError, ValueError):
        return None
    return path, st.st_size, st.st_mtime_ns


_CPUINFO_NAMES = {"sse3": "pni", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "lzcnt": "abm", "bmi": "bmi1"}


@functools.lru_cache(maxsize=None)
def cpuinfo_covers_target():
    """Whether ``/proc/cpuinfo`` lists every feature (of the x86-64 levels) that ``host()``
    compiles for. Where it does not (a kernel booted to hide a feature its CPU still has, which
    LLVM then uses), code kept under ``target_id()`` could reach a CPU without the feature, so
    it is not written to the disk cache. True where ``target_id`` does not read cpuinfo."""
    cpu = _cpuinfo() if sys.platform.startswith("linux") and os.uname().machine == "x86_64" else None
    if cpu is None:
        return True
    listed = set(cpu["flags"].split())
    return all(_CPUINFO_NAMES.get(name, name) in listed for name in host().flags & _V4)


@functools.lru_cache(maxsize=None)
def target_id():
    """A short hash of what compiled code depends on besides the graph (see the module docstring)."""
    abi = f"{sys.implementation.cache_tag} {object.__basicsize__} {float.__basicsize__}"  # offsets entries read
    cpu, library = None, None
    if sys.platform.startswith("linux") and os.uname().machine == "x86_64":
        cpu, library = _cpuinfo(), _llvmlite_file()
    if cpu is not None and library is not None:
        request = os.environ.get("TRACEGRAD_CPU") or "host"  # no entry exists for one host() refuses
        text = f"cpuinfo {sorted(cpu.items())} request {request} llvmlite {library} {abi}"
    else:
        import llvmlite
        text = f"target {host().cpu} {host().features} llvmlite {llvmlite.__version__} {abi}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
