"""Hostile input: user strings never reach generated code, untrusted JSON graphs are validated
completely, and tampered cache files are rebuilt, never loaded."""
import html
import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracegrad as tg
from tracegrad import backends
from tracegrad.backends import cache
from tracegrad.ir import evaluate
from tracegrad.transforms import jvp_graph, vjp_graph

EVIL = ['"', "'", "\n", "}", "{", "\\", "<", ">", "&", "%", "@", ";", "`", "$", "#"]
PAYLOAD = "EVIL\"'\n}__import__('os').system('touch /tmp/tg-pwned')#{<b>\\N&amp;"


def hostile_function():
    """A function whose name, qualified name, docstring and pytree keys are hostile strings."""
    def fn(x, params):
        return tg.sin(x) * params[PAYLOAD] + params["a'b\"c"]
    fn.__name__ = fn.__qualname__ = fn.__doc__ = PAYLOAD
    fn.__module__ = PAYLOAD
    return fn, (1.0, {PAYLOAD: 2.0, "a'b\"c": 3.0})


def assert_clean(text):
    for word in ("EVIL", "__import__", "pwned", "a'b"):
        assert word not in text


@pytest.mark.parametrize("backend", ["python", "numba", "llvm"])
def test_names_never_reach_generated_code(backend):
    fn, args = hostile_function()
    for function in (tg.jit(fn, backend=backend), tg.grad(fn, argnums=(0, 1), backend=backend)):
        function._entry(args)
        assert_clean(function.source)
    assert tg.jit(fn, backend=backend)(*args) == pytest.approx(tg.jit(fn, backend="interp")(*args))


def test_generated_python_uses_only_generated_names():
    fn, args = hostile_function()
    source = tg.grad(fn, argnums=(0, 1), backend="python")
    source._entry(args)
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source.source.split("\n", 1)[1]))
    allowed = {"from", "tracegrad", "backends", "python_runtime", "import", "def", "kernel", "return",
               "if", "else", "inf", "nan", "e"} | set(backends.module("python").TABLE)
    assert {n for n in names if not re.fullmatch(r"[xv]\d+", n)} <= allowed


def test_hostile_names_in_printed_ir_and_sympy_are_sanitized():
    fn, args = hostile_function()
    graph = tg.trace(fn, *args)
    assert all(name.isidentifier() for name in graph.names)
    assert "('os')" not in str(graph) and len(str(graph).splitlines()) == 5  # identifiers, no quotes or newlines
    expr = tg.export_sympy(fn, *args)
    assert all(s.name.isidentifier() for s in expr.free_symbols)


def _dot_labels_are_text(dot, labels):
    source = dot.source
    for label in labels:
        assert html.escape(label) in source and label not in source  # shown as escaped text only
    if shutil.which("dot"):  # graphviz parses it, with one node per dot.node call and the labels as text
        svg = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, check=True).stdout
        declared = [line for line in source.splitlines() if re.match(r"\tn\w+ \[label=<", line)]
        assert svg.count(b'class="node"') == len(declared)
        assert b"EVIL" in svg and b"<b>" not in svg


def test_draw_escapes_value_labels():
    x = tg.Value(2.0, label=PAYLOAD)
    y = (x * x).tanh()
    y.label = 'y"]; n0 -> n1 [label="pwn'
    y.backward()
    _dot_labels_are_text(tg.draw(y), [PAYLOAD, y.label])


def test_draw_of_a_handmade_micrograd_node_escapes_its_op_string():
    a = tg.Value(1.0, label="a")
    node = tg.Value(2.0, (a,), _op='"]; evil [label="x')
    source = tg.draw(node).source
    assert '"]; evil' not in source and "&quot;]; evil [label=&quot;x" in source   # shown as text


def test_draw_escapes_graph_names():
    graph = tg.trace(lambda params: params[PAYLOAD] * 2.0, {PAYLOAD: 1.0})
    source = tg.draw(graph).source
    assert "__import__('os')" not in source and "\n}" not in source.split("\n", 1)[1][:-3]


# ---------------------------------------------------------------- untrusted JSON graphs

def _example_graphs():
    @tg.custom_vjp
    def clip(x):
        return tg.minimum(x, 1.0)
    clip.defvjp(lambda g, out, x: (g,))
    return [tg.trace(lambda x, y: tg.where(x > y, tg.sin(x) ** 3, x * y + 2.0), 1.0, 2.0),
            tg.grad(lambda x: clip(x) * tg.exp(x)).graph]


