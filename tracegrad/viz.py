"""Draw a ``Value`` graph or an IR ``Graph`` with graphviz.

Node names are generated (``n0``, ``n1`` ...); labels, input names and numbers are
HTML-escaped into HTML-like labels, so a label is always shown as text, never read
as markup or as a graphviz escape. Needs the ``graphviz`` Python package
(``pip install graphviz``) and, to render, the Graphviz ``dot`` program.
"""
import html

from .ir import Graph, literal
from .value import Value, _topological_order

_RANKDIRS = ("LR", "TB", "RL", "BT")


def _digraph(rankdir):
    try:
        import graphviz
    except ImportError:
        raise ImportError("tg.draw needs the graphviz Python package: pip install graphviz "
                          "(and the Graphviz 'dot' program to render, e.g. apt-get install graphviz)") from None
    if rankdir not in _RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(_RANKDIRS)}, got {rankdir!r}")
    return graphviz.Digraph(graph_attr={"rankdir": rankdir})


def _html(*cells):
    """An HTML-like label: a one-row table of escaped text cells."""
    row = "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
    return f'<<table border="0" cellborder="1" cellspacing="0"><tr>{row}</tr></table>>'


def draw(obj, show_grad=True, rankdir="LR"):
    """A ``graphviz.Digraph`` of a Value's graph (data and grad per node) or of an IR ``Graph``.

    >>> import tracegrad as tg
    >>> x = tg.Value(2.0, label="x"); y = (x * x).tanh()
    >>> dot = tg.draw(y)                      # doctest: +SKIP
    >>> dot.render("graph", format="svg")     # doctest: +SKIP
    """
    dot = _digraph(rankdir)
    if isinstance(obj, Value):
        _draw_value(dot, obj, show_grad)
    elif isinstance(obj, Graph):
        _draw_graph(dot, obj)
    else:
        raise TypeError(f"draw takes a Value or a tracegrad Graph, got {type(obj).__name__}")
    return dot


def _draw_value(dot, root, show_grad):
    names = {}

    def name(v):
        if v not in names:
            names[v] = f"n{len(names)}"
            cells = [v.label] if v.label else []
            cells.append(f"data {v.data:.4f}")
            if show_grad:
                cells.append(f"grad {v.grad:.4f}")
            dot.node(names[v], _html(*cells), shape="plaintext")
        return names[v]

    consts = 0
    for v in _topological_order(root) or [root]:
        out = name(v)
        if not v.op:
            continue
        op_node = f"{out}_op"
        dot.node(op_node, _html(v._op), shape="plaintext")
        dot.edge(op_node, out)
        for a in v._args:
            if isinstance(a, Value):
                dot.edge(name(a), op_node)
            else:
                const = f"c{consts}"
                consts += 1
                dot.node(const, _html(literal(a)), shape="plaintext")
                dot.edge(const, op_node)


def _draw_graph(dot, graph):
    names = dict(zip(graph.inputs, graph.input_names()))
    outputs = set(graph.outputs)
    for i, (op, args, param) in enumerate(graph.nodes):
        if op == "input":
            text = names[i]
        elif op == "const":
            text = literal(param)
        else:
            text = f"v{i} = {op}" + (f"[{literal(param)}]" if param is not None else "")
        dot.node(f"n{i}", _html(text), shape="plaintext",
                 **({"color": "blue"} if i in outputs else {}))
        for a in args:
            dot.edge(f"n{a}", f"n{i}")
