"""The team of a two-thread fit: the slots that a ``BatchLoop``'s ``@fit`` and its ``@helper``
share, and the process's one helper thread that runs the ``@helper``.

A fit posts each batch's second half in the team (an ``int64`` array of ``TEAM_SLOTS``);
the helper claims it, sums it and answers, or the fit takes it back if the helper has not
claimed it yet; ``llvm_loops`` emits both sides. The posted work (the half, the arrays it
reads), the answer, the claim and the helper's state sit on cache lines of their own.

>>> team = aligned_zeros(TEAM_SLOTS)  # the slots, on whole pairs of cache lines
>>> team.ctypes.data % 128, int(team[POSTED]), int(team[STATE])
(0, 0, 0)
"""
import collections
import os
import queue
import threading
import time

import numpy as np

POSTED, VISIT, LO, HI, OUT, PARAMS, DATA, N = range(8)  # one cache line, written by the fit before each post
DONE, CLAIM, STATE, PATIENT, TEAM_SLOTS = 16, 32, 48, 49, 64  # 128 bytes apart: CPUs fetch lines in pairs
# The helper's state, from 0 (its job queued): waiting for posts, free to leave; held by a fit
# (it stays till the fit ends); left (it lingered with no post, or a negative post told it to).
WAITING, HELD, LEFT = 1, 2, 3


