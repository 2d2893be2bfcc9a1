"""Loops that stay loops (issue 14), side by side with JAX in one process.

    python benchmarks/loops.py [--steps 10000] [--unrolled-steps 2000] [--widths 32,128,512] [--epochs 20]

W5, ODE sensitivity: the gradient of a damped pendulum's final energy with respect to
its 3 parameters (stiffness k, damping c, initial angle theta0) through ``--steps`` RK4
steps written with ``tg.fori_loop``. Prints trace + compile time (first call) and time
per gradient (median and best) for tracegrad (a scan region: a real loop in LLVM) and
JAX ``jit(grad)`` of ``lax.fori_loop`` (compile timed too), and the unrolled form's
trace + compile time at ``--unrolled-steps`` steps (it grows with the steps).

W4, wider MLPs: sklearn's digits (scaled to [0, 1], 80 % train), MLP 64-H-10 (ReLU),
softmax cross-entropy, Adam (lr 1e-2), minibatch 32, shuffled, ``--epochs`` epochs,
float64, for each H of ``--widths`` (``--widths ''`` skips it): the Trainer's first fit
(trace + compile + one epoch) and time per epoch, beside JAX (``jit`` of one epoch as a
``lax.scan`` over minibatches, which drops the last partial batch) and PyTorch eager, from
the same initial weights and visiting the samples in the same orders, with each one's
test accuracy. Per epoch: wall-clock time (median) and the process's CPU time (on a
shared machine the CPU time is the steadier figure; a runner using several threads
shows more CPU than wall time).
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


def w4(widths, epochs):
    import numpy as np
    import torch
    import jax
    import jax.numpy as jnp
    from sklearn.datasets import load_digits
    jax.config.update("jax_enable_x64", True)
    X, labels = load_digits(return_X_y=True)
    X = X / 16.0
    order = np.random.default_rng(0).permutation(len(X))
    X, labels = X[order], labels[order]
    n_train = int(0.8 * len(X))
    Y = np.eye(10)[labels]
    Xtr, Ytr, Xte, lte = X[:n_train], Y[:n_train], X[n_train:], labels[n_train:]
    batch, lr = 32, 1e-2
    print(f"W4: digits MLP 64-H-10, Adam lr {lr}, batch {batch}, {epochs} epochs, float64 "
          f"({n_train} train / {len(X) - n_train} test)")
    print(f"{'H':>4s} {'runner':28s} {'first fit s':>12s} {'per epoch ms':>13s} {'cpu ms':>12s} {'test accuracy':>14s}")
    for H in widths:
        model = tg.nn.MLP(64, [H, (10, "linear")], seed=1)
        start = [p.data for p in model.parameters()]
        W1 = np.array([[start[j * 65 + i] for i in range(64)] for j in range(H)])
        b1 = np.array([start[j * 65 + 64] for j in range(H)])
        off = H * 65
        W2 = np.array([[start[off + j * (H + 1) + i] for i in range(H)] for j in range(10)])
        b2 = np.array([start[off + j * (H + 1) + H] for j in range(10)])
        trainer = tg.nn.Trainer(model, loss="cross_entropy", optimizer=tg.nn.Adam(lr=lr))
        ltr = labels[:n_train]
        t0 = time.perf_counter()
        trainer.fit(Xtr, ltr, epochs=1, batch_size=batch, shuffle=True, seed=0, progress=False)
        first = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        trainer.fit(Xtr, ltr, epochs=epochs - 1, batch_size=batch, shuffle=True, seed=1, progress=False)
        per_epoch = (time.perf_counter() - t0) / max(epochs - 1, 1)
        cpu = (time.process_time() - c0) / max(epochs - 1, 1)
        acc = np.mean(model.predict(Xte).argmax(axis=1) == lte)
        rows = [("tracegrad Trainer (llvm)", first, per_epoch, cpu, acc)]

        # the Trainer's visiting orders: one permutation per epoch, from seed 0 for the first fit, then seed 1
        later = np.random.default_rng(1)
        perms = [np.random.default_rng(0).permutation(n_train)] + [later.permutation(n_train)
                                                                   for _ in range(epochs - 1)]
        params = [torch.tensor(a, requires_grad=True) for a in (W1, b1, W2, b2)]
        torch.set_num_threads(1)  # minibatches of 32: its threads only wait on each other (and on a loaded machine)
        opt = torch.optim.Adam(params, lr=lr)
        xt, yt = torch.tensor(Xtr), torch.tensor(Ytr)
        times, cpus = [], []
        for e in range(epochs):
            t0, c0 = time.perf_counter(), time.process_time()
            perm = torch.from_numpy(perms[e])
            for i in range(0, n_train, batch):
                idx = perm[i:i + batch]
                out = torch.relu(xt[idx] @ params[0].T + params[1]) @ params[2].T + params[3]
                loss = (torch.logsumexp(out, 1) - (out * yt[idx]).sum(1)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        with torch.no_grad():
            out = torch.relu(torch.tensor(Xte) @ params[0].T + params[1]) @ params[2].T + params[3]
        rows.append(("PyTorch eager", 0.0, statistics.median(times), statistics.median(cpus),
                     float((out.argmax(1).numpy() == lte).mean())))

        def net(p, x):
            return jax.nn.relu(x @ p[0].T + p[1]) @ p[2].T + p[3]

        def batch_loss(p, x, y):
            out = net(p, x)
            return jnp.mean(jax.nn.logsumexp(out, axis=1) - jnp.sum(out * y, axis=1))
        full = n_train // batch * batch  # whole minibatches: lax.scan needs one shape

        @jax.jit
        def epoch(state, perm):
            def step(state, idx):
                p, m, v, k = state
                g = jax.grad(batch_loss)(p, Xj[idx], Yj[idx])
                k = k + 1
                m = [0.9 * a + 0.1 * b for a, b in zip(m, g)]
                v = [0.999 * a + 0.001 * b * b for a, b in zip(v, g)]
                p = [a - lr * (mi / (1 - 0.9 ** k)) / (jnp.sqrt(vi / (1 - 0.999 ** k)) + 1e-8)
                     for a, mi, vi in zip(p, m, v)]
                return (p, m, v, k), None
            return jax.lax.scan(step, state, perm[:full].reshape(-1, batch))[0]
        Xj, Yj = jnp.asarray(Xtr), jnp.asarray(Ytr)
        p = [jnp.asarray(a) for a in (W1, b1, W2, b2)]
        state = (p, [jnp.zeros_like(a) for a in p], [jnp.zeros_like(a) for a in p], 0)
        t0 = time.perf_counter()
        state = jax.block_until_ready(epoch(state, jnp.asarray(perms[0])))
        first_jax = time.perf_counter() - t0
        times, cpus = [], []
        for e in range(1, epochs):
            t0, c0 = time.perf_counter(), time.process_time()
            state = jax.block_until_ready(epoch(state, jnp.asarray(perms[e])))
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        acc_jax = float(np.mean(np.argmax(np.asarray(net(state[0], jnp.asarray(Xte))), axis=1) == lte))
        rows.append(("JAX jit(epoch as lax.scan)", first_jax, statistics.median(times) if times else 0.0,
                     statistics.median(cpus) if cpus else 0.0, acc_jax))
        for name, first_s, epoch_s, cpu_s, accuracy in rows:
            print(f"{H:4d} {name:28s} {first_s:12.3f} {epoch_s * 1e3:13.2f} {cpu_s * 1e3:12.2f} {accuracy:14.3f}")
        print(f"     per epoch, tracegrad / JAX: {rows[0][2] / rows[2][2]:.2f} (wall), {rows[0][3] / rows[2][3]:.2f} (cpu); "
              f"tracegrad / PyTorch: {rows[0][2] / rows[1][2]:.2f} (wall)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10_000, help="W5's RK4 steps (0 skips W5)")
    parser.add_argument("--unrolled-steps", type=int, default=2_000)
    parser.add_argument("--widths", default="32,128,512", help="W4's hidden widths, comma-separated ('' skips W4)")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    if args.steps:
        w5(args.steps, args.unrolled_steps)
    if args.widths:
        w4([int(h) for h in args.widths.split(",")], args.epochs)


if __name__ == "__main__":
    main()
