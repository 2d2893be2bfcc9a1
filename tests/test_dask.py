"""vmap and Trainer.fit on a Dask cluster: two worker processes whose CPU target (generic) and
disk cache differ from the client's, compared with the one-process results."""
import importlib
import os
import sys

import cloudpickle
import numpy as np
import pytest
import torch

import tracegrad as tg
from tracegrad.nn import cluster as tg_cluster
from test_vmap import f

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
from dask.utils import key_split  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import this file


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two worker processes with one thread each, compiling for the generic x86-64 / AArch64 target
    into a disk cache of their own; the client is not the default one (fit must be given it)."""
    cache = tmp_path_factory.mktemp("worker-cache")
    env = {"TRACEGRAD_CPU": "generic", "TRACEGRAD_CACHE_DIR": str(cache)}
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                                  env=env) as local, distributed.Client(local, set_as_default=False) as client:
        yield client, cache


@pytest.fixture(scope="module")
def moons():
    from sklearn.datasets import make_moons
    X, y = make_moons(n_samples=300, noise=0.1, random_state=0)
    return X, 2.0 * y - 1.0


def compute(client, tree):
    return client.gather(client.compute(tree))


def trainer(seed=3, **kw):
    model = tg.nn.MLP(2, [8, 8, 1], seed=seed)
    kw.setdefault("optimizer", tg.nn.SGD(lr=lambda k: 0.5 / (1 + 0.1 * k), momentum=0.9))
    return tg.nn.Trainer(model, loss=kw.pop("loss", "hinge"), l2=kw.pop("l2", 1e-4), **kw)


def params(t):
    return np.array([p.data for p in t.params])


def assert_same_fit(a, b, ha, hb):
    """Equal to 1e-12 of the largest parameter: only the order of the additions differs (shards
    are summed apart, then added; one process adds all samples in lanes)."""
    pa, pb = params(a), params(b)
    np.testing.assert_allclose(pb, pa, rtol=1e-12, atol=1e-12 * np.abs(pa).max())
    np.testing.assert_allclose(hb["loss"], ha["loss"], rtol=1e-12)
    assert hb["accuracy"] == ha["accuracy"] and a.step == b.step
    np.testing.assert_allclose(b.state, a.state, rtol=1e-12, atol=1e-12 * np.abs(a.state).max())


# ------------------------------------------------------------------ vmap


def test_vmap_over_dask_is_lazy_and_matches_torch(cluster):
    client, cache = cluster
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(2, 10_000))
    gx, gy = tg.vmap(tg.grad(f, argnums=(0, 1)))(da.from_array(xs, chunks=3000), ys)  # numpy y: chunked alike
    assert isinstance(gx, da.Array) and gx.chunks == ((3000, 3000, 3000, 1000),)
    assert "tracegrad-vmap" in {key_split(k) for k in dict(gx.__dask_graph__())}
    x, y = (torch.tensor(a, requires_grad=True) for a in (xs, ys))
    (torch.tanh(x * y + torch.sin(x)) * torch.exp(-y * y / 2) + torch.log(1 + x * x)).sum().backward()
    gx, gy = compute(client, [gx, gy])
    np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gy, y.grad.numpy(), rtol=1e-12, atol=1e-15)
    # the workers compiled the kernel themselves, into their own cache, for the generic target
    assert any(files for _, _, files in os.walk(cache / "llvm"))
    assert set(client.run(lambda: importlib.import_module("tracegrad.backends.host").host().lanes).values()) == {2}


def test_vmap_over_dask_pytrees_and_in_axes(cluster):
    client, _ = cluster
    w = np.arange(24.0).reshape(8, 3)
    fn = lambda p, x: {"dot": p["w"] @ x, "both": [x * 2.0, p["b"]]}  # noqa: E731
    expected = tg.vmap(fn, in_axes=(None, 0))({"w": np.ones(3), "b": 1.5}, w)
    out = tg.vmap(fn, in_axes=(None, 0))({"w": da.ones(3, chunks=2), "b": 1.5}, da.from_array(w, chunks=(3, 2)))
    assert out["both"][0].chunks == ((3, 3, 2), (3,))  # an array output keeps one chunk across its columns
    out = compute(client, out)
    for got, want in zip(tg.pytree.flatten(out)[0], tg.pytree.flatten(expected)[0]):
        np.testing.assert_array_equal(got, want)
    # a grad with respect to a broadcast array: per row, shape (3,)
    g = tg.vmap(tg.grad(lambda v, x: tg.tanh(v @ x)), in_axes=(None, 0))
    np.testing.assert_allclose(compute(client, g(np.array([0.5, -1.0, 2.0]), da.from_array(w / 10, chunks=5))),
                               g(np.array([0.5, -1.0, 2.0]), w / 10), rtol=1e-12)


def test_vmap_over_dask_does_not_compute_until_asked():
    import dask

    def boom():
        raise RuntimeError("computed")
    xs = da.from_delayed(dask.delayed(boom)(), shape=(5,), dtype=float)
    out = tg.vmap(lambda x: x * 2.0)(xs)  # builds the graph only
    with pytest.raises(RuntimeError, match="computed"):
        out.compute(scheduler="sync")


def test_vmap_over_dask_bad_input():
    g = tg.vmap(lambda x, y: x * y)
    with pytest.raises(ValueError, match="same length"):
        g(da.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="arrays of real numbers"):
        g(da.ones(3), da.from_array(np.array(["a", "b", "c"])))
    unknown = da.ones(6, chunks=3)
    unknown = unknown[unknown > 0]  # chunk sizes unknown until computed
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        g(unknown, unknown)


# ------------------------------------------------------------------ fit


@pytest.mark.parametrize("fit_args", [{}, {"batch_size": 64}, {"batch_size": 50, "shuffle": True, "seed": 1}])
def test_fit_on_the_cluster_equals_one_process(cluster, moons, fit_args):
    client, _ = cluster
    X, y = moons
    one, many = trainer(), trainer()
    h1 = one.fit(X, y, epochs=4, progress=False, **fit_args)
    h2 = many.fit(X, y, epochs=4, progress=False, client=client, **fit_args)
    assert_same_fit(one, many, h1, h2)


def test_a_wide_mlp_fits_as_dense_loops_on_the_cluster(cluster, moons):
    """A stack of dense layers of 500 parameters or more sums its shards with the dense loops
    (compiled on each worker), as one process does."""
    client, _ = cluster
    X, y = moons
    labels = (y > 0).astype(float)

    def make():
        return tg.nn.Trainer(tg.nn.MLP(2, [40, 12, 2], seed=2), loss="cross_entropy", optimizer=tg.nn.Adam(lr=0.01))
    one, many = make(), make()
    assert len(one.params) >= tg.nn.trainer.DENSE_FROM
    h1 = one.fit(X, labels, epochs=3, batch_size=64, shuffle=True, seed=2, progress=False)
    h2 = many.fit(X, labels, epochs=3, batch_size=64, shuffle=True, seed=2, progress=False, client=client)
    assert_same_fit(one, many, h1, h2)
    loop = many._loop(2, 1, tg_cluster.Shards(X, labels, client, 2))
    assert loop._futures[0].result()[0][0] == "dense"  # what each shard's worker compiles


def test_fit_on_dask_arrays_adam_and_several_targets(cluster, moons):
    client, _ = cluster
    X, y = moons
    Y = np.stack([y, X[:, 0] * y], axis=1)  # two regression targets

    def make():
        return tg.nn.Trainer(tg.nn.MLP(2, [(6, "tanh"), 2], seed=1), loss=lambda out, t: (out[0] - t[0]) ** 2 +
                             (out[1] - t[1]) ** 2, optimizer=tg.nn.Adam(lr=0.02))
    one, many = make(), make()
    one.fit(X, Y, epochs=3, batch_size=100, progress=False)
    one.fit(X, Y, epochs=2, batch_size=100, progress=False)  # a second fit goes on from the first
    many.fit(da.from_array(X, chunks=(70, 1)), da.from_array(Y, chunks=50), epochs=3, batch_size=100,
                  progress=False, client=client)  # y's chunks follow X's
    many.fit(X, Y, epochs=2, batch_size=100, progress=False)  # and mixes with one-process fits
    np.testing.assert_allclose(many.history["loss"], one.history["loss"], rtol=1e-12)
    np.testing.assert_allclose(params(many), params(one), rtol=1e-12, atol=1e-12 * np.abs(params(one)).max())
    assert many.step == one.step == 15 and len(many.history["loss"]) == 5


def test_fit_progress_bar_and_interrupt(cluster, moons, monkeypatch, capsys):
    """Ctrl-C during a step leaves the parameters, state, step count and history of the last whole
    epoch; fit resumes from there to what one uninterrupted fit gives."""
    client, _ = cluster
    X, y = moons
    whole, partial, interrupted = trainer(), trainer(), trainer()
    hw = whole.fit(X, y, epochs=5, batch_size=100, progress=False)
    partial.fit(X, y, epochs=2, batch_size=100, progress=False)
    run, calls = tg_cluster.ShardedLoop._sums, []

    def sums(loop, *args):
        calls.append(1)
        if len(calls) == 8:  # the second step of the third epoch
            raise KeyboardInterrupt
        return run(loop, *args)
    monkeypatch.setattr(tg_cluster.ShardedLoop, "_sums", sums)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(X, y, epochs=5, batch_size=100, client=client)
    assert "2/5" in capsys.readouterr().err  # the bar counted the two whole epochs
    assert_same_fit(partial, interrupted, partial.history, interrupted.history)
    monkeypatch.undo()
    interrupted.fit(X, y, epochs=3, batch_size=100, progress=True, client=client)
    assert_same_fit(whole, interrupted, hw, interrupted.history)


def test_fit_bad_input(cluster, moons, monkeypatch):
    client, _ = cluster
    X, y = moons
    t = trainer()
    with pytest.raises(ValueError, match="finite"):  # found by the worker holding the nan
        t.fit(da.from_array(np.where(np.arange(300)[:, None] == 250, np.nan, X), chunks=100), y,
              progress=False, client=client)
    with pytest.raises(ValueError, match="2-D"):
        t.fit(da.from_array(X[:, 0]), y, progress=False, client=client)
    with pytest.raises(ValueError, match="takes 2 features"):
        t.fit(da.zeros((300, 3)), y, progress=False, client=client)
    with pytest.raises(ValueError, match="create a client first"):  # dask arrays, no default client
        t.fit(da.from_array(X), y, progress=False)
    with pytest.raises(TypeError, match="dask.distributed.Client"):
        t.fit(X, y, progress=False, client="tcp://127.0.0.1:8786")
    assert t.step == 0 and params(t).tolist() == params(trainer()).tolist()


def test_a_cluster_without_workers_is_an_error_not_a_hang(moons, monkeypatch):
    X, y = moons
    monkeypatch.setattr(tg_cluster, "WORKER_TIMEOUT", 0.5)
    with distributed.LocalCluster(n_workers=0, dashboard_address=":0") as empty, \
            distributed.Client(empty, set_as_default=False) as client:
        with pytest.raises(TimeoutError, match="has no workers"):
            trainer().fit(X, y, progress=False, client=client)


# ------------------------------------------------------------------ faults


class KillOnce(distributed.WorkerPlugin):
    """Ends its worker's process (no cleanup, as a crash) when it starts its ``after``-th task whose
    key holds ``name`` (dask's fused tasks join their names), once in the whole cluster (the file
    ``marker``, made by one process only, marks it done), or with ``each`` once in every worker (a
    file per worker name in the folder ``marker``)."""

    def __init__(self, name, after, marker, each=False):
        self.name, self.after, self.marker, self.each, self.seen = name, after, marker, each, 0

    def setup(self, worker):
        if self.each:
            self.marker = os.path.join(self.marker, str(worker.name))

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and self.name in str(key):
            self.seen += 1
            if self.seen == self.after:
                try:  # two workers at their after-th task at once: one kills itself
                    os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    return
                os._exit(1)


@pytest.fixture
def kill_once(cluster, tmp_path):
    client, _ = cluster

    def install(name, after):
        client.register_plugin(KillOnce(name, after, str(tmp_path / "killed")), name="kill-once")
        return tmp_path / "killed"
    yield install
    client.unregister_worker_plugin("kill-once")


def within(seconds, fn):
    """``fn()``, or a test failure if it has not returned after ``seconds`` (a hang fails, not
    stalls the suite; the cluster's teardown then ends the call)."""
    import threading
    result, errors = [], []

    def run():
        try:
            result.append(fn())
        except BaseException as e:  # handed to the test
            errors.append(e)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"no result after {seconds} s")
    if errors:
        raise errors[0]
    return result[0]


