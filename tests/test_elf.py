"""The object-file loader (``backends/elf.py``): the same results as llvmlite's MCJIT, W^X pages,
freed on drop, and None (never a crash) for anything it does not understand."""
import gc
import os
import platform
import random
import struct
import sys

import pytest

import tracegrad as tg
from op_table import OPS
from tracegrad.backends import elf, llvm, native

pytestmark = pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.machine() == "x86_64"),
                                reason="the loader is for x86-64 Linux; elsewhere MCJIT loads every object")


def mcjit(obj):
    """The object loaded by MCJIT, as where the loader does not apply."""
    engine = llvm._llvm().create_mcjit_compiler(llvm._llvm().parse_assembly(""), llvm._target_machine())
    engine.add_object_file(llvm._llvm().ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return engine


def call(loaded, n_in, fallback=None):
    return native.function(loaded.get_function_address("entry_tuple"), fallback or (lambda *a: "general"), loaded)


def bits(values):
    return [struct.pack("<d", v) for v in values]


def object_of(fn, n):
    graph = llvm._lowered(tg.trace(fn, *[1.0] * n))
    module, _ = llvm._module(graph, graph.fingerprint)
    from tracegrad.backends.llvm_emit import register
    register()
    return llvm.object_code(module.text())


@pytest.mark.parametrize("name, fn, _, points", OPS, ids=[row[0] for row in OPS])
def test_every_op_and_its_gradient_agree_with_mcjit_to_the_bit(name, fn, _, points):
    points = [p if isinstance(p, tuple) else (p,) for p in points]
    n = len(points[0])
    for f in (fn, tg.grad(fn, argnums=tuple(range(n)))):
        obj = object_of(f, n)
        ours, theirs = elf.load(obj), mcjit(obj)
        assert isinstance(ours, elf.Image)
        f_ours, f_theirs = call(ours, n), call(theirs, n)
        for p in points:
            a, b = f_ours(*p), f_theirs(*p)
            assert bits(a) == bits(b), (name, p, a, b)
        assert f_ours(*[1] * n) == "general"


def test_a_large_split_gradient_agrees_with_mcjit(monkeypatch):
    monkeypatch.setattr(llvm, "CHUNK", 40)
    def f(*x):
        return sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2 + tg.sin(x[i]) for i in range(len(x) - 1))
    n = 30
    graph = llvm._lowered(tg.trace(tg.grad(f, argnums=tuple(range(n))), *[0.5] * n))
    module, split = llvm._module(graph, graph.fingerprint)
    assert split
    obj = llvm.object_code(module.text(), 0)
    xs = [0.1 * k - 1.0 for k in range(n)]
    assert bits(call(elf.load(obj), n)(*xs)) == bits(call(mcjit(obj), n)(*xs))


def test_pages_are_never_writable_and_executable():
    image = elf.load(object_of(lambda x: tg.exp(x) * 3.0, 1))
    address = image.get_function_address("k")
    with open("/proc/self/maps") as f:
        for line in f:
            span, perms = line.split()[:2]
            lo, hi = (int(v, 16) for v in span.split("-"))
            if lo <= address < hi:
                assert perms.startswith("r-x"), perms
                break
        else:
            pytest.fail("the code is not mapped")
    assert not any(line.split()[1].startswith("rwx") for line in open("/proc/self/maps")
                   if lo <= int(line.split("-")[0], 16) < hi)


def test_dropped_images_are_unmapped():
    obj = object_of(lambda x, y: tg.sin(x) * y, 2)

    def mappings():
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    gc.collect()
    before = mappings()
    for _ in range(500):
        image = elf.load(obj)
        assert call(image, 2)(0.5, 2.0) == (2 * 0.479425538604203,)
        del image
    gc.collect()
    assert mappings() < before + 20


