"""ThreadPoolExecutor: the concurrent.futures.Executor interface on the pool.

Modelled on the ThreadPoolExecutor cases of CPython's
Lib/test/test_concurrent_futures/, run against fastthreadpool's executor.
"""
import concurrent.futures as cf
import gc
import logging
import re
import threading
import time
import weakref
from concurrent.futures.thread import BrokenThreadPool

import pytest

from conftest import Gate, run_script, usable_cpus, wait_until


def mul(x, y):
    return x * y


def capture(*args, **kwargs):
    return args, kwargs


@pytest.fixture
def executor_factory(ftp):
    """Create executors that are shut down when the test ends."""
    made = []

    def make(*args, **kwargs):
        ex = ftp.ThreadPoolExecutor(*args, **kwargs)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def executor(executor_factory):
    return executor_factory(max_workers=4)


# --------------------------------------------------------------------------
# The interface


def test_is_a_concurrent_futures_executor(ftp, executor):
    assert isinstance(executor, cf.Executor)
    assert isinstance(executor, cf.ThreadPoolExecutor)
    fut = executor.submit(mul, 2, 3)
    assert isinstance(fut, cf.Future)
    assert isinstance(fut, ftp._fastthreadpool.Future)
    assert fut.result() == 6


def test_submit_positional_and_keyword(executor):
    assert executor.submit(pow, 2, 8).result() == 256
    assert executor.submit(mul, 2, y=8).result() == 16
    assert executor.submit(capture, 1, self=2, fn=3).result() == (
        (1,), {"self": 2, "fn": 3})
    with pytest.raises(TypeError):
        executor.submit()
    with pytest.raises(TypeError):
        executor.submit(fn=capture)


def test_map_keeps_order(executor):
    assert list(executor.map(pow, range(10), range(10))) == [
        pow(i, i) for i in range(10)]
    assert list(executor.map(abs, range(-5, 5), chunksize=3)) == [
        abs(i) for i in range(-5, 5)]
    # Jobs that finish out of order still come back in order.
    delays = [0.03, 0.0, 0.02, 0.01]
    out = executor.map(lambda d: (time.sleep(d), d)[1], delays)
    assert list(out) == delays


def test_map_exception(executor):
    it = executor.map(lambda x: 1 / x, [1, 0, 2])
    assert next(it) == 1.0
    with pytest.raises(ZeroDivisionError):
        next(it)


def test_map_timeout(executor):
    release = threading.Event()

    def job(x):
        if x == 2:
            release.wait(5)
        return x

    results = []
    t0 = time.monotonic()
    with pytest.raises(cf.TimeoutError):
        for r in executor.map(job, [0, 1, 2], timeout=0.5):
            results.append(r)
    assert time.monotonic() - t0 >= 0.45
    release.set()
    assert results == [0, 1]


def test_map_submits_without_iteration(executor):
    finished = []
    executor.map(finished.append, range(10))
    executor.shutdown(wait=True)
    assert sorted(finished) == list(range(10))


def test_closing_the_map_iterator_cancels_the_rest(executor_factory):
    ex = executor_factory(max_workers=1)
    gate = Gate()
    ran = []

    def job(x):
        if x == 0:
            return gate()
        ran.append(x)
        time.sleep(0.2)  # leaves the GIL to the consumer meanwhile
        return x

    it = ex.map(job, range(6))
    assert gate.started.wait(5)
    threading.Timer(0.05, gate.open).start()
    assert next(it) == "gate"
    it.close()
    ex.shutdown(wait=True)
    # At most the job the worker took right after the first may have run.
    assert ran in ([], [1])


def test_context_manager_shuts_down(ftp):
    with ftp.ThreadPoolExecutor(max_workers=3) as ex:
        assert ex.submit(abs, -5).result() == 5
        threads = list(ex._threads)
    assert ex._shutdown
    assert threads
    for t in threads:
        assert not t.is_alive()
    with pytest.raises(RuntimeError):
        ex.submit(abs, 1)


