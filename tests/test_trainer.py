"""The compiled Trainer: it trains, it agrees with eager training, and it rejects bad input early."""
import copy
import math
import pickle
import runpy
import sys
import tracemalloc

import numpy as np
import pytest
import torch

import tracegrad as tg
from tracegrad.backends.llvm_dense import DenseLoop
from tracegrad.backends.llvm_loops import BatchLoop
from test_nn import logistic_regression_data, torch_logistic_regression


@pytest.fixture(scope="module")
def moons():
    from sklearn.datasets import make_moons
    X, y = make_moons(n_samples=100, noise=0.1, random_state=0)
    return X, 2.0 * y - 1.0


def micrograd_demo_trainer(seed=1337):
    model = tg.nn.MLP(2, [16, 16, 1], seed=seed)
    return model, tg.nn.Trainer(model, loss="hinge", l2=1e-4,
                                optimizer=tg.nn.SGD(lr=lambda k: 1.0 - 0.9 * k / 100))


def eager_demo_step(model, X, y, k, l2=1e-4):
    scores = [model(list(map(tg.Value, row))) for row in X]
    losses = [(1 + -yi * s).relu() for yi, s in zip(y, scores)]
    total = sum(losses) * (1.0 / len(losses)) + l2 * sum(p * p for p in model.parameters())
    model.zero_grad()
    total.backward()
    for p in model.parameters():
        p.data -= (1.0 - 0.9 * k / 100) * p.grad
    return total.data


def test_moons_reaches_full_accuracy(moons):
    X, y = moons
    model, trainer = micrograd_demo_trainer()
    history = trainer.fit(X, y, epochs=100, progress=False)
    assert len(history["loss"]) == 100 and history["accuracy"][-1] == 1.0
    assert history["loss"][-1] < 0.05 < history["loss"][0]
    assert np.mean((model.predict(X) > 0) == (y > 0)) == 1.0
    # the eager model holds the trained parameters
    assert all(np.sign(model(list(x)).data) == t for x, t in zip(X, y))


def test_compiled_steps_equal_eager_micrograd_steps(moons):
    X, y = moons
    model, trainer = micrograd_demo_trainer(seed=3)
    twin = tg.nn.MLP(2, [16, 16, 1], seed=3)
    history = trainer.fit(X, y, epochs=3, progress=False)
    losses = [eager_demo_step(twin, X, y, k) for k in range(3)]
    np.testing.assert_allclose(history["loss"][:1], losses[:1], rtol=1e-12)
    np.testing.assert_allclose([p.data for p in model.parameters()], [p.data for p in twin.parameters()],
                               rtol=1e-10, atol=1e-13)


def test_fit_continues_and_schedule_counts_steps(moons):
    X, y = moons
    model, trainer = micrograd_demo_trainer(seed=5)
    trainer.fit(X, y, epochs=2, progress=False)
    trainer.fit(X, y, epochs=2, progress=False)
    twin, twin_trainer = micrograd_demo_trainer(seed=5)
    twin_trainer.fit(X, y, epochs=4, progress=False)
    assert trainer.step == 4 and len(trainer.history["loss"]) == 4
    assert [p.data for p in model.parameters()] == [p.data for p in twin.parameters()]


def test_minibatches_shuffle_reproducibly(moons):
    X, y = moons
    runs = []
    for _ in range(2):
        model, trainer = micrograd_demo_trainer(seed=7)
        trainer.fit(X, y, epochs=3, batch_size=32, shuffle=True, seed=0, progress=False)
        runs.append([p.data for p in model.parameters()])
        assert trainer.step == 3 * 4
    assert runs[0] == runs[1]


