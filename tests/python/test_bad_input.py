"""Bad input gets a clear exception, never a crash or a hang: wrong types
and values for the callable, the callbacks, delays, timeouts, constructor
keywords and cancel(). A done_callback that is neither callable, a bool nor
None is a TypeError at submission: accepted, it would silently never run
the job."""
import math
import time

import pytest

from conftest import usable_cpus

NAN = float("nan")


def ident(x=None):
    return x


def assert_pool_still_works(pool):
    pool.submit_done(ident, True, "ok")
    assert pool.wait_idle(3) is True
    results = [r[1] if isinstance(r, tuple) else r for r in pool.done]
    assert "ok" in results


@pytest.mark.parametrize("fn", [None, 5, "f", b"x", 1.5, [ident]])
def test_non_callable_fn(make_pool, fn):
    pool = make_pool(1)
    for call in (lambda: pool.submit(fn),
                 lambda: pool.submit_first(fn),
                 lambda: pool.submit_done(fn, True),
                 lambda: pool.submit_done_first(fn, True),
                 lambda: pool.submit_later(0.01, fn),
                 lambda: pool.schedule(0.01, fn),
                 lambda: pool.submit_at(time.time() + 1, 0, fn),
                 lambda: pool.map(fn, [1, 2])):
        with pytest.raises(TypeError):
            call()
    assert len(pool.jobs) == 0
    assert len(pool.delayed) == 0 and len(pool.scheduled) == 0
    assert_pool_still_works(pool)
    assert list(pool.failed) == []


def test_missing_arguments(make_pool):
    pool = make_pool(1)
    for call in (pool.submit, pool.submit_first, pool.submit_later,
                 pool.schedule, pool.submit_at, pool.map):
        with pytest.raises(TypeError):
            call()
    with pytest.raises(TypeError):
        pool.submit_done(ident)
    with pytest.raises(TypeError):
        pool.map(ident)
    with pytest.raises(TypeError):
        pool.submit_at(time.time() + 1, ident)
    assert_pool_still_works(pool)


@pytest.mark.parametrize("bad", [5, "x", 1.5, object(), [1]])
def test_done_callback_of_wrong_type(make_pool, bad):
    pool = make_pool(1)
    for call in (lambda: pool.submit_done(ident, bad),
                 lambda: pool.submit_done_first(ident, bad),
                 lambda: pool.submit_done_later(0.01, ident, bad),
                 lambda: pool.schedule_done(0.01, ident, bad),
                 lambda: pool.submit_done_at(time.time() + 1, 0, ident, bad),
                 lambda: pool.map(ident, [1], done_callback=bad)):
        with pytest.raises(TypeError):
            call()
    assert len(pool.jobs) == 0
    assert len(pool.delayed) == 0 and len(pool.scheduled) == 0
    assert_pool_still_works(pool)


def test_map_non_iterable(make_pool):
    pool = make_pool(1)
    with pytest.raises(TypeError):
        pool.map(ident, 5)
    with pytest.raises(TypeError):
        pool.map(ident, None)
    assert_pool_still_works(pool)


def test_map_iterable_that_raises(make_pool):
    def items():
        yield 1
        raise RuntimeError("broken iterable")

    pool = make_pool(2)
    try:
        pool.map(ident, items())
    except RuntimeError:
        pass
    assert pool.wait_idle(3) is True
    assert_pool_still_works(pool)


@pytest.mark.parametrize("delay", ["1", None, b"1", [1], object()])
def test_non_numeric_delays(make_pool, delay):
    pool = make_pool(1)
    with pytest.raises(TypeError):
        pool.submit_later(delay, ident)
    with pytest.raises(TypeError):
        pool.submit_done_later(delay, ident, True)
    with pytest.raises(TypeError):
        pool.schedule(delay, ident)
    with pytest.raises(TypeError):
        pool.schedule_done(delay, ident, True)
    with pytest.raises(TypeError):
        pool.submit_at(delay, 0, ident)
    with pytest.raises(TypeError):
        pool.submit_at(time.time() + 1, delay, ident)
    assert len(pool.delayed) == 0 and len(pool.scheduled) == 0
    assert_pool_still_works(pool)


def test_nan_delays(make_pool):
    pool = make_pool(1)
    for call in (lambda: pool.submit_later(NAN, ident),
                 lambda: pool.submit_done_later(NAN, ident, True),
                 lambda: pool.schedule(NAN, ident),
                 lambda: pool.schedule_done(NAN, ident, True),
                 lambda: pool.submit_at(NAN, 0, ident),
                 lambda: pool.submit_at(time.time() + 1, NAN, ident)):
        with pytest.raises(ValueError):
            call()
    assert len(pool.delayed) == 0 and len(pool.scheduled) == 0
    assert_pool_still_works(pool)


def test_infinite_delay(make_pool):
    # A clear error, or a timer that never fires and can be cancelled.
    pool = make_pool(1)
    ran = []
    for call in (lambda: pool.submit_later(math.inf, ran.append, 1),
                 lambda: pool.schedule(math.inf, ran.append, 2)):
        try:
            handle = call()
        except (ValueError, OverflowError):
            continue
        time.sleep(0.02)
        handle.cancel()
    time.sleep(0.02)
    assert ran == []
    assert len(pool.delayed) == 0 and len(pool.scheduled) == 0
    assert_pool_still_works(pool)


