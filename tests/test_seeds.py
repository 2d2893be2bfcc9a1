"""The README examples of the five seed projects, as docs/seeds.md gives them: only their import
lines change, they run, and they give what the README says, checked against exact values or
PyTorch float64 (the training loops step by step, from the same initial weights)."""
import ast
import contextlib
import io
import math
import os
import random
import re
import shutil

import numpy as np
import pytest
import torch

import tracegrad as tg
from tracegrad import Value

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "seeds.md")
MARKED = re.compile(r"<!-- seed (\d+): (.*?) -->\n```(?:python|py)\n(.*?)```", re.S)
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="the Graphviz 'dot' program is not installed (apt-get install graphviz)")

README = {  # (seed, example): the code as the seed's README gives it
    ("000", "quick start"): """\
from micro_autograd.nn import Neuron

# 1. Define input data and target output
x = [2.0, 3.0]
y_true = 1.0

# 2. Initialize a Neuron with 2 inputs (random weights & bias)
n = Neuron(2)
print(f"Initial random prediction: {n(x).data:.4f}")

# 3. Training Loop (Gradient Descent)
learning_rate = 0.1

for step in range(60):
    # Forward pass
    y_pred = n(x)

    # Calculate Loss (Mean Squared Error)
    loss = (y_pred - y_true) ** 2

    # Zero gradients before backprop
    for p in n.w + [n.b]:
        p.grad = 0.0

    # Backward pass (calculate gradients via chain rule)
    loss.backward()

    # Update weights
    for p in n.w + [n.b]:
        p.data -= learning_rate * p.grad

    if step % 10 == 0 or step == 59:
        print(f"Step {step:2d} | Prediction: {y_pred.data:.4f} | Loss: {loss.data:.4f}")

print(f"\\nFinal optimized weights: {[p.data for p in n.w]}")
""",
    ("001", "engine"): """\
from engine import Value

# Build a simple graph
a = Value(-4.0)
b = Value(2.0)
c = a + b
d = a * b + b**3
c += c + 1
c += 1 + c + (-a)
d += d * 2 + (b + a).tanh()

# Backward pass
d.backward()

print(f"Value of d: {d.data}")
print(f"Gradient of a: {a.grad}")
print(f"Gradient of b: {b.grad}")
""",
    ("001", "nn"): """\
from nn import MLP

# Define a simple dataset
xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
ys = [1.0, -1.0, -1.0, 1.0]

# Initialize the Multi-Layer Perceptron
# 3 input neurons, two hidden layers of 4 neurons, 1 output neuron
model = MLP(3, [4, 4, 1])

# Training Loop
for k in range(20):
    # Forward pass
    ypred = [model(x) for x in xs]
    loss = sum((yout - ygt)**2 for ygt, yout in zip(ys, ypred))

    # Zero grad
    for p in model.parameters():
        p.grad = 0.0

    # Backward pass
    loss.backward()

    # Update (SGD)
    for p in model.parameters():
        p.data += -0.05 * p.grad

    print(f"Step {k} | Loss: {loss.data}")
""",
    ("002", "autograd"): """\
from micrograd.engine import Value

x = Value(-4.0)
z = 2 * x + 2 + x
q = z.relu() + z * x
h = (z * z).relu()
y = h + q + q * x

y.backward()

print("y =", y.data)
print("dy/dx =", x.grad)
""",
    ("002", "tiny MLP"): """\
from micrograd.nn import MLP

# 3 inputs -> [4 hidden, 4 hidden, 1 output]
model = MLP(3, [4, 4, 1])

x = [1.0, -2.0, 0.5]
out = model(x)          # output is a Value
print(out.data)

# Backprop through the whole network
model.zero_grad()
out.backward()

# Access parameters and gradients
params = model.parameters()
print(len(params))
print(params[0].data, params[0].grad)
""",
    ("002", "training loop"): """\
from micrograd.nn import MLP

# toy dataset (3 features -> binary target)
xs = [
    [2.0, 3.0, -1.0],
    [3.0, -1.0, 0.5],
    [0.5, 1.0, 1.0],
    [1.0, 1.0, -1.0],
]
ys = [1.0, -1.0, -1.0, 1.0]

model = MLP(3, [4, 4, 1])
lr = 0.05

for step in range(200):
    # forward
    ypred = [model(x) for x in xs]

    # squared loss
    loss = sum((yout - ygt) ** 2 for yout, ygt in zip(ypred, ys))

    # backward
    model.zero_grad()
    loss.backward()

    # SGD update
    for p in model.parameters():
        p.data += -lr * p.grad

    if step % 20 == 0:
        print(step, loss.data)
""",
    ("003", "basic usage"): """\
from engine import Value

# Create values and build a computational graph
x = Value(2.0, label='x')
y = Value(3.0, label='y')
z = x * y + x
z.label = 'z'

# Compute gradients via backpropagation
z.backward()

print(f"z = {z.data}")      # z = 8.0
print(f"dz/dx = {x.grad}")  # dz/dx = 4.0 (gradient of z with respect to x)
print(f"dz/dy = {y.grad}")  # dz/dy = 2.0 (gradient of z with respect to y)
""",
    ("003", "neural network"): """\
from nn import MLP
from losses import mse_loss
from train import train

# Create a dataset: learn y = 2x1 + x2 - 3
X = [[2.0, 3.0], [1.0, -1.0], [0.5, 2.0], [-1.0, -2.0]]
Y = [2*x1 + x2 - 3 for x1, x2 in X]

# Build a neural network: 2 inputs -> 4 ReLU -> 4 ReLU -> 1 linear output
model = MLP(2, [(4, "relu"), (4, "relu"), (1, "linear")])

# Train the model
trained_model = train(model, X, Y, loss_fn=mse_loss, epochs=200, lr=0.01)
""",
    ("003", "visualization"): """\
from visualize import visualize_computation

# Build a computation
x = Value(2.0, label='x')
y = Value(-3.0, label='y')
z = x * y
z.label = 'output'

# Visualize the computational graph
z.backward()
visualize_computation(z, filename='computation_graph', show_gradients=True)
""",
    ("003", "neuron"): """\
neuron = Neuron(nin=3, activation="relu")  # 3 inputs, ReLU activation
output = neuron([1.0, 2.0, 3.0])          # Forward pass
""",
    ("003", "layer"): """\
layer = Layer(nin=3, nout=4, activation="tanh")  # 3->4 layer with tanh
""",
    ("003", "mlp"): """\
model = MLP(2, [(4, "relu"), (4, "relu"), (1, "sigmoid")])  # 2->4->4->1 network
""",
    ("003", "mse"): """\
loss = mse_loss(prediction, target)  # (pred - target)²
""",
    ("003", "bce"): """\
loss = binary_cross_entropy_loss(prediction, target)  # Handles numerical stability
""",
    ("003", "drawings"): """\
visualize_computation(root_node, show_gradients=True, inline=True)  # For Jupyter
compare_before_after_backward(root_node)  # See gradient flow
""",
    ("003", "running examples, autodiff"): """\
from engine import Value
x = Value(2.0); y = Value(3.0)
z = x * y + x; z.backward()
print(f'x.grad = {x.grad}, y.grad = {y.grad}')
""",
    ("003", "running examples, visualization"): """\
from engine import Value
from visualize import visualize_computation
x = Value(2.0, label='x')
y = Value(-3.0, label='y')
z = (x * y).tanh()
z.backward()
visualize_computation(z, filename='example')
""",
    ("004", "value"): """\
from micrograd_numpy import Value

a = Value(2.0, label='a')
b = Value(3.0, label='b')
c = a * b + a  # c = 2*3 + 2 = 8
c.backward()

print(f"dc/da = {a.grad}")  # dc/da = b + 1 = 4
print(f"dc/db = {b.grad}")  # dc/db = a = 2
""",
    ("004", "neural network"): """\
from micrograd_numpy import MLP, SGD, mse_loss, Value

# Create model: 2 inputs → 4 hidden → 4 hidden → 1 output
model = MLP(2, [4, 4, 1])

# Training loop
optimizer = SGD(model.parameters(), lr=0.1)

for epoch in range(100):
    # Forward pass
    predictions = [model([Value(x[0]), Value(x[1])]) for x in X]
    loss = mse_loss(predictions, y)

    # Backward pass
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
""",
}


