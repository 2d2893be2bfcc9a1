"""Draw a ``Value`` graph or an IR ``Graph`` with graphviz.

``draw`` gives a ``graphviz.Digraph``: shown inline by Jupyter (its ``_repr_mimebundle_``),
saved with ``filename=``. ``compare_before_after_backward`` draws a Value graph before and
after ``backward()`` side by side; ``draw(graph, adjoint=True)`` draws an IR graph with its
adjoint beside it, one box per forward node holding the backward nodes that serve it.
``visualize_computation`` is ``draw`` under the name and arguments MicroAutograd uses.

Node names are generated (``n0``, ``n1`` ...); labels, input names and numbers are
HTML-escaped into HTML-like labels, so a label is always shown as text, never read
as markup or as a graphviz escape. Needs the ``graphviz`` Python package
(``pip install graphviz``) and, to render, the Graphviz ``dot`` program.
"""
import html
import os

from .ir import Builder, Graph, literal
from .transforms import vjp_graph
from .value import Value

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


def draw(obj, show_grad=True, rankdir="LR", *, adjoint=False, filename=None, format="svg"):
    """A ``graphviz.Digraph`` of a Value's graph (data and grad per node) or of an IR ``Graph``.

    ``adjoint=True`` (an IR graph) draws its adjoint beside it: for each forward node, a
    box with the backward nodes of its vjp rule, fed by that node's cotangent and adding
    into its arguments' cotangents (``ct x`` ...; edges into a cotangent add up).
    ``filename`` also renders the drawing to ``filename.<format>`` (``svg``, ``png``,
    ``pdf`` ...; needs the ``dot`` program). In Jupyter the result shows inline.

    >>> import tracegrad as tg
    >>> x = tg.Value(2.0, label="x"); y = (x * x).tanh()
    >>> dot = tg.draw(y)                                   # doctest: +SKIP
    >>> tg.draw(y, filename="graph", format="png")         # doctest: +SKIP
    >>> tg.draw(tg.trace(lambda x: tg.sin(x) * x, 1.0), adjoint=True)   # doctest: +SKIP
    """
    dot = _digraph(rankdir)
    if isinstance(obj, Value):
        if adjoint:
            raise ValueError("adjoint=True draws an IR Graph with its adjoint; for a Value graph "
                             "draw tg.graph_of(value, inputs=[...]) with adjoint=True")
        _draw_value(dot, obj, show_grad)
    elif isinstance(obj, Graph):
        if adjoint:
            _draw_adjoint(dot, obj)
        else:
            _draw_graph(dot, obj)
    else:
        raise TypeError(f"draw takes a Value or a tracegrad Graph, got {type(obj).__name__}")
    return _save(dot, filename, format)


def visualize_computation(root, filename=None, show_gradients=True, inline=False, format="svg"):
    """MicroAutograd's name for ``draw``: the graph of ``root``, saved to ``filename.<format>``
    if given, displayed in Jupyter with ``inline=True``; returns the ``graphviz.Digraph``.

    >>> from tracegrad import Value
    >>> x = Value(2.0, label="x"); z = (x * Value(-3.0, label="y")).tanh(); z.backward()
    >>> visualize_computation(z, filename="example")      # doctest: +SKIP
    """
    dot = draw(root, show_grad=show_gradients, filename=filename, format=format)
    if inline:
        try:
            from IPython.display import display
        except ImportError:
            raise ImportError("inline=True displays the drawing in Jupyter, which needs IPython "
                              "(pip install ipython); without it, use filename=") from None
        display(dot)
    return dot


def compare_before_after_backward(root, filename=None, format="svg", rankdir="TB"):
    """Run ``root.backward()`` and draw the graph before it (data) and after it (data and grad)
    side by side, as MicroAutograd's function of this name: the gradient flow at a glance.

    >>> from tracegrad import Value
    >>> x = Value(2.0, label="x"); y = x * x + x
    >>> dot = compare_before_after_backward(y)           # needs the graphviz package
    >>> x.grad, "before backward()" in dot.source
    (5.0, True)
    """
    if not isinstance(root, Value):
        raise TypeError(f"compare_before_after_backward takes a Value, got {type(root).__name__}")
    dot = _digraph(rankdir)
    dot.attr(newrank="true")
    for name, title in (("before", "before backward()"), ("after", "after backward(): gradients")):
        if name == "after":
            root.backward()
        with dot.subgraph(name=f"cluster_{name}") as part:
            part.attr(label=title, style="rounded")
            _draw_value(part, root, name == "after", prefix=name)
    with dot.subgraph() as level:  # the first node of each drawing on one rank, "before" first: side by side
        level.attr(rank="same")
        level.edge("before0", "after0", style="invis")
    return _save(dot, filename, format)


def _save(dot, filename, format):
    if filename is not None:
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"filename must be a path (str), got {type(filename).__name__}")
        dot.render(filename, format=format, cleanup=True)
    return dot