def test_shuffled_epochs_are_one_permutation_each_drawn_in_turn(moons):
    """Epoch e visits the samples in the e-th permutation of np.random.default_rng(seed), whether
    the epochs run in one compiled call or in several (CHUNK bounds the order array)."""
    X, y = moons
    expected, twin = micrograd_demo_trainer(seed=7)
    rng = np.random.default_rng(3)
    for _ in range(5):  # the same steps over data permuted by hand, one epoch at a time
        perm = rng.permutation(len(X))
        twin.fit(X[perm], y[perm], epochs=1, batch_size=32, progress=False)
    for chunk in (tg.nn.trainer.CHUNK, 2 * (4 + 100)):  # one call; two epochs a call
        model, trainer = micrograd_demo_trainer(seed=7)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(tg.nn.trainer, "CHUNK", chunk)
            history = trainer.fit(X, y, epochs=5, batch_size=32, shuffle=True, seed=3, progress=False)
        assert [p.data for p in model.parameters()] == [p.data for p in expected.parameters()]
        assert history == twin.history and trainer.step == twin.step == 5 * 4


def test_shuffled_fit_memory_does_not_grow_with_epochs():
    """1,000 samples x 100,000 epochs built every permutation up front (1.6 GB); what is left is
    the history itself, about 100 bytes an epoch."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 2))
    y = np.sign(X[:, 0])
    trainer = tg.nn.Trainer(tg.nn.MLP(2, [1], seed=0), loss="hinge", optimizer=tg.nn.SGD(lr=0.01))
    trainer.fit(X, y, epochs=1, shuffle=True, seed=0, progress=False)  # compile first
    tracemalloc.start()
    try:
        trainer.fit(X, y, epochs=100_000, shuffle=True, seed=0, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 100_000  # the permutations alone were 800 bytes an epoch, twice over


def interrupt_calls(monkeypatch, at, after):
    """Make the training runs' ``__call__`` (``BatchLoop``'s, ``DenseLoop``'s) raise KeyboardInterrupt
    at call number ``at``, before running (Ctrl-C between calls) or after (Ctrl-C during a call is
    raised when the call returns)."""
    calls = []
    for cls in (BatchLoop, DenseLoop):
        def call(loop, *args, run=cls.__call__):
            calls.append(1)
            if len(calls) == at and not after:
                raise KeyboardInterrupt
            run(loop, *args)
            if len(calls) == at:
                raise KeyboardInterrupt
        monkeypatch.setattr(cls, "__call__", call)


@pytest.mark.parametrize("progress, chunk, after, done", [
    (True, None, True, 3), (True, None, False, 2), (False, 2 * 4, True, 6), (False, 2 * 4, False, 4)])
def test_interrupted_fit_keeps_completed_steps_and_resumes(moons, monkeypatch, progress, chunk, after, done):
    """After Ctrl-C the model holds the parameters of the last completed step, with the optimizer
    state, step count and history that go with them; fit resumes to what one fit gives."""
    X, y = moons

    def trainer():
        model = tg.nn.MLP(2, [(8, "tanh"), 1], seed=4)
        return model, tg.nn.Trainer(model, loss="hinge", l2=1e-4,
                                    optimizer=tg.nn.Adam(lr=lambda k: 0.05 / (1 + 0.1 * k)))
    (partial, partial_trainer), (whole, whole_trainer) = trainer(), trainer()
    partial_trainer.fit(X, y, epochs=done, batch_size=32, progress=False)
    whole_trainer.fit(X, y, epochs=7, batch_size=32, progress=False)
    model, interrupted = trainer()
    if chunk:
        monkeypatch.setattr(tg.nn.trainer, "CHUNK", chunk)
    interrupt_calls(monkeypatch, 3, after)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(X, y, epochs=7, batch_size=32, progress=progress)
    assert [p.data for p in model.parameters()] == [p.data for p in partial.parameters()]
    assert interrupted.step == partial_trainer.step == done * 4
    assert np.array_equal(interrupted.state, partial_trainer.state)
    assert interrupted.history == partial_trainer.history
    monkeypatch.undo()
    interrupted.fit(X, y, epochs=7 - done, batch_size=32, progress=False)
    assert [p.data for p in model.parameters()] == [p.data for p in whole.parameters()]
    assert interrupted.history == whole_trainer.history and np.array_equal(interrupted.state, whole_trainer.state)


def test_adam_matches_eager_adam():
    X = np.array([[0.5, -1.0], [1.5, 2.0], [-0.3, 0.7]])
    y = np.array([1.0, -0.5, 0.25])
    model = tg.nn.MLP(2, [(3, "tanh"), 1], seed=11)
    twin = tg.nn.MLP(2, [(3, "tanh"), 1], seed=11)
    tg.nn.Trainer(model, loss="mse", optimizer=tg.nn.Adam(lr=1e-2)).fit(X, y, epochs=5, progress=False)
    opt = tg.nn.Adam(twin.parameters(), lr=1e-2)
    for _ in range(5):
        loss = tg.nn.mse_loss([twin(list(map(tg.Value, x))) for x in X], list(y))
        opt.zero_grad(); loss.backward(); opt.step()
    np.testing.assert_allclose([p.data for p in model.parameters()], [p.data for p in twin.parameters()],
                               rtol=1e-10, atol=1e-14)


def test_custom_loss_and_several_outputs():
    def softmax_cross_entropy(scores, target):  # target: class index as a float
        top = scores[0]
        for s in scores[1:]:
            top = tg.maximum(top, s)
        lse = top + tg.log(sum(tg.exp(s - top) for s in scores))
        picked = sum(tg.where(target == k, s, 0.0) for k, s in enumerate(scores))
        return lse - picked
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(float) + (X[:, 1] > 0)
    model = tg.nn.MLP(2, [8, 3], seed=0)
    history = tg.nn.Trainer(model, loss=softmax_cross_entropy, optimizer=tg.nn.Adam(lr=0.05)).fit(
        X, y, epochs=60, progress=False)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert math.isnan(history["accuracy"][0])  # no accuracy for a custom loss
    assert model.predict(X).shape == (60, 3)
    assert np.mean(model.predict(X).argmax(axis=1) == y) > 0.8


@pytest.mark.parametrize("loss", ["bce", "bce_logits"])
def test_bce_losses_train(loss):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(float)
    last = "sigmoid" if loss == "bce" else "linear"
    model = tg.nn.MLP(2, [(4, "tanh"), (1, last)], seed=2)
    history = tg.nn.Trainer(model, loss=loss, optimizer=tg.nn.SGD(lr=0.5)).fit(X, y, epochs=50, progress=False)
    assert history["accuracy"][-1] >= 0.9 and history["loss"][-1] < history["loss"][0]


def test_model_pickles_and_deep_copies_after_predict(moons):
    """Compiled code is cached by the model's structure, not kept on the model (ctypes pointers
    cannot be pickled); a copy predicts the same, and a changed model is not served stale code."""
    X, y = moons
    model, trainer = micrograd_demo_trainer(seed=2)
    trainer.fit(X, y, epochs=3, progress=False)
    expected = np.array([model(list(x)).data for x in X])
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-13)
    for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert np.array_equal(twin.predict(X), model.predict(X))
        assert [p.data for p in twin.parameters()] == [p.data for p in model.parameters()]
    model.layers[0].neurons[0].activation = "tanh"
    np.testing.assert_allclose(model.predict(X), [model(list(x)).data for x in X], rtol=1e-13)


def test_bce_logistic_regression_on_saturating_features_matches_torch():
    """Features up to +-20 saturate the sigmoid (p == 1.0) within a few steps: the Trainer stays
    finite and follows PyTorch's steps (it went nan at the first saturated step)."""
    X, y = logistic_regression_data()
    model = tg.nn.MLP(2, [(1, "sigmoid")], seed=0)
    start = [p.data for p in model.parameters()]
    history = tg.nn.Trainer(model, loss="bce", optimizer=tg.nn.SGD(lr=0.5)).fit(X, y, epochs=60, progress=False)
    losses, weights = torch_logistic_regression(X, y, start, 60, 0.5)
    np.testing.assert_allclose(history["loss"], losses, rtol=1e-10)
    np.testing.assert_allclose([p.data for p in model.parameters()], weights, rtol=1e-10)
    assert history["loss"][-1] < 0.03 and history["accuracy"][-1] >= 0.98