def test_negative_delay_runs_at_once(make_pool):
    pool = make_pool(1)
    pool.submit_later(-1, ident, "neg")
    deadline = time.monotonic() + 2
    while len(pool.done) < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert list(pool.done) == ["neg"]


def test_huge_delay_can_be_cancelled(make_pool):
    pool = make_pool(1)
    h = pool.submit_later(1e9, ident, 1)
    t = pool.schedule(1e9, ident, 2)
    a = pool.submit_at(time.time() + 1e9, 0, ident, 3)
    assert len(pool.delayed) == 1 and len(pool.scheduled) == 2
    assert pool.cancel(False, h) is True
    pool.cancel(False, t)
    a.cancel()
    assert len(pool.delayed) == 0 and len(pool.scheduled) == 0


@pytest.mark.parametrize("method", ["shutdown", "join", "wait_idle"])
def test_timeouts_of_wrong_type_or_nan(make_pool, method):
    pool = make_pool(1)
    fn = getattr(pool, method)
    with pytest.raises(TypeError):
        fn("1")
    with pytest.raises(TypeError):
        fn([1])
    with pytest.raises(ValueError):
        fn(NAN)
    assert_pool_still_works(pool)


def test_as_completed_wait_of_wrong_type(make_pool):
    pool = make_pool(1)
    with pytest.raises(TypeError):
        list(pool.as_completed("1"))
    with pytest.raises(ValueError):
        list(pool.as_completed(NAN))
    with pytest.raises(TypeError):
        list(pool.as_completed(None, "x"))


def test_semaphore_bad_input(ftp):
    with pytest.raises(TypeError):
        ftp.Semaphore("1")
    with pytest.raises(TypeError):
        ftp.Semaphore(None)
    with pytest.raises(ValueError):
        ftp.Semaphore(-5)
    s = ftp.Semaphore(0)
    with pytest.raises(ValueError):
        s.acquire(True, NAN)
    with pytest.raises(TypeError):
        s.acquire(True, "1")
    with pytest.raises(TypeError):
        s.release("1")
    assert s.value == 0


@pytest.mark.parametrize("value", ["3", [3], object()])
def test_max_children_wrong_type(ftp, value):
    with pytest.raises(TypeError):
        ftp.Pool(value)


@pytest.mark.parametrize("value", [2 ** 64, 2 ** 100])
def test_max_children_too_large_for_c(ftp, value):
    with pytest.raises((OverflowError, ValueError)):
        ftp.Pool(value)


def test_max_children_huge_but_valid(make_pool):
    pool = make_pool(10 ** 6)
    assert pool.max_children == 10 ** 6
    for i in range(10):
        pool.submit(ident, i)
    assert pool.shutdown(3) is True
    assert sorted(pool.done) == list(range(10))
    assert pool.child_cnt == 0


def test_max_children_zero_and_negative(ftp, make_pool):
    assert make_pool(0).max_children == usable_cpus()
    with pytest.raises(ValueError):
        ftp.Pool(-usable_cpus())
    with pytest.raises(ValueError):
        ftp.Pool(-9998)


@pytest.mark.parametrize("kwargs", [
    {"log_level": "x"}, {"done_max": "x"}, {"child_name_prefix": 5}])
def test_constructor_wrong_types(ftp, kwargs):
    with pytest.raises(TypeError):
        ftp.Pool(1, **kwargs)


def test_negative_done_max(ftp):
    with pytest.raises(ValueError):
        ftp.Pool(1, done_max=-1)


def test_non_callable_init_callback(ftp, make_pool):
    with pytest.raises(TypeError):
        pool = make_pool(1, init_callback=5)
        pool.submit(ident)


def test_submit_after_shutdown_children(ftp, make_pool):
    pool = make_pool(1)
    pool.shutdown_children()
    with pytest.raises(ftp.PoolStopped, match="Pool not running"):
        pool.submit(ident)


def test_cancel_with_unknown_id(make_pool):
    pool = make_pool(1, result_id=True)
    assert pool.cancel(123456789) is False
    # A non-integer id matches no job: False, or a clear TypeError.
    try:
        assert pool.cancel("nope") is False
    except TypeError:
        pass
    assert_pool_still_works(pool)


def test_cancel_with_bad_timer(make_pool):
    pool = make_pool(1)
    with pytest.raises((TypeError, AttributeError)):
        pool.cancel(False, "not a timer")
    assert_pool_still_works(pool)


def test_job_raising_inside_repr_is_not_lost(make_pool):
    class BadRepr:
        def __repr__(self):
            raise RuntimeError("repr")

    pool = make_pool(1)
    pool.submit(ident, BadRepr())
    pool.submit(lambda: BadRepr())
    assert pool.shutdown(3) is True
    assert len(pool.done) == 2
    assert list(pool.failed) == []
