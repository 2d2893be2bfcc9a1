"""The IR: printing (golden), the builder's folding and CSE, verify, and the JSON round trip."""
import json
import math

import pytest

import tracegrad as tg
from tracegrad.ir import Builder, Graph


def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2)


GOLDEN_F = """\
{ lambda x:f64, y:f64 .
  v2 = mul x y
  v3 = sin x
  v4 = add v2 v3
  v5 = tanh v4
  v6 = neg y
  v7 = mul v6 y
  v9 = div v7 2.0
  v10 = exp v9
  v11 = mul v5 v10
  in (v11) }"""

GOLDEN_GRAD = """\
{ lambda x:f64 .
  v1 = sin x
  v2 = mul v1 x
  v3 = cos x
  v4 = mul x v3
  v5 = add v1 v4
  in (v2, v5) }"""


def test_golden_printout():
    assert str(tg.trace(f, 1.0, 2.0)) == GOLDEN_F


def test_golden_value_and_grad():
    g = tg.trace(tg.value_and_grad(lambda x: tg.sin(x) * x), 1.0)
    assert str(g) == GOLDEN_GRAD


def test_printout_params_literals_and_pytree_names():
    g = tg.trace(lambda p, x: (p["w"][0] * x) ** 3 - math.inf + p["b"] * -0.0, {"w": [1.0], "b": 2.0}, 1.0)
    assert str(g) == """\
{ lambda b:f64, w_0:f64, x:f64 .
  v3 = mul w_0 x
  v4 = powc[3.0] v3
  v6 = sub v4 inf
  v8 = mul b -0.0
  v9 = add v6 v8
  in (v9) }"""


def test_hash_consing_is_cse():
    g = tg.trace(lambda x, y: tg.sin(x * y) + tg.sin(y * x), 1.0, 2.0)
    assert g.stats() == {"input": 2, "mul": 1, "sin": 1, "add": 1}


@pytest.mark.parametrize("fn, expected", [
    (lambda x: x * 1.0, "in (x)"),
    (lambda x: 1.0 * x, "in (x)"),
    (lambda x: x / 1.0, "in (x)"),
    (lambda x: x - 0.0, "in (x)"),
    (lambda x: x + -0.0, "in (x)"),
    (lambda x: -(-x), "in (x)"),
    (lambda x: x ** 1, "in (x)"),
    (lambda x: x ** 0, "in (1.0)"),
    (lambda x: tg.exp(0.0) * x, "in (x)"),
    (lambda x: tg.where(1.0, x, tg.sin(x)), "in (x)"),
])
def test_exact_identities_fold(fn, expected):
    assert str(tg.trace(fn, 1.0)).endswith(expected + " }")


@pytest.mark.parametrize("fn", [
    lambda x: x * 0.0,      # inf * 0 is nan, not 0
    lambda x: x + 0.0,      # -0.0 + 0.0 is 0.0, not -0.0
    lambda x: x - x,        # inf - inf is nan
    lambda x: x / x,        # 0 / 0 is nan
])
def test_inexact_identities_do_not_fold(fn):
    g = tg.trace(fn, 1.0)
    assert len(g.nodes) >= 2 and g.outputs[0] != g.inputs[0]


def test_constants_keyed_by_bits():
    b = Builder()
    assert b.const(0.0) != b.const(-0.0)
    assert b.const(math.nan) == b.const(-math.nan) == b.const(float("nan"))
    assert b.const(1.0) == b.const(1)


def test_constant_folding_follows_ieee():
    g = tg.trace(lambda x: x + tg.log(-1.0) + tg.exp(1000.0), 1.0)
    values = [p for op, _, p in g.nodes if op == "const"]
    assert any(math.isnan(v) for v in values) and math.inf in values


def test_json_round_trip_is_bit_exact():
    g = tg.trace(lambda x: x * -0.0 + math.nan - math.inf + 0.1 + x ** 2.5, 1.0)
    back = Graph.from_json(g.to_json())
    assert back == g and hash(back) == hash(g) and back.fingerprint == g.fingerprint
    assert str(back) == str(g) and back.names == g.names
    consts = [p for op, _, p in back.nodes if op == "const"]
    assert any(math.copysign(1, c) < 0 and c == 0 for c in consts)


def test_graph_equality_ignores_names():
    a = tg.trace(lambda x: x * 2.0, 1.0)
    b = tg.trace(lambda y: y * 2.0, 1.0)
    assert a == b and str(a) != str(b)


def _tamper(graph, change):
    data = json.loads(graph.to_json())
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["nodes"].append(["evil_op", [0], None]), "unknown op"),
    (lambda d: d["nodes"].append(["sin", [99], None]), "earlier node"),
    (lambda d: d["nodes"].append(["sin", [0, 0], None]), "needs 1 args"),
    (lambda d: d["nodes"].append(["powc", [0], None]), "param"),
    (lambda d: d["nodes"].append(["const", [], "not-a-float"]), "malformed"),
    (lambda d: d["nodes"].append(["__import__('os')", [], None]), "unknown op"),
    (lambda d: d.update(outputs=[42]), "output"),
    (lambda d: d.update(inputs=[1]), "inputs"),
    (lambda d: d.update(names=["x; import os"]), "identifier"),
    (lambda d: d.update(names=["x²"]), "identifier"),
    (lambda d: d.update(names=["2x"]), "identifier"),
    (lambda d: d.update(names=[""]), "identifier"),
    (lambda d: d.update(names=[7]), "identifier"),
    (lambda d: d.update(format="pickle"), "not a tracegrad graph"),
    (lambda d: d.update(nodes="nope"), "malformed"),
])
def test_from_json_rejects_malformed(change, message):
    g = tg.trace(lambda x: tg.sin(x), 1.0)
    with pytest.raises(ValueError, match=message):
        Graph.from_json(_tamper(g, change))


def test_from_json_rejects_non_json():
    with pytest.raises(ValueError, match="not a JSON graph"):
        Graph.from_json("{not json")


def test_verify_accepts_traced_graphs():
    g = tg.trace(tg.grad(tg.grad(lambda x: tg.sin(x) * x ** 3)), 1.0)
    assert g.verify() is g


def test_names_are_python_identifiers_unicode_included():
    for name in ("θ", "é", "Δt", "μ_1", "ﬁ"):
        g = tg.trace(tg.grad(lambda p: p[name] * tg.sin(p[name])), {name: 1.0})
        back = Graph.from_json(g.to_json())
        assert back == g and back.names == g.names and g.verify() is g
        assert tg.ir.evaluate(back, [2.0]) == [math.sin(2.0) + 2.0 * math.cos(2.0)]
    g = tg.trace(lambda d: d["fi"] * d["ﬁ"] + d["x²"], {"fi": 1.0, "ﬁ": 2.0, "x²": 3.0})
    assert g.names == ("fi", "x2", "fi_1") and str(g).startswith("{ lambda fi:f64, x2:f64, fi_1:f64 .")  # keys sorted
    hand = Graph(g.nodes, g.inputs, g.outputs, ("ﬁ", "fi", "x"))  # names as given, shown distinct
    assert hand.verify().input_names() == ["fi", "fi_1", "x"]