GRAPHS = [json.loads(g.to_json()) for g in _example_graphs()]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 12) | st.floats(allow_nan=False) |
    st.sampled_from(["add", "mul", "powc", "input", "const", "where", "0x1p+0", "nan", "vjp", "jvp", "x"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10)


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_graph_json(draw):
    data = json.loads(json.dumps(draw(st.sampled_from(GRAPHS))))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(data))))
        if not path:
            continue
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        kind = draw(st.sampled_from(["replace", "delete", "duplicate", "nudge"]))
        if kind == "delete":
            del parent[path[-1]]
        elif kind == "duplicate" and isinstance(parent, list):
            parent.append(parent[path[-1]])
        elif kind == "nudge" and isinstance(parent[path[-1]], int) and not isinstance(parent[path[-1]], bool):
            parent[path[-1]] += draw(st.sampled_from([-1, 1, 1000]))
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return json.dumps(data)


def _check_untrusted(text):
    try:
        graph = tg.Graph.from_json(text)
    except ValueError:
        return None
    graph.verify()
    values = evaluate(graph, [0.5] * len(graph.inputs))
    assert len(values) == len(graph.outputs)
    every = list(range(len(graph.inputs)))  # a valid graph can be differentiated both ways
    assert len(evaluate(vjp_graph(graph, every, seed=1.0), [0.5] * len(every))) == len(graph.outputs) + len(every)
    assert len(evaluate(jvp_graph(graph), [0.5] * 2 * len(every))) == 2 * len(graph.outputs)
    return graph


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_graph_json())
def test_from_json_of_mutated_graphs_is_a_valid_graph_or_a_value_error(text):
    graph = _check_untrusted(text)
    if graph is not None and not graph.custom:
        kernel = backends.compile(graph, "python")
        assert len(kernel(*[0.5] * len(graph.inputs))) == len(graph.outputs)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=50) | st.binary(max_size=50).map(lambda b: b.decode("latin-1")))
def test_from_json_of_random_text(text):
    _check_untrusted(text)


@pytest.mark.parametrize("text", [
    "[" * 100000,
    '{"format": "tracegrad.graph", "version": 1, "nodes": [["input", [], 0]], "inputs": [5], "outputs": [0]}',
    '{"format": "tracegrad.graph", "version": 1, "nodes": [["input", [], 0]], "inputs": ["a"], "outputs": [0]}',
    '{"format": "tracegrad.graph", "version": 1, "nodes": [["input", [], 0]], "inputs": [0], "outputs": [0],'
    ' "names": ["__import__(\'os\')"]}',
    '{"format": "tracegrad.graph", "version": 1, "nodes": [["input", [], 0], ["system", [0], null]],'
    ' "inputs": [0], "outputs": [1]}',
])
def test_from_json_rejects(text):
    with pytest.raises(ValueError):
        tg.Graph.from_json(text)


def test_from_json_rejects_deeply_nested_rules_and_wrong_rule_shapes():
    inner = {"format": "tracegrad.graph", "version": 1, "nodes": [["input", [], 0]], "inputs": [0], "outputs": [0]}
    data = inner
    for _ in range(40):
        data = dict(inner, custom=[["vjp", [0], [0], data]])
    with pytest.raises(ValueError, match="nested"):
        tg.Graph.from_json(json.dumps(data))
    marked = dict(inner, nodes=[["input", [], 0], ["const", [], (-0.0).hex()], ["add", [0, 1], None]],
                  outputs=[2])
    wrong = dict(marked, custom=[["vjp", [0], [2], inner]])  # a vjp rule needs 2 inputs here
    with pytest.raises(ValueError, match="2 inputs and 1 outputs"):
        tg.Graph.from_json(json.dumps(wrong))


def test_from_json_rejects_custom_regions_that_cannot_be_differentiated():
    rule = json.loads(tg.trace(lambda x, g: g, 1.0, 1.0).to_json())
    two = {"format": "tracegrad.graph", "version": 1, "inputs": [0], "outputs": [2],
           "nodes": [["input", [], 0], ["sin", [0], None], ["cos", [1], None]]}
    valid = dict(two, custom=[["vjp", [1], [2], rule]])
    assert tg.grad(lambda x: evaluate(tg.Graph.from_json(json.dumps(valid)), [x])[0])(1.0) == math.cos(1.0)  # sin', the rule
    for region in (["vjp", [1], [None], rule],  # every output dead
                   ["vjp", [2], [1], rule],     # the input comes after the output
                   ["vjp", [0], [0], rule],     # the output is the input (a rule for every use of x)
                   ["vjp", [1], [True], rule]):
        with pytest.raises(ValueError, match="custom rule region"):
            tg.Graph.from_json(json.dumps(dict(two, custom=[region])))
    twice = dict(two, custom=[["vjp", [1], [2], rule], ["vjp", [0], [2], rule]])
    with pytest.raises(ValueError, match="nodes of their own"):
        tg.Graph.from_json(json.dumps(twice))


