"""Loops that stay loops (issue 14), side by side with JAX in one process.

    python benchmarks/loops.py [--steps 10000] [--unrolled-steps 2000]

W5, ODE sensitivity: the gradient of a damped pendulum's final energy with respect to
its 3 parameters (stiffness k, damping c, initial angle theta0) through ``--steps`` RK4
steps written with ``tg.fori_loop``. Prints trace + compile time (first call) and time
per gradient (median and best) for tracegrad (a scan region: a real loop in LLVM) and
JAX ``jit(grad)`` of ``lax.fori_loop`` (compile timed too), and the unrolled form's
trace + compile time at ``--unrolled-steps`` steps (it grows with the steps).
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import tracegrad as tg  # noqa: E402

H = 0.01
ARGS = (1.3, 0.2, 0.9)


def pendulum(sin, cos, loop, steps):
    def f(k, c, theta0):
        def rhs(th, om):
            return om, -k * sin(th) - c * om

        def step(i, s):
            th, om = s
            a1, b1 = rhs(th, om)
            a2, b2 = rhs(th + 0.5 * H * a1, om + 0.5 * H * b1)
            a3, b3 = rhs(th + 0.5 * H * a2, om + 0.5 * H * b2)
            a4, b4 = rhs(th + H * a3, om + H * b3)
            return (th + H / 6 * (a1 + 2 * a2 + 2 * a3 + a4), om + H / 6 * (b1 + 2 * b2 + 2 * b3 + b4))
        th, om = loop(0, steps, step, (theta0, 0.0))
        return 0.5 * om * om + k * (1.0 - cos(th))
    return f


def timed(fn, rounds):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def w5(steps, unrolled_steps, rounds=20):
    rows = []
    f = pendulum(tg.sin, tg.cos, tg.fori_loop, steps)
    grad = tg.grad(f, argnums=(0, 1, 2))
    t0 = time.perf_counter()
    g_tg = grad(*ARGS)
    first = time.perf_counter() - t0
    rows.append(("tracegrad scan (llvm)", first, *timed(lambda: grad(*ARGS), rounds)))

    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    fj = jax.jit(jax.grad(pendulum(jnp.sin, jnp.cos, jax.lax.fori_loop, steps), argnums=(0, 1, 2)))
    t0 = time.perf_counter()
    g_jax = [float(v) for v in jax.block_until_ready(fj(*ARGS))]
    first_jax = time.perf_counter() - t0
    rows.append(("JAX jit(grad) of lax.fori_loop", first_jax,
                 *timed(lambda: jax.block_until_ready(fj(*ARGS)), rounds)))
    error = max(abs(a - b) / max(abs(b), 1e-300) for a, b in zip(g_tg, g_jax))

    fu = tg.grad(tg.unroll(pendulum(tg.sin, tg.cos, tg.fori_loop, unrolled_steps)), argnums=(0, 1, 2))
    t0 = time.perf_counter()
    fu(*ARGS)
    rows.append((f"tracegrad unrolled, {unrolled_steps} steps", time.perf_counter() - t0,
                 *timed(lambda: fu(*ARGS), 5)))
    print(f"W5: gradient of a damped pendulum's energy wrt (k, c, theta0), {steps} RK4 steps")
    print(f"{'runner':40s} {'trace+compile s':>16s} {'per gradient ms (median / best)':>32s}")
    for name, compile_s, median, best in rows:
        print(f"{name:40s} {compile_s:16.3f} {median * 1e3:18.3f} / {best * 1e3:.3f}")
    print(f"gradient {g_tg}, largest relative difference to JAX {error:.1e}")
    print(f"ratios: tracegrad / JAX per gradient {rows[0][2] / rows[1][2]:.2f} (median), "
          f"trace+compile {rows[0][1] / rows[1][1]:.2f}")
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--unrolled-steps", type=int, default=2_000)
    args = parser.parse_args()
    w5(args.steps, args.unrolled_steps)


if __name__ == "__main__":
    main()
