"""Binding internals: how the Python objects and the engine pool end, and
details of job execution (SPEC A D9; B 9)."""
import functools
import gc
import threading
import weakref

from conftest import wait_until


class Marker:
    pass


def thread_count_back_to(base, timeout=3):
    def check():
        gc.collect()
        return threading.active_count() <= base
    return wait_until(check, timeout, 0.01)


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


def test_generator_detection_through_wrappers(make_pool):
    class C:
        def gen(self, n):
            yield from range(n)

    def gen(n, step=1):
        yield from range(0, n, step)

    def returns_generator(n):
        return (i for i in range(n))

    pool = make_pool(1)
    pool.submit(C().gen, 3)
    pool.submit(functools.partial(gen, step=2), 5)
    pool.submit(functools.partial(functools.partial(gen), 2))
    pool.submit(returns_generator, 2)
    assert pool.shutdown(3) is True
    done = list(pool.done)
    assert done[:8] == [0, 1, 2, 0, 2, 4, 0, 1]
    assert len(done) == 9 and hasattr(done[8], "__next__")


def test_pool_can_be_subclassed(ftp):
    class MyPool(ftp.Pool):
        def double(self, x):
            return self.submit(lambda: 2 * x)

    pool = MyPool(1)
    pool.double(21)
    assert pool.shutdown(3) is True
    assert list(pool.done) == [42]


def test_jobs_snapshot_shapes(make_pool):
    pool = make_pool(1)
    gate = threading.Event()
    pool.submit(gate.wait, 3)
    assert wait_until(lambda: pool.busy == 1, 3)

    def f(*a, **k):
        return a, k

    pool.submit(f, 1, 2, 3, 4, 5, 6, k=1)
    pool.submit_done(f, False)
    pool.submit_done(f, print, "x")
    pool.map(f, [1, 2])
    jobs = list(pool.jobs)
    assert jobs[0] == (f, True, (1, 2, 3, 4, 5, 6), {"k": 1})
    assert jobs[1] == (f, False, (), {})
    assert jobs[2] == (f, print, ("x",), {})
    assert jobs[3][0] is f and jobs[3][1] is True
    pool.cancel()
    gate.set()
    assert pool.shutdown(3) is True


def test_many_arguments_and_keywords_reach_the_job(make_pool):
    pool = make_pool(2)

    def f(*a, **k):
        return a, k

    for n in range(8):
        pool.submit(f, *range(n), **{"k%d" % i: i for i in range(n % 3)})
    assert pool.shutdown(3) is True
    got = sorted(pool.done, key=lambda r: len(r[0]))
    for n, (a, k) in enumerate(got):
        assert a == tuple(range(n))
        assert k == {"k%d" % i: i for i in range(n % 3)}
