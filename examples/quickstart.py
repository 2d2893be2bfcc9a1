"""A first gradient: trace, print the IR, differentiate, and show the generated code."""
import tracegrad as tg


def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2)


print("IR of f:")
print(tg.trace(f, 1.0, 2.0))
dx, dy = tg.grad(f, argnums=(0, 1))(1.0, 2.0)
print(f"df/dx = {dx:.12f}, df/dy = {dy:.12f}")
print("generated Python for df/dx:")
print(tg.jit(tg.grad(f), backend="python").source)
