"""Accounting under load: with several threads submitting, cancelling,
clearing and shutting down at once, no job runs twice or is lost, a
cancelled job never runs, every run reaches exactly one pool-level callback,
the counters stay consistent (they must not rely on the GIL), and memory
does not grow with the number of jobs.

Normal runs use 200,000 jobs; FTPOOL_STRESS=1 runs 10,000,000
(FTPOOL_STRESS_N=n sets any other number).
"""
import os
import random
import threading
import time

import pytest

from conftest import STRESS, wait_until

N = int(os.environ.get("FTPOOL_STRESS_N", 0)) or (
    10_000_000 if STRESS else 200_000)
DEADLINE = 600 if STRESS else 40


def _submitters(n_threads, total, body):
    per = total // n_threads
    threads = [threading.Thread(target=body, args=(k * per, (k + 1) * per,
                                                   k))
               for k in range(n_threads)]
    return threads, per * n_threads


@pytest.mark.deadline(DEADLINE)
@pytest.mark.parametrize("with_clear", [False, True])
def test_accounting_with_cancel_clear_and_submit_first(make_pool,
                                                       with_clear):
    runs = bytearray(N)
    reported = bytearray(N)
    cancelled = bytearray(N)
    issued = []  # (job id, index), appended by the submitters

    def job(i):
        runs[i] += 1
        if i % 97 == 0:
            raise ValueError(i)
        return i

    # The callback threads may still be writing `reported` while it is
    # compared: without the GIL that is a data race unless both hold a lock.
    reported_lock = threading.Lock()

    def on_done(entry):
        jid, i = entry
        with reported_lock:
            reported[i] += 1

    def on_failed(entry):
        jid, exc = entry
        with reported_lock:
            reported[exc.args[0]] += 1

    def reported_now():
        with reported_lock:
            return bytes(reported)

    pool = make_pool(4, done_callback=on_done, failed_callback=on_failed,
                     result_id=True)

    def submit_range(lo, hi, k):
        submit = pool.submit_first if k == 0 else pool.submit
        for i in range(lo, hi):
            jid = submit(job, i)
            if i % 16 == 0:
                issued.append((jid, i))

    threads, total = _submitters(4, N, submit_range)
    stop = threading.Event()

    def canceller():
        rnd = random.Random(1)
        while not stop.is_set():
            if not issued:
                time.sleep(0.0005)
                continue
            # One of the last 50 recorded submissions.
            jid, i = issued[rnd.randrange(max(0, len(issued) - 50),
                                          len(issued))]
            if pool.cancel(jid):
                cancelled[i] += 1

    def clearer():
        while not stop.wait(0.02):
            pool.clear()

    helpers = [threading.Thread(target=canceller)]
    if with_clear:
        helpers.append(threading.Thread(target=clearer))
    for t in threads + helpers:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    stop.set()
    for t in helpers:
        t.join(10)
    assert pool.shutdown(DEADLINE / 2) is True

    ran = N - runs.count(0)
    assert max(runs) <= 1, "a job ran twice"
    assert max(cancelled) <= 1, "a job was cancelled twice"
    for i in range(N):
        if cancelled[i]:
            assert runs[i] == 0, "cancelled job %d ran" % i
    # Every run reached exactly one of the pool-level callbacks.
    assert wait_until(lambda: runs == reported_now(), 5)
    n_cancelled = sum(cancelled)
    if with_clear:
        assert ran + n_cancelled <= total
    else:
        assert ran + n_cancelled == total
    assert len(pool.done) == 0 and len(pool.failed) == 0
    assert pool.pending == 0 and pool.busy == 0


