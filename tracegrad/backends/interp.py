"""The reference backend: walk the node list with the op table's float evaluation.

>>> import tracegrad as tg
>>> compile(tg.trace(lambda x: x * 2.0, 0.0))(3.0)
[6.0]
"""
from ..ir import evaluate


def compile(graph):
    def kernel(*xs):
        return evaluate(graph, xs)
    return kernel


def source(graph):
    return str(graph)
