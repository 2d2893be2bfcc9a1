"""The helper thread of two-thread fits: one for the process, shared by every Trainer, gone
after a while alone, restarted in a forked child; results equal to fits that run alone."""
import os
import threading

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.backends import fit_team, llvm_loops
from tracegrad.backends.fit_team import SECOND, Pace


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(200, 2))
    return X, np.where(X[:, 0] * X[:, 1] > 0, 1.0, -1.0)


@pytest.fixture(params=[False, True], ids=["eager", "patient"])
def helped(request, monkeypatch):
    """Every fit with batches of SPLIT samples or more asks for the helper: no least work, an
    idle core assumed, two threads; a patient fit (the param) leaves every second half to it.
    Returns whether fits are patient."""
    monkeypatch.setattr(llvm_loops, "THREAD_WORK", 0)
    monkeypatch.setattr(fit_team, "idle_core", lambda: True)
    init = llvm_loops.BatchLoop.__init__

    def two_threads(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.threads, self._patient = 2, request.param
    monkeypatch.setattr(llvm_loops.BatchLoop, "__init__", two_threads)
    return request.param


def make(seed):
    model = tg.nn.MLP(2, [8, 1], seed=seed)
    return model, tg.nn.Trainer(model, loss="hinge", optimizer=tg.nn.SGD(lr=0.1, momentum=0.9))


def fit(trainer, model, data, epochs=3):
    history = trainer.fit(*data, epochs=epochs, batch_size=100, progress=False)
    return [p.data for p in model.parameters()], history


def alone(data, seeds, calls=2):
    """The parameters and histories of ``calls`` fits of each seed's trainer, without the helper."""
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SECOND, "take", lambda loop: None)
        for seed in seeds:
            model, trainer = make(seed)
            runs[seed] = [fit(trainer, model, data) for _ in range(calls)]
    return runs


def settle():
    """Wait for the helper to be free of any job (a lingering one is told to leave)."""
    SECOND._team[fit_team.POSTED] = -1
    assert SECOND._idle.wait(30)


def helpers():
    return [t for t in threading.enumerate() if t.name == "tracegrad-fit-helper"]


def test_many_trainers_share_one_helper_thread(data, helped):
    expected = alone(data, range(4))
    for seed in range(4):
        model, trainer = make(seed)
        got = []
        for _ in range(2):
            got.append(fit(trainer, model, data))
            # a patient fit waits for the helper to start: it has served the fit (and may have left)
            assert not helped or SECOND._team[fit_team.STATE] in (fit_team.WAITING, fit_team.LEFT)
        assert got == expected[seed]
    assert len(helpers()) == 1


def test_two_trainers_in_turn_take_the_helper_from_each_other(data, helped):
    expected = alone(data, (5, 6), calls=3)
    (model_a, a), (model_b, b) = make(5), make(6)
    got = {5: [], 6: []}
    for _ in range(3):
        got[5].append(fit(a, model_a, data))
        got[6].append(fit(b, model_b, data))
    assert got == expected


def test_fits_on_two_threads_at_once(data, helped):
    # one of them holds the helper; the other runs alone
    expected = alone(data, (7, 8), calls=1)
    got, errors = {}, []

    def run(seed):
        try:
            model, trainer = make(seed)
            got[seed] = [fit(trainer, model, data)]
        except BaseException as e:  # noqa: BLE001 (re-raised below)
            errors.append(e)
    threads = [threading.Thread(target=run, args=(seed,)) for seed in (7, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and got == expected


def test_an_idle_helper_leaves(data, helped):
    settle()
    model, trainer = make(9)
    fit(trainer, model, data)
    assert SECOND._idle.wait(30), "the helper should leave after lingering without work"
    assert SECOND._team[fit_team.STATE] == fit_team.LEFT


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_starts_its_own_helper(data, helped):
    expected = alone(data, (10,), calls=1)[10]
    model, trainer = make(10)
    assert [fit(trainer, model, data)] == expected  # the parent's helper runs (or lingers)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no helper thread came with the fork
        ok = False
        try:
            child_model, child_trainer = make(10)
            ok = not helpers() and [fit(child_trainer, child_model, data)] == expected and len(helpers()) == 1
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"


def test_the_pace_tries_both_ways_then_the_faster_and_the_slower_now_and_then():
    pace, keep = Pace(), Pace.KEEP
    turns = []
    for _ in range(2 * keep):  # each way in turn, the helper first
        turns.append(pace.helper())
        pace.record(turns[-1], 3e-8 if turns[-1] else 1e-8)
    assert turns == [True, False] * keep
    choices = [pace.helper() for _ in range(4 * Pace.EXPLORE)]
    assert choices.count(True) == 4  # alone is faster: the helper once every EXPLORE calls
    for _ in range(keep // 2 + 1):  # the helper turns faster: a majority of the last calls says so
        pace.record(True, 0.5e-8)
    assert [pace.helper() for _ in range(Pace.EXPLORE)].count(True) == Pace.EXPLORE - 1
    pace.record(True, 9e-8)  # one slow call does not turn the choice
    assert pace.helper()


def test_a_call_with_the_helper_is_timed_as_such(data, helped, monkeypatch):
    settle()
    recorded = []
    record = Pace.record
    monkeypatch.setattr(Pace, "record", lambda self, helper, s: (recorded.append(helper), record(self, helper, s)))
    model, trainer = make(12)
    fit(trainer, model, data)
    fit(trainer, model, data)
    assert recorded == [True, helped]  # the helper first, then alone (both measured); a patient fit: the helper


def test_an_interrupt_while_taking_the_helper_leaves_it_free(data, helped, monkeypatch):
    settle()

    def interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(fit_team, "idle_core", interrupted)
    model, trainer = make(13)
    with pytest.raises(KeyboardInterrupt):
        fit(trainer, model, data)
    assert SECOND._taken.acquire(blocking=False)  # nobody holds the thread
    SECOND.release()
    monkeypatch.setattr(fit_team, "idle_core", lambda: True)
    assert [fit(trainer, model, data)] == alone(data, (13,), calls=1)[13]  # the interrupted fit ran no epoch


def test_a_core_counts_as_free_unless_other_processes_keep_it_busy():
    cpus = os.cpu_count() or 1
    # (wall clock, seconds every CPU was busy, seconds this process ran) at each look
    samples = {0.0: (0.0, 0.0, 0.0), 0.2: (0.2, 0.4, 0.4), 0.4: (0.4, 0.4 + 0.2 * cpus, 0.4),
               0.6: (0.6, 0.4 + 0.4 * cpus, 0.5)}
    other_work = fit_team._OtherWork(clock=iter([0.0, 0.05, 0.2, 0.4, 0.45, 0.6]).__next__,
                                     sample=lambda now: samples[now])
    assert other_work.free()  # nothing measured yet: free
    assert other_work.free()  # 0.05 s later: the same answer
    assert other_work.free()  # all the busy time was this process's own (its helper spinning)
    assert not other_work.free()  # other processes kept every CPU busy
    assert not other_work.free()  # within the interval: the same answer
    assert not other_work.free()  # still busy, with this process running too