# --------------------------------------------------------------------------
# max_workers


@pytest.mark.parametrize("n", [0, -1, -100])
def test_max_workers_must_be_positive(ftp, n):
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        ftp.ThreadPoolExecutor(max_workers=n)


def test_max_workers_type_checked(ftp):
    with pytest.raises(TypeError):
        ftp.ThreadPoolExecutor(max_workers="4")


def test_default_max_workers(executor_factory):
    ex = executor_factory()
    assert ex._max_workers == min(32, usable_cpus() + 4)
    assert executor_factory(7)._max_workers == 7


def test_saturation(executor_factory):
    ex = executor_factory(4)
    sem = threading.Semaphore(0)
    futs = [ex.submit(sem.acquire) for _ in range(15)]
    assert wait_until(lambda: len(ex._threads) == 4)
    time.sleep(0.05)
    assert len(ex._threads) == 4
    for _ in range(15):
        sem.release()
    assert all(f.result(timeout=5) for f in futs)


def test_idle_thread_reuse(executor_factory):
    ex = executor_factory()
    for i in range(3):
        assert ex.submit(mul, 21, i).result() == 21 * i
    assert len(ex._threads) == 1


def test_runs_concurrently(executor_factory):
    ex = executor_factory(3)
    barrier = threading.Barrier(3, timeout=5)
    futs = [ex.submit(barrier.wait) for _ in range(3)]
    assert sorted(f.result() for f in futs) == [0, 1, 2]


# --------------------------------------------------------------------------
# Thread names and the threads themselves


def test_thread_names_with_prefix(executor_factory):
    ex = executor_factory(max_workers=5, thread_name_prefix="SpecialPool")
    barrier = threading.Barrier(5, timeout=5)
    futs = [ex.submit(barrier.wait) for _ in range(5)]
    for f in futs:
        f.result()
    names = sorted(t.name for t in ex._threads)
    assert names == ["SpecialPool_%d" % i for i in range(5)]


def test_thread_names_default(executor_factory):
    ex = executor_factory(max_workers=3)
    barrier = threading.Barrier(3, timeout=5)
    for f in [ex.submit(barrier.wait) for _ in range(3)]:
        f.result()
    for t in ex._threads:
        assert re.fullmatch(r"ThreadPoolExecutor-\d+_[0-2]", t.name), t.name
    # Each executor gets its own number.
    other = executor_factory(max_workers=1)
    other.submit(id, 1).result()
    (t2,) = other._threads
    assert t2.name.rsplit("_", 1)[0] != next(iter(ex._threads)).name.rsplit(
        "_", 1)[0]


def test_jobs_run_in_the_executors_threads(executor):
    thread = executor.submit(threading.current_thread).result()
    assert thread in executor._threads
    assert thread is not threading.main_thread()
    assert isinstance(thread, threading.Thread)


def test_threads_terminate_on_shutdown(executor_factory):
    ex = executor_factory(max_workers=5)
    sem = threading.Semaphore(0)
    for _ in range(3):
        ex.submit(sem.release)
    for _ in range(3):
        assert sem.acquire(timeout=5)
    threads = list(ex._threads)
    assert 1 <= len(threads) <= 3
    ex.shutdown()
    for t in threads:
        assert not t.is_alive()


def test_del_lets_threads_exit(ftp):
    ex = ftp.ThreadPoolExecutor(max_workers=5)
    results = ex.map(abs, range(-5, 5))
    threads = list(ex._threads)
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert ref() is None
    for t in threads:
        t.join(timeout=5)
        assert not t.is_alive()
    assert list(results) == [abs(i) for i in range(-5, 5)]


def test_workers_do_not_keep_the_executor_alive(ftp):
    ex = ftp.ThreadPoolExecutor(max_workers=2)
    ex.submit(id, 1).result()
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert ref() is None