def _page():
    with open(PAGE, encoding="utf-8") as f:
        return {(seed, name): code for seed, name, code in MARKED.findall(f.read())}


PAGE_BLOCKS = _page()


def _imports(code):
    return [line for line in code.splitlines() if line.startswith(("from ", "import "))]


def _body(code):
    return [line.rstrip() for line in code.splitlines() if not line.startswith(("from ", "import "))]


def test_the_page_has_every_readme_example_with_only_its_import_lines_changed():
    assert set(README) <= set(PAGE_BLOCKS), set(README) - set(PAGE_BLOCKS)
    for key, code in README.items():
        page = PAGE_BLOCKS[key]
        assert _body(page) == _body(code), key
        assert all(line.startswith("from tracegrad") for line in _imports(page)), key


def run(*keys, seed=0):
    """The page's blocks ``keys`` in one namespace, as a reader runs them, after ``random.seed(seed)``
    (the weights come from the ``random`` module); returns the namespace and what they printed."""
    namespace, out = {"__name__": "__seeds__"}, io.StringIO()
    random.seed(seed)
    with contextlib.redirect_stdout(out):
        for key in keys:
            exec(compile(PAGE_BLOCKS[key], f"seeds.md[{key}]", "exec"), namespace)
    return namespace, out.getvalue()


