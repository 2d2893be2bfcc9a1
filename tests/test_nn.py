"""nn: shapes, reprs, parameter order, state, losses and optimizers against PyTorch,
tracing a model, and eager training runs."""
import json
import math
import random

import numpy as np
import pytest
import torch

import tracegrad as tg
from tracegrad import Value
from tracegrad.nn import MLP, SGD, Adam, Layer, Neuron


def test_micrograd_shapes_reprs_and_parameter_count():
    model = MLP(2, [16, 16, 1], seed=0)
    assert len(model.parameters()) == 337
    text = repr(model)
    assert text.startswith("MLP of [Layer of [ReLUNeuron(2), ReLUNeuron(2)")
    assert text.endswith("Layer of [LinearNeuron(16)]]") and text.count("ReLUNeuron(16)") == 16
    assert repr(Layer(3, 2, nonlin=False, seed=0)) == "Layer of [LinearNeuron(3), LinearNeuron(3)]"
    mixed = MLP(2, [(4, "tanh"), (4, "relu"), (1, "sigmoid")], seed=0)
    assert [repr(layer.neurons[0]) for layer in mixed.layers] == ["TanhNeuron(2)", "ReLUNeuron(4)",
                                                                  "SigmoidNeuron(4)"]
    assert len(mixed.parameters()) == 4 * 3 + 4 * 5 + 5
    out = mixed([Value(0.5), Value(-1.0)])
    assert isinstance(out, Value) and 0.0 < out.data < 1.0
    assert len(MLP(2, [3, 2], seed=0)([1.0, 2.0])) == 2


def test_parameter_order_is_micrograd_order_and_weights_follow_random():
    random.seed(1337)
    model = MLP(2, [3, 1])
    random.seed(1337)
    expected = [random.uniform(-1, 1) for _ in range(2)]
    first = model.layers[0].neurons[0]
    assert [p.data for p in first.w] == expected
    params = model.parameters()
    assert params[:3] == first.w + [first.b] and params[-1] is model.layers[1].neurons[0].b
    assert [p.data for p in MLP(2, [3, 1], seed=5).parameters()] == \
        [p.data for p in MLP(2, [3, 1], seed=5).parameters()]
    assert [p.data for p in MLP(2, [3, 1], rng=random.Random(5)).parameters()] == \
        [p.data for p in MLP(2, [3, 1], seed=5).parameters()]


def test_activation_name_in_micrograds_nonlin_position():
    """Seeds write Neuron(3, "tanh") and Layer(3, 4, "tanh"): the name is the activation (it built
    a ReLU neuron, and a TypeError for the layer); MLP's third argument is the hidden layers'."""
    assert repr(Neuron(3, "tanh", seed=0)) == "TanhNeuron(3)"
    assert repr(Layer(3, 2, "sigmoid", seed=0)) == "Layer of [SigmoidNeuron(3), SigmoidNeuron(3)]"
    assert repr(Layer(3, 2, False, seed=0)) == "Layer of [LinearNeuron(3), LinearNeuron(3)]"
    assert repr(MLP(2, [3, 1], "tanh", seed=0)) == repr(MLP(2, [(3, "tanh"), (1, "linear")], seed=0))
    n, twin = Neuron(3, "tanh", seed=4), Neuron(3, activation="tanh", seed=4)
    assert n([0.5, -1.0, 2.0]).data == twin([0.5, -1.0, 2.0]).data
    assert n([0.5, -1.0, 2.0]).data == math.tanh(sum(w.data * x for w, x in zip(n.w, [0.5, -1.0, 2.0])))
    for make in (lambda: Neuron(3, 1), lambda: Layer(3, 4, None), lambda: Neuron(3, [True])):
        with pytest.raises(TypeError, match="activation="):
            make()
    with pytest.raises(TypeError, match="seed= and rng= are keyword"):
        MLP(2, [3, 1], 0)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        Layer(3, 4, "swish")
    with pytest.raises(ValueError, match="two activations"):
        Neuron(3, "tanh", activation="relu")


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="activation"):
        MLP(2, [(3, "swish")])
    with pytest.raises(ValueError, match="layer sizes"):
        MLP(2, [0])
    with pytest.raises(ValueError, match="takes 2 inputs"):
        Neuron(2, seed=0)([1.0])
    with pytest.raises(ValueError, match="337 parameters"):
        MLP(2, [16, 16, 1], seed=0).load_state_dict({"parameters": [1.0]})
    with pytest.raises(ValueError, match="recipe"):
        SGD(lr=0.1).step()
    with pytest.raises(TypeError, match="lr"):
        SGD(lr="fast")
    with pytest.raises(ValueError, match="as many targets"):
        tg.nn.mse_loss([1.0, 2.0], [1.0])


