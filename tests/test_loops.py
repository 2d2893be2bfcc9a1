"""Loops that stay loops: tg.map, tg.scan, tg.fori_loop as scan regions of the IR.

Oracles: JAX (float64) for values and derivatives of lax.scan / lax.map / lax.fori_loop,
and the unrolled graph (tg.unroll) of the same function, to 1e-12.
"""
import math
import random

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.ir import Graph

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy
lax = jax.lax

BACKENDS = ["interp", "python", "llvm", "numba"]


def close(a, b, tol=1e-12):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.allclose(a, b, rtol=tol, atol=tol), (a, b)


# ------------------------------------------------------------ programs, written once for each library

def pendulum(lib, steps):
    """Damped pendulum, RK4, energy at the end: a function of (k, c, theta0)."""
    sin, cos = (tg.sin, tg.cos) if lib is tg else (jnp.sin, jnp.cos)
    loop = tg.fori_loop if lib is tg else lax.fori_loop
    h = 0.01

    def f(k, c, theta0):
        def rhs(th, om):
            return om, -k * sin(th) - c * om

        def step(i, s):
            th, om = s
            a1, b1 = rhs(th, om)
            a2, b2 = rhs(th + 0.5 * h * a1, om + 0.5 * h * b1)
            a3, b3 = rhs(th + 0.5 * h * a2, om + 0.5 * h * b2)
            a4, b4 = rhs(th + h * a3, om + h * b3)
            return (th + h / 6 * (a1 + 2 * a2 + 2 * a3 + a4), om + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4))
        th, om = loop(0, steps, step, (theta0, 0.0))
        return 0.5 * om * om + k * (1.0 - cos(th))
    return f


def recurrent(lib):
    """A scan with rows, a per-step output and a captured parameter: sum of ys plus the carry."""
    tanh = tg.tanh if lib is tg else jnp.tanh
    scan = tg.scan if lib is tg else lax.scan

    def f(w, xs):
        def body(c, x):
            h = tanh(w * c + x[0] - x[1] * c)
            return h, h * x[1]
        c, ys = scan(body, 0.5, xs)
        return c + sum(ys) if lib is tg else c + jnp.sum(ys)
    return f


def layer(lib):
    """A map over neurons: each row is a neuron's weights, the inputs are captured."""
    mapper = tg.map if lib is tg else lax.map
    tanh = tg.tanh if lib is tg else jnp.tanh

    def f(ws, x):
        out = mapper(lambda w: tanh(w[0] * x[0] + w[1] * x[1] + w[2]), ws)
        return sum(o * o for o in out) if lib is tg else jnp.sum(out * out)
    return f


# ------------------------------------------------------------ values, gradients, higher order

@pytest.mark.parametrize("steps", [0, 1, 2, 7, 50])
def test_fori_loop_gradient_matches_jax_and_unrolled(steps):
    args = (1.3, 0.2, 0.9)
    f, fj = pendulum(tg, steps), pendulum(jnp, steps)
    want = jax.grad(fj, argnums=(0, 1, 2))(*args)
    close(tg.jit(f)(*args), fj(*args))
    for backend in BACKENDS:
        close(tg.grad(f, argnums=(0, 1, 2), backend=backend)(*args), want)
    close(tg.grad(tg.unroll(f), argnums=(0, 1, 2))(*args), want)
    graph = tg.trace(tg.grad(f, argnums=(0, 1, 2)), *args)
    assert graph.stats()["scan"] == (2 if steps else 2)  # forward and reverse: a fixed size
    assert len(graph.nodes) < 400 + 3 * steps  # the stored carries are the only per-step nodes


@pytest.mark.parametrize("steps", [0, 1, 5])
def test_higher_order_through_a_loop(steps):
    f, fj = pendulum(tg, steps), pendulum(jnp, steps)
    args = (1.1, 0.3, 0.5)
    close(tg.grad(tg.grad(f))(*args), jax.grad(jax.grad(fj))(*args))
    close(tg.hessian(f, argnums=(0, 1, 2))(*args) if False else tg.grad(tg.grad(f, 2), 2)(*args),
          jax.grad(jax.grad(fj, 2), 2)(*args))
    close(tg.jvp(f, args, (1.0, -0.5, 2.0))[1], jax.jvp(fj, args, (1.0, -0.5, 2.0))[1])
    # forward over reverse
    close(tg.jvp(tg.grad(f), args, (0.0, 1.0, 0.0))[1], jax.jvp(jax.grad(fj), args, (0.0, 1.0, 0.0))[1])