def initial(make, seed=0):
    """The model a block makes first, made again from the same seed: its initial weights."""
    random.seed(seed)
    return make()


# ---------------------------------------------------------------- the oracle: the same network in PyTorch

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "linear": lambda z: z}


def torch_layers(model):
    """A tracegrad Neuron or MLP as (weights, biases, activation) of float64 tensors."""
    layers = [[model]] if isinstance(model, tg.nn.Neuron) else [layer.neurons for layer in model.layers]
    return [(torch.tensor([[w.data for w in n.w] for n in neurons], dtype=torch.float64, requires_grad=True),
             torch.tensor([n.b.data for n in neurons], dtype=torch.float64, requires_grad=True),
             neurons[0].activation) for neurons in layers]


def torch_forward(layers, x):
    h = torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64)
    for w, b, activation in layers:
        h = ACTIVATIONS[activation](w @ h + b)
    return h[0]


def torch_sgd(layers, lr):
    with torch.no_grad():
        for tensor in (t for w, b, _ in layers for t in (w, b)):
            tensor -= lr * tensor.grad
            tensor.grad = None


def torch_train(model, xs, loss_fn, lr, steps):
    """Full-batch SGD as the README loops do it: the loss of each step and the final layers."""
    layers, losses = torch_layers(model), []
    for _ in range(steps):
        loss = loss_fn([torch_forward(layers, x) for x in xs])
        loss.backward()
        torch_sgd(layers, lr)
        losses.append(loss.item())
    return losses, layers


def weights(model):
    return [p.data for p in model.parameters()]


def torch_weights(layers):
    return [v for w, b, _ in layers for row, bias in zip(w.tolist(), b.tolist()) for v in row + [bias]]


# ---------------------------------------------------------------- 000 micro-autograd

def test_micro_autograd_quick_start_trains_its_neuron_towards_one():
    namespace, out = run(("000", "quick start"), seed=3)   # a neuron that starts at -0.65
    n = namespace["n"]
    start = initial(lambda: tg.nn.TanhNeuron(2), seed=3)
    losses, layers = torch_train(start, [[2.0, 3.0]], lambda ys: (ys[0] - 1.0) ** 2, 0.1, 60)
    assert weights(n) == pytest.approx(torch_weights(layers), rel=1e-12)
    printed = re.findall(r"Step\s+(\d+) \| Prediction: (\S+) \| Loss: (\S+)", out)
    assert [int(k) for k, _, _ in printed] == [0, 10, 20, 30, 40, 50, 59]
    for k, _, loss in printed:
        assert float(loss) == pytest.approx(losses[int(k)], abs=5e-5)
    final = ast.literal_eval(out.split("Final optimized weights: ")[1].strip())
    assert final == pytest.approx(torch_weights(layers)[:2], rel=1e-12)
    assert out.startswith("Initial random prediction: ")
    assert 0.95 < n([2.0, 3.0]).data < 1.0 and losses[-1] < 3e-3 < 2.0 < losses[0]   # towards 1.0, from below