@pytest.mark.parametrize("X, y, message", [
    (np.zeros((3, 2)), np.zeros(4), "one target per sample"),
    (np.zeros((3, 3)), np.zeros(3), "takes 2 features"),
    (np.array([[0.0, np.nan]]), np.zeros(1), "finite"),
    (np.zeros((3, 2)), np.array([0.0, np.inf, 1.0]), "finite"),
    (np.zeros(3), np.zeros(3), "2-D"),
    (np.zeros((0, 2)), np.zeros(0), "empty"),
    (np.array([["1", "2"]]), np.zeros(1), "real numbers"),
    (np.zeros((1, 2)), np.array([1 + 2j]), "real numbers"),
])
def test_bad_data_is_a_value_error_before_compiling(X, y, message):
    model = tg.nn.MLP(2, [1], seed=0)
    trainer = tg.nn.Trainer(model)
    with pytest.raises(ValueError, match=message):
        trainer.fit(X, y, progress=False)
    assert trainer._compiled == {}


def test_bad_arguments():
    model = tg.nn.MLP(2, [1], seed=0)
    with pytest.raises(ValueError, match="unknown loss 'hinj'"):
        tg.nn.Trainer(model, loss="hinj")
    with pytest.raises(TypeError, match="optimizer"):
        tg.nn.Trainer(model, optimizer="sgd")
    with pytest.raises(ValueError, match="l2"):
        tg.nn.Trainer(model, l2=-1.0)
    with pytest.raises(TypeError, match="model"):
        tg.nn.Trainer(lambda x: x)
    trainer = tg.nn.Trainer(model)
    with pytest.raises(ValueError, match="batch_size"):
        trainer.fit(np.zeros((2, 2)), np.zeros(2), batch_size=0, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        trainer.fit(np.zeros((2, 2)), np.zeros(2), epochs=-1, progress=False)


def test_moons_example_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["moons.py", "--outdir", str(tmp_path), "--no-progress"])
    namespace = runpy.run_path("examples/moons.py")
    accuracy = namespace["main"](["--outdir", str(tmp_path), "--no-progress"])
    assert accuracy == 1.0
    assert (tmp_path / "moons_decision_boundary.png").stat().st_size > 1000
    assert (tmp_path / "moons_loss.png").stat().st_size > 1000