def test_a_worker_killed_mid_fit_does_not_change_the_result(cluster, moons, kill_once):
    client, _ = cluster
    X, y = moons
    client.wait_for_workers(2, timeout=60)  # both fits cut the data for the same workers
    calm, crashed = trainer(), trainer()
    hc = calm.fit(X, y, epochs=6, progress=False, client=client)
    marker = kill_once("tracegrad-sums", 3)  # in the third step, with the worker's shard of the data
    hx = within(180, lambda: crashed.fit(X, y, epochs=6, progress=False, client=client))
    assert marker.exists()
    assert params(crashed).tolist() == params(calm).tolist() and hx == hc  # the same shards, summed alike


def test_every_worker_killed_at_once_mid_fit_does_not_change_the_result(cluster, moons, tmp_path):
    """All workers lost in one step (their nannies restart them): the lost shards are computed
    again on the new workers, and the fit ends as without the loss."""
    client, _ = cluster
    X, y = moons
    client.wait_for_workers(2, timeout=60)  # the cluster's two (a worker killed before may be restarting)
    workers = len(client.nthreads())
    calm, crashed = trainer(), trainer()
    hc = calm.fit(X, y, epochs=6, progress=False, client=client)
    client.register_plugin(KillOnce("tracegrad-sums", 3, str(tmp_path), each=True), name="kill-each")
    try:
        hx = within(180, lambda: crashed.fit(X, y, epochs=6, progress=False, client=client))
    finally:
        client.unregister_worker_plugin("kill-each")
    assert len(list(tmp_path.iterdir())) == workers >= 2
    assert params(crashed).tolist() == params(calm).tolist() and hx == hc


def test_a_worker_killed_mid_vmap_does_not_change_the_result(cluster, kill_once):
    client, _ = cluster
    xs = np.linspace(-3.0, 3.0, 4000)
    expected = tg.vmap(f, in_axes=(0, None))(xs, 0.5)
    marker = kill_once("tracegrad-vmap", 2)
    out = within(180, lambda: compute(client, tg.vmap(f, in_axes=(0, None))(da.from_array(xs, chunks=500), 0.5)))
    assert marker.exists()
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)