# ---------------------------------------------------------------- tampered cache entries

MARKER = "TRACEGRAD_TAMPERED_CODE_RAN"


def _fresh(tmp_path, offset):
    """A graph no other test compiles, and no kernel of it in memory."""
    graph = tg.trace(lambda x: tg.sin(x) * x + offset, 1.0)
    for backend in backends.NAMES:
        backends._cache.pop((graph.fingerprint, backend, None), None)
    return graph


def test_tampered_python_source_is_rewritten_not_run(tmp_path, monkeypatch):
    monkeypatch.delenv(MARKER, raising=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    graph = _fresh(tmp_path, 0.125)
    with cache.using(tmp_path):
        path = os.path.join(cache.cache_dir("python"), graph.fingerprint + ".py")
        evil = f"import os\nos.environ[{MARKER!r}] = '1'\ndef kernel(x0):\n    return (666.0,)\n"
        with open(path, "w") as f:
            f.write(evil)
        kernel = backends.compile(graph, "python", tmp_path)
        assert kernel(1.0) == pytest.approx(evaluate(graph, [1.0]))
        assert MARKER not in os.environ
        with open(path) as f:
            assert f.read() == kernel.source
        # and a loader's bytecode cache is never written or read: what runs is the text
        assert not os.path.exists(os.path.join(os.path.dirname(path), "__pycache__"))


def test_tampered_llvm_object_is_rebuilt(tmp_path):
    graph = _fresh(tmp_path, 0.25)
    with cache.using(tmp_path):
        first = backends.compile(graph, "llvm", tmp_path)
        assert not first.cached
        path = os.path.join(cache.cache_dir("llvm"), graph.fingerprint + ".o")
        original = open(path, "rb").read()
        for tampered in (original[:-1] + bytes([original[-1] ^ 1]),  # a flipped bit in the code
                         original[:len(original) // 2],  # truncated
                         b"\x7fELF" + os.urandom(100),  # foreign
                         original.replace(b"tracegrad-cache-1", b"tracegrad-cache-2")):
            with open(path, "wb") as f:
                f.write(tampered)
            backends._cache.pop((graph.fingerprint, "llvm", None), None)
            kernel = backends.compile(graph, "llvm", tmp_path)
            assert not kernel.cached and kernel(1.0) == pytest.approx(evaluate(graph, [1.0]))
        backends._cache.pop((graph.fingerprint, "llvm", None), None)
        assert backends.compile(graph, "llvm", tmp_path).cached  # the rebuilt entry is good


class _Evil:
    def __reduce__(self):
        return (exec, (f"import os; os.environ[{MARKER!r}] = '1'",))


def test_tampered_numba_cache_is_deleted_not_unpickled(tmp_path, monkeypatch):
    monkeypatch.delenv(MARKER, raising=False)
    graph = _fresh(tmp_path, 0.5)
    with cache.using(tmp_path):
        backends.compile(graph, "numba", tmp_path)
        folder = os.path.join(cache.cache_dir("numba"), "__pycache__")
        files = [n for n in os.listdir(folder) if n.endswith((".nbi", ".nbc"))]
        assert files
        for name in files:  # unpickling either file would run _Evil
            with open(os.path.join(folder, name), "wb") as f:
                f.write(pickle.dumps(_Evil()))
        backends._cache.pop((graph.fingerprint, "numba", None), None)
        kernel = backends.compile(graph, "numba", tmp_path)
        assert MARKER not in os.environ
        assert kernel(1.0)[0] == pytest.approx(evaluate(graph, [1.0])[0])
        backends._cache.pop((graph.fingerprint, "numba", None), None)
        assert backends.compile(graph, "numba", tmp_path).stats.cache_hits  # the rebuilt files are trusted again


def test_a_cache_directory_others_can_write_is_not_used(tmp_path):
    if not hasattr(os, "getuid"):
        pytest.skip("POSIX permissions")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with cache.using(shared):
        path = cache.cache_dir("llvm")
    assert not path.startswith(str(shared)) and cache.private(path)
