"""The Trainer's dense path (``backends/llvm_dense.py``) and ``Layer`` traced as a map.

The oracle of the dense training run is the unrolled one (``BatchLoop`` over the traced
per-sample gradient), which the rest of the suite checks against eager micrograd steps
and PyTorch: both must give the same parameters, optimizer state and history.
"""
import copy

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.backends.llvm_dense import DenseLoop
from tracegrad.backends.llvm_loops import BatchLoop
from tracegrad.nn import trainer as trainer_module
from tracegrad.nn.module import dense_layers


def fit_both(model, X, y, width, loss="mse", optimizer=None, l2=0.0, fits=((2, None, False),)):
    """The parameters, state and history after ``fits`` (epochs, batch size, shuffle) by the dense
    run and by the unrolled one, from the same model; and the loop classes they ran."""
    results = []
    for dense in (True, False):
        twin = copy.deepcopy(model)
        trainer = tg.nn.Trainer(twin, loss=loss, optimizer=optimizer or tg.nn.SGD(lr=0.05), l2=l2)
        trainer._width = width
        plan, size = trainer_module.dense_layers, trainer_module.DENSE_FROM
        trainer_module.DENSE_FROM = 0  # small models too
        if not dense:
            trainer_module.dense_layers = lambda m: None
        try:
            for seed, (epochs, batch, shuffle) in enumerate(fits):
                trainer.fit(X, y, epochs=epochs, batch_size=batch, shuffle=shuffle, seed=seed, progress=False)
        finally:
            trainer_module.dense_layers, trainer_module.DENSE_FROM = plan, size
        kinds = {type(loop) for loop in trainer._compiled.values()}
        results.append((np.array([p.data for p in twin.parameters()]), trainer.state, trainer.history, kinds))
    return results


