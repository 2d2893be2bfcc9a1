"""The compiled training run at every SIMD width (1, 2, 4, 8 lanes) equals eager training."""
import numpy as np
import pytest

import tracegrad as tg
from tracegrad.backends import llvm
from tracegrad.backends.host import describe
from tracegrad.backends.llvm_loops import BatchLoop

WIDTHS = (1, 2, 4, 8)


@pytest.fixture(scope="module")
def moons():
    from sklearn.datasets import make_moons
    X, y = make_moons(n_samples=100, noise=0.1, random_state=0)
    return X, 2.0 * y - 1.0


def eager_fit(model, X, y, loss, optimizer, l2, epochs, batch, shuffle=False, seed=None):
    """The reference: the same epochs with Values, backward() and the eager optimizer."""
    params = model.parameters()
    opt = optimizer.for_parameters(params)
    rng, n, losses = np.random.default_rng(seed), len(X), []
    for _ in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        total = 0.0
        penalty = l2 * sum(p.data * p.data for p in params)
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            sample = [loss(model(list(map(tg.Value, X[i]))), y[i]) for i in rows]
            total += sum(s.data for s in sample)
            objective = sum(sample) * (1.0 / len(rows)) + l2 * sum(p * p for p in params)
            opt.zero_grad()
            objective.backward()
            opt.step()
        losses.append(total / n + penalty)
    return losses


def trained(width, X, y, loss, optimizer, l2, epochs, batch=None, shuffle=False, seed=None, layers=(16, 16, 1)):
    model = tg.nn.MLP(X.shape[1], list(layers), seed=3)
    trainer = tg.nn.Trainer(model, loss=loss, optimizer=optimizer, l2=l2)
    trainer._width = width
    history = trainer.fit(X, y, epochs=epochs, batch_size=batch, shuffle=shuffle, seed=seed, progress=False)
    return [p.data for p in model.parameters()], history


SCHEDULE = tg.nn.SGD(lr=lambda k: 1.0 - 0.9 * k / 100)
ADAM = tg.nn.Adam(lr=0.01, weight_decay=0.01)


@pytest.fixture(scope="module")
def eager_moons(moons):
    X, y = moons
    twin = tg.nn.MLP(2, [16, 16, 1], seed=3)
    losses = eager_fit(twin, X, y, lambda s, t: tg.relu(1.0 + -t * s), SCHEDULE, 1e-4, epochs=2, batch=100)
    return [p.data for p in twin.parameters()], losses


@pytest.fixture(scope="module")
def tail_data():
    # 23 samples in batches of 10: every width meets a partial group, padding lanes must not count
    rng = np.random.default_rng(4)
    X = rng.normal(size=(23, 3))
    y = np.tanh(X[:, 0] - X[:, 1] * X[:, 2])
    twin = tg.nn.MLP(3, [(5, "tanh"), 1], seed=3)
    losses = eager_fit(twin, X, y, lambda s, t: (s - t) ** 2, ADAM, 1e-3, epochs=3, batch=10, shuffle=True, seed=9)
    return X, y, [p.data for p in twin.parameters()], losses


