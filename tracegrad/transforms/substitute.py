"""Re-plumb a graph's inputs: reorder them, or fix some to constants.

>>> import tracegrad as tg
>>> g = tg.trace(lambda x, y: x - y, 0.0, 0.0)
>>> print(substitute(g, 2, [1, 0]))
{ lambda x0:f64, x1:f64 .
  v2 = sub x1 x0
  in (v2) }
"""
from ..ir import evaluate
from ..tracing import new_builder


def substitute(graph, n_inputs, feed):
    """A graph of ``n_inputs`` inputs that runs ``graph`` with input k fed by ``feed[k]``.

    ``feed[k]`` is the position of a new input, or a float constant.
    """
    with new_builder() as b:
        xs = [b.tracer(b.input()) for _ in range(n_inputs)]
        outs = evaluate(graph, [xs[f] if isinstance(f, int) else f for f in feed])
        return b.graph([b.node_of(o) for o in outs])
