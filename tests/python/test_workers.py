"""Worker threads: daemon threading.Thread objects named prefix-N whose names
and tnum never repeat, created on demand up to max_children, with their
init/finish callbacks; counters; job ids unique for the pool's lifetime;
done_max throttling, released by any consumption of done."""
import threading
import time

import pytest

from conftest import wait_until


def ident(x):
    return x


class Gates:
    """n jobs that block until released; counts how many have started."""

    def __init__(self):
        self.started = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.threads = []

    def __call__(self, value=None):
        with self.lock:
            self.started += 1
            self.threads.append(threading.current_thread())
        if not self.release.wait(5):
            raise RuntimeError("never released")
        return value

    def n_started(self):
        with self.lock:
            return self.started


def test_workers_are_daemon_threads_named_prefix_n(make_pool):
    pool = make_pool(3, child_name_prefix="wk")
    g = Gates()
    for i in range(3):
        pool.submit(g, i)
    assert wait_until(lambda: g.n_started() == 3, 3)
    children = pool.children
    assert len(children) == 3
    assert sorted(children, key=id) == sorted(g.threads, key=id)
    for t in children:
        assert isinstance(t, threading.Thread)
        assert t.daemon is True
        assert t.is_alive()
        assert isinstance(t.tnum, int)
        assert t.name == "wk-%d" % t.tnum
    assert sorted(t.tnum for t in children) == [0, 1, 2]
    g.release.set()
    assert pool.shutdown(3) is True


def test_default_prefix(make_pool):
    pool = make_pool(1)
    pool.submit(lambda: threading.current_thread().name)
    assert pool.shutdown(3) is True
    (name,) = list(pool.done)
    assert name == "ThreadPool%d-0" % id(pool)


def test_none_prefix_is_default(make_pool):
    pool = make_pool(1, child_name_prefix=None)
    pool.submit(lambda: threading.current_thread().name)
    assert pool.shutdown(3) is True
    (name,) = list(pool.done)
    assert name.startswith("ThreadPool%d-" % id(pool))


def test_current_thread_in_job_is_the_worker(make_pool):
    pool = make_pool(2, child_name_prefix="ct")
    pool.submit(threading.current_thread)
    assert pool.wait_idle(3) is True
    (t,) = list(pool.done)
    assert t in pool.children
    assert t is not threading.main_thread()
    assert t.name.startswith("ct-")
    assert t.daemon is True
    assert pool.shutdown(3) is True


def test_init_callback_before_start_in_creating_thread(make_pool):
    calls = []

    def init(thread, a, b):
        calls.append((thread, thread.is_alive(), threading.current_thread(),
                      a, b))
        thread.ctx = ("ctx", a, b)

    pool = make_pool(2, init_callback=init, init_args=[1, 2])
    pool.submit(lambda: threading.current_thread().ctx)
    assert pool.shutdown(3) is True
    assert list(pool.done) == [("ctx", 1, 2)]
    assert len(calls) == 1
    thread, alive, caller, a, b = calls[0]
    assert alive is False
    assert caller is threading.current_thread()
    assert (a, b) == (1, 2)
    assert isinstance(thread, threading.Thread)


def test_init_callback_once_per_worker(make_pool):
    seen = []
    pool = make_pool(3, init_callback=seen.append)
    g = Gates()
    for i in range(3):
        pool.submit(g, i)
    assert wait_until(lambda: g.n_started() == 3, 3)
    assert len(seen) == 3
    assert set(map(id, seen)) == set(map(id, pool.children))
    g.release.set()
    assert pool.shutdown(3) is True


def test_init_callback_exception_propagates_job_stays_queued(make_pool):
    def init(thread):
        raise RuntimeError("init failed")

    pool = make_pool(1, init_callback=init)
    with pytest.raises(RuntimeError, match="init failed"):
        pool.submit(ident, 1)
    assert len(pool.jobs) == 1
    assert pool.child_cnt == 0
    assert pool.alive == 0
    pool.cancel()
    assert len(pool.jobs) == 0


