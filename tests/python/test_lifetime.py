"""Pools that are no longer referenced are freed: a pool nobody references,
with no queued jobs or armed timers, releases its threads and its results,
also through reference cycles; queued jobs and armed timers keep it alive
until they have run."""
import gc
import threading
import weakref

from conftest import wait_until


class Marker:
    """A weak-referenceable object whose death proves its owner was freed."""


def ident(x):
    return x


def thread_count_back_to(base, timeout=3):
    def check():
        gc.collect()
        return threading.active_count() <= base
    return wait_until(check, timeout, 0.01)


def test_unreferenced_idle_pool_releases_threads(ftp):
    base = threading.active_count()
    pool = ftp.Pool(3)
    for i in range(6):
        pool.submit(ident, i)
    assert pool.wait_idle(3) is True
    assert threading.active_count() > base
    del pool
    assert thread_count_back_to(base), threading.enumerate()


def test_unreferenced_pool_frees_its_results(ftp):
    marker = Marker()
    ref = weakref.ref(marker)
    pool = ftp.Pool(1)
    pool.submit(ident, marker)
    del marker
    assert pool.wait_idle(3) is True
    assert ref() is not None
    del pool
    gc.collect()
    assert wait_until(lambda: gc.collect() is not None and ref() is None, 3)


def test_unreferenced_pool_with_callback_threads(ftp):
    base = threading.active_count()
    got = []
    pool = ftp.Pool(2, done_callback=got.append,
                    failed_callback=lambda e: None)
    pool.submit(ident, 1)
    assert wait_until(lambda: got == [1], 3)
    del pool
    assert thread_count_back_to(base), threading.enumerate()


def test_job_returning_its_own_pool_cycle_is_collected(ftp):
    base = threading.active_count()
    marker = Marker()
    ref = weakref.ref(marker)
    pool = ftp.Pool(1)
    pool.submit(lambda p, m: (p, m), pool, marker)
    del marker
    assert pool.wait_idle(3) is True
    del pool
    assert wait_until(lambda: gc.collect() is not None and ref() is None, 3)
    assert thread_count_back_to(base), threading.enumerate()


def test_job_holding_its_pool_in_a_closure_is_collected(ftp):
    base = threading.active_count()
    marker = Marker()
    ref = weakref.ref(marker)

    def make():
        pool = ftp.Pool(2)

        def job(m=marker):
            return pool.child_cnt

        pool.submit(job)
        pool.submit_done(job, lambda r: None)
        assert pool.wait_idle(3) is True
        pool.done_cnt  # the pool stays reachable only through the job
        return job

    job = make()
    del marker
    del job
    assert wait_until(lambda: gc.collect() is not None and ref() is None, 3)
    assert thread_count_back_to(base), threading.enumerate()


def test_pool_referenced_from_thread_attribute_is_collected(ftp):
    base = threading.active_count()
    marker = Marker()
    ref = weakref.ref(marker)

    def init(thread, p_holder):
        thread.holder = p_holder

    pool = ftp.Pool(1, init_callback=init, init_args=(marker,))
    pool.submit(ident, 1)
    assert pool.wait_idle(3) is True
    del marker
    del pool
    assert thread_count_back_to(base), threading.enumerate()
    assert wait_until(lambda: gc.collect() is not None and ref() is None, 3)


def test_repeated_cycles_do_not_grow_threads(ftp):
    base = threading.active_count()
    for cycle in range(30):
        pool = ftp.Pool(2, done_callback=(lambda r: None)
                        if cycle % 3 == 0 else None,
                        failed_callback=(lambda e: None)
                        if cycle % 3 == 1 else None)
        for i in range(20):
            pool.submit(ident, i)
        pool.map(ident, range(20))
        assert pool.shutdown(3) is True
    del pool
    assert thread_count_back_to(base), threading.enumerate()


def test_repeated_cycles_without_shutdown(ftp):
    base = threading.active_count()
    for cycle in range(30):
        pool = ftp.Pool(2)
        for i in range(10):
            pool.submit(ident, i)
        assert pool.wait_idle(3) is True
        del pool
    assert thread_count_back_to(base), threading.enumerate()


def test_pool_with_pending_timer_is_kept_until_it_fires(ftp):
    got = []
    pool = ftp.Pool(1, done_callback=got.append)
    pool.submit_later(0.05, ident, "fired")
    del pool
    gc.collect()
    assert wait_until(lambda: got == ["fired"], 3)


def test_pool_freed_by_its_own_last_job(ftp):
    # The last reference to the Pool goes away inside a job, so the engine
    # pool cannot be destroyed right there (a worker cannot join itself):
    # it must still be released soon after.
    base = threading.active_count()
    marker = Marker()
    ref = weakref.ref(marker)
    holder = [ftp.Pool(2)]
    pool = holder[0]

    def job(h, m):
        h.clear()
        return m

    pool.submit(job, holder, marker)
    del pool, marker
    assert wait_until(lambda: not holder, 3)
    assert thread_count_back_to(base), threading.enumerate()
    assert wait_until(lambda: gc.collect() is not None and ref() is None, 3)


def test_dropped_pool_finishes_its_queue(ftp):
    got = []
    gate = threading.Event()
    pool = ftp.Pool(1)
    pool.submit(gate.wait, 3)
    for i in range(5):
        pool.submit_done(lambda i: i, got.append, i)
    del pool
    gc.collect()
    gate.set()
    assert wait_until(lambda: got == [0, 1, 2, 3, 4], 3)
