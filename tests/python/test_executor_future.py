"""The executor's Future: concurrent.futures.Future semantics, wait(),
as_completed() and asyncio, modelled on CPython's test_concurrent_futures
(test_future, test_wait, test_as_completed) and asyncio's executor tests."""
import asyncio
import concurrent.futures as cf
import concurrent.futures._base as cfbase
import gc
import logging
import signal
import threading
import time
import weakref

import pytest

from conftest import Gate, wait_until

import fastthreadpool

# The executor's Future type (not re-exported by the package).
Future = fastthreadpool._fastthreadpool.Future


@pytest.fixture
def executor(ftp):
    ex = ftp.ThreadPoolExecutor(max_workers=4)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def single(ftp):
    ex = ftp.ThreadPoolExecutor(max_workers=1)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


def running_future():
    f = Future()
    assert f.set_running_or_notify_cancel()
    return f


# --------------------------------------------------------------------------
# States, on futures made directly


def test_new_future_is_pending():
    f = Future()
    assert isinstance(f, cf.Future)
    assert not f.done() and not f.running() and not f.cancelled()
    assert f._state == cfbase.PENDING
    assert repr(f).startswith("<Future at 0x") and "state=pending" in repr(f)
    with pytest.raises(TypeError):
        Future(1)


def test_states_match_the_standard_names():
    f = Future()
    assert f._state == cfbase.PENDING
    f.set_running_or_notify_cancel()
    assert f._state == cfbase.RUNNING and f.running()
    f.set_result(1)
    assert f._state == cfbase.FINISHED
    c = Future()
    c.cancel()
    assert c._state == cfbase.CANCELLED
    assert not c.set_running_or_notify_cancel()
    assert c._state == cfbase.CANCELLED_AND_NOTIFIED


def test_cancel_states():
    pending = Future()
    assert pending.cancel() and pending.cancelled() and pending.done()
    running = running_future()
    assert not running.cancel() and not running.cancelled()
    finished = Future()
    finished.set_result(5)
    assert not finished.cancel()
    failed = Future()
    failed.set_exception(OSError())
    assert not failed.cancel()


def test_result_and_exception():
    f = running_future()
    f.set_result(42)
    assert f.result() == 42 and f.result(timeout=0) == 42
    assert f.exception() is None
    assert "state=finished returned int" in repr(f)
    e = running_future()
    err = OSError("x")
    e.set_exception(err)
    assert e.exception() is err
    with pytest.raises(OSError) as info:
        e.result()
    assert info.value is err
    assert "state=finished raised OSError" in repr(e)