@pytest.mark.parametrize("width", WIDTHS)
def test_full_batch_sgd_equals_eager(moons, eager_moons, width):
    X, y = moons
    params, history = trained(width, X, y, "hinge", SCHEDULE, 1e-4, epochs=2)
    np.testing.assert_allclose(params, eager_moons[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(history["loss"], eager_moons[1], rtol=1e-12)
    assert history["accuracy"][0] == np.mean(np.sign(tg.nn.MLP(2, [16, 16, 1], seed=3).predict(X)) == y)


@pytest.mark.parametrize("width", WIDTHS)
def test_shuffled_minibatches_with_a_tail_and_adam_equal_eager(tail_data, width):
    X, y, eager_params, eager_losses = tail_data
    params, history = trained(width, X, y, "mse", ADAM, 1e-3, epochs=3, batch=10, shuffle=True, seed=9,
                              layers=[(5, "tanh"), 1])
    np.testing.assert_allclose(params, eager_params, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(history["loss"], eager_losses, rtol=1e-12)


def test_every_width_gives_the_same_training(moons):
    X, y = moons
    runs = [trained(w, X[:37], y[:37], "hinge", tg.nn.SGD(lr=0.3, momentum=0.9), 1e-4, epochs=5, batch=16)
            for w in WIDTHS]
    for params, history in runs[1:]:
        np.testing.assert_allclose(params, runs[0][0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(history["loss"], runs[0][1]["loss"], rtol=1e-12)
        assert history["accuracy"] == runs[0][1]["accuracy"]


def test_one_call_per_epoch_equals_one_call_per_fit(moons, monkeypatch):
    X, y = moons
    quiet = trained(None, X, y, "hinge", tg.nn.SGD(lr=0.1), 0.0, epochs=4, batch=30, shuffle=True, seed=1)
    monkeypatch.setattr("tracegrad.nn.trainer._progress.__init__", lambda self, epochs, enabled: setattr(self, "bar", None))
    model = tg.nn.MLP(2, [16, 16, 1], seed=3)
    trainer = tg.nn.Trainer(model, loss="hinge", optimizer=tg.nn.SGD(lr=0.1))
    history = trainer.fit(X, y, epochs=4, batch_size=30, shuffle=True, seed=1, progress=True)
    assert [p.data for p in model.parameters()] == quiet[0] and history == quiet[1]


@pytest.mark.parametrize("features, width", [({"avx512f": True, "avx2": True}, 8), ({"avx2": True, "avx": True}, 4),
                                             ({"sse2": True}, 2), ({"neon": True}, 2), ({}, 1)])
def test_width_follows_the_host_cpu(features, width):
    assert describe(None, "some-cpu", features, "x86_64-unknown-linux-gnu").lanes == width


def test_fit_loop_checks_its_buffers():
    sample = tg.trace(lambda p, x, t: [(p * x - t) ** 2, 0.0, 2 * (p * x - t) * x], 1.0, 1.0, 1.0)
    update = tg.trace(lambda p, g, lr, t, m: [p - lr * g / m], 0.0, 0.0, 0.0, 0.0, 0.0)
    loop = BatchLoop(sample, update, 1, tg.trace(lambda p: [p * p], 0.0), width=2)
    params, state, data = np.array([0.0, 0.0]), np.zeros((0, 2)), np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])
    order, lr, hist = np.arange(3), np.full(50, 0.05), np.zeros((50, 3))
    loop(params, state, data, order, 0, 3, 50, lr, 0, hist)
    assert params[0] == pytest.approx(2.0) and hist[-1, 0] < 1e-6 < hist[0, 0]
    with pytest.raises(ValueError, match="too short"):
        loop(params, state, data, order, 0, 3, 51, lr, 0, hist)
    with pytest.raises(TypeError, match="float64"):
        loop(params, state, data.astype(np.float32), order, 0, 3, 1, lr, 0, hist)


@pytest.fixture(scope="module")
def long_batch():
    # 300 samples in one batch: more groups than one chunk of stored factors at every width
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 2))
    y = np.sign(X[:, 0] * X[:, 1]) + (X[:, 0] == 0)
    twin = tg.nn.MLP(2, [6, 1], seed=3)
    hinge = lambda s, t: tg.relu(1.0 + -t * s)  # noqa: E731
    losses = eager_fit(twin, X, y, hinge, tg.nn.SGD(lr=0.2, momentum=0.5), 1e-3, epochs=3, batch=300)
    return X, y, [p.data for p in twin.parameters()], losses


@pytest.mark.parametrize("width", WIDTHS)
def test_a_batch_of_several_chunks_equals_eager(long_batch, width):
    X, y, eager_params, eager_losses = long_batch
    params, history = trained(width, X, y, "hinge", tg.nn.SGD(lr=0.2, momentum=0.5), 1e-3, epochs=3,
                              layers=[6, 1])
    np.testing.assert_allclose(params, eager_params, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(history["loss"], eager_losses, rtol=1e-12)


@pytest.mark.parametrize("width", (1, 8))
def test_gradients_that_are_inputs_or_constants(width):
    # loss = score * target on a linear model: d/dbias = target (an input), d/dw = target * x
    # (a product of inputs); a constant 0.5 in the loss adds a constant output
    X = np.array([[1.0, -2.0], [0.5, 3.0], [-1.5, 0.25]])
    y = np.array([1.0, -2.0, 0.75])
    loss = lambda s, t: s * t + 0.5 * t  # noqa: E731
    twin = tg.nn.MLP(2, [(1, "linear")], seed=3)
    eager_losses = eager_fit(twin, X, y, loss, tg.nn.SGD(lr=0.1), 0.0, epochs=2, batch=2)
    params, history = trained(width, X, y, loss, tg.nn.SGD(lr=0.1), 0.0, epochs=2, batch=2, layers=[(1, "linear")])
    assert len(params) == 3 and params[2] != 0.0
    np.testing.assert_allclose(params, [p.data for p in twin.parameters()], rtol=1e-14)
    np.testing.assert_allclose(history["loss"], eager_losses, rtol=1e-14)


def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2) + tg.log(1 + x * x) + x ** y


@pytest.mark.parametrize("width", WIDTHS)
def test_vmap_in_lanes_matches_torch(monkeypatch, width):
    import importlib
    import torch
    vmap_module = importlib.import_module("tracegrad.vmap")
    monkeypatch.setattr(vmap_module, "LANE_ROWS", 1)
    monkeypatch.setattr(vmap_module, "PARALLEL_ROWS", 10)  # two threads, split at a whole group
    monkeypatch.setattr("tracegrad.backends.llvm_lanes", lambda: width)
    rng = np.random.default_rng(width)
    xs, ys = rng.uniform(0.1, 2.0, size=(2, 203))  # 203 rows: a tail at every width
    xs[:4] = [0.0, np.inf, np.nan, 1e300]
    gx, gy = tg.vmap(tg.grad(f, argnums=(0, 1)))(xs, ys)
    x, y = (torch.tensor(a, requires_grad=True) for a in (xs, ys))
    (torch.tanh(x * y + torch.sin(x)) * torch.exp(-y * y / 2) + torch.log(1 + x * x) + x ** y).sum().backward()
    np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gy, y.grad.numpy(), rtol=1e-12, atol=1e-15)
    # strided and broadcast inputs take the other lane loads
    pairs = np.stack([xs, ys], axis=1)[4:]
    out = tg.vmap(lambda p, c: f(p[0], p[1]) * c, in_axes=(0, None))(pairs, 2.0)
    np.testing.assert_allclose(out, 2.0 * np.array([tg.jit(f, backend="python")(a, b) for a, b in pairs]),
                               rtol=1e-12)


