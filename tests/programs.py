"""Random programs drawn from the op table (hypothesis): a new op is fuzzed as soon as it has a row.

The package's own rows only: ops that tests define with ``tg.defop`` would make the draws depend
on which test modules were imported first."""
import math

from hypothesis import strategies as st

from tracegrad.ir import Builder
from tracegrad.ops import TABLE

CONSTANTS = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 4.0, 0.5, 3.0, 100.0, 1e308, math.inf, math.nan]
EXPONENTS = [0.0, 1.0, 2.0, 3.0, -1.0, 0.5]
OPS = sorted(name for name, op in TABLE.items() if op.builtin)


@st.composite
def programs(draw, inputs=(1, 3), ops=(1, 10), outputs=(1, 3), constants=st.sampled_from(CONSTANTS),
             exponents=EXPONENTS):
    """A random graph: ``inputs`` inputs, then ``ops`` nodes, each a primitive of the table on
    earlier nodes or on constants drawn from ``constants``, and ``outputs`` of the computed
    nodes; each count is a ``(min, max)`` range."""
    b = Builder()
    nodes = [b.input() for _ in range(draw(st.integers(*inputs)))]
    for _ in range(draw(st.integers(*ops))):
        spec = TABLE[draw(st.sampled_from(OPS))]
        args = tuple(b.const(draw(constants)) if draw(st.integers(0, 4)) == 0 else draw(st.sampled_from(nodes))
                     for _ in range(spec.arity))
        param = draw(st.sampled_from(exponents)) if spec.has_param else None
        nodes.append(b.add(spec.name, args, param))
    computed = nodes[len(b.inputs):] or nodes
    return b.graph(draw(st.lists(st.sampled_from(computed), min_size=outputs[0], max_size=outputs[1])))
