"""Every script in examples/ runs in its fast mode, and its results are right."""
import importlib.util
import math
import os
import runpy

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested():
    tested = {"moons", "quickstart", "pendulum", "curve_fit_newton", "sympy_derivatives", "digits"}
    assert {f[:-3] for f in os.listdir(EXAMPLES) if f.endswith(".py")} == tested


def test_quickstart_prints_ir_gradient_and_source(capsys):
    runpy.run_path(os.path.join(EXAMPLES, "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "lambda x:f64, y:f64" in out and "def kernel(x0, x1):" in out
    dx = float(out.split("df/dx = ")[1].split(",")[0])
    torch = pytest.importorskip("torch")
    x, y = torch.tensor(1.0, dtype=torch.float64, requires_grad=True), torch.tensor(2.0, dtype=torch.float64)
    (torch.tanh(x * y + torch.sin(x)) * torch.exp(-y * y / 2)).backward()
    assert math.isclose(dx, x.grad.item(), rel_tol=1e-10)


def test_moons_trains_and_saves_plots(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    accuracy = load("moons").main(["--epochs", "40", "--no-progress", "--outdir", str(tmp_path)])
    assert accuracy >= 0.85
    for name in ("moons_decision_boundary.png", "moons_loss.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert "training accuracy" in capsys.readouterr().out


def test_digits_trains_as_torch_saves_the_model_and_plots(tmp_path, capsys):
    """Three epochs of the digits MLP: PyTorch, from the same weights on the same batches, reaches the
    same test accuracy and predicts the same classes; the saved model predicts the same."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    pytest.importorskip("torch")
    r = load("digits").main(["--fast", "--outdir", str(tmp_path)])
    assert r["epochs"] == 3 and r["accuracy"] >= 0.9
    assert abs(r["accuracy"] - r["torch_accuracy"]) <= 0.01 and r["same_class"] >= 0.99
    assert r["test_loss"] == pytest.approx(r["torch_test_loss"], rel=1e-12)  # the same training, in float64
    assert r["reloaded_equal"] and (tmp_path / "digits_mlp.npz").exists()
    for path in r["plots"]:
        assert os.path.getsize(path) > 1000
    out = capsys.readouterr().out
    assert "test accuracy" in out and "PyTorch" in out


def test_pendulum_equations_energy_and_sensitivity():
    r = load("pendulum").main(["--fast"])
    assert r["accel_error"] < 1e-12                      # autodiff Euler-Lagrange == textbook closed form
    assert r["energy_drift"] < 1e-8 * abs(r["energy"])   # RK4 at dt=1e-3 conserves energy
    assert math.isclose(r["sensitivity"], r["sensitivity_numeric"], rel_tol=1e-7)


def test_pendulum_energy_gradient_is_hamiltons_equations():
    """dH/dw from tracegrad against PyTorch's autograd of the same energy."""
    torch = pytest.importorskip("torch")
    import tracegrad as tg
    pendulum = load("pendulum")
    point = (0.3, -1.1, 0.8, 2.0)
    ours = tg.grad(pendulum.energy, argnums=(0, 1, 2, 3))(*point)
    t1, t2, w1, w2 = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in point)
    m1, m2, l1, l2, g = pendulum.M1, pendulum.M2, pendulum.L1, pendulum.L2, pendulum.G
    kinetic = (0.5 * (m1 + m2) * l1 ** 2 * w1 ** 2 + 0.5 * m2 * l2 ** 2 * w2 ** 2
               + m2 * l1 * l2 * w1 * w2 * torch.cos(t1 - t2))
    potential = -(m1 + m2) * g * l1 * torch.cos(t1) - m2 * g * l2 * torch.cos(t2)
    (kinetic + potential).backward()
    for a, b in zip(ours, (t1.grad, t2.grad, w1.grad, w2.grad)):
        assert math.isclose(a, b.item(), rel_tol=1e-12, abs_tol=1e-12)


def test_curve_fit_newton_converges_to_least_squares(tmp_path):
    pytest.importorskip("matplotlib")
    example = load("curve_fit_newton")
    plot = tmp_path / "fit.png"
    t, y, params, losses = example.main(["--fast", "--plot", str(plot)])
    assert plot.stat().st_size > 1000
    assert all(b <= a for a, b in zip(losses, losses[1:]))          # damped Newton never goes uphill
    assert np.allclose(params, example.TRUE, atol=0.1)
    optimize = pytest.importorskip("scipy.optimize")
    ref, _ = optimize.curve_fit(lambda t, a, b, w, c: a * np.exp(-b * t) * np.cos(w * t) + c,
                                t, y, p0=example.START)
    assert np.allclose(params, ref, rtol=1e-6)


def test_curve_fit_newton_rejects_uphill_steps():
    example = load("curve_fit_newton")
    t, y = example.make_data(30)
    params, losses = example.fit(t, y, start=[0.5, 0.1, 2.0, -1.0], iterations=60, verbose=False)
    assert losses[-1] < losses[0] and all(b <= a for a, b in zip(losses, losses[1:]))


def test_sympy_derivatives_agree_with_torch(capsys):
    torch = pytest.importorskip("torch")
    import sympy as sp
    results = load("sympy_derivatives").main(["--fast"])
    assert "agrees with sympy.diff" in capsys.readouterr().out
    expr, gradient = results["gaussian_bump"]
    x, y = sp.symbols("x y", real=True)
    at = {x: 0.7, y: -0.4}
    tx, ty = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.7, -0.4))
    (torch.exp(-(tx * tx + ty * ty) / 2) * torch.sin(tx * ty)).backward()
    assert math.isclose(float(gradient[0].subs(at)), tx.grad.item(), rel_tol=1e-12)
    assert math.isclose(float(gradient[1].subs(at)), ty.grad.item(), rel_tol=1e-12)