def test_micro_autograd_with_relu_neuron_stalls_as_the_page_says():
    code = README[("000", "quick start")].replace("from micro_autograd.nn import Neuron",
                                                  "from tracegrad.nn import Neuron")
    namespace = {}
    random.seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, namespace)
    assert namespace["y_pred"].data == 0.0 and namespace["loss"].data == 1.0


# ---------------------------------------------------------------- 001 Micrograd Implementation

def test_micrograd_implementation_engine_against_torch():
    namespace, out = run(("001", "engine"))
    a, b = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (-4.0, 2.0))
    c = a + b
    d = a * b + b ** 3
    c = c + (c + 1)
    c = c + (1 + c + (-a))
    d = d + (d * 2 + (b + a).tanh())
    d.backward()
    assert namespace["d"].data == pytest.approx(d.item(), rel=1e-15)
    assert (namespace["a"].grad, namespace["b"].grad) == pytest.approx((a.grad.item(), b.grad.item()), rel=1e-14)
    assert f"Value of d: {namespace['d'].data}" in out


def test_micrograd_implementation_mlp_converges_as_torch():
    namespace, out = run(("001", "nn"))
    start = initial(lambda: tg.nn.TanhMLP(3, [4, 4, 1]))
    xs, ys = namespace["xs"], namespace["ys"]
    losses, layers = torch_train(start, xs, lambda ps: sum((p - y) ** 2 for y, p in zip(ys, ps)), 0.05, 20)
    printed = [float(v) for v in re.findall(r"Step \d+ \| Loss: (\S+)", out)]
    assert printed == pytest.approx(losses, rel=1e-10)
    assert weights(namespace["model"]) == pytest.approx(torch_weights(layers), rel=1e-10)
    assert printed[-1] < 0.01 < 1.0 < printed[0]


def test_micrograd_implementation_with_relu_mlp_stalls_as_the_page_says():
    code = README[("001", "nn")].replace("from nn import MLP", "from tracegrad.nn import MLP")
    namespace = {}
    random.seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, namespace)
    assert namespace["loss"].data == pytest.approx(4.0, abs=1e-6)


# ---------------------------------------------------------------- 002 micrograd

def test_micrograd_quickstart_against_torch():
    namespace, out = run(("002", "autograd"))
    x = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    assert out == f"y = {y.item()}\ndy/dx = {x.grad.item()}\n" == "y = -20.0\ndy/dx = 46.0\n"


def test_micrograd_tiny_mlp_against_torch():
    namespace, out = run(("002", "tiny MLP"))
    start = initial(lambda: tg.nn.MLP(3, [4, 4, 1]))
    layers = torch_layers(start)
    y = torch_forward(layers, [1.0, -2.0, 0.5])
    y.backward()
    params = namespace["params"]
    assert namespace["out"].data == pytest.approx(y.item(), rel=1e-14) and len(params) == 41
    assert [p.grad for p in params] == pytest.approx(
        [v for w, b, _ in layers for row, bias in zip(w.grad.tolist(), b.grad.tolist()) for v in row + [bias]],
        rel=1e-13, abs=1e-300)
    assert out.splitlines()[1:] == ["41", f"{params[0].data} {params[0].grad}"]


def test_micrograd_training_loop_converges_as_torch():
    namespace, out = run(("002", "training loop"), seed=1)
    start = initial(lambda: tg.nn.MLP(3, [4, 4, 1]), seed=1)
    xs, ys = namespace["xs"], namespace["ys"]
    losses, layers = torch_train(start, xs, lambda ps: sum((p - y) ** 2 for p, y in zip(ps, ys)), 0.05, 200)
    printed = [line.split() for line in out.splitlines()]
    assert [int(k) for k, _ in printed] == list(range(0, 200, 20))
    assert [float(v) for _, v in printed] == pytest.approx(losses[::20], rel=1e-9)
    assert weights(namespace["model"]) == pytest.approx(torch_weights(layers), rel=1e-9)
    assert losses[-1] < 1e-3 < 1.0 < losses[0]


# ---------------------------------------------------------------- 003 MicroAutograd

def test_microautograd_basic_usage_prints_the_readmes_values():
    _, out = run(("003", "basic usage"))
    assert out == "z = 8.0\ndz/dx = 4.0\ndz/dy = 2.0\n"