@pytest.mark.parametrize("steps", [0, 1, 3, 40])
def test_scan_with_rows_matches_jax(steps):
    rng = np.random.default_rng(steps)
    xs = rng.normal(size=(steps, 2))
    f, fj = recurrent(tg), recurrent(jnp)
    close(tg.jit(f)(0.7, xs), fj(0.7, xs))
    want_w, want_xs = jax.grad(fj, argnums=(0, 1))(0.7, xs)
    for backend in BACKENDS:
        got_w, got_xs = tg.grad(f, argnums=(0, 1), backend=backend)(0.7, xs)
        close(got_w, want_w)
        close(got_xs, want_xs)
    close(tg.grad(tg.unroll(f))(0.7, xs), want_w)
    close(tg.grad(tg.grad(f))(0.7, xs), jax.grad(jax.grad(fj))(0.7, xs))


@pytest.mark.parametrize("rows", [0, 1, 4, 33])
def test_map_matches_jax(rows):
    rng = np.random.default_rng(rows + 100)
    ws, x = rng.normal(size=(rows, 3)), rng.normal(size=2)
    f, fj = layer(tg), layer(jnp)
    close(tg.jit(f)(ws, x), fj(ws, x))
    want = jax.grad(fj, argnums=(0, 1))(ws, x)
    for backend in BACKENDS:
        got = tg.grad(f, argnums=(0, 1), backend=backend)(ws, x)
        close(got[0], want[0])
        close(got[1], want[1])
    close(tg.jvp(f, (ws, x), (np.ones_like(ws), np.ones(2)))[1],
          jax.jvp(fj, (ws, x), (np.ones_like(ws), np.ones(2)))[1])


def test_random_sizes_against_unrolled():
    rnd = random.Random(14)
    for _ in range(5):
        steps = rnd.randrange(0, 12)
        a = rnd.uniform(0.2, 0.9)

        def f(x, y):
            def body(c, row):
                p, q = c
                return (p * x + tg.sin(q * row), q - y * p * row), p * q
            (p, q), ys = tg.scan(body, (x, y), np.linspace(0.0, 1.0, steps))
            return p + q * q + sum(ys)
        g_loop = tg.grad(f, argnums=(0, 1))(a, 0.3)
        g_flat = tg.grad(tg.unroll(f), argnums=(0, 1))(a, 0.3)
        close(g_loop, g_flat)
        close(tg.grad(tg.grad(f))(a, 0.3), tg.grad(tg.grad(tg.unroll(f)))(a, 0.3))


def test_nested_loops():
    def f(x):
        def outer(i, s):
            return tg.fori_loop(0, 3, lambda j, u: tg.sin(u * x + j), s)
        return tg.fori_loop(0, 4, outer, x)

    def fj(x):
        return lax.fori_loop(0, 4, lambda i, s: lax.fori_loop(0, 3, lambda j, u: jnp.sin(u * x + j), s), x)
    close(tg.jit(f)(0.4), fj(0.4))
    close(tg.grad(f, backend="python")(0.4), jax.grad(fj)(0.4))
    close(tg.grad(f)(0.4), jax.grad(fj)(0.4))
    close(tg.grad(tg.grad(f))(0.4), jax.grad(jax.grad(fj))(0.4))


# ------------------------------------------------------------ the IR: printed, verified, JSON, hashed

def test_region_is_a_node_of_the_ir():
    f = lambda x: tg.fori_loop(0, 10_000, lambda i, s: s * x + i, 1.0)  # noqa: E731
    g = tg.trace(f, 2.0)
    assert len(g.nodes) == 4 and g.stats()["scan"] == 1
    text = str(g)
    assert "scan[length=10000 carry=1 const=1]" in text and "mul carry captured" in text
    assert Graph.from_json(g.to_json()) == g.verify()
    h = tg.trace(lambda x: tg.fori_loop(0, 9_999, lambda i, s: s * x + i, 1.0), 2.0)
    assert h.fingerprint != g.fingerprint and h != g
    bad = g.to_json().replace('"n_carry": 1', '"n_carry": 5')
    with pytest.raises(ValueError):
        Graph.from_json(bad)


def test_python_source_shows_the_loop():
    src = tg.jit(lambda x: tg.fori_loop(0, 100, lambda i, s: s * x, 1.0), backend="python").source
    assert "for t in range(100):" in src and src.count(" * ") == 1


# ------------------------------------------------------------ plain behaviour and bad input

