"""The micrograd moons demo as each peer runs it: micrograd, PyTorch (eager, compiled), JAX.

Every runner trains MLP 2-16-16-1 (ReLU, linear output) on the same 100 points with the
same initial parameters: hinge loss + 1e-4 L2, full-batch SGD, lr = 1.0 - 0.9 k / 100,
float64. Each returns a dict: per-step seconds (list), compile seconds, final accuracy.
"""
import random
import time

import numpy as np


def moons_data():
    from sklearn.datasets import make_moons
    X, y = make_moons(n_samples=100, noise=0.1, random_state=0)
    return X.astype(np.float64), (2 * y - 1).astype(np.float64)


def initial_parameters(sizes=(2, 16, 16, 1), seed=1337):
    """Weights uniform in [-1, 1] in micrograd's order: per layer, per neuron, weights then bias."""
    rng = random.Random(seed)
    layers = []
    for nin, nout in zip(sizes[:-1], sizes[1:]):
        W = np.array([[rng.uniform(-1, 1) for _ in range(nin)] for _ in range(nout)])
        b = np.zeros(nout)
        layers.append((W, b))
    return layers


def lr_at(k, steps=100):
    return 1.0 - 0.9 * k / steps


def run_micrograd(X, y, layers, steps):
    from micrograd.engine import Value
    from micrograd.nn import MLP
    model = MLP(2, [16, 16, 1])
    flat = [v for W, b in layers for row_w, bias in zip(W, b) for v in list(row_w) + [bias]]
    for p, v in zip(model.parameters(), flat):
        p.data = float(v)
    times, acc = [], 0.0
    for k in range(steps):
        t0 = time.perf_counter()
        scores = [model(list(map(Value, row))) for row in X]
        losses = [(1 + -yi * s).relu() for yi, s in zip(y, scores)]
        total = sum(losses) * (1.0 / len(losses)) + 1e-4 * sum(p * p for p in model.parameters())
        acc = np.mean([(yi > 0) == (s.data > 0) for yi, s in zip(y, scores)])
        model.zero_grad()
        total.backward()
        for p in model.parameters():
            p.data -= lr_at(k) * p.grad
        times.append(time.perf_counter() - t0)
    return {"times": times, "compile": 0.0, "accuracy": float(acc)}


def _torch_step_fn(torch):
    def loss_fn(params, X, y):
        h = X
        for i, (W, b) in enumerate(params):
            h = h @ W.T + b
            if i < len(params) - 1:
                h = torch.relu(h)
        scores = h[:, 0]
        data = torch.relu(1 - y * scores).mean()
        reg = 1e-4 * sum((W * W).sum() + (b * b).sum() for W, b in params)
        return data + reg, scores
    return loss_fn


def run_torch(X, y, layers, steps, compiled=False):
    import torch
    torch.set_num_threads(1)
    params = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)) for W, b in layers]
    flat = [t for pair in params for t in pair]
    Xt, yt = torch.tensor(X), torch.tensor(y)
    loss_fn = _torch_step_fn(torch)
    if compiled:
        loss_fn = torch.compile(loss_fn)
    times, compile_s = [], 0.0
    for k in range(steps):
        t0 = time.perf_counter()
        loss, scores = loss_fn(params, Xt, yt)
        for p in flat:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in flat:
                p -= lr_at(k) * p.grad
        elapsed = time.perf_counter() - t0
        if compiled and k == 0:
            compile_s = elapsed
        else:
            times.append(elapsed)
    acc = float(((yt > 0) == (scores > 0)).double().mean())
    return {"times": times, "compile": compile_s, "accuracy": acc}


def run_jax(X, y, layers, steps, whole_loop=False):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def loss_fn(params, X, y):
        h = X
        for i, (W, b) in enumerate(params):
            h = h @ W.T + b
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        scores = h[:, 0]
        reg = 1e-4 * sum((W * W).sum() + (b * b).sum() for W, b in params)
        return jnp.mean(jax.nn.relu(1 - y * scores)) + reg, scores

    def step(k, params):
        grads = jax.grad(lambda p: loss_fn(p, X, y)[0])(params)
        lr = 1.0 - 0.9 * k / steps
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in layers]
    X, y = jnp.asarray(X), jnp.asarray(y)
    if whole_loop:
        train = jax.jit(lambda p: jax.lax.fori_loop(0, steps, step, p))
        t0 = time.perf_counter()
        compiled = train.lower(params).compile()
        compile_s = time.perf_counter() - t0
        runs = []
        for _ in range(30):
            t0 = time.perf_counter()
            out = jax.block_until_ready(compiled(params))
            runs.append((time.perf_counter() - t0) / steps)
        params = out
        times = runs
    else:
        jstep = jax.jit(step)
        t0 = time.perf_counter()
        params = jax.block_until_ready(jstep(0, params))
        compile_s = time.perf_counter() - t0
        times = []
        for k in range(1, steps):
            t0 = time.perf_counter()
            params = jax.block_until_ready(jstep(k, params))
            times.append(time.perf_counter() - t0)
    scores = loss_fn(params, X, y)[1]
    acc = float(jnp.mean((y > 0) == (scores > 0)))
    return {"times": times, "compile": compile_s, "accuracy": acc}
