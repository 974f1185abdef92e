"""submit, submit_done, submit_first, submit_done_first: arguments reach the
job, each returns None (the job id with result_id=True), jobs run in FIFO
order and the *_first variants go to the front; done_callback True or None
stores the result, False discards it, a callable runs in the worker, and
anything else is a TypeError at submission."""
import threading

import pytest

from conftest import Gate, wait_until


def ident(x):
    return x


def test_submit_returns_none_and_stores_result(make_pool):
    pool = make_pool(2)
    assert pool.submit(ident, 5) is None
    assert pool.shutdown(3) is True
    assert list(pool.done) == [5]
    assert list(pool.failed) == []


def test_submit_passes_args_and_kwargs(make_pool):
    pool = make_pool(1)

    def f(a, b, *rest, c=0, **kw):
        return (a, b, rest, c, kw)

    pool.submit(f, 1, 2, 3, c=4, d=5)
    assert pool.shutdown(3) is True
    assert list(pool.done) == [(1, 2, (3,), 4, {"d": 5})]


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


def test_fn_by_keyword(make_pool):
    pool = make_pool(1)
    pool.submit(fn=ident, x=3)
    pool.submit_done(fn=ident, done_callback=True, x=4)
    pool.submit_first(fn=ident, x=5)
    assert pool.shutdown(3) is True
    assert sorted(pool.done) == [3, 4, 5]


def test_submit_result_id_returns_ints_matching_results(make_pool):
    pool = make_pool(2, result_id=True)
    ids = {}
    for i in range(20):
        jid = pool.submit(ident, i)
        assert isinstance(jid, int)
        ids[jid] = i
    jid = pool.submit_done(ident, True, 100)
    ids[jid] = 100
    jid = pool.submit_first(ident, 101)
    ids[jid] = 101
    jid = pool.submit_done_first(ident, True, 102)
    ids[jid] = 102
    assert len(ids) == 23, "job ids must be unique"
    assert pool.shutdown(3) is True
    got = dict(pool.done)
    assert got == ids


def test_submit_variants_return_none_without_result_id(make_pool):
    pool = make_pool(1)
    assert pool.submit_done(ident, True, 1) is None
    assert pool.submit_first(ident, 2) is None
    assert pool.submit_done_first(ident, True, 3) is None
    assert pool.shutdown(3) is True
    assert sorted(pool.done) == [1, 2, 3]


def test_fifo_order_with_one_worker(make_pool):
    pool = make_pool(1)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(3)
    for i in range(10):
        pool.submit(ident, i)
    assert len(pool.jobs) == 10
    gate.open()
    assert pool.shutdown(3) is True
    assert list(pool.done) == ["gate"] + list(range(10))


def test_submit_first_is_lifo_at_the_front(make_pool):
    pool = make_pool(1)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(3)
    for i in range(3):
        pool.submit(ident, "n%d" % i)
    for i in range(3):
        pool.submit_first(ident, "f%d" % i)
    pool.submit_done_first(ident, True, "df")
    gate.open()
    assert pool.shutdown(3) is True
    assert list(pool.done) == ["gate", "df", "f2", "f1", "f0",
                               "n0", "n1", "n2"]


def test_submit_done_true_stores(make_pool):
    pool = make_pool(1)
    pool.submit_done(ident, True, 7)
    assert pool.shutdown(3) is True
    assert list(pool.done) == [7]


def test_submit_done_none_stores_like_the_default(make_pool):
    pool = make_pool(1)
    pool.submit_done(ident, None, 8)
    assert pool.shutdown(3) is True
    assert list(pool.done) == [8]


def test_submit_done_false_discards_but_runs(make_pool):
    pool = make_pool(1)
    ran = []

    def f(x):
        ran.append(x)
        return x

    def gen(n):
        for i in range(n):
            ran.append(("g", i))
            yield i

    pool.submit_done(f, False, 1)
    pool.submit_done(gen, False, 3)
    assert pool.shutdown(3) is True
    assert list(pool.done) == []
    assert ran == [1, ("g", 0), ("g", 1), ("g", 2)]


