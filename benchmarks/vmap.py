"""vmap(grad(f)) over 1,000,000 points against numpy-vectorised hand-written code and JAX.

Run: python benchmarks/vmap.py
"""
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


if __name__ == "__main__":
    main()
