"""draw: structure of the graphviz source, escaping, rendering (needs the dot program)."""
import builtins
import shutil

import pytest

import tracegrad as tg
from tracegrad import Value

graphviz = pytest.importorskip("graphviz", reason="the graphviz Python package is not installed")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="the Graphviz 'dot' program is not installed (apt-get install graphviz)")

NASTY = '<b>"x"</b>\\l{|}'


def _value_graph():
    x = Value(2.0, label=NASTY)
    y = (x * 3.0 + x).tanh()
    y.backward()
    return x, y


def test_value_graph_source_has_data_grad_ops_and_escaped_labels():
    x, y = _value_graph()
    dot = tg.draw(y)
    assert isinstance(dot, graphviz.Digraph)
    src = dot.source
    assert "rankdir=LR" in src and "data 2.0000" in src and f"grad {x.grad:.4f}" in src
    assert "&lt;b&gt;&quot;x&quot;&lt;/b&gt;\\l{|}" in src and "<b>" not in src
    assert ">*<" in src and ">+<" in src and ">tanh<" in src and ">3.0<" in src
    assert "grad" not in tg.draw(y, show_grad=False, rankdir="TB").source


def test_ir_graph_source():
    graph = tg.trace(lambda x, y: tg.sin(x) * y + 1.0, 1.0, 2.0)
    src = tg.draw(graph).source
    for text in (">x<", ">y<", "sin", "mul", "add", ">1.0<"):
        assert text in src


def test_bad_arguments():
    with pytest.raises(TypeError, match="Value or a tracegrad Graph"):
        tg.draw(1.0)
    with pytest.raises(ValueError, match="rankdir"):
        tg.draw(Value(1.0), rankdir="XY")


def test_missing_graphviz_package_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "graphviz":
            raise ImportError("no graphviz")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="pip install graphviz"):
        tg.draw(Value(1.0))


@needs_dot
def test_render_value_graph_keeps_label_as_text(tmp_path):
    _, y = _value_graph()
    svg = tg.draw(y).pipe(format="svg").decode()
    assert "&lt;b&gt;&quot;x&quot;&lt;/b&gt;\\l{|}" in svg and "<b>" not in svg
    path = tg.draw(y).render(tmp_path / "graph", format="svg")
    assert path.endswith(".svg")


@needs_dot
def test_render_ir_graph():
    svg = tg.draw(tg.trace(lambda x: tg.exp(x) * x, 1.0), rankdir="TB").pipe(format="svg").decode()
    assert "exp" in svg and "<svg" in svg
