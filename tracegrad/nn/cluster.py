"""Data-parallel training on a Dask cluster: ``Trainer.fit`` with dask arrays, or with ``client=``.

The data is cut into shards of rows (the chunks of a dask array, or one shard per worker
thread for numpy arrays), each held by a worker with the per-sample graph's JSON. Per
minibatch, each shard holding some of its samples sums the per-sample kernel's results
(loss, correct flag, gradient) over them, compiled on that worker (``_shard_sums``: a
``BatchLoop``, or a ``DenseLoop`` for a wide stack of dense layers, whose update only keeps
the sums); the client adds the shards' sums in shard order and applies the optimizer's
update graph to the parameters. Only the parameters
and those sums travel each step. Every task is pure, so Dask runs a task lost with its
worker again, and the result is the same.

Nothing here imports dask until a ``Shards`` is made.

>>> import numpy as np, tracegrad as tg
>>> from dask.distributed import Client
>>> trainer = tg.nn.Trainer(tg.nn.MLP(2, [4, 1], seed=0), loss="hinge")
>>> with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
...     history = trainer.fit(np.eye(2), np.array([1.0, -1.0]), epochs=3, progress=False, client=client)
>>> len(history["loss"])
3
"""
import functools

import numpy as np

from .. import backends
from ..tracing import trace_flat
from ..vmap import graph_from_json, is_dask, run_rows
from .trainer import check_data, columns

WORKER_TIMEOUT = 30.0  # seconds to wait for a first worker before saying there is none


def _client(client):
    """``client``, or the default ``dask.distributed`` client, with at least one worker."""
    import distributed
    if client is None:
        try:
            client = distributed.default_client()
        except ValueError:
            raise ValueError("training on dask arrays runs on a dask.distributed cluster: create a client first "
                             "(from dask.distributed import Client; client = Client()) or pass client=") from None
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    try:
        client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
    except TimeoutError:
        raise TimeoutError(f"the Dask cluster at {client.scheduler.address} has no workers (none joined in "
                           f"{WORKER_TIMEOUT:g} s): start some (dask worker {client.scheduler.address}) or "
                           "scale the cluster up, then fit again") from None
    return client


class Shards:
    """``X`` and ``y`` (checked by ``check_data``) cut into shards of rows for ``client``'s workers.

    ``bounds`` holds the first row of each shard and ``n``; ``submit(fn, *args)`` gives one
    future of ``fn(*args, X_shard, y_shard, nin)`` per shard, computed where the scheduler puts it
    (where a dask array's chunk is; numpy shards, one per worker thread, spread over the idle
    workers).
    """

    def __init__(self, X, y, client=None, nin=None):
        import dask.array as da
        self.client = _client(client)
        self.nin, self.n = nin, len(X)
        if is_dask(X) or is_dask(y):
            rows = (X if is_dask(X) else y).chunks[0]
            X, y = (a.rechunk((rows,) + (-1,) * (a.ndim - 1)) if is_dask(a) else
                    da.from_array(a, chunks=(rows,) + (-1,) * (a.ndim - 1)) for a in (X, y))
            self._pieces = list(zip(X.to_delayed().ravel(), y.to_delayed().ravel()))
        else:
            threads = sum(self.client.nthreads().values())
            rows = np.diff(np.linspace(0, self.n, min(threads, self.n) + 1).astype(int))
            cuts = np.cumsum(rows)[:-1]
            self._pieces = list(zip(np.split(X, cuts), np.split(y, cuts)))
        keep = [i for i, m in enumerate(rows) if m > 0]
        self._pieces = [self._pieces[i] for i in keep]
        self.bounds = np.concatenate([[0], np.cumsum([rows[i] for i in keep])]).astype(int)

    def submit(self, fn, *args):
        """One future of ``fn(*args, X_shard, y_shard, nin)`` per shard (a pure task, run again if lost)."""
        import dask
        from dask.base import tokenize
        futures = []
        for x, t in self._pieces:  # no placement: the scheduler spreads them over idle workers, and
            # recomputes one lost with every worker (a restriction to a lost worker's address stalls it)
            task = dask.delayed(fn, pure=True)(*args, x, t, self.nin,
                                               dask_key_name=f"tracegrad-shard-{tokenize(fn, args, x, t)}")
            futures.append(self.client.compute(task))
        return futures


def _shard(spec, n_params, X, y, nin):
    """A shard on its worker: ``(spec, parameters, data columns)``; its values checked here. ``spec``:
    the per-sample graph's JSON, or ``("dense", layers, loss graph's JSON)`` for ``DenseLoop``."""
    return spec, n_params, columns(*check_data(X, y, nin))


@functools.lru_cache(maxsize=16)
def _sum_loop(spec, n_params):
    """A training run that sums over a batch (``spec``: see ``_shard``), compiled on this worker for
    its CPU: its update keeps the parameter and stores the batch's sum as the state."""
    keep_sum = trace_flat(lambda p, total, state, lr, step, m: [p, total], [0.0] * 6)[0]
    if isinstance(spec, tuple):
        from ..backends.llvm_dense import DenseLoop
        from .trainer import dense_records
        return DenseLoop(dense_records(spec[1]), graph_from_json(spec[2]), keep_sum)
    from ..backends.llvm_loops import BatchLoop
    return BatchLoop(graph_from_json(spec), keep_sum, n_params)