class SecondThread:
    """The process's one helper thread for fits (started on first use, parked between jobs).

    A job is a loop's ``@helper``: it serves that loop's fits, one after another, while they
    come within its lingering time of each other, then leaves; a fit of another loop asks
    it to leave and queues its own. A fit that finds the thread taken (by a fit on another
    thread) runs alone, with the same results. A fit never waits for a helper that has not
    started on its half: it posts its halves and takes any the helper has not claimed (it
    may wake late: an idle core of a virtual machine can take 0.1 ms). A thread per
    ``BatchLoop`` would be one per Trainer ever made; a thread per call costs ~0.1 ms to
    start, a microsecond a step of a moons fit.
    """

    def __init__(self):
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)  # a child has no helper thread: it starts its own

    def _reset(self):
        self._taken = threading.Lock()  # held by the fit being served, from ``take`` to ``release``
        self._idle = threading.Event()  # no job queued or running
        self._idle.set()
        self._jobs = queue.SimpleQueue()
        self._team = aligned_zeros(TEAM_SLOTS)  # every job's, for the process's life
        self._loop = self._thread = None  # the loop whose job is queued or running; the thread

    def take(self, loop):
        """The team for a call of ``loop`` (a ``BatchLoop``) with the helper, or None: run alone.
        After a team, call ``release`` when the call has returned."""
        if not self._taken.acquire(blocking=False):
            return None
        try:
            team = self._job_for(loop)
        except BaseException:  # a Ctrl-C while waiting: the thread stays free for the next fit
            self._taken.release()
            raise
        if team is None:
            self._taken.release()
        return team

    def _job_for(self, loop):
        """The team of a job of ``loop``'s (the waiting one, or a new one), or None."""
        if not self._idle.is_set():
            if self._loop is loop and self._team[STATE] != LEFT and not loop._patient:
                return self._team  # its helper waits (or is about to start): the fit holds it
            self._team[POSTED] = -1  # no fit runs: a waiting helper sees this and leaves
            if not self._idle.wait(0.01):
                return None
        if not idle_core() or not self._start():
            return None
        self._team[:] = 0
        self._loop = loop
        self._idle.clear()
        self._jobs.put(loop)
        return self._team

    def release(self):
        """Give the thread back (after ``take`` returned a team)."""
        self._taken.release()

    def _start(self):
        """Whether the thread runs (starting it if need be)."""
        if self._thread is None or not self._thread.is_alive():
            thread = threading.Thread(target=self._run, name="tracegrad-fit-helper", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # no thread to be had (the interpreter is ending)
                return False
            self._thread = thread
        return True

    def _run(self):
        while True:
            loop = self._jobs.get()
            try:
                loop._helper(self._team.ctypes.data)  # the loop (its code) lives while its job runs
            finally:
                loop = self._loop = None
                self._idle.set()


class Pace:
    """A loop's seconds per sample alone and with the helper (the median of the last ``KEEP``
    calls each way), and the choice between them: each way in turn until both have been
    measured ``KEEP`` times (the helper's first call also starts it), then the faster, with
    the other tried again every ``EXPLORE``-th call. The second core may not pay on every
    machine, or at every moment: a hyperthread of the same core, a virtual machine's host
    busy elsewhere. The results are the same either way.

    >>> pace = Pace()
    >>> for seconds in (3e-8, 2e-8, 2e-8):  # with the helper
    ...     pace.record(True, seconds)
    >>> for seconds in (1e-8, 1e-8, 1e-8):  # alone
    ...     pace.record(False, seconds)
    >>> pace.helper()  # alone is faster
    False
    """

    EXPLORE, KEEP = 16, 3

    def __init__(self):
        self._seconds = {True: collections.deque(maxlen=self.KEEP), False: collections.deque(maxlen=self.KEEP)}
        self._calls = 0

    def helper(self):
        """Whether the next call should use the helper."""
        self._calls += 1
        helper, alone = self._seconds[True], self._seconds[False]
        if len(helper) < self.KEEP or len(alone) < self.KEEP:
            return len(helper) <= len(alone)
        faster = sorted(helper)[self.KEEP // 2] <= sorted(alone)[self.KEEP // 2]
        return faster != (self._calls % self.EXPLORE == 0)

    def record(self, helper, seconds):
        """Note a call's seconds per sample, with the helper or alone."""
        self._seconds[helper].append(seconds)


def aligned_zeros(n, line=128):
    """``n`` zero int64s starting at a multiple of ``line`` bytes, so that slots ``line`` bytes
    apart never share a cache line (nor a pair of them).

    >>> aligned_zeros(64).ctypes.data % 128
    0
    """
    whole = np.zeros(n + line // 8, dtype=np.int64)
    skip = (-whole.ctypes.data % line) // 8
    return whole[skip:skip + n]


def cores():
    """The cores this process may run on (2 at most are used)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _OtherWork:
    """Whether other processes leave a core free, measured over the last ``INTERVAL`` seconds or
    more: the machine's busy time (``/proc/stat``) less this process's own (``os.times``), per
    second of wall clock. This process's own threads (the helper spinning) never count
    against it, as they do in the load average. Until a first interval has passed, a core is
    taken to be free (each loop's pace then finds out what the helper is worth); where
    ``/proc/stat`` is missing, the load average stands in."""

    INTERVAL = 0.1

    def __init__(self, clock=time.monotonic, sample=None):
        self._clock, self._sample = clock, sample or _busy_seconds
        self._last, self._free = None, True

    def free(self):
        now = self._clock()
        if self._last is not None and now - self._last[0] < self.INTERVAL:
            return self._free
        sample = self._sample(now)
        if sample is None:
            return _load_average_free()
        if self._last is not None:
            wall, busy, own = (a - b for a, b in zip(sample, self._last))
            self._free = (busy - own) / wall <= (os.cpu_count() or 1) - 1.5
        self._last = sample
        return self._free


def _busy_seconds(now):
    """``(now, seconds every CPU has been busy, seconds this process has run)``, or None."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        idle = ticks[3] + ticks[4]  # idle, iowait
    except (OSError, ValueError, IndexError):
        return None
    own = os.times()
    return now, (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK"), own.user + own.system


def _load_average_free():
    try:
        return os.getloadavg()[0] <= cores() - 1
    except (AttributeError, OSError):
        return False


def idle_core():
    """Whether another core looks free of other processes' work: a helper that waits for a core
    of its own, on a busy machine, stalls the fit far more than it saves."""
    return _OTHER_WORK.free()


_OTHER_WORK = _OtherWork()
SECOND = SecondThread()
