"""vmap(grad(f)) over 1,000,000 points against numpy-vectorised hand-written code and JAX, and the
fixed cost of vmap on small arrays (1, 10, 100 rows) against one native one-point call.

Run: python benchmarks/vmap.py            (both tables)
     python benchmarks/vmap.py small      (the small-arrays table only)
"""
import sys
import time

import numpy as np

import tracegrad as tg


def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2) + tg.log(1 + x * x)


def numpy_by_hand(x, y):
    t = np.tanh(x * y + np.sin(x))
    e = np.exp(-y * y / 2)
    da = (1 - t * t) * e
    return da * (y + np.cos(x)) + 2 * x / (1 + x * x), da * x - t * e * y


def best(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(n=1_000_000):
    xs, ys = np.random.default_rng(0).random((2, n))
    g = tg.vmap(tg.grad(f, argnums=(0, 1)))
    t0 = time.perf_counter()
    g(xs, ys)  # trace, compile the scalar and the lane kernels, and one run
    results = {"tg.vmap(grad) llvm": (time.perf_counter() - t0, best(lambda: g(xs, ys)))}
    results["numpy by hand"] = (0.0, best(lambda: numpy_by_hand(xs, ys)))
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        jnp = jax.numpy
        jg = jax.jit(jax.vmap(jax.grad(lambda x, y: jnp.tanh(x * y + jnp.sin(x)) * jnp.exp(-y * y / 2)
                                       + jnp.log(1 + x * x), argnums=(0, 1))))
        jx, jy = jnp.array(xs), jnp.array(ys)
        t0 = time.perf_counter()
        jax.block_until_ready(jg(jx, jy))
        results["jax.jit(vmap(grad))"] = (time.perf_counter() - t0,
                                          best(lambda: jax.block_until_ready(jg(jx, jy))))
    except ImportError:
        pass
    base = results["tg.vmap(grad) llvm"][1]
    print(f"{'kernel':24} {'compile s':>10} {'run ms':>9} {'x tracegrad':>12}")
    for name, (c, r) in results.items():
        print(f"{name:24} {c:10.3f} {r * 1e3:9.2f} {r / base:12.2f}")


def small(rounds=15):
    """vmap's fixed cost on 1-100 rows: the time of a call less the per-row work (the rows of a
    4,000-row call, one kernel run each), against one native call of the same gradient. The
    calls are timed in interleaved rounds (best of each), so load on the machine hits all alike."""
    from tracegrad.vmap import _Mapped
    general = _Mapped.__call__  # what every call ran before the native entry
    rng = np.random.default_rng(0)
    g = tg.vmap(tg.grad(f, argnums=(0, 1)))
    df = tg.jit(tg.grad(f, argnums=(0, 1)))
    df(0.3, 0.7)
    xs, ys = rng.random((2, 4000))
    g(xs, ys)
    calls = {"native": (lambda: df(0.3, 0.7), 1, 5000), 4000: (lambda: g(xs, ys), 4000, 5)}
    for n in (1, 10, 100):
        x, y = xs[:n].copy(), ys[:n].copy()
        calls[n] = (lambda x=x, y=y: g(x, y), 1, 5000 // n)
        calls[-n] = (lambda x=x, y=y: general(g, x, y), 1, 200)
    times = {k: float("inf") for k in calls}
    for _ in range(rounds):
        for k, (fn, _, number) in calls.items():
            t = time.perf_counter()
            for _ in range(number):
                fn()
            times[k] = min(times[k], (time.perf_counter() - t) / number)
    native, row = times["native"], times[4000] / 4000
    print(f"one native call tg.jit(grad)(0.3, 0.7): {native * 1e6:.3f} us; per-row work {row * 1e6:.3f} us")
    print(f"{'rows':>5} {'vmap us':>9} {'fixed us':>9} {'fixed / native':>15} {'general path us':>16}")
    for n in (1, 10, 100):
        fixed = times[n] - n * row
        print(f"{n:5} {times[n] * 1e6:9.3f} {fixed * 1e6:9.3f} {fixed / native:15.2f} {times[-n] * 1e6:16.1f}")


if __name__ == "__main__":
    small()
    if sys.argv[1:] != ["small"]:
        main()
