"""One pool, executor or semaphore used from many threads at once.

Without the GIL (free-threaded CPython) these threads really run together,
so every shared structure of the module is exercised concurrently: the
accounting must still be exact - every job runs or is dropped exactly once,
every result is delivered exactly once, counters end where they must.  The
same tests run on GIL builds, where they check the same guarantees.
"""
import collections
import concurrent.futures as cf
import os
import random
import subprocess
import sys
import sysconfig
import threading

import pytest

from conftest import ROOT, STRESS, wait_until

THREADS = 8
PER_THREAD = 3000 if STRESS else 400


def run_threads(target, n=THREADS):
    """Runs target(i) in n threads released together; re-raises the first
    error of any of them."""
    barrier = threading.Barrier(n)
    errors = []

    def body(i):
        try:
            barrier.wait(10)
            target(i)
        except BaseException as e:      # noqa: B902 - reported below
            errors.append(e)

    ts = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not any(t.is_alive() for t in ts), "a thread did not finish"
    if errors:
        raise errors[0]


def test_gil_stays_as_the_build_has_it():
    # Importing the module and using a Pool and an executor must not turn
    # the GIL on where the build runs without it.
    code = (
        "import sys, fastthreadpool as f\n"
        "p = f.Pool(2); p.submit(abs, -1); p.shutdown()\n"
        "e = f.ThreadPoolExecutor(2); e.submit(abs, -2).result()\n"
        "e.shutdown()\n"
        "print(getattr(sys, '_is_gil_enabled', lambda: True)())\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PYTHON_GIL", None)
    out = subprocess.run([sys.executable, "-W", "error", "-c", code],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    assert out.stdout.strip() == str(not free_threaded)


def test_submit_from_many_threads_and_consume_from_many(make_pool):
    pool = make_pool(4)
    total = THREADS * PER_THREAD
    consumed = []
    producing = threading.Event()

    def produce(i):
        base = i * PER_THREAD
        for x in range(base, base + PER_THREAD):
            pool.submit(int, x)

    def consume():
        got = []
        while True:
            try:
                got.append(pool.done.popleft())
            except IndexError:
                if not producing.is_set() and pool.wait_idle(0) \
                        and not pool.done:
                    break
        consumed.append(got)

    producing.set()
    consumers = [threading.Thread(target=consume) for _ in range(4)]
    for t in consumers:
        t.start()
    run_threads(produce)
    producing.clear()
    for t in consumers:
        t.join(60)
    assert not any(t.is_alive() for t in consumers)
    everything = [x for got in consumed for x in got]
    assert sorted(everything) == list(range(total))
    assert pool.done_cnt.value == 0
    assert pool.shutdown(10) is True


def test_map_from_many_threads(make_pool):
    pool = make_pool(4)

    def mapper(i):
        base = i * PER_THREAD
        pool.map(int, range(base, base + PER_THREAD))

    run_threads(mapper)
    assert pool.shutdown(30) is True
    assert sorted(pool.done) == list(range(THREADS * PER_THREAD))
    assert pool.done_cnt.value == len(pool.done)
    assert list(pool.failed) == []


def test_one_generator_mapped_by_many_workers(make_pool):
    # map() shares one iterator between its jobs: a generator is never
    # resumed by two workers at once, and no item is lost or repeated.
    pool = make_pool(8)
    n = THREADS * PER_THREAD
    pool.map(lambda x: x, (x for x in range(n)))
    assert pool.shutdown(30) is True
    assert sorted(pool.done) == list(range(n))
    assert list(pool.failed) == []


def test_cancel_racing_the_workers(make_pool):
    pool = make_pool(2, result_id=True, done_callback=False)
    ran = collections.Counter()
    lock = threading.Lock()
    ids = [[] for _ in range(THREADS)]
    cancelled = [set() for _ in range(THREADS)]

    def job(tag):
        with lock:
            ran[tag] += 1

    def submit_and_cancel(i):
        rnd = random.Random(i)
        for k in range(PER_THREAD):
            tag = (i, k)
            jid = pool.submit(job, tag)
            ids[i].append((jid, tag))
            if rnd.random() < 0.5:
                jid2, tag2 = ids[i][rnd.randrange(len(ids[i]))]
                if pool.cancel(jid2):
                    cancelled[i].add(tag2)

    run_threads(submit_and_cancel)
    assert pool.wait_idle(30) is True
    all_ids = [jid for per in ids for jid, _ in per]
    assert len(set(all_ids)) == len(all_ids), "job ids are unique"
    for i in range(THREADS):
        for _, tag in ids[i]:
            if tag in cancelled[i]:
                assert ran[tag] == 0, "a cancelled job ran"
            else:
                assert ran[tag] == 1, "a job ran %d times" % ran[tag]
    assert pool.shutdown(10) is True


def test_clear_racing_submit_accounts_for_every_job(make_pool):
    pool = make_pool(2, done_callback=False)
    ran = collections.Counter()
    lock = threading.Lock()

    def job(tag):
        with lock:
            ran[tag] += 1

    def submit_or_clear(i):
        for k in range(PER_THREAD):
            if i == 0 and k % 50 == 0:
                pool.clear()
            else:
                pool.submit(job, (i, k))

    run_threads(submit_or_clear)
    assert pool.wait_idle(30) is True
    # Dropped jobs did not run; the others ran exactly once.
    assert all(c == 1 for c in ran.values())
    assert pool.pending == 0
    assert pool.shutdown(10) is True


def test_shutdown_racing_submit_from_many_threads(make_pool, ftp):
    pool = make_pool(3, done_callback=False)
    ran = collections.Counter()
    lock = threading.Lock()
    accepted = collections.Counter()

    def job(tag):
        with lock:
            ran[tag] += 1

    def submit_or_shutdown(i):
        for k in range(PER_THREAD // 4):
            if i < 2:
                r = pool.shutdown(0.001, soon=(k % 2 == 0))
                assert r in (True, False)
            else:
                tag = (i, k)
                try:
                    pool.submit(job, tag)
                except ftp.PoolStopped:
                    continue
                with lock:
                    accepted[tag] += 1

    run_threads(submit_or_shutdown)
    assert pool.shutdown(30) is True
    # shutdown() never drops a job: everything accepted ran, once.
    assert ran == accepted


def test_timers_armed_and_cancelled_from_many_threads(make_pool):
    pool = make_pool(2, done_callback=False)
    ran = collections.Counter()
    lock = threading.Lock()
    handles = [[] for _ in range(THREADS)]
    n = PER_THREAD // 8

    def job(tag):
        with lock:
            ran[tag] += 1

    def arm_and_cancel(i):
        rnd = random.Random(i)
        for k in range(n):
            tag = (i, k)
            h = pool.submit_later(rnd.random() * 0.02, job, tag)
            verdict = None
            if rnd.random() < 0.5:
                verdict = h.cancel()
            handles[i].append((tag, h, verdict))

    run_threads(arm_and_cancel)
    assert wait_until(lambda: not pool.delayed, 10)
    assert pool.wait_idle(10) is True
    for per in handles:
        for tag, h, verdict in per:
            if verdict is True:
                assert ran[tag] == 0, "a cancelled timer ran"
            else:
                assert ran[tag] == 1, "a timer ran %d times" % ran[tag]
            assert h.active is False


def test_one_timer_cancelled_by_many_threads(make_pool):
    pool = make_pool(2)
    for _ in range(20 if STRESS else 5):
        h = pool.schedule(10.0, int, 1)
        verdicts = []

        def cancel(i):
            verdicts.append(h.cancel())

        run_threads(cancel)
        assert verdicts.count(True) == 1
        assert h.active is False


def test_as_completed_shared_by_many_consumers(make_pool):
    pool = make_pool(4)
    n = THREADS * PER_THREAD
    pool.map(int, range(n))
    it = pool.as_completed()
    got = [[] for _ in range(THREADS)]

    def consume(i):
        for x in it:
            got[i].append(x)

    run_threads(consume)
    everything = [x for per in got for x in per]
    assert sorted(everything) == list(range(n))


def test_as_completed_cnt_max_shared_by_many_consumers(make_pool):
    pool = make_pool(4)
    pool.map(int, range(1000))
    assert pool.wait_idle(10) is True
    it = pool.as_completed(cnt_max=300)
    got = []
    lock = threading.Lock()

    def consume(i):
        for x in it:
            with lock:
                got.append(x)

    run_threads(consume)
    assert len(got) == 300 == len(set(got))
    assert len(pool.done) == 700


def test_semaphore_from_many_threads(ftp):
    permits = 3
    sem = ftp.Semaphore(permits)
    inside = [0]
    peak = [0]
    lock = threading.Lock()

    def worker(i):
        for _ in range(PER_THREAD):
            assert sem.acquire(timeout=10) is True
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            with lock:
                inside[0] -= 1
            sem.release()

    run_threads(worker)
    assert peak[0] <= permits
    assert sem.value == permits


def test_executor_submit_and_cancel_from_many_threads(ftp):
    ex = ftp.ThreadPoolExecutor(max_workers=3)
    ran = collections.Counter()
    lock = threading.Lock()
    futures = [[] for _ in range(THREADS)]

    def job(tag):
        with lock:
            ran[tag] += 1
        return tag

    def submit_and_cancel(i):
        rnd = random.Random(i)
        for k in range(PER_THREAD):
            f = ex.submit(job, (i, k))
            futures[i].append(((i, k), f))
            if rnd.random() < 0.3:
                futures[i][rnd.randrange(len(futures[i]))][1].cancel()

    run_threads(submit_and_cancel)
    ex.shutdown(wait=True)
    for per in futures:
        for tag, f in per:
            assert f.done()
            if f.cancelled():
                assert ran[tag] == 0, "a cancelled future ran"
            else:
                assert f.result() == tag
                assert ran[tag] == 1


def test_future_waited_on_by_many_threads(ftp):
    ex = ftp.ThreadPoolExecutor(max_workers=2)
    try:
        for _ in range(20 if STRESS else 5):
            gate = threading.Event()
            f = ex.submit(gate.wait, 10)
            results = []

            def wait(i):
                if i == 0:
                    gate.set()
                results.append(f.result(timeout=10))

            run_threads(wait)
            assert results == [True] * THREADS
            done, _ = cf.wait([f], timeout=0)
            assert done == {f}
    finally:
        ex.shutdown(wait=True)


def test_shutdown_without_timeout_while_threads_submit(make_pool, ftp):
    # A submission racing shutdown() may start the pool again after its
    # workers left: shutdown() waits for the workers it stopped, not for
    # the ones started after them, so it returns; nothing accepted is lost.
    for _ in range(30 if STRESS else 10):
        pool = make_pool(2, done_callback=False)
        ran = collections.Counter()
        lock = threading.Lock()

        def job(i):
            with lock:
                ran[i] += 1

        def submitter(i):
            for k in range(300):
                pool.submit(job, i)

        ts = [threading.Thread(target=submitter, args=(i,))
              for i in range(3)]
        for t in ts:
            t.start()
        try:
            assert pool.shutdown() is True
        finally:
            for t in ts:
                t.join(10)
        assert pool.shutdown(10) is True
        assert ran == {0: 300, 1: 300, 2: 300}


def test_executor_shutdown_while_threads_submit(ftp):
    # After shutdown() no submission is accepted, even one that raced it:
    # shutdown(wait=True) returns once the accepted work is done.
    for _ in range(30 if STRESS else 10):
        ex = ftp.ThreadPoolExecutor(max_workers=2)
        stop = threading.Event()
        accepted = []

        def submitter():
            while not stop.is_set():
                try:
                    accepted.append(ex.submit(int, 1))
                except RuntimeError:
                    return

        ts = [threading.Thread(target=submitter) for _ in range(3)]
        for t in ts:
            t.start()
        ex.shutdown(wait=True)
        stop.set()
        for t in ts:
            t.join(10)
        assert all(f.done() and f.result() == 1 for f in accepted)
        assert not any(t.is_alive() for t in ex._threads)
