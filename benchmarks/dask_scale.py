"""tracegrad on a Dask LocalCluster: vmap(grad) over N points and a full-batch moons fit over M
samples, on 1 and 2 worker processes (one thread each) against one process; bytes on the
network per training step; the per-shard times behind the scaling model of docs/dask.md.

Run: python benchmarks/dask_scale.py                      # the issue's sizes: 20M points, 2M samples
     python benchmarks/dask_scale.py --points 5e6 --samples 5e5 --epochs 10
"""
import argparse
import importlib
import os
import time

import numpy as np

import tracegrad as tg

CHUNK = 2_500_000  # rows per dask chunk (one task each; 8 for 20M points)


def f(x, y):
    return tg.tanh(x * y + tg.sin(x)) * tg.exp(-y * y / 2) + tg.log(1 + x * x)


def best(fn, repeat=3):
    """The shortest of ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# ------------------------------------------------------------ bytes on the wire

def count_tcp_writes():
    """Wrap distributed's TCP ``write`` so that this process adds up the bytes it sends."""
    from distributed.comm import tcp
    if hasattr(tcp, "bytes_sent"):
        return
    tcp.bytes_sent, write = [0], tcp.TCP.write

    async def counted(self, msg, serializers=None, on_error="message"):
        n = await write(self, msg, serializers, on_error)
        tcp.bytes_sent[0] += n
        return n
    tcp.TCP.write = counted


def bytes_sent():
    from distributed.comm import tcp
    return tcp.bytes_sent[0]


def sent(client):
    """Bytes sent so far by every process of the cluster (this one: client and scheduler; the workers),
    less what asking the workers costs."""
    return bytes_sent() + sum(client.run(bytes_sent).values())


# ------------------------------------------------------------ the runs