def test_outside_a_trace_it_is_a_python_loop():
    assert tg.scan(lambda c, x: (c + x, c * x), 0.0, [1.0, 2.0, 3.0]) == (6.0, [0.0, 2.0, 9.0])
    c, ys = tg.scan(lambda c, x: (c + x, {"a": c}), 0.0, np.array([1.0, 2.0]))
    assert c == 3.0 and np.array_equal(ys["a"], [0.0, 1.0])
    a = tg.Value(2.0)
    out = tg.fori_loop(0, 3, lambda i, s: s * a, tg.Value(1.0))
    out.backward()
    assert out.data == 8.0 and a.grad == 12.0


def test_stacked_outputs_match_jax():
    xs = (np.arange(6.0).reshape(3, 2), np.array([1.0, 2.0, 3.0]))

    def body(c, x):
        return c + x[1], (x[0] * c, c)

    def traced(c0):
        return tg.scan(body, c0, xs)
    c, (a, b) = tg.jit(traced)(0.5)
    cj, (aj, bj) = lax.scan(body, 0.5, xs)
    close(c, cj), close(a, aj), close(b, bj)
    c, (a, b) = tg.jit(lambda c0: tg.scan(body, c0, xs, reverse=True))(0.5)
    cj, (aj, bj) = lax.scan(body, 0.5, xs, reverse=True)
    close(c, cj), close(a, aj), close(b, bj)


def test_bad_input():
    with pytest.raises(TypeError, match="integer"):
        tg.fori_loop(0.0, 3, lambda i, s: s, 1.0)
    with pytest.raises(TypeError, match="carry of the structure"):
        tg.jit(lambda x: tg.scan(lambda c, r: ((c, c), None), x, length=2))(1.0)
    with pytest.raises(TypeError, match="pair"):
        tg.jit(lambda x: tg.scan(lambda c, r: c, x, length=2))(1.0)
    with pytest.raises(TypeError, match="needs xs or length"):
        tg.scan(lambda c, r: (c, None), 1.0)
    with pytest.raises(ValueError, match="different numbers of rows"):
        tg.map(lambda r: r[0], (np.ones(2), np.ones(3)))
    with pytest.raises(TypeError, match="one structure"):
        tg.jit(lambda x: tg.map(lambda r: x, [1.0, [1.0, 2.0]]))(1.0)
    with pytest.raises(TypeError, match="rows"):
        tg.map(lambda r: r, 3.0)
    with pytest.raises(tg.TracingError):
        tg.jit(lambda x: tg.fori_loop(0, 3, lambda i, s: s if s > 0 else -s, x))(1.0)


def test_vmap_and_sympy_accept_loops():
    f = lambda x: tg.fori_loop(0, 20, lambda i, s: tg.sin(s) * x, 1.0)  # noqa: E731
    fj = lambda x: lax.fori_loop(0, 20, lambda i, s: jnp.sin(s) * x, 1.0)  # noqa: E731
    xs = np.linspace(0.1, 1.0, 7)
    close(tg.vmap(f)(xs), jax.vmap(fj)(xs))
    close(tg.vmap(tg.grad(f))(xs), jax.vmap(jax.grad(fj))(xs))
    # sympy unrolls the loop (docs/loops.md)
    assert str(tg.export_sympy(lambda x: tg.fori_loop(0, 3, lambda i, s: s * x + i, 1.0))) == "x*(x**2 + 1) + 2"


@pytest.mark.parametrize("backend", ["python", "numba"])
def test_generated_source_follows_the_body_not_the_steps(backend):
    # the reverse loop reads the carries its forward loop stored from that loop's ys: no line per step
    from tracegrad.backends import numba as numba_backend, python
    emit = python.source if backend == "python" else numba_backend.source
    sizes = [emit(tg.trace(tg.grad(pendulum(tg, n), argnums=(0, 1, 2)), 1.3, 0.2, 0.9)).count("\n") for n in (3, 3000)]
    assert sizes[0] == sizes[1] < 250
    k = tg.jit(tg.grad(pendulum(tg, 3000), argnums=(0, 1, 2)), backend=backend)
    close(k(1.3, 0.2, 0.9), jax.grad(pendulum(jnp, 3000), argnums=(0, 1, 2))(1.3, 0.2, 0.9))


