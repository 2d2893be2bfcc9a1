"""draw: structure of the graphviz source, escaping, rendering (needs the dot program)."""
import builtins
import math
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


# ---------------------------------------------------------------- drawings that teach (seed 003)

from tracegrad.viz import compare_before_after_backward, visualize_computation  # noqa: E402


def _seed_graph():
    x, y = Value(2.0, label="x"), Value(-3.0, label="y")
    z = (x * y).tanh() + x
    z.label = "output"
    return x, y, z


def _clusters(src):
    """The text of each cluster of a dot source, by its name."""
    parts = {}
    for chunk in src.split("subgraph ")[1:]:
        name = chunk.split(" ", 1)[0]
        parts[name] = chunk
    return parts


def test_before_after_backward_side_by_side_runs_backward_once():
    x, y, z = _seed_graph()
    dot = compare_before_after_backward(z)
    dtanh = 1 - math.tanh(-6.0) ** 2
    assert (x.grad, y.grad, z.grad) == pytest.approx((1.0 + y.data * dtanh, 2.0 * dtanh, 1.0), rel=1e-15)
    parts = _clusters(dot.source)
    before, after = parts["cluster_before"], parts["cluster_after"]
    assert "before backward()" in before and "grad" not in before
    assert f"grad {x.grad:.4f}" in after and "grad 1.0000" in after and "output" in before and "output" in after
    assert before.count("data ") == after.count("data ") == 5   # x, y, x*y, tanh, output
    assert "rank=same" in dot.source and "before0 -> after0 [style=invis]" in dot.source
    with pytest.raises(TypeError, match="takes a Value"):
        compare_before_after_backward(1.0)


def test_visualize_computation_has_microautograds_arguments(tmp_path, monkeypatch):
    x, y, z = _seed_graph()
    z.backward()
    assert "grad" in visualize_computation(z).source
    assert "grad" not in visualize_computation(z, show_gradients=False).source
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    dot = visualize_computation(z, inline=True)
    assert shown == [dot]
    assert tg.draw(z).source == dot.source
    with pytest.raises(TypeError, match="filename must be a path"):
        tg.draw(z, filename=3)


@needs_dot
@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("svg", b"<?xml")])
def test_drawings_render_to_files(tmp_path, fmt, magic):
    x, y, z = _seed_graph()
    compare_before_after_backward(z, filename=tmp_path / "before_after", format=fmt)
    visualize_computation(z, filename=str(tmp_path / "computation_graph"), show_gradients=True, format=fmt)
    graph = tg.trace(lambda a, b: tg.tanh(a * b + tg.sin(a)) * 2.0, 1.0, 2.0)
    tg.draw(graph, adjoint=True, filename=tmp_path / "adjoint", format=fmt)
    for name in ("before_after", "computation_graph", "adjoint"):
        path = tmp_path / f"{name}.{fmt}"
        assert path.read_bytes().startswith(magic) and path.stat().st_size > 1000
        assert not (tmp_path / name).exists()   # the dot source is not left behind
    if fmt == "svg":
        svg = (tmp_path / "before_after.svg").read_text()
        assert "before backward()" in svg and "after backward(): gradients" in svg


@needs_dot
def test_jupyter_shows_drawings_inline():
    _, _, z = _seed_graph()
    bundle = compare_before_after_backward(z)._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]
    assert "<svg" in tg.draw(z)._repr_mimebundle_()["image/svg+xml"]


def test_adjoint_drawing_puts_each_backward_node_beside_the_forward_node_it_serves():
    graph = tg.trace(lambda x, y: tg.tanh(x * y + tg.sin(x)) * 2.0, 1.0, 2.0)
    # v2 = mul x y, v3 = sin x, v4 = add v2 v3, v5 = tanh v4, v7 = mul v5 2.0
    src = tg.draw(graph, adjoint=True).source
    parts = _clusters(src)
    assert {"cluster_forward", "cluster_backward", "cluster_step7", "cluster_step5", "cluster_step3",
            "cluster_step2"} <= set(parts) and "cluster_step4" not in parts   # add passes its cotangent on
    step = {i: parts[f"cluster_step{i}"].split("}")[0] for i in (7, 5, 3, 2)}
    assert 'label="serves v5 = tanh"' in step[5] and ">sub<" in step[5] and step[5].count(">mul<") == 2
    assert 'label="serves v3 = sin"' in step[3] and ">cos<" in step[3]
    assert step[2].count(">mul<") == 2 and ">2.0<" in step[7]
    assert "seed7 -> ct7" in src and "ct4 -> ct2" in src and "ct4 -> ct3" in src
    assert "f5 -> b5_3 [style=dashed]" in src   # tanh's rule reads its output
    assert "f0 -> b3_2 [style=dashed]" in src   # sin's rule reads x
    assert ">ct x<" in src and ">ct y<" in src
    # the steps' results reach the inputs' cotangents: x from sin and mul, y from mul
    assert src.count("-> ct0") == 2 and src.count("-> ct1") == 1


def test_adjoint_drawing_rejects_what_it_cannot_draw():
    with pytest.raises(ValueError, match="IR Graph"):
        tg.draw(Value(1.0), adjoint=True)
    f = tg.custom_vjp(lambda x: x * 2.0)
    f.defvjp(lambda g, out, x: (2.0 * g,))
    with pytest.raises(ValueError, match="custom_vjp"):
        tg.draw(tg.trace(lambda x: f(x) + 1.0, 1.0), adjoint=True)


def test_the_docs_pictures_are_these_drawings():
    """docs/img/adjoint.svg and before_after_backward.svg: drawn by docs/seeds.md's code."""
    import os
    img = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "img")
    with open(os.path.join(img, "adjoint.svg"), encoding="utf-8") as f:
        adjoint = f.read()
    graph = tg.trace(lambda x, y: tg.tanh(x * y + tg.sin(x)) * 2.0, 1.0, 2.0)
    for label in ("serves v5 = tanh", "serves v3 = sin", "serves v2 = mul", "ct x", "ct y", "v7 = mul"):
        assert f">{label}<" in adjoint and label in tg.draw(graph, adjoint=True).source
    with open(os.path.join(img, "before_after_backward.svg"), encoding="utf-8") as f:
        before_after = f.read()
    assert "before backward()" in before_after and "after backward(): gradients" in before_after
    assert ">grad 0.9999<" in before_after and ">out<" in before_after