def test_microautograd_training_converges_as_torch():
    namespace, _ = run(("003", "neural network"))
    start = initial(lambda: tg.nn.MLP(2, [(4, "relu"), (4, "relu"), (1, "linear")]))
    X, Y = namespace["X"], namespace["Y"]
    losses, layers = torch_train(start, X, lambda ps: sum((p - y) ** 2 for p, y in zip(ps, Y)) * (1.0 / len(Y)),
                                 0.01, 200)
    history = namespace["trained_model"]   # tracegrad's train returns the loss of each epoch
    assert history == pytest.approx(losses, rel=1e-10)
    assert weights(namespace["model"]) == pytest.approx(torch_weights(layers), rel=1e-10)
    assert history[-1] < 0.05 and history[-1] < history[0] / 100


@needs_dot
def test_microautograd_visualization_saves_the_graph(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace, _ = run(("003", "basic usage"), ("003", "visualization"))
    svg = (tmp_path / "computation_graph.svg").read_text()
    assert "output" in svg and "grad &#45;3.0000" in svg and "grad 2.0000" in svg and ">*<" in svg
    namespace, _ = run(("003", "running examples, visualization"))
    svg = (tmp_path / "example.svg").read_text()
    tz = torch.tanh(torch.tensor(-6.0, dtype=torch.float64))
    assert f"grad {-3.0 * (1 - tz.item() ** 2):.4f}".replace("-", "&#45;") in svg and "tanh" in svg


def test_microautograd_building_blocks(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    keys = [("003", name) for name in ("setup", "neuron", "mlp", "layer", "mse")]
    namespace, _ = run(*keys)
    neuron = initial(lambda: tg.nn.Neuron(3, activation="relu"))
    assert namespace["output"].data == torch_forward(torch_layers(neuron), [1.0, 2.0, 3.0]).item()
    assert str(namespace["layer"]) == "Layer of [" + ", ".join(["TanhNeuron(3)"] * 4) + "]"
    assert str(namespace["model"]).endswith("Layer of [SigmoidNeuron(4)]]")
    assert namespace["loss"].data == (0.8 - 1.0) ** 2
    exec(compile(PAGE_BLOCKS[("003", "bce")], "seeds.md", "exec"), namespace)
    p = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    bce = torch.nn.functional.binary_cross_entropy(p, torch.tensor(1.0, dtype=torch.float64))
    bce.backward()
    namespace["loss"].backward()
    assert namespace["loss"].data == pytest.approx(bce.item(), rel=1e-15)
    assert namespace["prediction"].grad == pytest.approx(p.grad.item(), rel=1e-15)
    exec(compile(PAGE_BLOCKS[("003", "drawings")], "seeds.md", "exec"), namespace)
    root = namespace["root_node"]
    assert len(shown) == 1 and "grad" in shown[0].source
    x = root.topological_sort()[0]
    assert x.label == "x" and x.grad == pytest.approx(-3.0 * (1 - math.tanh(-6.0) ** 2), rel=1e-15)


def test_microautograd_running_examples():
    _, out = run(("003", "running examples, autodiff"))
    assert out == "x.grad = 4.0, y.grad = 2.0\n"


# ---------------------------------------------------------------- 004 MicroGrad-NumPy

def test_micrograd_numpy_value_prints_the_readmes_values():
    _, out = run(("004", "value"))
    assert out == "dc/da = 4.0\ndc/db = 2.0\n"


def test_micrograd_numpy_moons_training_converges_as_torch():
    namespace, _ = run(("004", "setup"), ("004", "neural network"))
    start = initial(lambda: tg.nn.MLP(2, [4, 4, 1]))
    X, y = namespace["X"], namespace["y"]
    losses, layers = torch_train(start, X, lambda ps: sum((p - t) ** 2 for p, t in zip(ps, y)) * (1.0 / len(y)),
                                 0.1, 100)
    model = namespace["model"]
    assert namespace["loss"].data == pytest.approx(losses[-1], rel=1e-9)
    assert weights(model) == pytest.approx(torch_weights(layers), rel=1e-9)
    accuracy = np.mean([(model(x).data > 0) == (t > 0) for x, t in zip(X, y)])
    assert losses[-1] < losses[0] / 3 and accuracy >= 0.85
