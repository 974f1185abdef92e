"""Faults in user code: exceptions and BaseExceptions from callbacks, and
pool calls made from inside a job, neither wedge the pool nor stop the
delivery of results."""
import threading
import time

import pytest

from conftest import run_script, wait_until


def ident(x):
    return x


@pytest.mark.parametrize("exc", [RuntimeError("x"), SystemExit(1),
                                 KeyboardInterrupt()])
def test_pool_done_callback_raising_keeps_delivering(make_pool, exc):
    got = []

    def cb(r):
        got.append(r)
        if r == 0:
            raise exc

    pool = make_pool(1, done_callback=cb)
    for i in range(5):
        pool.submit(ident, i)
    assert pool.shutdown(3) is True
    assert sorted(got) == [0, 1, 2, 3, 4]
    pool.submit(ident, 5)
    assert pool.shutdown(3) is True
    assert sorted(got) == [0, 1, 2, 3, 4, 5]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("exc", [RuntimeError("x"), SystemExit(1),
                                 KeyboardInterrupt()])
def test_pool_failed_callback_raising_keeps_delivering(make_pool, exc):
    got = []

    def cb(entry):
        got.append(entry)
        if len(got) == 1:
            raise exc

    def boom(i):
        raise ValueError(i)

    pool = make_pool(1, failed_callback=cb)
    for i in range(5):
        pool.submit(boom, i)
    assert pool.shutdown(3) is True
    assert sorted(e.args[0] for e in got) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("exc_type", [ValueError, SystemExit,
                                      KeyboardInterrupt])
def test_per_job_callback_raising(make_pool, exc_type):
    def cb(r):
        raise exc_type(r)

    pool = make_pool(1)
    pool.submit_done(ident, cb, 1)
    pool.map(ident, [2, 3], done_callback=cb)
    pool.submit(ident, "after")
    assert pool.shutdown(3) is True
    assert list(pool.done) == ["after"]
    assert sorted(e.args[0] for e in pool.failed) == [1, 2, 3]
    assert all(isinstance(e, exc_type) for e in pool.failed)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("exc_type", [RuntimeError, SystemExit])
def test_finish_callback_raising_does_not_wedge(make_pool, exc_type):
    calls = []

    def fin():
        calls.append(1)
        raise exc_type("fin")

    pool = make_pool(2, finish_callback=fin)
    for i in range(4):
        pool.submit(ident, i)
    assert pool.shutdown(3) is True
    assert pool.child_cnt == 0
    assert len(calls) >= 1
    pool.submit(ident, 9)
    assert pool.shutdown(3) is True
    assert 9 in list(pool.done)


def test_init_callback_base_exception_propagates(make_pool):
    def init(thread):
        raise KeyboardInterrupt("init")

    pool = make_pool(1, init_callback=init)
    with pytest.raises(KeyboardInterrupt):
        pool.submit(ident, 1)
    assert pool.child_cnt == 0
    pool.cancel()


def test_generator_job_closed_early_by_base_exception(make_pool):
    closed = []

    def g():
        try:
            yield 1
            raise KeyboardInterrupt
        finally:
            closed.append(True)

    pool = make_pool(1)
    pool.submit(g)
    pool.submit(ident, 2)
    assert pool.shutdown(3) is True
    assert list(pool.done) == [1, 2]
    assert closed == [True]


INSIDE_JOB = """
import os, time
import fastthreadpool
pool = fastthreadpool.Pool(2)
def job():
    return ("returned", {expr})
pool.submit(job)
end = time.monotonic() + 3
while time.monotonic() < end and not (len(pool.done) or len(pool.failed)):
    time.sleep(0.005)
ended = bool(len(pool.done) or len(pool.failed))
print("ended" if ended else "deadlock", flush=True)
if ended:
    ok = pool.shutdown(3)
    pool.submit(lambda: "after")
    ok = pool.shutdown(3) and ok and "after" in list(pool.done)
    print("reusable", ok, flush=True)
# A deadlocked job would block the exit handler: leave at once.
os._exit(0)
"""


@pytest.mark.parametrize("call", [
    "wait_idle()", "wait_idle(0.2)", "join()", "join(0.2)", "shutdown()",
    "shutdown(0.2, True)", "list(pool.as_completed())",
    "list(pool.as_completed(0.2))"])
def test_pool_calls_from_inside_a_job_never_deadlock(call):
    # Works or raises a clear error; the job must end either way. Runs in
    # its own interpreter so that a deadlock cannot wedge the test run.
    expr = call if call.startswith("list(") else "pool." + call
    proc, _ = run_script(INSIDE_JOB.replace("{expr}", expr), timeout=8)
    assert "ended" in proc.stdout, "a pool call inside a job deadlocked"
    assert "reusable True" in proc.stdout, (proc.stdout, proc.stderr)


def test_submit_and_map_from_inside_a_job(make_pool):
    pool = make_pool(2)

    def job():
        pool.submit(ident, "sub")
        pool.map(ident, ["m1", "m2"])
        pool.submit_later(0.01, ident, "later")
        return "job"

    pool.submit(job)
    assert wait_until(lambda: len(pool.done) == 5, 3)
    assert pool.shutdown(3) is True
    assert sorted(pool.done) == ["job", "later", "m1", "m2", "sub"]


def test_semaphore_shared_by_jobs_and_main(ftp, make_pool):
    sem = ftp.Semaphore(0)
    pool = make_pool(4)

    def producer(i):
        time.sleep(0.001)
        sem.release()
        return i

    for i in range(50):
        pool.submit(producer, i)
    for _ in range(50):
        assert sem.acquire(True, 3) is True
    assert sem.acquire(False) is False
    assert pool.shutdown(3) is True


def test_callback_threads_named_and_daemon(make_pool):
    pool = make_pool(1, done_callback=lambda r: None,
                     failed_callback=lambda e: None)
    names = {t.name: t for t in threading.enumerate()}
    assert "ThreadPoolDone" in names
    assert "ThreadPoolFailed" in names
    assert names["ThreadPoolDone"].daemon
    assert names["ThreadPoolFailed"].daemon