def _shard_sums(shard, params, rows):
    """The sums of the per-sample graph's outputs over ``rows`` of ``shard``: its ``R`` results,
    then one per parameter. ``rows``: ``(start, stop)`` or an array of row numbers (in order)."""
    text, n_params, data = shard
    loop = _sum_loop(text, n_params)
    if isinstance(rows, tuple):
        data = data if rows == (0, data.shape[1]) else np.ascontiguousarray(data[:, rows[0]:rows[1]])
    else:
        data = np.ascontiguousarray(data[:, rows])
    m = data.shape[1]
    p, state, hist = np.zeros(loop.padded), np.zeros((1, loop.padded)), np.zeros((1, loop.columns))
    p[:n_params] = params
    loop(p, state, data, np.arange(m), 0, m, 1, np.zeros(1), 0, hist)
    return np.concatenate([hist[0], state[0, :n_params]])


class ShardedLoop:
    """``BatchLoop``'s graphs and call (or ``DenseLoop``'s, with ``dense=(layers, loss graph)``),
    with each minibatch's map and sum on the Dask workers
    holding ``shards`` and the update applied on the client.

    The shards' sums are added in shard order, so the result does not depend on which
    worker ran what; it differs from one process's ``BatchLoop`` only by the order of the
    additions (about 1e-15 relative per step).
    """

    def __init__(self, shards, sample, update, n_params, watch=None, width=None, dense=None):
        width = backends.llvm_lanes() if width is None else width
        self.padded = -(-n_params // width) * width  # the layout of BatchLoop's params and state
        if dense is None:
            self.results, spec = len(sample.outputs) - n_params, sample.to_json()
        else:  # (layers, loss graph): DenseLoop's sums
            plan, loss = dense
            self.results, spec = len(loss.outputs) - plan[-1][1], ("dense", tuple(map(tuple, plan)), loss.to_json())
        self.columns = self.results + (0 if watch is None else len(watch.outputs))
        self.shards, self.update, self.watch, self.n_params = shards, update, watch, n_params
        self._futures = shards.submit(_shard, spec, n_params)
        self._raise_errors()

    def _raise_errors(self):
        """Wait for the shards; a shard's error (a ValueError for bad values) is raised here."""
        for future in self._futures:
            if future.exception() is not None:
                future.result()

    def __call__(self, params, state, data, order, ostride, batch, epochs, lr, step0, hist):
        """Like ``BatchLoop``'s call, on ``self.shards`` (``data``). ``params``, ``state`` and the
        row of ``hist`` change at the end of each epoch: an interrupt leaves whole epochs."""
        n, R = self.shards.n, self.results
        in_order = ostride == 0 and np.array_equal(order[:n], np.arange(n))
        step = 0
        for e in range(epochs):
            p, s, row = params.copy(), state.copy(), np.zeros(self.columns)
            if self.watch is not None:  # summed over the parameters at the epoch's start
                row[R:] = self._map(self.watch, [p]).sum(axis=1)
            visit = order[e * ostride:][:n]
            for start in range(0, n, batch):
                rows = visit[start:start + batch]
                sums = self._sums(p, (start, start + len(rows)) if in_order else rows)
                row[:R] += sums[:R]
                totals = np.zeros(self.padded)
                totals[:self.n_params] = sums[R:]
                scalars = np.array([lr[step], step0 + step + 1.0, len(rows)])
                p, *rest = self._map(self.update, [p, totals, *s, scalars[0:1], scalars[1:2], scalars[2:3]])
                s = np.array(rest).reshape(s.shape)
                step += 1
            params[:], state[:], hist[e, :self.columns] = p, s, row

    def _sums(self, params, rows):
        """The sums over ``rows`` (a range, or row numbers) of the per-sample results, from the shards."""
        from dask.base import tokenize
        bounds, futures, client = self.shards.bounds, [], self.shards.client
        # each task goes where its shard is: without a restriction, Dask may take a step's tasks for
        # root tasks (a large group, few dependencies) and place them with no regard to their data
        holders = client.who_has(self._futures)
        for shard, lo, hi in zip(self._futures, bounds[:-1], bounds[1:]):
            if isinstance(rows, tuple):
                part = (int(max(rows[0], lo) - lo), int(min(rows[1], hi) - lo))
                part = part if part[0] < part[1] else None
            else:
                part = rows[(rows >= lo) & (rows < hi)] - lo
                part = part if len(part) else None
            if part is not None:
                args = shard, params[:self.n_params], part
                placed = {"workers": list(holders[shard.key]), "allow_other_workers": True} if holders.get(
                    shard.key) else {}
                futures.append(client.submit(_shard_sums, *args, key=f"tracegrad-sums-{tokenize(*args)}", **placed))
        try:
            results = client.gather(futures)
        except BaseException:
            client.cancel(futures)
            raise
        total = results[0].copy()
        for r in results[1:]:
            total += r
        return total

    def _map(self, graph, inputs):
        """``graph`` over the parameters: ``inputs`` are ``padded``-long arrays or one-float broadcasts."""
        out = np.empty((len(graph.outputs), self.padded))
        columns = [(np.ascontiguousarray(a), 0, 1 if len(a) == self.padded else 0) for a in inputs]
        run_rows(graph, columns, [(out, self.padded * j, 1) for j in range(len(graph.outputs))], self.padded,
                 parallel=False)
        return out