def test_state_dict_is_json_and_round_trips():
    a, b = MLP(2, [4, 1], seed=1), MLP(2, [4, 1], seed=2)
    state = json.loads(json.dumps(a.state_dict()))
    b.load_state_dict(state)
    assert [p.data for p in b.parameters()] == [p.data for p in a.parameters()]
    assert b([0.3, -0.7]).data == a([0.3, -0.7]).data


def test_zero_grad():
    model = MLP(2, [3, 1], seed=0)
    model([Value(1.0), Value(2.0)]).backward()
    assert any(p.grad != 0.0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())


# ---------------------------------------------------------------- the model on tracers

def _loss(model, params, X, Y):
    preds = [model.apply(params, row) for row in X]
    return tg.nn.mse_loss(preds, Y)


def test_grad_of_a_traced_mlp_loss_equals_eager_backward():
    model = MLP(2, [(4, "tanh"), (3, "relu"), 1], seed=3)
    X, Y = [[0.5, -1.0], [1.5, 0.25], [-0.3, 0.8]], [1.0, -1.0, 0.5]
    params = [p.data for p in model.parameters()]
    traced = tg.grad(lambda ps: _loss(model, ps, X, Y))(params)
    loss = tg.nn.mse_loss([model(row) for row in X], Y)
    loss.backward()
    eager = [p.grad for p in model.parameters()]
    assert traced == pytest.approx(eager, rel=1e-13, abs=1e-15)
    assert _loss(model, params, X, Y) == pytest.approx(loss.data, rel=1e-15)  # floats too
    assert [p.data for p in model.parameters()] == params  # apply left the model as it was


# ---------------------------------------------------------------- losses against PyTorch

def _torch_check(tg_loss, torch_loss, preds, targets):
    vs = [Value(p) for p in preds]
    out = tg_loss(vs, targets)
    out.backward()
    tp = torch.tensor(preds, dtype=torch.float64, requires_grad=True)
    tout = torch_loss(tp, torch.tensor(targets, dtype=torch.float64))
    tout.backward()
    assert out.data == pytest.approx(tout.item(), rel=1e-13)
    assert [v.grad for v in vs] == pytest.approx(tp.grad.tolist(), rel=1e-12, abs=1e-300)


def test_mse_against_torch():
    _torch_check(tg.nn.mse_loss, torch.nn.functional.mse_loss, [0.5, -2.0, 3.0], [1.0, 0.0, 3.5])


def test_bce_against_torch_probabilities_and_logits():
    _torch_check(tg.nn.binary_cross_entropy, torch.nn.functional.binary_cross_entropy,
                 [0.2, 0.9, 0.5], [0.0, 1.0, 0.3])
    _torch_check(lambda p, t: tg.nn.binary_cross_entropy(p, t, from_logits=True),
                 torch.nn.functional.binary_cross_entropy_with_logits,
                 [-3.0, 0.0, 2.5, 40.0, -800.0], [0.0, 1.0, 0.3, 1.0, 1.0])


