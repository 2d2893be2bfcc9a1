"""Sizes and build times of gradient and Hessian graphs: tracegrad against sympy and CasADi.

Run: ``PYTHONPATH=. python benchmarks/derivatives.py [--quick]``. For the extended
Rosenbrock function (N = 10, 100, 1000) and a 2-16-1 tanh MLP's squared loss it prints

- tracegrad: nodes of the forward graph, of the optimised gradient graph (gradient
  outputs only) and of the optimised Hessian graph, their ratios to the forward graph,
  and the seconds to build (trace + transform + optimise) and compile (default backend);
- sympy: ``diff`` then ``cse``, counted with ``sympy.count_ops`` (operations only);
- CasADi (if installed): ``n_instructions()`` of SX functions for f, its gradient and Hessian.

Goals (issue 6): gradient <= 1.25x forward for Rosenbrock, <= 3x for the MLP loss;
Hessian of Rosenbrock O(N) nodes.
"""
import sys
import time

import sympy as sp

import tracegrad as tg
from tracegrad import backends

try:
    import casadi
except ImportError:  # optional peer
    casadi = None


def rosenbrock(*x):
    total = 0.0
    for i in range(len(x) - 1):
        total = total + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return total


HIDDEN = 16


def mlp_loss(*v, tanh=tg.tanh):
    """Squared loss of a 2-16-1 tanh MLP; v = 65 parameters, then x0, x1, y."""
    w1, b1, w2, b2 = v[:2 * HIDDEN], v[2 * HIDDEN:3 * HIDDEN], v[3 * HIDDEN:4 * HIDDEN], v[4 * HIDDEN]
    x0, x1, y = v[4 * HIDDEN + 1:]
    out = b2
    for i in range(HIDDEN):
        out = out + w2[i] * tanh(w1[2 * i] * x0 + w1[2 * i + 1] * x1 + b1[i])
    return (out - y) ** 2


MLP_PARAMS = 4 * HIDDEN + 1


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def tracegrad_row(fn, n_in, n_wrt, hessian=True):
    args = [0.5] * n_in
    wrt = tuple(range(n_wrt))
    forward = tg.trace(fn, *args)
    grad, t_grad = timed(lambda: tg.optimize(tg.trace(tg.grad(fn, argnums=wrt), *args)))
    _, t_compile = timed(lambda: backends.compile(grad))
    row = dict(f=len(forward.nodes), grad=len(grad.nodes), t_grad=t_grad, t_compile=t_compile)
    if hessian:
        hess, t_hess = timed(lambda: tg.optimize(tg.trace(tg.hessian(fn, argnums=wrt), *args)))
        row.update(hess=len(hess.nodes), t_hess=t_hess)
    return row


def sympy_row(fn, n_in, n_wrt, hessian=True, **kw):
    xs = sp.symbols(f"x0:{n_in}", real=True)
    f = fn(*xs, **kw)
    ops = lambda exprs: (lambda r: sum(sp.count_ops(e) for _, e in r[0]) + sum(sp.count_ops(e) for e in r[1]))(sp.cse(exprs))
    (grad_ops, t_grad) = timed(lambda: ops([sp.diff(f, x) for x in xs[:n_wrt]]))
    row = dict(f=sp.count_ops(f), grad=grad_ops, t_grad=t_grad)
    if hessian:
        (hess_ops, t_hess) = timed(lambda: ops(list(sp.hessian(f, xs[:n_wrt]))))
        row.update(hess=hess_ops, t_hess=t_hess)
    return row


def casadi_row(fn, n_in, n_wrt, **kw):
    x = casadi.SX.sym("x", n_in)
    f = fn(*[x[i] for i in range(n_in)], **kw)
    wrt = x[:n_wrt]
    (g, t_grad) = timed(lambda: casadi.Function("g", [x], [casadi.gradient(f, wrt)]))
    (h, t_hess) = timed(lambda: casadi.Function("h", [x], [casadi.hessian(f, wrt)[0]]))
    return dict(f=casadi.Function("f", [x], [f]).n_instructions(), grad=g.n_instructions(),
                hess=h.n_instructions(), t_grad=t_grad, t_hess=t_hess)


def fmt(row, key):
    value = row.get(key)
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main(quick=False):
    cases = [(f"Rosenbrock N={n}", rosenbrock, n, n, {}, {}) for n in ((10, 100) if quick else (10, 100, 1000))]
    cases.append(("MLP 2-16-1 loss", mlp_loss, MLP_PARAMS + 3, MLP_PARAMS,
                  dict(tanh=sp.tanh), dict(tanh=casadi.tanh if casadi else None)))
    print("| function | tool | f | grad | grad/f | Hessian | Hessian/f | build grad s | build Hessian s | compile grad s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, fn, n_in, n_wrt, sympy_kw, casadi_kw in cases:
        rows = [("tracegrad", tracegrad_row(fn, n_in, n_wrt))]
        if n_wrt <= 100:
            rows.append(("sympy diff+cse", sympy_row(fn, n_in, n_wrt, hessian=n_wrt <= 100, **sympy_kw)))
        if casadi is not None:
            rows.append(("CasADi SX", casadi_row(fn, n_in, n_wrt, **casadi_kw)))
        for tool, row in rows:
            ratio = lambda k: f"{row[k] / row['f']:.2f}" if k in row else "—"
            print(f"| {name} | {tool} | {row['f']} | {row['grad']} | {ratio('grad')} | {fmt(row, 'hess')} | "
                  f"{ratio('hess')} | {fmt(row, 't_grad')} | {fmt(row, 't_hess')} | {fmt(row, 't_compile')} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