def test_result_timeout():
    f = Future()
    t0 = time.monotonic()
    with pytest.raises(cf.TimeoutError):
        f.result(timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
    with pytest.raises(cf.TimeoutError):
        f.exception(timeout=0)
    with pytest.raises(cf.TimeoutError):
        f.result(-1)
    with pytest.raises(TypeError):
        f.result(timeout="x")
    with pytest.raises(TypeError):
        f.result(bogus=1)


def test_result_of_cancelled():
    f = Future()
    f.cancel()
    with pytest.raises(cf.CancelledError):
        f.result(timeout=0)
    with pytest.raises(cf.CancelledError):
        f.exception()


def test_invalid_state():
    f = Future()
    f.set_result(1)
    with pytest.raises(cf.InvalidStateError):
        f.set_result(2)
    with pytest.raises(cf.InvalidStateError):
        f.set_exception(ValueError())
    assert f.result() == 1
    g = Future()
    g.cancel()
    with pytest.raises(cf.InvalidStateError):
        g.set_result(2)
    h = running_future()
    with pytest.raises(RuntimeError, match="unexpected state"):
        h.set_running_or_notify_cancel()


def test_subclass():
    class MyFuture(Future):
        pass

    f = MyFuture()
    f.extra = 3
    f.set_result(7)
    assert f.result() == 7 and f.extra == 3
    assert repr(f).startswith("<MyFuture at")


# --------------------------------------------------------------------------
# Waiting across threads


def test_result_waits_for_another_thread():
    f = Future()
    threading.Timer(0.05, f.set_result, ("late",)).start()
    assert f.result(timeout=5) == "late"


def test_many_waiters_are_woken():
    f = Future()
    out = []
    threads = [threading.Thread(target=lambda: out.append(f.result(5)))
               for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    f.set_result(9)
    for t in threads:
        t.join(5)
    assert out == [9] * 4


def test_cancel_wakes_waiters():
    f = Future()
    threading.Timer(0.05, f.cancel).start()
    with pytest.raises(cf.CancelledError):
        f.result(timeout=5)


def test_signal_handler_runs_while_waiting():
    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted

    f = Future()
    old = signal.signal(signal.SIGUSR1, handler)
    try:
        main = threading.main_thread().ident
        threading.Timer(0.05, signal.pthread_kill,
                        (main, signal.SIGUSR1)).start()
        with pytest.raises(Interrupted):
            f.result(timeout=5)
    finally:
        signal.signal(signal.SIGUSR1, old)
    # The interrupted waiter left the future in a usable state.
    f.set_result(1)
    assert f.result() == 1


def test_no_condition_until_someone_asks(executor):
    f = executor.submit(abs, -3)
    assert f.result() == 3
    f.add_done_callback(lambda _: None)
    with pytest.raises(AttributeError):
        f._ftp_condition
    with pytest.raises(AttributeError):
        f._ftp_waiters
    cond = f._condition
    assert cond is f._condition
    with cond:
        cond.notify_all()
    assert f._waiters == [] and f._waiters is f._waiters


def test_condition_behaves_as_a_condition():
    c = Future()._condition
    assert c.acquire(timeout=1)
    assert c.acquire(blocking=False)  # reentrant, as an RLock
    c.release()
    c.release()
    with pytest.raises(RuntimeError):
        c.release()
    with pytest.raises(RuntimeError):
        c.wait(0)  # not held
    with c:
        with c:
            assert c._is_owned()
        assert not c.wait(0.01)
        assert c.wait_for(lambda: True, timeout=0)
        c.notify()
        c.notify_all()
    # Another thread can take it once it is released.
    got = []
    t = threading.Thread(target=lambda: got.append(c.acquire(timeout=5)))
    t.start()
    t.join(5)
    assert got == [True]


def test_condition_is_notified():
    f = Future()
    cond = f._condition
    threading.Timer(0.05, f.set_result, (1,)).start()
    with cond:
        assert cond.wait_for(f.done, timeout=5)


def test_result_while_holding_the_condition(executor):
    # The base class's own result() runs under `_condition`: code that
    # holds it while waiting must not block the worker that completes.
    gate = Gate()
    f = executor.submit(gate)
    threading.Timer(0.05, gate.open).start()
    with f._condition:
        assert f.result(timeout=5) == "gate"
    g = executor.submit(Gate(timeout=0.3))
    with g._condition:
        with pytest.raises(cf.TimeoutError):
            g.result(timeout=0.05)
    with pytest.raises(RuntimeError, match="gate never opened"):
        g.result(timeout=5)


# --------------------------------------------------------------------------
# Done callbacks


def test_callbacks_in_order_with_the_future(executor):
    gate = Gate()
    f = executor.submit(gate)
    calls = []
    for i in range(4):
        f.add_done_callback(lambda fut, i=i: calls.append((i, fut)))
    gate.open()
    f.result(timeout=5)
    assert wait_until(lambda: len(calls) == 4)
    assert calls == [(i, f) for i in range(4)]


def test_callback_runs_in_the_completing_thread(executor):
    gate = Gate()
    f = executor.submit(gate)
    where = []
    f.add_done_callback(lambda _: where.append(threading.current_thread()))
    gate.open()
    f.result(timeout=5)
    assert wait_until(lambda: where)
    assert where[0] in executor._threads


def test_callback_on_done_future_runs_now():
    f = Future()
    f.set_result(5)
    got = []
    f.add_done_callback(lambda fut: got.append(fut.result()))
    assert got == [5]


def test_callback_on_cancel():
    f = Future()
    got = []
    f.add_done_callback(lambda fut: got.append(fut.cancelled()))
    assert f.cancel()
    assert got == [True]


def test_callback_with_exception():
    f = running_future()
    got = []
    f.add_done_callback(lambda fut: got.append(fut.exception()))
    err = OSError("e")
    f.set_exception(err)
    assert got == [err]


def test_callback_errors_are_logged(caplog):
    f = Future()
    got = []

    def bad(fut):
        raise ValueError("callback failed")

    f.add_done_callback(bad)
    f.add_done_callback(got.append)
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        f.set_result(1)
        f.add_done_callback(bad)  # already done: called and logged too
    assert got == [f]
    records = [r for r in caplog.records
               if r.getMessage().startswith("exception calling callback for")]
    assert len(records) == 2
    assert repr(f) in records[0].getMessage()
    assert isinstance(records[0].exc_info[1], ValueError)


# --------------------------------------------------------------------------
# concurrent.futures.wait and as_completed


def test_wait_first_completed(executor):
    gate = Gate()
    slow = executor.submit(gate)
    fast = executor.submit(abs, -1)
    done, not_done = cf.wait([slow, fast], timeout=5,
                             return_when=cf.FIRST_COMPLETED)
    assert done == {fast} and not_done == {slow}
    gate.open()


def test_wait_first_completed_already_done(executor):
    gate = Gate()
    slow = executor.submit(gate)
    finished = executor.submit(abs, -1)
    finished.result()
    done, not_done = cf.wait([slow, finished],
                             return_when=cf.FIRST_COMPLETED)
    assert done == {finished} and not_done == {slow}
    gate.open()


def test_wait_first_exception(executor):
    gate = Gate()
    slow = executor.submit(gate)
    fast = executor.submit(abs, -1)

    def fail():
        time.sleep(0.05)
        raise ValueError

    failing = executor.submit(fail)
    done, not_done = cf.wait([slow, fast, failing], timeout=5,
                             return_when=cf.FIRST_EXCEPTION)
    assert done == {fast, failing} and not_done == {slow}
    gate.open()


def test_wait_first_exception_already_failed(executor):
    failed = executor.submit(lambda: 1 / 0)
    failed.exception()
    gate = Gate()
    slow = executor.submit(gate)
    done, not_done = cf.wait([failed, slow], return_when=cf.FIRST_EXCEPTION)
    assert done == {failed} and not_done == {slow}
    gate.open()


def test_wait_all_completed_mixed_with_standard_futures(executor):
    std = cf.Future()
    ours = [executor.submit(time.sleep, 0.01 * i) for i in range(5)]
    threading.Timer(0.05, std.set_result, (None,)).start()
    done, not_done = cf.wait(ours + [std], timeout=5,
                             return_when=cf.ALL_COMPLETED)
    assert done == set(ours) | {std} and not not_done


def test_wait_timeout(executor):
    gate = Gate()
    slow = executor.submit(gate)
    t0 = time.monotonic()
    done, not_done = cf.wait([slow], timeout=0.1)
    assert time.monotonic() - t0 >= 0.09
    assert not done and not_done == {slow}
    gate.open()


def test_wait_sees_a_cancelled_future_once_notified(single):
    gate = Gate()
    first = single.submit(gate)
    assert gate.started.wait(5)
    queued = single.submit(abs, 1)
    assert queued.cancel()
    threading.Timer(0.05, gate.open).start()
    done, not_done = cf.wait([queued], timeout=5)
    assert done == {queued}
    assert queued._state == cfbase.CANCELLED_AND_NOTIFIED
    first.result()


def test_as_completed(executor):
    delays = [0.2, 0.0, 0.05]
    futs = [executor.submit(lambda d=d: (time.sleep(d), d)[1])
            for d in delays]
    order = [f.result() for f in cf.as_completed(futs, timeout=5)]
    assert sorted(order) == sorted(delays)
    assert order[-1] == 0.2


def test_as_completed_timeout(executor):
    gate = Gate()
    slow = executor.submit(gate)
    fast = executor.submit(abs, -2)
    fast.result()
    got = []
    with pytest.raises(cf.TimeoutError):
        for f in cf.as_completed([slow, fast], timeout=0.1):
            got.append(f)
    assert got == [fast]
    gate.open()
    # as_completed removed its waiter from the futures it gave up on.
    assert slow._waiters == []


def test_as_completed_duplicates(executor):
    f = executor.submit(abs, -3)
    assert list(cf.as_completed([f, f])) == [f]


def test_as_completed_frees_yielded_futures(executor):
    class Obj:
        pass

    futs = [executor.submit(Obj) for _ in range(5)]
    refs = [weakref.ref(f) for f in futs]
    for f in cf.as_completed(futs):
        pass
    del futs, f
    gc.collect()
    assert all(r() is None for r in refs)


# --------------------------------------------------------------------------
# asyncio


def test_wrap_future(executor):
    async def main():
        ok = await asyncio.wrap_future(executor.submit(pow, 2, 5))
        with pytest.raises(ZeroDivisionError):
            await asyncio.wrap_future(executor.submit(lambda: 1 / 0))
        return ok

    assert asyncio.run(main()) == 32


def test_run_in_executor(executor):
    async def main():
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *[loop.run_in_executor(executor, pow, i, 2) for i in range(50)])
        return results

    assert asyncio.run(main()) == [i * i for i in range(50)]


def test_default_executor_and_to_thread(ftp):
    ex = ftp.ThreadPoolExecutor(max_workers=2, thread_name_prefix="aio")

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ex)
        name = await asyncio.to_thread(
            lambda: threading.current_thread().name)
        many = await asyncio.gather(
            *[loop.run_in_executor(None, abs, -i) for i in range(100)])
        return name, many

    # asyncio.run() shuts the default executor down at the end.
    name, many = asyncio.run(main())
    assert name.startswith("aio_")
    assert many == list(range(100))
    assert ex._shutdown


def test_cancelling_the_asyncio_future_cancels_ours(single):
    gate = Gate()
    blocker = single.submit(gate)
    assert gate.started.wait(5)
    ran = []

    async def main():
        loop = asyncio.get_running_loop()
        cfut = single.submit(ran.append, 1)
        afut = asyncio.wrap_future(cfut)
        afut.cancel()
        await asyncio.sleep(0.05)
        return cfut

    cfut = asyncio.run(main())
    assert cfut.cancelled()
    gate.open()
    blocker.result(timeout=5)
    single.submit(id, 0).result(timeout=5)
    assert ran == []


def test_reference_cycles_are_collected(executor):
    def job():
        raise ValueError("cycle")

    f = executor.submit(job)
    exc = f.exception(timeout=5)
    exc.future = f  # future -> exception -> future
    f.add_done_callback(lambda _: None)
    f.extra = f     # and through the instance __dict__
    ref = weakref.ref(f)
    del f, exc
    gc.collect()
    assert ref() is None