def assert_same_training(dense, unrolled):
    (p, s, h, kinds), (p0, s0, h0, kinds0) = dense, unrolled
    assert kinds == {DenseLoop} and kinds0 == {BatchLoop}
    scale = max(1.0, np.abs(p0).max())
    np.testing.assert_allclose(p, p0, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(s, s0, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(h["loss"], h0["loss"], rtol=1e-12)
    np.testing.assert_array_equal(h["accuracy"], h0["accuracy"])


def data(n, nin, targets, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, nin))
    if targets == "classes":
        return X, rng.integers(0, 3, size=n).astype(float)
    if targets == "signs":
        return X, np.where(X[:, 0] + 0.3 * X[:, -1] > 0, 1.0, -1.0)
    if targets == "bits":
        return X, (X[:, 0] > 0).astype(float)
    return X, rng.normal(size=(n, targets)) if targets > 1 else rng.normal(size=n)


@pytest.mark.parametrize("width", [1, 2, 4, 8])
@pytest.mark.parametrize("nin, sizes, activation", [
    (3, [5, 1], "relu"), (7, [4, 3, 1], "tanh"), (2, [(16, "sigmoid"), (9, "relu"), 1], "relu"),
    (8, [(1, "linear")], "relu"), (15, [6, (1, "tanh")], "sigmoid")])
def test_dense_run_equals_the_unrolled_run(width, nin, sizes, activation):
    """Every activation, depth, row length (ragged in the lanes or not) and lane width; minibatches
    with a partial last group, full batch, shuffled; SGD with an L2 term."""
    X, y = data(29, nin, 1)
    model = tg.nn.MLP(nin, sizes, activation, seed=3)
    assert_same_training(*fit_both(model, X, y, width, l2=1e-3,
                                   fits=[(2, 4, False), (1, None, False), (3, 7, True)]))


@pytest.mark.parametrize("loss, targets, last", [
    ("hinge", "signs", (1, "linear")), ("bce", "bits", (1, "sigmoid")), ("bce_logits", "bits", (1, "linear")),
    ("cross_entropy", "classes", (3, "linear")),
    (lambda out, t: (out[0] - t[0]) ** 2 + tg.abs(out[1] - t[1]), 2, (2, "tanh"))])
@pytest.mark.parametrize("optimizer", [lambda: tg.nn.Adam(lr=0.01), lambda: tg.nn.SGD(lr=lambda k: 0.1 / (1 + k))])
def test_dense_run_equals_the_unrolled_run_for_every_loss_and_optimizer(loss, targets, last, optimizer):
    X, y = data(40, 4, targets, seed=1)
    model = tg.nn.MLP(4, [6, last], "tanh", seed=5)
    assert_same_training(*fit_both(model, X, y, 8, loss=loss, optimizer=optimizer(),
                                   fits=[(3, 8, True), (2, 40, False)]))


def test_batches_longer_than_a_chunk_of_groups():
    """A batch of more samples than one chunk keeps (its sums carry over the chunks)."""
    X, y = data(300, 5, 1, seed=2)
    model = tg.nn.MLP(5, [7, 1], seed=0)
    assert_same_training(*fit_both(model, X, y, 4, fits=[(2, None, False), (1, 257, True)]))


def test_a_single_layer_model_trains_dense():
    X, y = data(20, 3, 2, seed=4)
    layer = tg.nn.Layer(3, 2, activation="linear", seed=1)
    assert_same_training(*fit_both(layer, X, y, 4, loss=lambda out, t: (out[0] - t[0]) ** 2 + (out[1] - t[1]) ** 2))


class Doubled(tg.nn.MLP):
    def __call__(self, x):
        return 2.0 * super().__call__(x)


class Shifted(tg.nn.Neuron):
    def __call__(self, x):
        return super().__call__(x) + 1.0


def test_only_plain_stacks_of_dense_layers_take_the_dense_path():
    assert dense_layers(tg.nn.MLP(2, [16, 16, 1], seed=0)) == [(2, 16, "relu"), (16, 16, "relu"), (16, 1, "linear")]
    assert dense_layers(tg.nn.TanhMLP(3, [4, 2], seed=0)) == [(3, 4, "tanh"), (4, 2, "linear")]
    assert dense_layers(tg.nn.Layer(3, 2, seed=0)) == [(3, 2, "relu")]
    assert dense_layers(Doubled(2, [3, 1], seed=0)) is None          # its own __call__
    assert dense_layers(tg.nn.Neuron(3, seed=0)) is None
    assert dense_layers(tg.nn.MLP(2, [1, 1], seed=0)) is None        # a bare hidden output, as micrograd
    mixed = tg.nn.MLP(2, [3, 1], seed=0)
    mixed.layers[0].neurons[1].activation = "tanh"
    assert dense_layers(mixed) is None
    odd = tg.nn.MLP(2, [3, 1], seed=0)
    odd.layers[0].neurons[2] = Shifted(2, seed=1)
    assert dense_layers(odd) is None
    tied = tg.nn.MLP(2, [2, 1], seed=0)
    tied.layers[0].neurons[1].w[0] = tied.layers[0].neurons[0].w[0]
    assert dense_layers(tied) is None


@pytest.mark.parametrize("sizes, kind", [([16, 16, 1], BatchLoop), ([32, 32, 1], DenseLoop)])
def test_small_models_keep_the_straight_line_kernel(sizes, kind):
    """Below ``DENSE_FROM`` parameters (the moons MLP has 337) the unrolled kernel is as fast."""
    X, y = data(10, 2, "signs")
    trainer = tg.nn.Trainer(tg.nn.MLP(2, sizes, seed=0), loss="hinge")
    trainer.fit(X, y, epochs=1, progress=False)
    assert {type(loop) for loop in trainer._compiled.values()} == {kind}


def test_models_off_the_dense_path_still_train_as_before():
    """A subclass with its own ``__call__`` trains through the unrolled run, to its own function."""
    X, y = data(16, 2, 1, seed=6)
    model = Doubled(2, [3, 1], seed=2)
    trainer = tg.nn.Trainer(model, loss="mse", optimizer=tg.nn.SGD(lr=0.01))
    trainer.fit(X, y, epochs=2, progress=False)
    assert {type(loop) for loop in trainer._compiled.values()} == {BatchLoop}
    eager = Doubled(2, [3, 1], seed=2)
    eager_trainer = tg.nn.Trainer(eager, loss="mse", optimizer=tg.nn.SGD(lr=0.01))
    for _ in range(2):
        loss = tg.nn.mse_loss([eager(list(map(tg.Value, x))) for x in X], list(y))
        eager.zero_grad()
        loss.backward()
        for p in eager.parameters():
            p.data -= 0.01 * p.grad
    del eager_trainer
    np.testing.assert_allclose([p.data for p in model.parameters()], [p.data for p in eager.parameters()],
                               rtol=1e-12, atol=1e-14)


def test_dense_code_does_not_grow_with_the_width():
    """The module text of the training run is the same size at 8 and 512 neurons a layer."""
    def source(width):
        model = tg.nn.MLP(64, [width, 10], seed=0)
        trainer = tg.nn.Trainer(model, loss="cross_entropy", optimizer=tg.nn.Adam(lr=0.01))
        layers, loss = trainer._dense_layers(dense_layers(model), 0.0)
        from tracegrad.backends.llvm_dense import dense_loop_source
        return dense_loop_source(layers, loss, trainer._update_graph(), width=8)
    small, wide = source(8), source(512)
    assert abs(len(wide.splitlines()) - len(small.splitlines())) < 10


def test_a_layer_traces_as_one_map_over_its_neurons():
    """The traced model holds one loop per layer: its size follows the layers, not their width."""
    def traced(width):
        model = tg.nn.MLP(3, [width, width, 2], "tanh", seed=0)
        return tg.trace(lambda ps, x: model.apply(ps, x), [p.data for p in model.parameters()], [0.1, 0.2, 0.3])
    narrow, wide = traced(4), traced(64)
    assert narrow.stats()["scan"] == wide.stats()["scan"] == 3
    body_sizes = [len(r.body.nodes) for op, _, r in narrow.nodes if op == "scan"]
    assert body_sizes[0] == [len(r.body.nodes) for op, _, r in wide.nodes if op == "scan"][0]


@pytest.mark.parametrize("backend", ["interp", "python", "llvm", "numba"])
def test_a_traced_layer_equals_the_unrolled_one(backend):
    """Value, gradient and Hessian-vector product of a model through ``Layer``'s map, in each
    backend, equal the unrolled graph's and eager ``Value`` backprop."""
    model = tg.nn.MLP(3, [(4, "tanh"), (3, "sigmoid"), 2], seed=7)
    params = [p.data for p in model.parameters()]
    x = [0.3, -1.2, 0.8]

    def f(ps):
        out = model.apply(ps, x)
        return out[0] * out[1] + tg.relu(out[0])
    grad = tg.jit(tg.grad(f), backend=backend)(params)
    unrolled = tg.grad(tg.unroll(f))(params)
    np.testing.assert_allclose(grad, unrolled, rtol=1e-13, atol=1e-15)
    values = [tg.Value(v) for v in params]
    out = f(values)
    out.backward()
    np.testing.assert_allclose(grad, [v.grad for v in values], rtol=1e-13, atol=1e-15)
    v = list(np.linspace(-1, 1, len(params)))
    np.testing.assert_allclose(tg.hvp(f, backend=backend)((params,), (v,))[0],
                               tg.hvp(tg.unroll(f))((params,), (v,))[0], rtol=1e-12, atol=1e-14)


def test_a_layer_of_values_stays_eager():
    layer = tg.nn.Layer(2, 3, seed=0)
    out = layer([tg.Value(1.0), tg.Value(-2.0)])
    assert all(isinstance(o, tg.Value) for o in out)
    sum(out).backward()
    assert layer.neurons[0].w[0].grad in (0.0, 1.0)


def test_a_traced_layer_checks_its_input_count():
    model = tg.nn.MLP(3, [4, 1], seed=0)
    params = [p.data for p in model.parameters()]
    with pytest.raises(ValueError, match="takes 3 inputs, got 2"):
        tg.grad(lambda ps: model.apply(ps, [1.0, 2.0]))(params)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 100])
