"""``import tracegrad`` loads only what it needs: no sympy, numba, torch, graphviz, matplotlib, llvmlite or dask."""
import json
import os
import platform
import subprocess
import sys

import pytest

HEAVY = ("sympy", "numba", "torch", "graphviz", "matplotlib", "llvmlite", "jax", "dask", "distributed")


def loaded_after(code, cache_dir=None):
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    env = dict(os.environ, **({"TRACEGRAD_CACHE_DIR": str(cache_dir)} if cache_dir else {}))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_is_light():
    assert loaded_after("import tracegrad") & set(HEAVY) == set()


def test_import_and_scalar_code_do_not_load_numpy():
    assert "numpy" not in loaded_after("import tracegrad")
    assert "numpy" not in loaded_after("import tracegrad as tg\n"
                                       "assert tg.jit(tg.grad(lambda x, y: tg.sin(x) * y, argnums=(0, 1)))(0.0, 2.0) "
                                       "== (2.0, 0.0)\nassert tg.Value(2.0).tanh().data == tg.tanh(2.0)")


def test_nn_and_logsumexp_load_on_first_use():
    import tracegrad as tg
    assert "nn" in dir(tg) and tg.logsumexp is tg.nn.logsumexp
    assert {"numpy"} <= loaded_after("import tracegrad as tg\ntg.nn")
    out = subprocess.run([sys.executable, "-c", "from tracegrad import *; print(nn.MLP.__name__, logsumexp([0.0]))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["MLP", "0.0"]


def test_a_grad_compiles_with_llvmlite_only_and_runs_from_the_disk_cache_without_it(tmp_path):
    code = "import tracegrad as tg\nassert tg.grad(lambda x: x * x)(3.0) == 6.0"
    assert loaded_after(code, tmp_path) & set(HEAVY) == {"llvmlite"}  # compiled
    warm = loaded_after(code, tmp_path) & set(HEAVY)  # loaded from the disk cache
    assert warm == (set() if sys.platform.startswith("linux") and platform.machine() == "x86_64" else {"llvmlite"})


def test_heavy_parts_load_on_first_use(tmp_path):
    assert "sympy" in loaded_after("import tracegrad as tg\ntg.export_sympy(lambda x: x * x)")
    assert "llvmlite" in loaded_after("import tracegrad as tg\ntg.jit(lambda x: x, backend='llvm')(1.0)", tmp_path)


def test_vmap_and_fit_on_numpy_do_not_load_dask():
    loaded = loaded_after("import numpy as np, tracegrad as tg\n"
                          "tg.vmap(lambda x: x * x)(np.ones(3))\n"
                          "tg.nn.Trainer(tg.nn.MLP(1, [1])).fit(np.ones((2, 1)), np.ones(2), progress=False)")
    assert {"dask", "distributed"} & loaded == set()
    assert "dask" in loaded_after("import dask.array as da, tracegrad as tg\ntg.vmap(lambda x: x * x)(da.ones(3))")


def test_unknown_attribute_is_an_attribute_error():
    import tracegrad as tg
    with pytest.raises(AttributeError, match="no attribute 'exportsympy'"):
        tg.exportsympy
