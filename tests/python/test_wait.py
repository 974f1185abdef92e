"""wait_idle and as_completed: wait_idle() is True exactly when nothing is
queued or running (at once on a fresh pool); as_completed(wait=True) waits
for every job, ends as the last job ends (no polling), and keeps done_cnt
and failed_cnt consistent with the queues."""
import logging
import threading
import time

import pytest

from conftest import Gate


def ident(x):
    return x


def test_wait_idle_true_at_once_on_fresh_pool(make_pool):
    pool = make_pool(2)
    t0 = time.monotonic()
    assert pool.wait_idle() is True
    assert pool.wait_idle(0) is True
    assert pool.wait_idle(1) is True
    assert time.monotonic() - t0 < 0.1


def test_wait_idle_waits_for_a_just_submitted_job(make_pool):
    pool = make_pool(2)
    for trial in range(200):
        pool.submit(ident, trial)
        assert pool.wait_idle(3) is True
        assert len(pool.done) == trial + 1, trial
        assert pool.pending == 0


def test_wait_idle_waits_for_a_slow_job(make_pool):
    pool = make_pool(1)
    finished = threading.Event()

    def slow():
        time.sleep(0.1)
        finished.set()
        return 1

    pool.submit(slow)
    assert pool.wait_idle(3) is True
    assert finished.is_set()
    assert list(pool.done) == [1]


def test_wait_idle_timeout(make_pool):
    pool = make_pool(1)
    gate = Gate()
    pool.submit(gate)
    t0 = time.monotonic()
    assert pool.wait_idle(0.1) is False
    assert 0.098 <= time.monotonic() - t0 < 0.2
    assert pool.wait_idle(0) is False
    gate.open()
    assert pool.wait_idle(3) is True


def test_wait_idle_counts_queued_jobs(make_pool):
    pool = make_pool(1)
    gate = Gate()
    pool.submit(gate)
    for i in range(5):
        pool.submit(ident, i)
    assert pool.wait_idle(0.05) is False
    gate.open()
    assert pool.wait_idle(3) is True
    assert list(pool.done) == ["gate", 0, 1, 2, 3, 4]


@pytest.mark.parametrize("direct", [True, False])
def test_wait_idle_after_map(make_pool, direct):
    pool = make_pool(2)
    for trial in range(20):
        pool.map(ident, range(50), direct=direct)
        assert pool.wait_idle(3) is True
        assert len(pool.done) == 50 * (trial + 1)


def test_wait_idle_from_several_threads(make_pool):
    pool = make_pool(2)
    gate = Gate()
    pool.submit(gate)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        pool.wait_idle(3))) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    assert results == []
    gate.open()
    for t in threads:
        t.join(5)
    assert results == [True] * 4


def test_as_completed_is_a_lazy_generator(ftp, make_pool):
    pool = make_pool(1, done_callback=lambda r: None)
    it = pool.as_completed()  # must not raise before next()
    assert iter(it) is it
    with pytest.raises(ftp.PoolCallback):
        next(it)


def test_as_completed_none_yields_everything(make_pool):
    def f(x):
        time.sleep(0.002)
        if x % 4 == 0:
            raise ValueError(x)
        return x

    pool = make_pool(2)
    for i in range(40):
        pool.submit(f, i)
    got = list(pool.as_completed())
    results = sorted(x for x in got if not isinstance(x, BaseException))
    failures = sorted(x.args[0] for x in got if isinstance(x, ValueError))
    assert results == [i for i in range(40) if i % 4]
    assert failures == [i for i in range(40) if i % 4 == 0]
    assert len(got) == 40
    assert len(pool.done) == 0 and len(pool.failed) == 0
    assert pool.done_cnt.value == 0
    assert pool.failed_cnt.value == 0


def test_as_completed_done_before_failed(make_pool):
    def f(x):
        if x in ("a", "c"):
            raise ValueError(x)
        return x

    pool = make_pool(1)
    for x in "abcd":
        pool.submit(f, x)
    assert pool.wait_idle(3) is True
    got = list(pool.as_completed(False))
    assert got[:2] == ["b", "d"]
    assert [e.args[0] for e in got[2:]] == ["a", "c"]