def test_result_is_freed(executor):
    class Obj:
        pass

    fut = executor.submit(Obj)
    obj = fut.result()
    ref = weakref.ref(obj)
    del obj, fut
    gc.collect()
    assert ref() is None


def test_call_arguments_are_released_after_the_run(executor):
    class Arg:
        pass

    arg = Arg()
    ref = weakref.ref(arg)
    fut = executor.submit(id, arg)
    fut.result()
    del arg
    gc.collect()
    # The finished future no longer refers to the call.
    assert ref() is None
    assert fut.done()


def test_idle_workers_sleep(executor_factory):
    # Idle workers sleep without the GIL and without burning CPU.
    ex = executor_factory(max_workers=4)
    barrier = threading.Barrier(4, timeout=5)
    for f in [ex.submit(barrier.wait) for _ in range(4)]:
        f.result()
    cpu0 = time.process_time()
    time.sleep(0.3)
    idle = time.process_time() - cpu0
    assert idle < 0.05, idle


# --------------------------------------------------------------------------
# shutdown


def test_submit_after_shutdown(executor):
    executor.shutdown()
    with pytest.raises(RuntimeError,
                       match="cannot schedule new futures after shutdown"):
        executor.submit(pow, 2, 5)
    executor.shutdown()  # a second call is harmless


def test_shutdown_waits_for_queued_work(executor_factory):
    ex = executor_factory(max_workers=2)
    done = []
    for i in range(20):
        ex.submit(lambda i=i: (time.sleep(0.002), done.append(i)))
    ex.shutdown(wait=True)
    assert sorted(done) == list(range(20))


def test_shutdown_no_wait(executor_factory):
    ex = executor_factory(max_workers=2)
    gate = Gate()
    fut = ex.submit(gate)
    queued = ex.submit(mul, 6, 7)
    assert gate.started.wait(5)
    t0 = time.monotonic()
    ex.shutdown(wait=False)
    assert time.monotonic() - t0 < 1.0
    assert not fut.done()
    gate.open()
    # The work submitted before shutdown still runs.
    assert fut.result(timeout=5) == "gate"
    assert queued.result(timeout=5) == 42
    for t in list(ex._threads):
        t.join(timeout=5)
        assert not t.is_alive()


def test_shutdown_cancel_futures(executor_factory):
    ex = executor_factory(max_workers=1)
    gate = Gate()
    running = ex.submit(gate)
    assert gate.started.wait(5)
    ran = []
    pending = [ex.submit(ran.append, i) for i in range(10)]
    seen = []
    pending[3].add_done_callback(seen.append)
    threading.Timer(0.1, gate.open).start()
    ex.shutdown(wait=True, cancel_futures=True)
    assert running.result() == "gate"
    assert ran == []
    for f in pending:
        assert f.cancelled()
        with pytest.raises(cf.CancelledError):
            f.result()
    assert seen == [pending[3]]
    # Their waiters were told: wait() does not block on them.
    done, not_done = cf.wait(pending, timeout=1)
    assert len(done) == 10 and not not_done


def test_shutdown_from_a_job_does_not_deadlock(executor_factory):
    ex = executor_factory(max_workers=2)
    fut = ex.submit(lambda: ex.shutdown(wait=True))
    assert fut.result(timeout=5) is None
    with pytest.raises(RuntimeError):
        ex.submit(id, 1)


def test_jobs_may_submit_jobs(executor):
    def outer(n):
        return executor.submit(mul, n, 2)

    inner = executor.submit(outer, 21).result()
    assert inner.result(timeout=5) == 42


def test_shutdown_race(executor_factory):
    # Many short jobs and an immediate shutdown (CPython bpo-12456).
    ex = executor_factory(max_workers=4)
    futs = [ex.submit(time.sleep, 0) for _ in range(50)]
    ex.shutdown()
    assert all(f.done() for f in futs)


# --------------------------------------------------------------------------
# initializer