def test_finish_callback_in_each_worker(make_pool):
    calls = []
    lock = threading.Lock()

    def fin(*args):
        with lock:
            calls.append((args, threading.current_thread().name))

    pool = make_pool(2, child_name_prefix="fin", finish_callback=fin)
    g = Gates()
    pool.submit(g, 1)
    pool.submit(g, 2)
    assert wait_until(lambda: g.n_started() == 2, 3)
    g.release.set()
    assert pool.shutdown(3) is True
    assert len(calls) == 2
    assert all(args == () for args, _ in calls)
    assert sorted(name for _, name in calls) == ["fin-0", "fin-1"]


def test_workers_created_on_demand_up_to_max(make_pool):
    pool = make_pool(3)
    assert pool.child_cnt == 0
    g = Gates()
    for i in range(6):
        pool.submit(g, i)
    assert wait_until(lambda: g.n_started() == 3, 3)
    time.sleep(0.05)
    assert g.n_started() == 3
    assert pool.child_cnt == 3
    assert pool.alive == 3
    assert pool.busy == 3
    assert len(pool.jobs) == 3
    assert pool.pending == 6
    g.release.set()
    assert pool.wait_idle(3) is True
    assert pool.busy == 0
    assert pool.pending == 0
    assert sorted(pool.done) == list(range(6))
    assert pool.child_cnt == 3, "idle workers stay"
    assert pool.shutdown(3) is True
    assert pool.child_cnt == 0


def test_five_long_jobs_on_pool5_run_at_once(make_pool):
    pool = make_pool(5)
    barrier = threading.Barrier(5, timeout=3)

    def job(i):
        barrier.wait()
        return i

    for i in range(5):
        pool.submit(job, i)
    assert pool.shutdown(5) is True
    assert list(pool.failed) == []
    assert sorted(pool.done) == list(range(5))


def test_sequential_jobs_reuse_one_worker(make_pool):
    pool = make_pool(4)
    for i in range(20):
        pool.submit(ident, i)
        assert pool.wait_idle(3) is True
    assert pool.child_cnt == 1


def test_cleanup_children(make_pool):
    pool = make_pool(2)
    pool.submit(ident, 1)
    assert pool.wait_idle(3) is True
    assert pool.cleanup_children() is None
    assert all(t.is_alive() for t in pool.children)
    assert pool.child_cnt == pool.alive
    assert pool.shutdown(3) is True
    pool.cleanup_children()
    assert pool.children == ()


def test_counter_types(make_pool):
    pool = make_pool(2)
    for name in ("alive", "busy", "pending", "child_cnt"):
        assert type(getattr(pool, name)) is int
    assert type(pool.is_shutdown) is bool


def test_job_ids_unique_for_pool_lifetime(make_pool):
    pool = make_pool(2, result_id=True)
    ids = []
    for i in range(200):
        ids.append(pool.submit(ident, i))
        assert pool.wait_idle(3) is True
        pool.done.popleft()
    for i in range(20):
        ids.append(pool.submit_first(ident, i))
        ids.append(pool.submit_done(ident, False, i))
    assert pool.shutdown(3) is True
    for i in range(20):
        ids.append(pool.submit(ident, i))
    assert pool.shutdown(3) is True
    assert len(set(ids)) == len(ids) == 260


def test_thread_names_unique_over_pool_lifetime(make_pool):
    pool = make_pool(2, child_name_prefix="u")
    seen = []  # holds the Thread objects, so identities stay distinct
    lock = threading.Lock()

    def record(x=None):
        with lock:
            seen.append(threading.current_thread())
        return x

    for cycle in range(4):
        g = Gates()
        pool.submit(g)
        pool.submit(g)
        assert wait_until(lambda: g.n_started() == 2, 3)
        with lock:
            seen.extend(g.threads)
        g.release.set()
        pool.map(record, range(4))
        pool.submit(record)
        assert pool.shutdown(3) is True
    threads = list({id(t): t for t in seen}.values())
    assert len(threads) >= 8
    names = [t.name for t in threads]
    tnums = [t.tnum for t in threads]
    assert len(set(names)) == len(names), sorted(names)
    assert len(set(tnums)) == len(tnums)
    for t in threads:
        assert t.name == "u-%d" % t.tnum


