"""Semaphore: acquire(blocking=True, timeout=None) returns True on success,
release(n=1), a read-only value that is never negative, the context manager;
it never admits more holders than it has permits, also under contention."""
import threading
import time

import pytest

from conftest import wait_until


def test_defaults(ftp):
    assert ftp.Semaphore().value == 1
    assert ftp.Semaphore(0).value == 0
    assert ftp.Semaphore(5).value == 5
    assert ftp.Semaphore(value=2).value == 2


def test_negative_value_is_value_error(ftp):
    with pytest.raises(ValueError, match="must not be less than 0"):
        ftp.Semaphore(-1)


def test_value_is_read_only(ftp):
    s = ftp.Semaphore(1)
    with pytest.raises(AttributeError):
        s.value = 5
    assert s.value == 1


def test_acquire_returns_true_on_success(ftp):
    s = ftp.Semaphore(2)
    assert s.acquire() is True
    assert s.value == 1
    assert s.acquire(True) is True
    assert s.value == 0


def test_non_blocking_acquire_fails_without_side_effect(ftp):
    s = ftp.Semaphore(0)
    assert s.acquire(False) is False
    assert s.acquire(blocking=False) is False
    assert s.value == 0
    s.release()
    assert s.value == 1
    assert s.acquire(False) is True
    assert s.acquire(False) is False
    assert s.value == 0


def test_acquire_timeout(ftp):
    s = ftp.Semaphore(0)
    t0 = time.monotonic()
    assert s.acquire(True, 0.1) is False
    elapsed = time.monotonic() - t0
    assert 0.098 <= elapsed < 0.2
    assert s.acquire(timeout=0) is False
    assert s.value == 0
    s.release()
    assert s.acquire(timeout=0.5) is True


def test_acquire_timeout_succeeds_when_released(ftp):
    s = ftp.Semaphore(0)
    threading.Timer(0.05, s.release).start()
    t0 = time.monotonic()
    assert s.acquire(timeout=2) is True
    assert time.monotonic() - t0 < 1
    assert s.value == 0


def test_release_n(ftp):
    s = ftp.Semaphore(0)
    assert s.release(3) is None
    assert s.value == 3
    s.release()
    assert s.value == 4
    s.release(n=2)
    assert s.value == 6


def test_release_beyond_initial_value(ftp):
    s = ftp.Semaphore(1)
    s.release()
    s.release()
    assert s.value == 3


def test_release_negative_is_value_error(ftp):
    s = ftp.Semaphore(0)
    with pytest.raises(ValueError):
        s.release(-1)
    assert s.value == 0


def test_context_manager(ftp):
    s = ftp.Semaphore(1)
    with s as r:
        assert s.value == 0
        assert r is None or r is True or r is s
    assert s.value == 1
    with pytest.raises(KeyError):
        with s:
            raise KeyError
    assert s.value == 1


def test_no_over_admission_after_single_release(ftp):
    s = ftp.Semaphore(0)
    s.release()
    assert s.acquire(False) is True
    assert s.acquire(False) is False
    assert s.acquire(True, 0.02) is False


def _waiters(s, n, timeout=3):
    passed = []
    lock = threading.Lock()

    def w(i):
        if s.acquire(True, timeout):
            with lock:
                passed.append(i)

    threads = [threading.Thread(target=w, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, passed, lock


def test_one_release_wakes_exactly_one_waiter(ftp):
    s = ftp.Semaphore(0)
    threads, passed, lock = _waiters(s, 3)
    time.sleep(0.05)
    assert passed == []
    s.release()
    assert wait_until(lambda: len(passed) == 1, 2)
    time.sleep(0.05)
    assert len(passed) == 1
    s.release(2)
    assert wait_until(lambda: len(passed) == 3, 2)
    for t in threads:
        t.join(3)
    assert s.value == 0
    assert s.acquire(False) is False


def test_two_waiters_two_releases_no_extra_permit(ftp):
    s = ftp.Semaphore(0)
    threads, passed, lock = _waiters(s, 2)
    time.sleep(0.05)
    s.release()
    s.release()
    for t in threads:
        t.join(3)
    assert sorted(passed) == [0, 1]
    assert s.value == 0
    assert s.acquire(False) is False


def test_mutual_exclusion_under_contention(ftp):
    s = ftp.Semaphore(2)
    inside = [0]
    peak = [0]
    lock = threading.Lock()
    errors = []

    def worker():
        for _ in range(2000):
            if not s.acquire(True, 3):
                errors.append("timeout")
                return
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            with lock:
                inside[0] -= 1
            s.release()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(8)
    assert errors == []
    assert peak[0] <= 2
    assert s.value == 2


def test_used_from_pool_jobs(ftp, make_pool):
    s = ftp.Semaphore(8)
    pool = make_pool(4)

    def job(i):
        if i % 2:
            s.release()
        else:
            s.acquire()
        return i

    pool.map(job, range(2000))
    assert pool.shutdown(5) is True
    assert s.value == 8
    assert len(pool.done) == 2000


def test_many_uncontended_pairs_are_fast(ftp):
    s = ftp.Semaphore(1)
    t0 = time.monotonic()
    for _ in range(100000):
        s.release()
        s.acquire()
    assert time.monotonic() - t0 < 1.0
    assert s.value == 1