def test_submit_done_false_still_records_failures(make_pool):
    pool = make_pool(1)

    def boom():
        raise ValueError("x")

    pool.submit_done(boom, False)
    assert pool.shutdown(3) is True
    assert list(pool.done) == []
    (exc,) = list(pool.failed)
    assert isinstance(exc, ValueError)


def test_submit_done_callable_runs_in_worker_per_result(make_pool):
    pool = make_pool(2, child_name_prefix="cbw")
    got = []
    lock = threading.Lock()

    def cb(result):
        with lock:
            got.append((result, threading.current_thread().name))

    def gen(n):
        yield from range(n)

    pool.submit_done(ident, cb, "plain")
    pool.submit_done(gen, cb, 3)
    assert pool.shutdown(3) is True
    assert list(pool.done) == []
    assert sorted(r for r, _ in got if r != "plain") == [0, 1, 2]
    assert ("plain" in [r for r, _ in got])
    assert len(got) == 4
    for _, name in got:
        assert name.startswith("cbw-")


def test_submit_done_callable_exception_is_a_failure(make_pool):
    pool = make_pool(1, result_id=True, exc_args=True)

    def cb(result):
        raise KeyError(result)

    jid = pool.submit_done(ident, cb, 9)
    assert pool.shutdown(3) is True
    assert list(pool.done) == []
    (entry,) = list(pool.failed)
    assert entry[0] == jid
    assert isinstance(entry[1], KeyError)
    assert entry[2] == (9,)
    assert entry[3] == {}


@pytest.mark.parametrize("bad", [5, "x", 1.5, object(), [1]])
def test_submit_done_non_callable_is_type_error(make_pool, bad):
    pool = make_pool(1)
    ran = []
    with pytest.raises(TypeError):
        pool.submit_done(ran.append, bad, 1)
    with pytest.raises(TypeError):
        pool.submit_done_first(ran.append, bad, 1)
    assert len(pool.jobs) == 0
    assert pool.shutdown(3) is True
    assert ran == []
    assert list(pool.done) == [] and list(pool.failed) == []


def test_submit_done_first_callable(make_pool):
    pool = make_pool(1)
    got = []
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(3)
    pool.submit(ident, "back")
    pool.submit_done_first(ident, got.append, "front")
    gate.open()
    assert pool.shutdown(3) is True
    assert got == ["front"]
    assert list(pool.done) == ["gate", "back"]


def test_pool_done_callback_false_discards_submit_results(make_pool):
    pool = make_pool(1, done_callback=False)
    ran = []
    pool.submit(lambda: ran.append(1) or 1)
    assert pool.shutdown(3) is True
    assert ran == [1]
    assert list(pool.done) == []


def test_submit_from_inside_a_job(make_pool):
    pool = make_pool(2)

    def parent(n):
        if n:
            pool.submit(parent, n - 1)
        return n

    pool.submit(parent, 5)
    assert wait_until(lambda: len(pool.done) == 6)
    assert pool.shutdown(3) is True
    assert sorted(pool.done) == [0, 1, 2, 3, 4, 5]


def test_many_small_jobs(make_pool):
    pool = make_pool(4)
    for i in range(20000):
        pool.submit(ident, i)
    assert pool.shutdown(5) is True
    assert sum(pool.done) == sum(range(20000))
    assert len(pool.done) == 20000


def test_jobs_holds_queued_job_records(make_pool):
    pool = make_pool(1)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(3)
    pool.submit(divmod, 7, 2)
    pool.submit_done(ident, False, 3)
    entries = list(pool.jobs)
    assert len(entries) == 2
    fn, mode, args, kwargs = entries[0]
    assert fn is divmod and mode is True and args == (7, 2)
    assert kwargs == {}
    fn, mode, args, kwargs = entries[1]
    assert fn is ident and mode is False and args == (3,)
    gate.open()
    assert pool.shutdown(3) is True
    assert list(pool.done) == ["gate", (3, 1)]


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