def test_unknown_input_is_none_never_a_crash():
    obj = object_of(lambda x, y: tg.tanh(x) / y, 2)
    assert elf.load(b"") is None and elf.load(b"\x7fELF") is None and elf.load(obj[:100]) is None
    arm = bytearray(obj)
    arm[18:20] = struct.pack("<H", 183)  # EM_AARCH64
    assert elf.load(bytes(arm)) is None
    rng = random.Random(0)
    for _ in range(300):  # corrupted objects: None or an image (never run here); no exception, no crash
        bad = bytearray(obj)
        for _ in range(rng.randint(1, 8)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        image = elf.load(bytes(bad))
        assert image is None or isinstance(image, elf.Image)


def test_an_unresolved_symbol_or_an_unknown_relocation_is_none():
    module = llvm.Module("unresolved")
    fn = module.function("k", "double", [("double", "x")])
    fn.ret(fn.call("tracegrad_no_such_function", "double", [fn.params[0]]))
    assert elf.load(llvm.object_code(module.text())) is None
    obj = bytearray(object_of(lambda x: tg.exp(x), 1))
    data = bytes(obj)
    shoff, shnum = struct.unpack_from("<Q", data, 40)[0], struct.unpack_from("<H", data, 60)[0]
    for i in range(shnum):
        kind, offset, size = (struct.unpack_from("<I", data, shoff + 64 * i + 4)[0],
                              *struct.unpack_from("<QQ", data, shoff + 64 * i + 24))
        if kind == 4 and size:  # SHT_RELA: make the first relocation a GOT one (R_X86_64_GOTPCREL)
            obj[offset + 8:offset + 12] = struct.pack("<I", 9)
            break
    else:
        pytest.fail("no relocations")
    assert elf.load(bytes(obj)) is None


def test_the_backend_falls_back_to_mcjit_where_the_loader_does_not_apply(monkeypatch, tmp_path):
    monkeypatch.setattr(elf, "load", lambda obj: None)
    f = tg.jit(tg.grad(lambda x, y: tg.sin(x) * tg.exp(y), argnums=(0, 1)), cache_dir=tmp_path)
    k = llvm.compile(tg.trace(lambda x: x * 3.0, 1.0))
    assert not isinstance(k._engine, elf.Image) and k(2.0) == (6.0,)
    assert f(0.5, 0.0) == pytest.approx((0.8775825618903728, 0.479425538604203), rel=1e-15)


def test_a_kernel_from_the_disk_cache_is_the_same_in_a_fresh_process(tmp_path):
    import subprocess
    code = ("import sys, tracegrad as tg\n"
            "df = tg.jit(tg.grad(lambda x, y: tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2), argnums=(0, 1)))\n"
            "print(repr(df(0.3, 0.7)), repr(df(2, 0.7)), 'llvmlite' in sys.modules)")
    env = dict(os.environ, TRACEGRAD_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            .stdout.split(") ") for _ in range(2)]
    assert runs[0][:2] == runs[1][:2]  # the same floats, compiled then loaded
    assert runs[0][2].strip() == "True" and runs[1][2].strip() == "False"


def test_the_target_id_follows_the_cpu_the_requested_target_and_llvmlite(monkeypatch):
    from tracegrad.backends import host
    cpu, library = host._cpuinfo(), host._llvmlite_file()
    assert cpu is not None and library is not None  # on x86-64 Linux the id needs no llvmlite

    def target_id(cpu=cpu, library=library, request=None):
        monkeypatch.setattr(host, "_cpuinfo", lambda: cpu)
        monkeypatch.setattr(host, "_llvmlite_file", lambda: library)
        if request is None:
            monkeypatch.delenv("TRACEGRAD_CPU", raising=False)
        else:
            monkeypatch.setenv("TRACEGRAD_CPU", request)
        host.target_id.cache_clear()
        try:
            return host.target_id()
        finally:
            host.target_id.cache_clear()
    base = target_id()
    assert target_id(request="host") == base and target_id(request="generic") != base
    assert target_id(cpu=dict(cpu, flags=cpu["flags"].replace("avx2", ""))) != base
    assert target_id(cpu=dict(cpu, model=cpu["model"] + "1")) != base
    assert target_id(library=(library[0], library[1] + 1, library[2])) != base


def test_an_image_is_shared_by_copies_and_does_not_pickle():
    """Copies of loaded code are the code itself (a copy that unmapped it would crash the original),
    pickling is a TypeError, and only the loader makes images."""
    import copy
    import pickle
    image = elf.load(object_of(lambda x, y: x * y + 1.0, 2))
    assert image is not None
    assert copy.copy(image) is image and copy.deepcopy(image) is image
    with pytest.raises(TypeError, match="does not pickle"):
        pickle.dumps(image)
    with pytest.raises(TypeError, match="made by"):
        elf.Image(image.get_function_address("k"), 4096, {})
    f = tg.jit(lambda x: x * 2.0)
    f(1.0)
    try:
        copy.deepcopy(f)
    except (TypeError, ValueError):
        pass
    assert f(3.0) == 6.0


@pytest.mark.parametrize("junk", [b"", b"\x7fELF" + b"\0" * 100, 2 ** 31, "text", None])
def test_junk_is_not_loaded(junk):
    assert elf.load(junk) is None


def test_code_is_not_cached_where_cpuinfo_hides_a_feature_llvm_uses(monkeypatch, tmp_path):
    """A kernel booted with ``clearcpuid=avx2`` still lets LLVM use AVX2: its code, keyed by
    cpuinfo, could reach a CPU without AVX2, so it is compiled but not written to the cache."""
    from tracegrad.backends import host as host_module, llvm
    if not (sys.platform.startswith("linux") and platform.machine() == "x86_64" and host_module._cpuinfo()):
        pytest.skip("cpuinfo-keyed caching is for x86-64 Linux")
    assert host_module.cpuinfo_covers_target()
    info = dict(host_module._cpuinfo())
    info["flags"] = "fpu sse sse2"  # what a kernel hiding everything past the baseline would list
    monkeypatch.setattr(host_module, "_cpuinfo", lambda: info)
    host_module.cpuinfo_covers_target.cache_clear()
    monkeypatch.setenv("TRACEGRAD_CACHE_DIR", str(tmp_path))
    try:
        covered = host_module.cpuinfo_covers_target()
        obj = llvm.cached_object("define double @f(double %x) {\n  ret double %x\n}\n")
    finally:
        host_module.cpuinfo_covers_target.cache_clear()
    beyond_baseline = bool(host_module.host().flags & host_module._V4 - {"sse", "sse2"})
    assert obj and covered == (not beyond_baseline)
    assert bool(list(tmp_path.rglob("*.o"))) == covered