def test_loops_too_long_for_the_stack_are_a_clear_error_in_llvm():
    f = lambda x: tg.fori_loop(0, 300_000, lambda i, s: tg.sin(s) * x, 1.0)  # noqa: E731
    with pytest.raises(ValueError, match="MiB of per-step values.*backend='numba'"):
        tg.grad(f)(0.7)
    close(tg.grad(f, backend="python")(0.7), jax.grad(lambda x: lax.fori_loop(0, 300_000, lambda i, s: jnp.sin(s) * x,
                                                                            1.0))(0.7))


# ------------------------------------------------------------ checkpointing

def checkpointed_scan(lib, checkpoint, reverse):
    """A scan with rows, per-step outputs and captured parameters, run in either direction."""
    tanh = tg.tanh if lib is tg else jnp.tanh

    def f(w, xs):
        def body(c, x):
            h = tanh(w * c[0] + x[0]) - x[1] * c[1]
            return (h, c[0] * w), h * x[1]
        if lib is tg:
            (a, b), ys = tg.scan(body, (0.5, -0.2), xs, reverse=reverse, checkpoint=checkpoint)
            return a + b * b + sum(ys[::3])
        (a, b), ys = lax.scan(body, (0.5, -0.2), xs, reverse=reverse)
        return a + b * b + jnp.sum(ys[::3])
    return f


@pytest.mark.parametrize("backend, checkpoint", [*[(b, 13) for b in BACKENDS],
                                                 *[("llvm", k) for k in (True, 1, 4, 40, 41)]])
@pytest.mark.parametrize("reverse", [False, True])
def test_checkpointed_scan_gives_the_stored_gradient(backend, checkpoint, reverse):
    """Segments of every size (one step, not dividing the steps, all of them, more), both directions:
    value, gradient and second derivative equal JAX's and the unrolled graph's."""
    xs = [[math.sin(t), 0.1 * math.cos(3 * t)] for t in range(40)]
    f, fj = checkpointed_scan(tg, checkpoint, reverse), checkpointed_scan(jnp, None, reverse)
    close(tg.jit(f, backend=backend)(0.7, xs), fj(0.7, jnp.array(xs)))
    grad = tg.jit(tg.grad(f, argnums=(0, 1)), backend=backend)(0.7, xs)
    expected = jax.grad(fj, argnums=(0, 1))(0.7, jnp.array(xs))
    close(grad[0], expected[0])
    close(grad[1], expected[1])
    close(tg.jit(tg.grad(tg.grad(f)), backend=backend)(0.7, xs), jax.grad(jax.grad(fj))(0.7, jnp.array(xs)))
    close(tg.grad(tg.unroll(f))(0.7, xs), grad[0])


@pytest.mark.parametrize("checkpoint", [True, 3, 49, 50])
def test_checkpointed_fori_loop_steps_count_on(checkpoint):
    """The step number ``i`` the body sees runs on across segments (and the rest)."""
    f = lambda x: tg.fori_loop(2, 52, lambda i, s: s * x + 0.01 * i * s, 1.0, checkpoint=checkpoint)  # noqa: E731
    fj = lambda x: lax.fori_loop(2, 52, lambda i, s: s * x + 0.01 * i * s, 1.0)  # noqa: E731
    close(tg.jit(f)(0.97), fj(0.97))
    close(tg.grad(f)(0.97), jax.grad(fj)(0.97))


def test_checkpointed_gradient_stores_about_twice_the_square_root_of_the_steps():
    """The gradient graph stores the carries of the segments' starts, and each segment's once."""
    def stored(checkpoint):
        g = tg.trace(tg.grad(pendulum_with(checkpoint), argnums=(0, 1, 2)), 1.3, 0.2, 0.9)
        return sum(r.length * r.n_y for op, _, r in _all_scans(g))
    assert stored(None) >= 2 * 10_000
    assert stored(True) <= 2 * 2 * 2 * 101


def pendulum_with(checkpoint):
    return lambda k, c, th0: tg.fori_loop(0, 10_000, lambda i, s: (s[0] + 0.01 * s[1], s[1] - 0.01 * (
        k * tg.sin(s[0]) + c * s[1])), (th0, 0.0), checkpoint=checkpoint)[1]


def _all_scans(graph):
    for node in graph.nodes:
        if node[0] == "scan":
            yield node
            yield from _all_scans(node[2].body)


def test_checkpoint_lets_llvm_run_loops_too_long_for_the_stack():
    f = lambda x, cp: tg.fori_loop(0, 300_000, lambda i, s: tg.sin(s) * x, 1.0, checkpoint=cp)  # noqa: E731
    with pytest.raises(ValueError, match="checkpoint=True"):
        tg.grad(lambda x: f(x, None))(0.7)
    close(tg.grad(lambda x: f(x, True))(0.7), tg.grad(lambda x: f(x, None), backend="python")(0.7))