def test_initializer_runs_once_per_thread(executor_factory):
    seen = []
    local = threading.local()

    def init(tag, value):
        local.value = value
        seen.append((tag, threading.current_thread().name))

    ex = executor_factory(max_workers=3, initializer=init,
                          initargs=("x", 5), thread_name_prefix="init")
    barrier = threading.Barrier(3, timeout=5)

    def job():
        barrier.wait()
        return local.value

    assert [f.result() for f in [ex.submit(job) for _ in range(3)]] == [5] * 3
    assert sorted(seen) == [("x", "init_%d" % i) for i in range(3)]
    assert ex._initializer is init
    assert ex._initargs == ("x", 5)


def test_initializer_must_be_callable(ftp):
    with pytest.raises(TypeError, match="initializer must be a callable"):
        ftp.ThreadPoolExecutor(initializer=5)


def test_failing_initializer_breaks_the_executor(executor_factory, caplog):
    release = threading.Event()

    def init():
        release.wait(5)
        raise ValueError("bad init")

    ex = executor_factory(max_workers=1, initializer=init)
    with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
        # Queued while the only worker is still in its initializer.
        futs = [ex.submit(mul, i, 2) for i in range(5)]
        assert not ex._broken
        release.set()
        for f in futs:
            with pytest.raises(BrokenThreadPool,
                               match="A thread initializer failed"):
                f.result(timeout=5)
        assert "A thread initializer failed" in ex._broken
        with pytest.raises(BrokenThreadPool):
            ex.submit(mul, 1, 2)
    records = [r for r in caplog.records
               if r.name == "concurrent.futures"
               and "Exception in initializer:" in r.getMessage()]
    assert len(records) == 1
    assert records[0].levelno == logging.CRITICAL
    assert isinstance(records[0].exc_info[1], ValueError)
    ex.shutdown(wait=True)
    for t in ex._threads:
        assert not t.is_alive()


def test_failing_initializer_later_submit(executor_factory, caplog):
    def init():
        raise OSError("no")

    ex = executor_factory(max_workers=2, initializer=init)
    with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
        try:
            fut = ex.submit(mul, 1, 2)
        except BrokenThreadPool:
            pass  # the worker failed before submit() returned
        else:
            with pytest.raises(BrokenThreadPool):
                fut.result(timeout=5)
        assert wait_until(lambda: ex._broken)
        with pytest.raises(BrokenThreadPool):
            ex.submit(mul, 1, 2)


# --------------------------------------------------------------------------
# cancel


def test_cancel_pending_future(executor_factory):
    ex = executor_factory(max_workers=1)
    gate = Gate()
    first = ex.submit(gate)
    assert gate.started.wait(5)
    ran = []
    second = ex.submit(ran.append, "second")
    third = ex.submit(ran.append, "third")
    assert not first.cancel()  # running
    assert second.cancel()
    assert second.cancel()  # idempotent
    assert second.cancelled() and second.done() and not second.running()
    gate.open()
    assert third.result(timeout=5) is None
    assert ran == ["third"]
    with pytest.raises(cf.CancelledError):
        second.result()
    with pytest.raises(cf.CancelledError):
        second.exception()
    assert not third.cancel()


def test_exception_keeps_its_traceback(executor):
    def inner_failure():
        raise KeyError("deep")

    def job():
        inner_failure()

    fut = executor.submit(job)
    exc = fut.exception(timeout=5)
    assert isinstance(exc, KeyError)
    with pytest.raises(KeyError) as info:
        fut.result()
    assert info.value is exc
    names = [entry.name for entry in info.traceback]
    assert "job" in names and "inner_failure" in names


def test_base_exceptions_are_captured(executor):
    def job():
        raise SystemExit(3)

    fut = executor.submit(job)
    assert isinstance(fut.exception(timeout=5), SystemExit)
    # The worker survived.
    assert executor.submit(mul, 3, 3).result(timeout=5) == 9


# --------------------------------------------------------------------------
# Interpreter exit (each in a fresh interpreter)