def test_as_completed_false_is_one_pass(make_pool):
    pool = make_pool(2)
    gate = Gate()
    pool.submit(gate)
    for i in range(3):
        pool.submit(ident, i)
    t0 = time.monotonic()
    while len(pool.done) < 3 and time.monotonic() - t0 < 3:
        time.sleep(0.001)
    t0 = time.monotonic()
    got = list(pool.as_completed(False))
    assert time.monotonic() - t0 < 0.1
    assert sorted(got) == [0, 1, 2]
    gate.open()
    assert pool.shutdown(3) is True


def test_as_completed_number_is_a_time_limit(make_pool):
    pool = make_pool(2)
    gate = Gate()
    pool.submit(gate)
    pool.submit(ident, 1)
    t0 = time.monotonic()
    got = list(pool.as_completed(0.2))
    elapsed = time.monotonic() - t0
    assert got == [1]
    assert 0.19 <= elapsed < 0.35, elapsed
    gate.open()
    got = list(pool.as_completed())
    assert got == ["gate"]


@pytest.mark.deadline(8)
def test_as_completed_true_waits_for_all(make_pool):
    pool = make_pool(2)

    def slow():
        time.sleep(1.2)
        return "slow"

    pool.submit(slow)
    pool.submit(ident, "fast")
    t0 = time.monotonic()
    got = list(pool.as_completed(True))
    assert sorted(got) == ["fast", "slow"]
    assert time.monotonic() - t0 >= 1.1


def test_as_completed_is_prompt(make_pool):
    pool = make_pool(1)

    def slow():
        time.sleep(0.05)
        return 1

    for _ in range(5):
        pool.submit(slow)
    t0 = time.monotonic()
    got = list(pool.as_completed())
    assert got == [1] * 5
    # Event-driven: it ends as the last job ends, not a poll period later.
    assert time.monotonic() - t0 < 0.25 + 0.05


def test_as_completed_cnt_max(make_pool):
    pool = make_pool(1)
    for i in range(5):
        pool.submit(ident, i)
    assert pool.wait_idle(3) is True
    first = list(pool.as_completed(cnt_max=2))
    assert first == [0, 1]
    rest = list(pool.as_completed())
    assert rest == [2, 3, 4]


def test_as_completed_counts_consistent(make_pool):
    def f(x):
        if x < 3:
            raise KeyError(x)
        return x

    pool = make_pool(2)
    for i in range(10):
        pool.submit(f, i)
    assert pool.wait_idle(3) is True
    assert pool.done_cnt.value == len(pool.done) == 7
    assert pool.failed_cnt.value == len(pool.failed) == 3
    got = list(pool.as_completed(cnt_max=4))
    assert len(got) == 4
    assert pool.done_cnt.value + pool.failed_cnt.value == 6
    assert pool.done_cnt.value == len(pool.done)
    assert pool.failed_cnt.value == len(pool.failed)
    list(pool.as_completed(False))
    assert pool.done_cnt.value == 0
    assert pool.failed_cnt.value == 0


def test_as_completed_with_result_id(make_pool):
    pool = make_pool(2, result_id=True)
    ids = {pool.submit(ident, i): i for i in range(10)}
    got = dict(pool.as_completed())
    assert got == ids


@pytest.mark.parametrize("kwargs", [
    {"done_callback": lambda r: None},
    {"failed_callback": lambda e: None},
    {"log_level": logging.CRITICAL},
])
def test_as_completed_raises_pool_callback(ftp, make_pool, kwargs):
    pool = make_pool(1, **kwargs)
    pool.submit(ident, 1)
    with pytest.raises(ftp.PoolCallback):
        next(pool.as_completed())


def test_as_completed_with_done_callback_false(make_pool):
    # False is not a callback: nothing consumes the queue.
    pool = make_pool(1, done_callback=False)
    pool.submit_done(ident, True, 1)
    assert list(pool.as_completed()) == [1]


def test_as_completed_empty_pool_returns_at_once(make_pool):
    pool = make_pool(1)
    t0 = time.monotonic()
    assert list(pool.as_completed()) == []
    assert list(pool.as_completed(True)) == []
    assert time.monotonic() - t0 < 0.1