def looped(x, y):  # a scan with rows and a carry, inside a map: loops the lane kernels keep as loops
    c, ys = tg.scan(lambda c, r: (tg.sin(c) * x + r * y, c * r), 0.5, np.linspace(-1.0, 1.0, 30))
    return c + sum(tg.map(lambda v: v * v, list(ys)))


def looped_torch(x, y):
    import torch
    c, total = torch.full_like(x, 0.5), 0.0
    for r in np.linspace(-1.0, 1.0, 30):
        c, out = torch.sin(c) * x + float(r) * y, c * float(r)
        total = total + out * out
    return c + total


@pytest.mark.parametrize("width", (1, 4, 8))
def test_vmap_in_lanes_runs_loops_as_loops(monkeypatch, width):
    import importlib
    import torch
    from tracegrad.backends.llvm_loops import map_source
    vmap_module = importlib.import_module("tracegrad.vmap")
    monkeypatch.setattr(vmap_module, "LANE_ROWS", 1)
    monkeypatch.setattr("tracegrad.backends.llvm_lanes", lambda: width)
    rng = np.random.default_rng(width)
    xs, ys = rng.uniform(-1.0, 1.0, size=(2, 37))
    gx, gy = tg.vmap(tg.grad(looped, argnums=(0, 1)))(xs, ys)
    x, y = (torch.tensor(a, requires_grad=True) for a in (xs, ys))
    looped_torch(x, y).sum().backward()
    np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gy, y.grad.numpy(), rtol=1e-12, atol=1e-15)
    # the lane kernel's size follows the body, not the steps
    sizes = [map_source(tg.trace(tg.grad(lambda a: tg.fori_loop(0, n, lambda i, s: tg.sin(s) * a, a)), 1.0),
                            [1], width).count("\n") for n in (10, 1000)]
    assert sizes[0] == sizes[1] < 200