def test_worker_names_after_shutdown_continue(make_pool):
    pool = make_pool(1, child_name_prefix="c")
    pool.submit(lambda: threading.current_thread().tnum)
    assert pool.shutdown(3) is True
    pool.submit(lambda: threading.current_thread().tnum)
    assert pool.shutdown(3) is True
    first, second = list(pool.done)
    assert first != second


def test_done_max_throttles_and_popleft_releases(make_pool):
    pool = make_pool(2, done_max=3)
    for i in range(20):
        pool.submit(ident, i)
    time.sleep(0.1)
    n = len(pool.done)
    assert 3 <= n <= 4, n
    assert len(pool.jobs) >= 15
    got = []
    deadline = time.monotonic() + 3
    while len(got) < 20 and time.monotonic() < deadline:
        try:
            got.append(pool.done.popleft())
        except IndexError:
            time.sleep(0.001)
    assert sorted(got) == list(range(20))
    assert pool.shutdown(3) is True


@pytest.mark.parametrize("consume", ["pop", "clear", "as_completed"])
def test_done_max_released_by_any_consumption(make_pool, consume):
    ran = []

    def job(i):
        ran.append(i)
        return i

    pool = make_pool(1, done_max=2)
    for i in range(10):
        pool.submit(job, i)
    time.sleep(0.05)
    assert len(pool.done) == 2
    assert len(ran) <= 3
    got = []
    deadline = time.monotonic() + 3
    while len(ran) < 10 or len(pool.done):
        if time.monotonic() > deadline:
            break
        if consume == "pop":
            try:
                got.append(pool.done.pop())
            except IndexError:
                time.sleep(0.001)
        elif consume == "clear":
            pool.done.clear()
            time.sleep(0.001)
        else:
            got.extend(pool.as_completed(False))
            time.sleep(0.001)
    assert sorted(ran) == list(range(10))
    if consume != "clear":
        assert sorted(got) == list(range(10))
    assert pool.shutdown(3) is True


def test_done_max_generator_per_value(make_pool):
    def g():
        yield from range(10)

    pool = make_pool(1, done_max=3)
    pool.submit(g)
    time.sleep(0.05)
    assert len(pool.done) == 3
    got = list(pool.as_completed(1))
    assert got == list(range(10))
    assert pool.shutdown(3) is True


def test_done_max_pool_clear_releases(make_pool):
    pool = make_pool(1, done_max=2)
    for i in range(10):
        pool.submit(ident, i)
    time.sleep(0.05)
    pool.clear()
    assert pool.wait_idle(3) is True
    assert pool.shutdown(3) is True


def test_busy_and_pending_during_map(make_pool):
    pool = make_pool(2)
    g = Gates()
    pool.map(g, range(2))
    assert wait_until(lambda: g.n_started() == 2, 3)
    assert pool.busy >= 2
    assert pool.pending >= 2
    assert pool.wait_idle(0.01) is False
    g.release.set()
    assert pool.wait_idle(3) is True
    assert pool.busy == 0


def test_jobs_done_failed_readable_while_running(make_pool):
    pool = make_pool(3)

    def f(x):
        if x % 5 == 0:
            raise ValueError(x)
        return x

    for i in range(3000):
        pool.submit(f, i)
    reads = 0
    while pool.pending and reads < 100000:
        list(pool.jobs)
        list(pool.done)
        list(pool.failed)
        len(pool.jobs)
        reads += 1
    assert pool.shutdown(3) is True
    assert len(pool.done) + len(pool.failed) == 3000
