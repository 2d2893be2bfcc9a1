"""Graph -> Graph transforms: reverse mode (``vjp_graph``) and forward mode (``jvp_graph``)."""
from .jvp import jvp_graph
from .vjp import vjp_graph

__all__ = ["vjp_graph", "jvp_graph"]
