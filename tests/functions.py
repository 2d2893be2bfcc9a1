"""A corpus of small programs: (name, function, example arguments), smooth near the arguments."""
import tracegrad as tg


def rosenbrock(x, y):
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def mlp_unit(w0, w1, b, x0, x1):
    return tg.tanh(w0 * x0 + w1 * x1 + b) * tg.sigmoid(w0 - w1)


def softplus_chain(x, y):
    return tg.softplus(x * y) - tg.log1p(tg.exp(-x)) + tg.sqrt(x * x + y * y)


def trig(x, y):
    return tg.sin(x * y) * tg.cos(x - y) / (2.0 + tg.sin(y))


def powers(x, y):
    return x ** y + y ** 2.5 + x ** -1 + 3.0 ** x


def branches(x, y):
    return tg.where(x > y, x * y, x - y) + tg.maximum(x, 2.0 * y) + tg.clamp(x, -1.0, 1.0) * y


def loop(x, y):
    acc = x
    for _ in range(5):
        acc = tg.tanh(acc * y + 0.1)
    return acc


def shared(x, y):
    a = x * y
    b = a * a
    return b / (1.0 + a) + tg.exp(-b)


CORPUS = [
    ("rosenbrock", rosenbrock, (0.3, 0.7)),
    ("mlp_unit", mlp_unit, (0.1, -0.2, 0.05, 1.0, 2.0)),
    ("softplus_chain", softplus_chain, (0.4, -1.3)),
    ("trig", trig, (0.9, 0.4)),
    ("powers", powers, (1.3, 0.7)),
    ("branches", branches, (0.3, 0.1)),
    ("loop", loop, (0.5, 1.5)),
    ("shared", shared, (0.8, 1.1)),
]