class Recurrent(tg.nn.Module):
    """A model whose forward pass is a loop: h <- tanh(w * h + u * x_k) over the inputs x_k."""

    def __init__(self):
        self.w, self.u, self.b = tg.Value(0.4), tg.Value(-0.7), tg.Value(0.1)

    def __call__(self, x):
        h, _ = tg.scan(lambda h, xk: (tg.tanh(self.w * h + self.u * xk), None), self.b, list(x))
        return h

    def parameters(self):
        return [self.w, self.u, self.b]


@pytest.mark.parametrize("width", (1, 4, 8))
def test_trainer_runs_a_model_with_a_loop_as_eager_does(width):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(21, 6))
    y = np.tanh(X.sum(axis=1) / 3)
    twin = Recurrent()
    eager_losses = eager_fit(twin, X, y, lambda s, t: (s - t) ** 2, ADAM, 1e-3, epochs=3, batch=8, shuffle=True,
                             seed=2)
    model = Recurrent()
    trainer = tg.nn.Trainer(model, loss="mse", optimizer=ADAM, l2=1e-3)
    trainer._width = width
    history = trainer.fit(X, y, epochs=3, batch_size=8, shuffle=True, seed=2, progress=False)
    np.testing.assert_allclose([p.data for p in model.parameters()], [p.data for p in twin.parameters()],
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(history["loss"], eager_losses, rtol=1e-12)


@pytest.mark.parametrize("width", WIDTHS)
def test_two_threads_give_the_results_of_one(long_batch, width, monkeypatch):
    # batches of at least SPLIT samples are summed in two halves added in a fixed order, whether
    # the second half runs on the helper thread or on the calling thread (which takes it where
    # the helper has not claimed it yet)
    import tracegrad.backends.fit_team as fit_team
    import tracegrad.backends.llvm_loops as loops
    X, y, eager_params, _ = long_batch
    monkeypatch.setattr(loops, "THREAD_WORK", 0)
    monkeypatch.setattr(fit_team, "idle_core", lambda: True)
    init = loops.BatchLoop.__init__
    runs = {}
    for batch in (300, 100, 70, 40):
        for threads, patient in ((1, False), (2, False), (2, True)):
            def made(self, *args, **kwargs):
                init(self, *args, **kwargs)
                self.threads, self._patient = threads, patient
            monkeypatch.setattr(loops.BatchLoop, "__init__", made)
            params, history = trained(width, X, y, "hinge", tg.nn.SGD(lr=0.2, momentum=0.5), 1e-3, epochs=3,
                                      batch=batch, layers=[6, 1])
            runs[batch, threads, patient] = params, history
        assert runs[batch, 1, False] == runs[batch, 2, False] == runs[batch, 2, True]
    np.testing.assert_allclose(runs[300, 1, False][0], eager_params, rtol=1e-12, atol=1e-14)