def _draw_value(dot, root, show_grad, prefix="n"):
    names = {}

    def name(v):
        if v not in names:
            names[v] = f"{prefix}{len(names)}"
            cells = [v.label] if v.label else []
            cells.append(f"data {v.data:.4f}")
            if show_grad:
                cells.append(f"grad {v.grad:.4f}")
            dot.node(names[v], _html(*cells), shape="plaintext")
        return names[v]

    consts = 0
    for v in root.topological_sort():
        out = name(v)
        if not v._args:
            continue
        op_node = f"{out}_op"
        dot.node(op_node, _html(v._op), shape="plaintext")
        dot.edge(op_node, out)
        for a in v._args:
            if isinstance(a, Value):
                dot.edge(name(a), op_node)
            else:
                const = f"{prefix}c{consts}"
                consts += 1
                dot.node(const, _html(literal(a)), shape="plaintext")
                dot.edge(const, op_node)


def _node_text(graph, i, names):
    op, _, param = graph.nodes[i]
    if op == "input":
        return names[i]
    if op == "const":
        return literal(param)
    return f"v{i} = {op}" + (f"[{literal(param)}]" if param is not None else "")


def _draw_graph(dot, graph, prefix="n"):
    names = dict(zip(graph.inputs, graph.input_names()))
    outputs = set(graph.outputs)
    for i, (_, args, _) in enumerate(graph.nodes):
        dot.node(f"{prefix}{i}", _html(_node_text(graph, i, names)), shape="plaintext",
                 **({"color": "blue"} if i in outputs else {}))
        for a in args:
            dot.edge(f"{prefix}{a}", f"{prefix}{i}")


def _draw_adjoint(dot, graph):
    """The forward graph, and beside it for each node (last first) its vjp rule as ``vjp_graph``
    records it for that node alone: a box of backward nodes reading the node's cotangent and the
    forward values (dashed edges), whose results add into the cotangents of the node's arguments."""
    if graph.custom:
        raise ValueError("draw(..., adjoint=True) does not draw graphs with custom_vjp / custom_jvp rules; "
                         "draw the graph alone (adjoint=False)")
    names = dict(zip(graph.inputs, graph.input_names()))
    with dot.subgraph(name="cluster_forward") as forward:
        forward.attr(label="forward", style="rounded")
        _draw_graph(forward, graph, "f")
    cts = {}  # forward node -> the name of its cotangent's drawing node
    with dot.subgraph(name="cluster_backward") as backward:
        backward.attr(label="backward: cotangents (ct) and the steps that compute them", style="rounded")

        def ct(i):
            if i not in cts:
                cts[i] = f"ct{i}"
                text = "ct " + (names[i] if i in names else f"v{i}")
                backward.node(cts[i], _html(text), shape="plaintext", **({"color": "blue"} if i in names else {}))
            return cts[i]
        for o in graph.outputs:
            if graph.nodes[o][0] != "const":
                backward.node(f"seed{o}", _html("1.0"), shape="plaintext")
                backward.edge(f"seed{o}", ct(o))
        for i in reversed(range(len(graph.nodes))):
            if i in cts and graph.nodes[i][0] not in ("input", "const"):
                _draw_step(backward, graph, i, names, ct)


def _draw_step(dot, graph, i, names, ct):
    """Forward node ``i``'s backward step: its vjp rule on its own, in a box labelled with the node
    (no box where the rule only passes the cotangent on, as ``add``'s)."""
    op, args, param = graph.nodes[i]
    b = Builder()
    local = {}  # forward argument -> local node
    for a in args:
        if a not in local:
            local[a] = b.const(graph.nodes[a][2]) if graph.nodes[a][0] == "const" else b.input()
    step = vjp_graph(b.graph([b.add(op, tuple(local[a] for a in args), param)]),
                     list(range(len(b.inputs))), keep_outputs=False)
    wrt = [a for a in local if graph.nodes[a][0] != "const"]  # the forward nodes of the local inputs
    drawn = dict(zip(step.inputs, [f"f{a}" for a in wrt] + [ct(i)]))  # step node -> drawing node
    for k, (kop, kargs, kparam) in enumerate(step.nodes):  # the forward node itself, if the rule reads it
        if kop == op and kparam == param and len(kargs) == len(args) and all(
                drawn.get(x) == f"f{a}" or step.nodes[x] == graph.nodes[a] for x, a in zip(kargs, args)):
            drawn[k] = f"f{i}"
    needed, stack = set(), list(step.outputs)  # the rule's own nodes
    while stack:
        k = stack.pop()
        if k not in drawn and k not in needed:
            needed.add(k)
            stack.extend(step.nodes[k][1])
    box, edges = [], []
    for k in sorted(needed):
        kop, kargs, kparam = step.nodes[k]
        drawn[k] = f"b{i}_{k}"
        box.append((drawn[k], literal(kparam) if kop == "const" else
                    kop + (f"[{literal(kparam)}]" if kparam is not None else "")))
        edges += [(drawn[x], drawn[k]) for x in kargs]
    if box:
        with dot.subgraph(name=f"cluster_step{i}") as cluster:
            cluster.attr(label=f"serves {_node_text(graph, i, names)}", style="dashed")
            for name, text in box:
                cluster.node(name, _html(text), shape="plaintext")
    for tail, head in edges:  # outside the box: a node that an edge in a box names is put in the box
        dot.edge(tail, head, **({"style": "dashed"} if tail.startswith("f") else {}))
    for a, k in zip(wrt, step.outputs):
        if step.nodes[k][0] != "const" or step.nodes[k][2] != 0.0:
            dot.edge(drawn[k], ct(a))