def moons(m, seed=0):
    """Two interleaved half circles with noise, labels -1 / 1 (as sklearn's make_moons)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, np.pi, m)
    upper = rng.random(m) < 0.5
    X = np.where(upper[:, None], np.stack([np.cos(t), np.sin(t)], 1), np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    return X + rng.normal(scale=0.1, size=X.shape), np.where(upper, -1.0, 1.0)


def trainer():
    model = tg.nn.MLP(2, [16, 16, 1], seed=1337)
    return tg.nn.Trainer(model, loss="hinge", l2=1e-4, optimizer=tg.nn.SGD(lr=lambda k: 1.0 - 0.9 * k / 100))


def settle(client):
    """Wait until the scheduler holds no task: results of one run are not reused by the next."""
    while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
        time.sleep(0.05)


def vmap_on(client, n):
    """Seconds for vmap(grad f) over n points held by the workers (outputs kept there), best of 3."""
    import dask.array as da
    import distributed
    points = da.random.default_rng(0).random((n, 2), chunks=(CHUNK, 2))
    xs, ys = client.persist([points[:, 0], points[:, 1]])  # a chunk of x and its chunk of y: on one worker
    distributed.wait([xs, ys])
    g = tg.vmap(tg.grad(f, argnums=(0, 1)))
    distributed.wait(client.persist(list(g(xs[:CHUNK], ys[:CHUNK]))))  # each worker compiles (or loads)
    times, held = [], len(client.who_has())
    for _ in range(3):
        t = time.perf_counter()
        out = client.persist(list(g(xs, ys)))
        distributed.wait(out)
        times.append(time.perf_counter() - t)
        del out
        for _ in range(100):  # until the outputs are released: the next run computes them again
            if len(client.who_has()) <= held:
                break
            time.sleep(0.05)
    return min(times)


def timed_fit(X, y, epochs, client=None):
    """(seconds, bytes sent in the cluster, per-shard task seconds, parameters) of one full-batch fit."""
    import distributed
    tr = trainer()
    if client is None:
        tr.fit(X, y, epochs=0, progress=False)  # compiles
        t = time.perf_counter()
        tr.fit(X, y, epochs=epochs, progress=False)
        return time.perf_counter() - t, 0, [], [p.data for p in tr.params]
    settle(client)
    asking = -(sent(client) - sent(client))  # the bytes one reading of the counters moves
    with distributed.get_task_stream(client) as stream:
        before = sent(client)
        t = time.perf_counter()
        tr.fit(X, y, epochs=epochs, progress=False, client=client)
        seconds = time.perf_counter() - t
        moved = sent(client) - before - asking
    tasks = [r for r in stream.data if "tracegrad-sums" in str(r["key"])]
    compute = [sum(s["stop"] - s["start"] for s in r["startstops"] if s["action"] == "compute") for r in tasks]
    return seconds, moved, compute, [p.data for p in tr.params]


def fit_on(X, y, epochs, client=None):
    """(setup s, s per epoch, bytes per step, per-shard task s, parameters): a fit of 0 epochs (the
    data sharded, the kernels compiled) and one of ``epochs``, the difference per epoch."""
    if client is not None:
        trainer().fit(X[:1000], y[:1000], epochs=1, progress=False, client=client)  # compile on the workers
    setup, setup_bytes, _, _ = timed_fit(X, y, 0, client)
    total, total_bytes, compute, params = timed_fit(X, y, epochs, client)
    return setup, (total - setup) / epochs, (total_bytes - setup_bytes) / epochs, compute, params


def cluster(workers):
    import distributed
    local = distributed.LocalCluster(n_workers=workers, processes=True, threads_per_worker=1,
                                     dashboard_address=":0", silence_logs=40)
    client = distributed.Client(local)
    client.run(count_tcp_writes)
    return local, client


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=float, default=20e6)
    parser.add_argument("--samples", type=float, default=2e6)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    n, m, epochs = int(args.points), int(args.samples), args.epochs
    count_tcp_writes()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "unknown CPU")
    print(f"{cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; "
          f"vmap over {n:,} points, fit over {m:,} samples x {epochs} epochs")

    # one process
    xs, ys = np.random.default_rng(0).random((2, n))
    g = tg.vmap(tg.grad(f, argnums=(0, 1)))
    g(xs[:CHUNK], ys[:CHUNK])
    vmap_times = {"one process, 2 threads": best(lambda: g(xs, ys))}
    vmap_module = importlib.import_module("tracegrad.vmap")
    vmap_module.PARALLEL_ROWS, parallel = n + 1, vmap_module.PARALLEL_ROWS  # one thread
    vmap_times["one process, 1 thread"] = best(lambda: g(xs, ys))
    vmap_module.PARALLEL_ROWS = parallel
    del xs, ys
    X, y = moons(m)
    fit_times = {"one process": fit_on(X, y, epochs)}

    for workers in (1, 2):
        local, client = cluster(workers)
        try:
            vmap_times[f"{workers} worker{'s' * (workers > 1)}"] = vmap_on(client, n)
            fit_times[f"{workers} worker{'s' * (workers > 1)}"] = fit_on(X, y, epochs, client)
        finally:
            client.close()
            local.close()

    print(f"\nvmap(grad f) over {n:,} points in chunks of {CHUNK:,} (outputs kept where computed), best of 3")
    print(f"{'run':24} {'seconds':>8} {'Mpoints/s':>10} {'x 1 worker':>11} {'x 1 process':>12}")
    for name, s in vmap_times.items():
        print(f"{name:24} {s:8.3f} {n / s / 1e6:10.1f} {vmap_times['1 worker'] / s:11.2f} "
              f"{vmap_times['one process, 2 threads'] / s:12.2f}")
    chunks = -(-n // CHUNK)
    print(f"per chunk on a worker, beyond one thread's compute: "
          f"{(vmap_times['1 worker'] - vmap_times['one process, 1 thread']) / chunks * 1e3:.1f} ms")

    P = len(trainer().params)
    print(f"\nfull-batch fit, MLP(2, [16, 16, 1]) ({P} parameters), {m:,} samples, {epochs} epochs")
    print(f"{'run':14} {'setup s':>8} {'s/epoch':>8} {'x 1 worker':>11} {'bytes/step':>11} {'task ms':>8} "
          f"{'ns/sample':>10} {'overhead ms':>12} {'max |dp|':>9}")
    reference = np.array(fit_times["one process"][4])
    cost = {}
    for name, (setup, per_epoch, moved, compute, params) in fit_times.items():
        shards = len(compute) // epochs if compute else 1
        # the steps' slowest shard: the step waits for it; the rest of the step is overhead
        slowest = np.mean([max(compute[i:i + shards]) for i in range(0, len(compute), shards)]) if compute else 0.0
        per_sample = slowest / (m / shards) if compute else per_epoch / m
        cost[name] = per_sample, per_epoch - slowest if compute else 0.0
        dp = np.abs(np.array(params) - reference).max() / np.abs(reference).max()
        print(f"{name:14} {setup:8.2f} {per_epoch:8.3f} {fit_times['1 worker'][1] / per_epoch:11.2f} "
              f"{moved:11,.0f} {slowest * 1e3:8.1f} {per_sample * 1e9:10.1f} {cost[name][1] * 1e3:12.1f} {dp:9.1e}")
    print(f"payload per step and shard: {8 * P:,} bytes of parameters out, {8 * (P + 2):,} bytes of sums back")
    # the model: one process n * c1; k workers o + n * c / k; the cluster is faster past n = o / (c1 - c / k)
    c1, (c, o) = cost["one process"][0], cost["2 workers"]
    if c1 > c / 2:
        print(f"model: 2 workers beat one process past {o / (c1 - c / 2):,.0f} samples per step "
              f"(o = {o * 1e3:.1f} ms, c = {c * 1e9:.1f} ns, one process {c1 * 1e9:.1f} ns per sample)")
    else:
        print(f"model: 2 workers (c / 2 = {c / 2 * 1e9:.1f} ns per sample) never beat one process "
              f"({c1 * 1e9:.1f} ns) on this machine")


if __name__ == "__main__":
    main()