def test_checkpoint_bad_input():
    with pytest.raises(ValueError, match="checkpoint must be True or a number of steps >= 1"):
        tg.scan(lambda c, x: (c, None), 1.0, length=3, checkpoint=0)
    with pytest.raises(TypeError, match="checkpoint must be True or a number of steps"):
        tg.fori_loop(0, 3, lambda i, s: s, 1.0, checkpoint=2.5)
    assert tg.fori_loop(0, 3, lambda i, s: s * 2, 1.0, checkpoint=2) == 8.0   # outside a trace: a plain loop


# ------------------------------------------------------------ llvm: maps in SIMD lanes

@pytest.fixture(params=["host", "generic"])
def target(request, monkeypatch, tmp_path):
    """Compile for this CPU, then for the baseline one (2 lanes on x86-64), each into a cache of its own;
    gives ``(lanes, compile)``. ``llvm.compile`` skips the in-memory cache of kernels by graph."""
    from tracegrad.backends import cache, host, llvm
    monkeypatch.setenv("TRACEGRAD_CPU", request.param)
    host.host.cache_clear()

    def compile(graph):
        with cache.using(tmp_path):
            return llvm.compile(graph)
    yield host.host().lanes, compile
    monkeypatch.delenv("TRACEGRAD_CPU")
    host.host.cache_clear()


def bits(xs, any_nan=False):
    """The bit patterns of floats (``any_nan``: every nan as one; Python's nan is positive, x86's negative)."""
    xs = np.asarray(xs, dtype=float)
    return (np.where(np.isnan(xs), np.nan, xs) if any_nan else xs).view(np.int64).tolist()


def stepped_map(body, xs):
    """``tg.map`` whose body also reads the step as a float (a map region's body may; tg.map's does not)."""
    rows = [tuple(row) for row in xs]
    return tg.loops._loop(lambda t, c, x: ((), body(t, x)), (), len(rows), rows, True, (0.0,) * xs.shape[1],
                          False, False, "map")[1]


def test_a_map_in_simd_lanes_computes_what_its_rows_one_at_a_time_do(target):
    """Every op in a map body (on the op table's points, on the step times a constant) at lengths
    around the lane count: the bits of the interp backend and of the unrolled graph."""
    from op_table import OPS
    from tracegrad.backends import llvm
    from tracegrad.transforms.lower import unroll_graph
    lanes, compile = target
    lengths = [0, 1, lanes - 1, lanes, lanes + 1, 3 * lanes + 2]
    for name, fn, _, points in OPS:
        points = [p if isinstance(p, tuple) else (p,) for p in points]
        args = [np.array([points[(k + n) % len(points)] for k in range(n)]).reshape(n, len(points[0]))
                for n in lengths]

        def f(c, *xss):
            return [stepped_map(lambda t, r: (fn(*r), fn(t * c, *r[1:])), xs) for xs in xss]
        graph = tg.trace(f, 0.75, *args)
        inputs = [0.75] + [v for a in args for v in a.ravel()]
        got = compile(graph)(*inputs)
        assert lanes == 1 or f"<{lanes} x double>" in llvm.source(graph), name
        assert bits(got) == bits(compile(unroll_graph(graph))(*inputs)), name
        assert bits(got, True) == bits(tg.ir.evaluate(graph, inputs), True), name


def test_maps_in_simd_lanes_nested_in_loops_and_differentiated(target):
    """A map in a loop's body, a map over a map's ys (rows gathered from the ys array), and their
    gradient (whose forward maps run in lanes): the interp backend's bits, the unrolled graph's values."""
    from tracegrad.transforms.lower import unroll_graph
    lanes, compile = target

    def f(x, xs):
        def step(i, s):
            pairs = tg.map(lambda r: (tg.sin(r * s + i), r * x), xs)
            return s * 0.5 + sum(tg.map(lambda p: p[0] * p[1] - x, pairs))
        return tg.fori_loop(0, 3, step, x)
    for n in (lanes - 1, 3 * lanes + 2):
        xs = np.linspace(-1.0, 2.0, n)
        for fn in (f, tg.grad(f, argnums=(0, 1))):
            graph = tg.trace(fn, 0.3, xs)
            inputs = [0.3, *xs]
            got = compile(graph)(*inputs)
            assert bits(got, True) == bits(tg.ir.evaluate(graph, inputs), True)
            close(got, compile(unroll_graph(graph))(*inputs))