def test_interpreter_exit_finishes_queued_work():
    proc, _ = run_script("""
        import sys, time
        from fastthreadpool import ThreadPoolExecutor
        ex = ThreadPoolExecutor(2)
        def work(i):
            time.sleep(0.05)
            sys.stdout.write("done %d\\n" % i)  # one write: no interleaving
        for i in range(4):
            ex.submit(work, i)
    """)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split("\n")[:4]) == [
        "done %d" % i for i in range(4)]


def test_submit_after_interpreter_exit_started():
    proc, _ = run_script("""
        import atexit
        from fastthreadpool import ThreadPoolExecutor
        ex = ThreadPoolExecutor(2)
        ex.submit(print, "apple")
        @atexit.register
        def run_last():
            try:
                ex.submit(id, None)
            except RuntimeError as e:
                print("runtime-error:", e)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == [
        "apple",
        "runtime-error: cannot schedule new futures after interpreter "
        "shutdown"]


def test_shutdown_no_wait_cancel_futures_at_exit():
    proc, _ = run_script("""
        import sys, threading, time
        from fastthreadpool import ThreadPoolExecutor
        ex = ThreadPoolExecutor(1)
        started = threading.Event()
        def slow(tag):
            started.set()
            time.sleep(0.1)
            sys.stdout.write(tag + "\\n")
        ex.submit(slow, "apple")
        ex.submit(slow, "banana")
        started.wait()
        ex.shutdown(wait=False, cancel_futures=True)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "apple\n"


def test_exit_without_shutdown_while_running():
    proc, elapsed = run_script("""
        import threading, time
        from fastthreadpool import ThreadPoolExecutor
        ex = ThreadPoolExecutor(3)
        started = threading.Event()
        def slow():
            started.set()
            time.sleep(0.2)
            print("slow done", flush=True)
        ex.submit(slow)
        started.wait()
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "slow done"
    assert elapsed < 8


# --------------------------------------------------------------------------
# Races (longer with FTPOOL_STRESS=1)


def test_concurrent_submit_cancel_wait(executor_factory):
    from conftest import STRESS

    rounds = 4000 if STRESS else 300
    ex = executor_factory(max_workers=3)
    errors = []

    def client(seed):
        try:
            for i in range(rounds):
                futs = [ex.submit(mul, i, seed) for _ in range(4)]
                if i % 3 == 0:
                    futs[-1].cancel()
                if i % 5 == 0:
                    done, _ = cf.wait(futs, timeout=5)
                    assert len(done) == 4
                for f in futs:
                    if not f.cancelled():
                        assert f.result(timeout=5) == i * seed
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=client, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 if STRESS else 8)
    assert not errors, errors[0]
    assert not any(t.is_alive() for t in threads)


def test_shutdown_while_others_submit(ftp):
    from conftest import STRESS

    for _ in range(20 if STRESS else 3):
        ex = ftp.ThreadPoolExecutor(max_workers=2)
        accepted = []
        stop = threading.Event()

        def client():
            while not stop.is_set():
                try:
                    accepted.append(ex.submit(mul, 2, 3))
                except RuntimeError:
                    return

        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.02)
        ex.shutdown(wait=True)
        stop.set()
        for t in threads:
            t.join(5)
        # Everything accepted before shutdown ran.
        assert accepted
        assert all(f.result(timeout=5) == 6 for f in accepted)


def test_thread_start_failure(executor_factory, monkeypatch):
    class NoThread(threading.Thread):
        def start(self):
            raise RuntimeError("can't start new thread (test)")

    ex = executor_factory(max_workers=2)
    monkeypatch.setattr(threading, "Thread", NoThread)
    with pytest.raises(RuntimeError, match=r"can't start new thread \(test\)"):
        ex.submit(mul, 2, 3)
    assert len(ex._threads) == 0
    monkeypatch.undo()
    # The executor is still usable once threads can start again.
    assert ex.submit(mul, 2, 3).result(timeout=5) == 6
    (thread,) = ex._threads
    assert thread.name.endswith("_0")  # the failed start used no number