SATURATED = [(1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (1.0, 0.3), (0.0, 0.7), (1.0 - 2.0 ** -53, 0.0),
             (1.0 - 1e-13, 1.0), (1e-13, 1.0), (1e-300, 1.0), (5e-324, 0.4), (0.3, 0.3000001)]


def test_bce_gradient_is_torchs_where_p_saturates():
    """sigmoid(z) is exactly 1.0 for z > 36.7: the loss is finite and so is its gradient,
    PyTorch's (p - t) / max(p (1 - p), 1e-12), eager, traced and compiled."""
    preds, targets = [p for p, _ in SATURATED], [t for _, t in SATURATED]
    tp = torch.tensor(preds, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(targets, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.binary_cross_entropy(tp, tt).backward()
    _torch_check(tg.nn.binary_cross_entropy, torch.nn.functional.binary_cross_entropy, preds, targets)
    for backend in ("interp", "llvm"):
        loss = tg.value_and_grad(tg.nn.binary_cross_entropy, argnums=(0, 1), backend=backend)
        value, (gp, gt) = loss(preds, targets)
        assert value == pytest.approx(torch.nn.functional.binary_cross_entropy(tp, tt).item(), rel=1e-13)
        assert gp == pytest.approx(tp.grad.tolist(), rel=1e-12, abs=1e-300)
        # in t, PyTorch's -logit(p) clamped at +-100 as the loss's logs are (PyTorch: +-inf, 690.8)
        assert gt == pytest.approx(tt.grad.clamp(-100 / len(preds), 100 / len(preds)).tolist(), rel=1e-12)
    targets_as_values = [Value(t) for t in targets]
    tg.nn.binary_cross_entropy(preds, targets_as_values).backward()
    assert [t.grad for t in targets_as_values] == pytest.approx(gt, rel=1e-15)


@pytest.mark.parametrize("z", [40.0, -40.0, 800.0, -800.0, 30.0, -30.0])
def test_sigmoid_then_bce_stays_finite_as_in_torch(z):
    for t in (0.0, 1.0):
        x = Value(z)
        loss = tg.nn.binary_cross_entropy([x.sigmoid()], [t])
        loss.backward()
        tz = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        tloss = torch.nn.functional.binary_cross_entropy(torch.sigmoid(tz), torch.tensor(t, dtype=torch.float64))
        tloss.backward()
        assert (loss.data, x.grad) == pytest.approx((tloss.item(), tz.grad.item()), rel=1e-12, abs=1e-300)
        assert tg.grad(lambda z: tg.nn.binary_cross_entropy(tg.sigmoid(z), t))(z) == x.grad


def logistic_regression_data():
    """A seed's logistic regression: features up to +-20, so sigmoid saturates after a few steps."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-20.0, 20.0, size=(50, 2))
    return X, (X[:, 0] - 0.5 * X[:, 1] > 1.0).astype(float)


def torch_logistic_regression(X, y, start, epochs, lr):
    w = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt, losses = torch.optim.SGD([w], lr=lr), []
    for _ in range(epochs):
        p = torch.sigmoid(torch.tensor(X) @ w[:2] + w[2])
        loss = torch.nn.functional.binary_cross_entropy(p, torch.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, w.tolist()


def test_eager_logistic_regression_converges_as_torch():
    X, y = logistic_regression_data()
    model = MLP(2, [(1, "sigmoid")], seed=0)
    start = [p.data for p in model.parameters()]
    history = tg.nn.train(model, X, y, loss_fn=tg.nn.binary_cross_entropy, epochs=60, lr=0.5)
    losses, weights = torch_logistic_regression(X, y, start, 60, 0.5)
    assert history == pytest.approx(losses, rel=1e-12) and history[-1] < 0.03
    assert [p.data for p in model.parameters()] == pytest.approx(weights, rel=1e-12)


def test_bce_extremes_are_finite():
    assert tg.nn.binary_cross_entropy([0.0, 1.0], [1.0, 0.0]) == 100.0  # logs clamped at -100
    assert tg.nn.binary_cross_entropy([1000.0], [0.0], from_logits=True) == 1000.0


def test_losses_of_arrays_are_the_mean_as_in_torch():
    """What predict returns (a 1-D array) and array targets give the mean, as for lists."""
    model = MLP(2, [(4, "tanh"), (1, "sigmoid")], seed=0)
    X = np.array([[0.5, -1.0], [1.5, 2.0], [-0.3, 0.7]])
    preds, y = model.predict(X), np.array([1.0, 0.0, 1.0])
    tp, ty = torch.tensor(preds), torch.tensor(y)
    F = torch.nn.functional
    expected = {"mse_loss": F.mse_loss(tp, ty), "binary_cross_entropy": F.binary_cross_entropy(tp, ty),
                "hinge_loss": torch.relu(1 - (2 * ty - 1) * tp).mean()}
    for name, loss in expected.items():
        targets = 2 * y - 1 if name == "hinge_loss" else y
        fn = getattr(tg.nn, name)
        for p, t in [(preds, targets), (preds, list(targets)), (list(preds), targets), (preds.tolist(), targets)]:
            assert fn(p, t) == pytest.approx(loss.item(), rel=1e-14), (name, type(p), type(t))
    with pytest.raises(ValueError, match="1-D"):
        tg.nn.mse_loss(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="as many targets"):
        tg.nn.mse_loss(np.zeros(3), np.zeros(2))


def test_hinge_against_torch():
    _torch_check(tg.nn.hinge_loss, lambda s, y: torch.relu(1 - y * s).mean(),
                 [2.0, -0.5, 0.3, 1.0], [1.0, 1.0, -1.0, 1.0])


# ---------------------------------------------------------------- optimizers against PyTorch

def _run_optimizer(make_tg, make_torch, lr, steps=5):
    start = [0.5, -1.5, 2.0]
    ps = [Value(x) for x in start]
    opt = make_tg(ps, lr)
    tp = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    topt = make_torch([tp], lr(0) if callable(lr) else lr)
    sched = torch.optim.lr_scheduler.LambdaLR(topt, lambda k: lr(k) / lr(0)) if callable(lr) else None
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(p ** 4 * 0.1 + p * 0.5 for p in ps)
        loss.backward()
        opt.step()
        topt.zero_grad()
        (tp ** 4 * 0.1 + tp * 0.5).sum().backward()
        topt.step()
        if sched:
            sched.step()
    assert [p.data for p in ps] == pytest.approx(tp.tolist(), rel=1e-13)


def test_sgd_momentum_weight_decay_and_schedule_against_torch():
    _run_optimizer(lambda ps, lr: SGD(ps, lr=lr), lambda ps, lr: torch.optim.SGD(ps, lr=lr), 0.1)
    _run_optimizer(lambda ps, lr: SGD(ps, lr=lr, momentum=0.9, weight_decay=0.01),
                   lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.9, weight_decay=0.01), 0.05)
    schedule = lambda k: 0.1 - 0.01 * k  # noqa: E731
    _run_optimizer(lambda ps, lr: SGD(ps, lr=lr), lambda ps, lr: torch.optim.SGD(ps, lr=lr), schedule)


def test_adam_against_torch():
    _run_optimizer(lambda ps, lr: Adam(ps, lr=lr), lambda ps, lr: torch.optim.Adam(ps, lr=lr), 0.05)
    _run_optimizer(lambda ps, lr: Adam(ps, lr=lr, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                   lambda ps, lr: torch.optim.Adam(ps, lr=lr, betas=(0.8, 0.99), eps=1e-6,
                                                   weight_decay=0.1), 0.05)


def test_recipe_attributes():
    sgd, adam = SGD(lr=0.1, momentum=0.9), Adam(lr=lambda k: 0.01)
    assert sgd.params is None and (sgd.lr, sgd.momentum, sgd.weight_decay) == (0.1, 0.9, 0.0)
    assert adam.betas == (0.9, 0.999) and adam.eps == 1e-8 and adam.learning_rate(3) == 0.01
    assert sgd.hyperparameters() == {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0}
    bound = sgd.for_parameters([Value(1.0)])
    assert bound.params is not None and bound.momentum == 0.9 and sgd.params is None


# ---------------------------------------------------------------- training

def test_train_drives_the_loss_down_with_sgd_and_adam():
    X = [[x / 4.0] for x in range(-4, 5)]
    Y = [x[0] ** 2 for x in X]
    history = tg.nn.train(MLP(1, [(8, "tanh"), 1], seed=0), X, Y, epochs=150, lr=0.05)
    assert history[-1] < 0.5 * history[0] and history == sorted(history, reverse=True)
    model = MLP(1, [(8, "tanh"), 1], seed=0)
    history = tg.nn.train(model, np.array(X), np.array(Y), optimizer=Adam(lr=0.05), epochs=150)
    assert history[-1] < 0.05 * history[0]


def test_moons_demo_step_classifies():
    from sklearn.datasets import make_moons
    X, y = make_moons(n_samples=30, noise=0.1, random_state=0)
    y = y * 2 - 1
    model = MLP(2, [8, 8, 1], seed=0)
    first = None
    for k in range(30):  # micrograd's demo loop, as written
        inputs = [list(map(Value, xrow)) for xrow in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
        total = sum(losses) * (1.0 / len(losses)) + 1e-4 * sum(p * p for p in model.parameters())
        first = first or total.data
        model.zero_grad()
        total.backward()
        for p in model.parameters():
            p.data -= (1.0 - 0.9 * k / 100) * p.grad
    accuracy = np.mean([(yi > 0) == (s.data > 0) for yi, s in zip(y, scores)])
    assert accuracy >= 0.85 and total.data < 0.3 * first


# ---------------------------------------------------------------- multi-class: cross_entropy, softmax

F = torch.nn.functional
EDGE_LOGITS = [
    ([1000.0, -1000.0, 0.0], 1), ([1000.0, -1000.0, 0.0], 0), ([-1000.0, -1000.0], 1), ([1e3, 1e3, -1e3], 2),
    ([1e3, 1e3 - 1e-10], 1), ([0.0, 0.0, 0.0, 0.0], 3), ([-1e3, 1e3, 999.0, -5.0], 2), ([3.0, -1.0], 0),
    ([1e-300, -1e-300], 0), ([40.0, -40.0, 700.0, -700.0, 0.5], 3),
]
RNG = np.random.default_rng(7)
RANDOM_LOGITS = [(list(RNG.normal(scale=s, size=int(RNG.integers(2, 8)))), None) for s in (0.1, 1.0, 30.0, 300.0)]


def torch_cross_entropy(logits, target):
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(z[None] if z.ndim == 1 else z, torch.tensor([target] if z.ndim == 1 else target))
    (grad,) = torch.autograd.grad(loss, z, create_graph=True)
    hessian = torch.autograd.functional.hessian(
        lambda z: F.cross_entropy(z[None], torch.tensor([target])), z.detach()) if z.ndim == 1 else None
    return loss.item(), grad.detach().numpy(), hessian


@pytest.mark.parametrize("logits, target",
                         EDGE_LOGITS + [(z, i % len(z)) for i, (z, _) in enumerate(RANDOM_LOGITS)])
def test_cross_entropy_value_gradient_and_hessian_equal_torchs(logits, target):
    loss, grad, hessian = torch_cross_entropy(logits, target)
    ours = tg.value_and_grad(lambda z: tg.nn.cross_entropy(z, target))
    value, g = ours(logits)
    assert math.isclose(value, loss, rel_tol=1e-12, abs_tol=1e-300) and np.allclose(g, grad, rtol=1e-12, atol=1e-12)
    assert tg.nn.cross_entropy(logits, target) == pytest.approx(loss, rel=1e-12)  # on floats
    # the target traced too (as the Trainer has it), compiled, and on Values
    traced = tg.jit(tg.value_and_grad(tg.nn.cross_entropy))(logits, float(target))
    assert math.isclose(traced[0], loss, rel_tol=1e-12) and np.allclose(traced[1], grad, rtol=1e-12, atol=1e-12)
    zs = [Value(v) for v in logits]
    out = tg.nn.cross_entropy(zs, np.int64(target))
    out.backward()
    assert math.isclose(out.data, loss, rel_tol=1e-12)
    assert np.allclose([z.grad for z in zs], grad, rtol=1e-12, atol=1e-12)
    assert np.allclose(tg.hessian(lambda z: tg.nn.cross_entropy(z, target))(logits), hessian.numpy(),
                       rtol=1e-10, atol=1e-12)


def test_cross_entropy_of_a_batch_is_the_mean_as_torch():
    logits = RNG.normal(scale=50.0, size=(6, 4))
    logits[0] = [1e3, -1e3, 0.0, 5.0]
    targets = np.array([0, 3, 1, 2, 2, 1])
    loss, grad, _ = torch_cross_entropy(logits, targets)
    for z, t in [(logits, targets), (logits.tolist(), targets.tolist()), (logits, targets.astype(float))]:
        value, g = tg.value_and_grad(tg.nn.cross_entropy)(z, t)
        assert math.isclose(value, loss, rel_tol=1e-12)
        assert np.allclose(g, grad, rtol=1e-12, atol=1e-14)


def test_logsumexp_softmax_and_log_softmax_equal_torchs():
    cases = [z for z, _ in EDGE_LOGITS + RANDOM_LOGITS] + [[math.inf, 1.0], [-math.inf, -math.inf], [5.0]]
    for z in cases:
        t = torch.tensor(z, dtype=torch.float64)
        assert tg.logsumexp(z) == torch.logsumexp(t, 0).item()
        assert np.allclose(tg.nn.softmax(z), torch.softmax(t, 0).numpy(), rtol=1e-15, atol=1e-300, equal_nan=True)
        assert np.allclose(tg.nn.log_softmax(z), F.log_softmax(t, 0).numpy(), rtol=1e-15, atol=1e-300,
                           equal_nan=True)
        if not all(map(math.isfinite, z)):
            continue
        weights = np.linspace(-1.0, 2.0, len(z))
        for ours, theirs in [(tg.logsumexp, lambda t: torch.logsumexp(t, 0)),
                             (lambda z: np.dot(weights, tg.nn.softmax(np.array(z))), lambda t: torch.softmax(t, 0)),
                             (lambda z: np.dot(weights, tg.nn.log_softmax(z)), lambda t: F.log_softmax(t, 0))]:
            t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
            y = theirs(t)
            (y if y.ndim == 0 else y @ torch.tensor(weights)).backward()
            assert np.allclose(tg.grad(ours)(z), t.grad.numpy(), rtol=1e-12, atol=1e-15), z
    rows = np.array([[1.0, 2.0, 3.0], [1e3, 0.0, -1e3]])
    assert np.allclose(tg.nn.softmax(rows), torch.softmax(torch.tensor(rows), 1).numpy(), rtol=1e-15)
    assert tg.logsumexp(rows.tolist()) == torch.logsumexp(torch.tensor(rows), 1).tolist()
    assert type(tg.nn.softmax(rows)) is np.ndarray and type(tg.nn.softmax(rows.tolist())) is list
    assert tg.grad(lambda a: tg.nn.log_softmax(a)[0, 1])(rows).shape == (2, 3)


@pytest.mark.parametrize("logits, target, error, message", [
    ([1.0, 2.0], 2, ValueError, r"class index 0 \.\.\. 1"),
    ([1.0, 2.0], -1, ValueError, "class index"),
    ([1.0, 2.0], 0.5, ValueError, "class index"),
    ([1.0, 2.0], True, TypeError, "class index"),
    ([1.0, 2.0], "1", TypeError, "class index"),
    ([1.0, 2.0], [0.3, 0.7], TypeError, "probabilities are not supported"),
    ([1.0], 0, ValueError, "at least 2"),
    ([], 0, TypeError, "non-empty|scores"),
    (3.0, 0, TypeError, "class scores"),
    ([[1.0, 2.0], [3.0, 4.0]], [0], ValueError, "needs 2 targets"),
    ([[1.0, 2.0], [3.0, 4.0]], 0, ValueError, "needs 2 targets"),
])
def test_cross_entropy_bad_input(logits, target, error, message):
    with pytest.raises(error, match=message):
        tg.nn.cross_entropy(logits, target)


def test_softmax_bad_input():
    for fn in (tg.logsumexp, tg.nn.softmax, tg.nn.log_softmax):
        with pytest.raises(TypeError, match="scores"):
            fn(2.0)
        with pytest.raises(TypeError, match="non-empty"):
            fn([])
        with pytest.raises(TypeError, match="real numbers"):
            fn(["a", "b"])


# ---------------------------------------------------------------- saving and loading

MODELS = [lambda: MLP(3, [5, (4, "tanh"), (2, "sigmoid")], seed=1), lambda: tg.nn.TanhMLP(3, [4, 2], seed=2),
          lambda: Layer(3, 2, activation="tanh", seed=3), lambda: Neuron(3, seed=4),
          lambda: tg.nn.TanhNeuron(3, seed=5), lambda: MLP(3, [2], seed=6)]


@pytest.mark.parametrize("make", MODELS, ids=lambda make: repr(make()))
@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_save_and_load_rebuild_the_model(make, suffix, tmp_path):
    model = make()
    path = tmp_path / f"model{suffix}"
    tg.nn.save(model, path)
    again = tg.nn.load(path)
    assert type(again) is type(model) and repr(again) == repr(model) and again.config() == model.config()
    assert [p.data for p in again.parameters()] == [p.data for p in model.parameters()]  # bit for bit
    x = [0.3, -1.2, 0.7]
    out, expected = again(x), model(x)
    outs = out if isinstance(out, list) else [out]
    assert [o.data for o in outs] == [o.data for o in (expected if isinstance(expected, list) else [expected])]
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:  # plain arrays only: no pickle inside
            assert sorted(archive.files) == ["header", "parameters"] and archive["parameters"].dtype == float
    else:
        data = json.loads(path.read_text())
        assert data["format"] == "tracegrad.nn" and data["module"] == type(model).__name__
    twin = make()
    for p in twin.parameters():
        p.data = 0.0
    assert tg.nn.load(str(path), twin) is twin and [p.data for p in twin.parameters()] == [
        p.data for p in model.parameters()]


def test_a_trained_classifier_round_trips_and_predicts_the_same(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    model = MLP(2, [(6, "tanh"), 3], seed=0)
    tg.nn.Trainer(model, loss="cross_entropy", optimizer=Adam(lr=0.05)).fit(X, y, epochs=20, progress=False)
    for name in ("m.npz", "m.json"):
        tg.nn.save(model, tmp_path / name)
        assert np.array_equal(tg.nn.load(tmp_path / name).predict(X), model.predict(X))


def test_state_dict_keeps_the_flat_list_form_and_checks_the_structure():
    model = MLP(2, [3, 1], seed=0)
    flat = [p.data + 1.0 for p in model.parameters()]
    model.load_state_dict(flat)  # a flat list, as before (benchmarks/moons.py)
    model.load_state_dict(np.array(flat))
    assert [p.data for p in model.parameters()] == flat
    model.load_state_dict({"parameters": flat})
    with pytest.raises(ValueError, match=r"config .*'nouts': \[\[3, 'tanh'\]"):
        model.load_state_dict(MLP(2, [(3, "tanh"), 1], seed=0).state_dict())
    with pytest.raises(TypeError, match="real numbers"):
        model.load_state_dict(["a"] * len(flat))
    assert [p.data for p in model.parameters()] == flat  # nothing set from a bad state


class Custom(tg.nn.Module):
    def __init__(self):
        self.a, self.b = Value(1.5), Value(-2.0)

    def __call__(self, x):
        return self.a * x[0] + self.b

    def parameters(self):
        return [self.a, self.b]


def test_a_module_of_your_own_saves_and_loads_into_a_model_you_build(tmp_path):
    model = Custom()
    tg.nn.save(model, tmp_path / "c.json")
    with pytest.raises(ValueError, match="cannot build.*tg.nn.load\\(path, model\\)"):
        tg.nn.load(tmp_path / "c.json")
    other = Custom()
    other.a.data = 0.0
    assert tg.nn.load(tmp_path / "c.json", other).a.data == 1.5


def _tamper(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("change, message", [
    (dict(module="Sequential"), "cannot build"),
    (dict(module="os.system"), "cannot build"),
    (dict(config={"nin": 2, "nouts": [[3, "relu"], [1, "linear"]], "evil": 1}), "cannot build"),
    (dict(config={"nin": 2, "nouts": [[10 ** 9, "relu"], [1, "linear"]]}),
     "has 4000000001 parameters, the file has 13"),
    (dict(config={"nin": 2, "nouts": [[3, "relu"], [1, "swish"]]}), "unknown activation 'swish'"),
    (dict(config={"nin": True, "nouts": [[3, "relu"], [1, "linear"]]}), "positive ints"),
    (dict(config={"nin": 2, "nouts": "3"}), "list of \\[size, activation\\]"),
    (dict(config=None), "cannot build"),
    (dict(parameters=[1.0] * 12), "has 13 parameters, the file has 12"),
    (dict(parameters=["1.0"] * 13), "list of numbers"),
    (dict(parameters=[True] * 13), "list of numbers"),
    (dict(format="pickle"), "not a tracegrad model file"),
    (dict(version=2), "version 2"),
    (dict(extra=1), "not a tracegrad model file"),
])
def test_a_tampered_json_file_is_a_value_error(tmp_path, change, message):
    path = tmp_path / "m.json"
    tg.nn.save(MLP(2, [3, 1], seed=0), path)
    _tamper(path, **change)
    with pytest.raises(ValueError, match=message):
        tg.nn.load(path)


def test_files_that_are_not_model_files_are_value_errors(tmp_path):
    import pickle
    bad = {"garbage.npz": b"\x00\x01 not a zip", "pickle.npz": pickle.dumps({"parameters": [1.0]}),
           "empty.json": b"", "list.json": b"[1, 2, 3]", "deep.json": b"[" * 100000 + b"]" * 100000,
           "nan.json": b'{"format": "tracegrad.nn", "parameters": NaN}', "latin.json": b"\xff\xfe{"}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match="not a tracegrad model file|list of numbers"):
            tg.nn.load(tmp_path / name)
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npy").rename(tmp_path / "array.npz")
    np.savez(tmp_path / "objects.npz", header=np.array(["x"], dtype=object), parameters=np.zeros(3))
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    np.savez(tmp_path / "ints.npz", header=np.array("{}"), parameters=np.zeros(3, dtype=int))
    for name in ("array.npz", "objects.npz", "other.npz", "ints.npz"):
        with pytest.raises(ValueError, match="not a tracegrad model file"):
            tg.nn.load(tmp_path / name)
    for call in (lambda: tg.nn.save(MLP(2, [1]), tmp_path / "m.pkl"), lambda: tg.nn.load(tmp_path / "m.txt")):
        with pytest.raises(ValueError, match=r"\.npz or \.json"):
            call()
    with pytest.raises(FileNotFoundError):
        tg.nn.load(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="Module"):
        tg.nn.save([Value(1.0)], tmp_path / "m.json")
    model = MLP(2, [1], seed=0)
    model.parameters()[0].data = math.nan
    with pytest.raises(ValueError, match="nan or inf .* save it as .npz"):
        tg.nn.save(model, tmp_path / "nan.json")
    tg.nn.save(model, tmp_path / "nan.npz")
    assert math.isnan(tg.nn.load(tmp_path / "nan.npz").parameters()[0].data)