@pytest.mark.parametrize("sizes", [[40, 1], [(24, "tanh"), (20, "sigmoid"), 3]])
def test_dense_predict_equals_the_model_on_floats(n, sizes):
    """``predict`` of a wide MLP runs the dense forward loops: the same outputs as calling the model
    on each row (the same additions in the same order), any number of rows."""
    model = tg.nn.MLP(13, sizes, seed=2)
    assert len(model.parameters()) >= trainer_module.DENSE_FROM
    X = np.random.default_rng(n).normal(size=(n, 13))
    expected = np.array([model.apply([p.data for p in model.parameters()], list(x)) for x in X])
    out = model.predict(X)
    assert out.shape == expected.shape == ((n,) if sizes[-1] == 1 else (n, 3))
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("columns", [1, 9, 12])
def test_a_layer_model_checks_the_columns_of_x(columns):
    """A bare ``Layer`` is a model of ``nin`` features: other data is a ValueError, in fit (dense and
    straight-line) and in predict, never a read past the data."""
    X, y = np.ones((40, columns)), np.ones((40, 50))
    for layer in (tg.nn.Layer(10, 50, activation="linear", seed=0), tg.nn.Layer(10, 2, seed=0)):
        assert layer.nin == 10
        trainer = tg.nn.Trainer(layer, loss="mse")
        with pytest.raises(ValueError, match="takes 10 features, X has"):
            trainer.fit(X, y[:, :len(layer.neurons)], epochs=1, progress=False)
        with pytest.raises(ValueError, match="takes 10 features, X has"):
            layer.predict(X)