def test_moons_example_data_equals_sklearn():
    from sklearn.datasets import make_moons
    make_data = runpy.run_path("examples/moons.py")["make_data"]
    X, y = make_data()
    Xs, ys = make_moons(n_samples=100, noise=0.1, random_state=0)
    assert np.array_equal(X, Xs) and np.array_equal(y, 2.0 * ys - 1.0)


# ---------------------------------------------------------------- multi-class: loss="cross_entropy"

def torch_mlp_steps(model, X, y, epochs, lr, hidden="tanh"):
    """Full-batch SGD on the same MLP in PyTorch float64: per epoch the loss and the argmax accuracy
    (before the step, as the Trainer reports them), then the parameters in tracegrad's order."""
    layers, flat = [], [p.data for p in model.parameters()]
    for layer in model.layers:
        nin, nout = len(layer.neurons[0].w), len(layer.neurons)
        block = torch.tensor(flat[:(nin + 1) * nout], dtype=torch.float64).reshape(nout, nin + 1)
        flat = flat[(nin + 1) * nout:]
        layers.append((block[:, :nin].clone().requires_grad_(), block[:, nin].clone().requires_grad_()))
    params = [t for pair in layers for t in pair]
    opt = torch.optim.SGD(params, lr=lr)
    X, labels, losses, accuracy = torch.tensor(X), torch.tensor(y, dtype=torch.long), [], []
    for _ in range(epochs):
        h = X
        for i, (w, b) in enumerate(layers):
            h = h @ w.T + b
            h = getattr(torch, hidden)(h) if i < len(layers) - 1 else h
        loss = torch.nn.functional.cross_entropy(h, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        accuracy.append((h.argmax(dim=1) == labels).double().mean().item())
    weights = [v for w, b in layers for row, bias in zip(w.tolist(), b.tolist()) for v in row + [bias]]
    return losses, accuracy, weights


def test_cross_entropy_trainer_follows_torch_step_for_step():
    rng = np.random.default_rng(4)
    X = rng.normal(scale=3.0, size=(45, 3))
    y = np.argmax(X @ rng.normal(size=(3, 4)), axis=1)  # 4 classes, ints
    model = tg.nn.MLP(3, [(8, "tanh"), 4], seed=5)
    losses, accuracy, weights = torch_mlp_steps(model, X, y, 40, 0.3)
    trainer = tg.nn.Trainer(model, loss="cross_entropy", optimizer=tg.nn.SGD(lr=0.3))
    history = trainer.fit(X, y, epochs=40, progress=False)
    np.testing.assert_allclose(history["loss"], losses, rtol=1e-10)
    assert history["accuracy"] == accuracy and accuracy[-1] > accuracy[0]
    np.testing.assert_allclose([p.data for p in model.parameters()], weights, rtol=1e-10, atol=1e-13)
    logits = model.predict(X)  # the logits
    assert logits.shape == (45, 4)
    assert tg.nn.cross_entropy(logits, y) == pytest.approx(
        torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(y)).item(), rel=1e-13)