@pytest.mark.deadline(DEADLINE)
def test_soon_shutdown_under_load_loses_nothing(make_pool):
    total = N // 4
    runs = bytearray(total)

    def job(i):
        runs[i] += 1

    pool = make_pool(3, done_callback=False)

    def submit_range(lo, hi, k):
        for i in range(lo, hi):
            pool.submit(job, i)

    threads, total = _submitters(2, total, submit_range)
    stop = threading.Event()

    def shutter():
        while not stop.wait(0.005):
            pool.shutdown(0.01, soon=True)

    helper = threading.Thread(target=shutter)
    for t in threads + [helper]:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    stop.set()
    helper.join(10)
    # Jobs left queued by a "soon" shutdown run once a submit starts
    # workers again.
    pool.submit(int)
    assert pool.shutdown(DEADLINE / 2) is True
    assert len(pool.jobs) == 0
    assert runs.count(1) == total, (runs.count(0), runs.count(2))


@pytest.mark.deadline(DEADLINE)
def test_map_and_submit_from_many_threads(make_pool):
    total = N // 4
    pool = make_pool(4)

    def body(lo, hi, k):
        if k % 2:
            pool.map(int, range(lo, hi), direct=(k == 1))
        else:
            for i in range(lo, hi):
                pool.submit(int, i)

    threads, total = _submitters(4, total, body)
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert pool.shutdown(DEADLINE / 2) is True
    assert len(pool.done) == total
    assert sum(pool.done) == total * (total - 1) // 2


@pytest.mark.deadline(DEADLINE)
def test_timer_accounting(make_pool):
    n = 20000 if STRESS else 2000
    runs = bytearray(2 * n)
    # Read while timers may still run: counted and read under a lock (a
    # data race without the GIL otherwise).
    runs_lock = threading.Lock()

    def job(i):
        with runs_lock:
            runs[i] += 1

    def runs_now():
        with runs_lock:
            return bytes(runs)

    pool = make_pool(2, done_callback=False)
    rnd = random.Random(2)
    long_handles = []
    for i in range(n):
        pool.submit_later(rnd.random() * 0.02, job, i)
        long_handles.append(pool.submit_later(5 + rnd.random(), job, n + i))
    for k, h in enumerate(long_handles):
        if k % 2:
            h.cancel()
        else:
            assert pool.cancel(False, h) is True
    assert wait_until(lambda: runs_now().count(1) == n, 10)
    assert wait_until(lambda: len(pool.delayed) == 0, 3)
    time.sleep(0.05)
    assert runs_now()[:n].count(1) == n, "every short timer ran once"
    assert runs_now()[n:].count(0) == n, "no cancelled timer ran"
    assert pool.shutdown(5) is True


@pytest.mark.deadline(DEADLINE)
def test_counters_consistent_under_concurrency(make_pool):
    pool = make_pool(4)
    total = N // 10
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            busy, pending, alive = pool.busy, pool.pending, pool.alive
            if busy < 0 or pending < 0 or alive < 0 or busy > 8:
                bad.append((busy, pending, alive))

    r = threading.Thread(target=reader)
    r.start()
    for i in range(total):
        pool.submit(int, i)
    assert pool.shutdown(DEADLINE / 2) is True
    stop.set()
    r.join(5)
    assert bad == []
    assert pool.busy == 0 and pool.pending == 0
    assert pool.done_cnt.value == len(pool.done) == total


@pytest.mark.deadline(DEADLINE)
def test_no_memory_growth_with_the_number_of_jobs(ftp, make_pool):
    import resource

    def rss_kb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    pool = make_pool(2)

    def batch(n):
        for i in range(n):
            pool.submit_done(int, False, i)
        pool.map(int, range(n), done_callback=False)
        assert pool.wait_idle(DEADLINE / 4) is True

    batch(N // 4)
    before = rss_kb()
    for _ in range(4):
        batch(N // 4)
    grown_mb = (rss_kb() - before) / 1024
    assert grown_mb < 16, "memory grew by %.1f MB" % grown_mb
    dbg = getattr(ftp, "DBG", None)
    assert dbg is None or len(dbg) == 0
    assert pool.shutdown(5) is True