def test_cross_entropy_accuracy_is_argmax_with_the_first_of_ties():
    """Equal logits: torch.argmax picks the first class; so does the Trainer's accuracy."""
    model = tg.nn.MLP(2, [3], seed=0)
    for p in model.parameters():
        p.data = 0.0  # every logit 0: the predicted class is 0
    trainer = tg.nn.Trainer(model, loss="cross_entropy", optimizer=tg.nn.SGD(lr=0.0))
    history = trainer.fit(np.zeros((4, 2)), np.array([0, 1, 2, 0]), epochs=1, progress=False)
    assert history["accuracy"] == [0.5] and history["loss"] == [pytest.approx(math.log(3.0), rel=1e-15)]


@pytest.mark.parametrize("y, message", [
    (np.array([0, 1, 3]), r"class indices 0 \.\.\. 2 .* got 3.0"),
    (np.array([0, -1, 2]), r"got -1.0"),
    (np.array([0.0, 1.5, 2.0]), r"got 1.5"),
    (np.eye(3), r"one class index per sample .* y.argmax\(axis=1\)"),
    (np.array([0, 1]), "one target per sample"),
])
def test_cross_entropy_labels_are_checked_before_compiling(y, message):
    trainer = tg.nn.Trainer(tg.nn.MLP(2, [3], seed=0), loss="cross_entropy")
    with pytest.raises(ValueError, match=message):
        trainer.fit(np.zeros((3, 2)), y, progress=False)
    assert trainer._compiled == {}
    single = tg.nn.Trainer(tg.nn.MLP(2, [1], seed=0), loss="cross_entropy")
    with pytest.raises(ValueError, match="one output per class"):
        single.fit(np.zeros((3, 2)), np.zeros(3), progress=False)


def test_cross_entropy_labels_of_a_dask_array_are_checked_where_they_live():
    da = pytest.importorskip("dask.array")
    from tracegrad.nn.trainer import check_labels
    with pytest.raises(ValueError, match="got 5.0"):
        check_labels(da.from_array(np.array([0.0, 1.0, 2.0, 5.0]), chunks=2), 3)
    y = da.from_array(np.array([0.0, 1.0, 2.0]), chunks=2)
    assert check_labels(y, 3) is y  # still lazy


@pytest.mark.parametrize("sizes", [[4, 1], [64, 1]])  # the straight-line and the dense training run
def test_trainer_copies_and_pickles_and_the_copy_trains_alike(moons, sizes):
    """A Trainer's copy (or pickle) leaves its compiled code behind and trains as the original does."""
    import copy
    import pickle
    X, y = moons
    trainer = tg.nn.Trainer(tg.nn.MLP(2, sizes, seed=1), loss="hinge", optimizer=tg.nn.Adam(lr=0.01))
    trainer.fit(X, y, epochs=2, batch_size=32, progress=False)
    twins = [copy.deepcopy(trainer), pickle.loads(pickle.dumps(trainer))]
    trainer.fit(X, y, epochs=2, batch_size=32, progress=False)
    for twin in twins:
        twin.fit(X, y, epochs=2, batch_size=32, progress=False)
        assert [p.data for p in twin.params] == [p.data for p in trainer.params]
        assert twin.history == trainer.history and twin.step == trainer.step
