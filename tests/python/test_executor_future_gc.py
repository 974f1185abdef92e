"""The executor's futures stay out of the cyclic GC while they cannot be
part of garbage (see "GC tracking" in src/python/future.c), and are tracked
again as soon as they can: no cycle through a future may leak.  On the
free-threaded build they always stay tracked (its collector walks untracked
objects too, and runs more often the fewer are tracked): there the same
tests check that, and that nothing leaks."""
import concurrent.futures as cf
import gc
import sysconfig
import threading
import weakref

import pytest

import fastthreadpool

Future = fastthreadpool._fastthreadpool.Future
# Whether futures that cannot be part of garbage are left untracked.
UNTRACKS = not sysconfig.get_config_var("Py_GIL_DISABLED")


@pytest.fixture
def executor(ftp):
    ex = ftp.ThreadPoolExecutor(max_workers=2)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


def ident(x):
    return x


def boom():
    raise ValueError("boom")


def collected(ref):
    gc.collect()
    return ref() is None


def test_finished_atomic_result_is_untracked(executor):
    futs = [executor.submit(ident, i) for i in range(100)]
    assert [f.result() for f in futs] == list(range(100))
    assert [gc.is_tracked(f) for f in futs] == [not UNTRACKS] * 100
    # A few kinds of results that cannot lead back to the future.
    for value in (None, 1.5, "s", b"b", (1, 2), ()):
        f = executor.submit(ident, value)
        f.result()
        if isinstance(value, tuple) and value:
            # A tuple is untracked by the GC only after a collection.
            gc.collect()
            f = executor.submit(ident, value)
            f.result()
        assert gc.is_tracked(f) is not UNTRACKS, value


class Plain:
    pass


@pytest.mark.parametrize("make", [list, dict, set, lambda: [[]],
                                  lambda: ([],), Plain])
def test_container_result_is_tracked(executor, make):
    f = executor.submit(make)
    f.result()
    assert gc.is_tracked(f)


def test_cycle_through_mutable_result_is_collected(executor):
    f = executor.submit(dict)
    f.result()["future"] = f
    ref = weakref.ref(f)
    del f
    assert collected(ref)


def test_exception_is_tracked_and_collected(executor):
    f = executor.submit(boom)
    assert isinstance(f.exception(), ValueError)
    assert gc.is_tracked(f)
    f.exception().future = f
    ref = weakref.ref(f)
    del f
    assert collected(ref)


def test_attribute_tracks(executor):
    f = executor.submit(ident, 1)
    f.result()
    assert gc.is_tracked(f) is not UNTRACKS
    f.me = f
    assert gc.is_tracked(f)
    ref = weakref.ref(f)
    del f
    assert collected(ref)


def test_dict_access_tracks(executor):
    f = executor.submit(ident, 1)
    f.result()
    f.__dict__["me"] = f
    assert gc.is_tracked(f)
    ref = weakref.ref(f)
    del f
    assert collected(ref)


def test_vars_tracks(executor):
    f = executor.submit(ident, 1)
    f.result()
    vars(f)["me"] = [f]
    ref = weakref.ref(f)
    del f
    assert collected(ref)


def test_attribute_while_pending_tracks(executor):
    gate = threading.Event()
    blocker = executor.submit(gate.wait, 10)
    blocker2 = executor.submit(gate.wait, 10)
    f = executor.submit(ident, 1)
    f.me = f
    gate.set()
    assert f.result() == 1
    assert blocker.result() and blocker2.result()
    assert gc.is_tracked(f)
    ref = weakref.ref(f)
    del f
    assert collected(ref)


def test_done_callback_cycle_is_collected(executor):
    gate = threading.Event()
    blockers = [executor.submit(gate.wait, 10) for _ in range(2)]
    f = executor.submit(ident, 1)
    seen = []

    def cb(fut, _keep=[]):
        seen.append(fut.result())

    # The callback holds the future: a cycle while it is pending.
    cb.__defaults__[0].append(f)
    f.add_done_callback(cb)
    ref = weakref.ref(f)
    del f
    gate.set()
    for b in blockers:
        assert b.result()
    cf.wait(blockers)
    executor.shutdown(wait=True)
    assert seen == [1]
    del cb
    assert collected(ref)


def test_pending_future_is_kept_alive_by_its_job(executor):
    gate = threading.Event()
    blockers = [executor.submit(gate.wait, 10) for _ in range(2)]
    results = []
    f = executor.submit(ident, 7)
    f.add_done_callback(lambda fut: results.append(fut.result()))
    ref = weakref.ref(f)
    del f
    gc.collect()
    assert ref() is not None    # queued: its job holds it
    gate.set()
    executor.shutdown(wait=True)
    assert results == [7]
    assert collected(ref)


def test_condition_and_waiters_track(executor):
    futs = [executor.submit(ident, i) for i in range(10)]
    done, not_done = cf.wait(futs)
    assert len(done) == 10 and not not_done
    assert all(gc.is_tracked(f) for f in futs)
    f = executor.submit(ident, 1)
    f.result()
    f._condition
    assert gc.is_tracked(f)


def test_set_running_by_hand_tracks(executor):
    gate = threading.Event()
    blockers = [executor.submit(gate.wait, 10) for _ in range(2)]
    f = executor.submit(ident, 1)
    assert f.set_running_or_notify_cancel()
    assert gc.is_tracked(f)
    f.add_done_callback(lambda fut, keep=[f]: None)
    gate.set()
    for b in blockers:
        assert b.result()
    executor.shutdown(wait=True)
    assert f.running()
    ref = weakref.ref(f)
    del f
    assert collected(ref)


def test_cancelled_future_untracked_and_collected(executor):
    gate = threading.Event()
    blockers = [executor.submit(gate.wait, 10) for _ in range(2)]
    f = executor.submit(ident, 1)
    assert f.cancel()
    gate.set()
    executor.shutdown(wait=True)
    assert f.cancelled()
    assert gc.is_tracked(f) is not UNTRACKS
    f.me = f
    ref = weakref.ref(f)
    del f
    assert collected(ref)


def test_subclass_instances_stay_tracked(ftp):
    class Sub(Future):
        pass

    class Ex(ftp.ThreadPoolExecutor):
        _ftp_future = Sub

    ex = Ex(max_workers=1)
    try:
        f = ex.submit(ident, 1)
        assert f.result() == 1
        assert type(f) is Sub
        assert gc.is_tracked(f)
    finally:
        ex.shutdown()


def test_plain_future_is_tracked():
    f = Future()
    assert gc.is_tracked(f)
    f.set_result(1)
    assert gc.is_tracked(f)


def test_asyncio_sees_a_concurrent_future(executor):
    import asyncio

    f = executor.submit(ident, 3)
    # Answered by a class attribute, as by its absence: not an asyncio
    # future, so asyncio wraps it.
    assert Future._asyncio_future_blocking is None
    assert not asyncio.isfuture(f)

    async def main():
        return await asyncio.wrap_future(f)

    assert asyncio.run(main()) == 3


def test_queued_call_arguments(executor):
    gate = threading.Event()
    blockers = [executor.submit(gate.wait, 10) for _ in range(2)]
    atomic = executor.submit(ident, 1)
    holding = executor.submit(ident, [1])
    # Queued: the arguments are kept; a tuple of atomic ones is untracked
    # (as the GC itself would make it), one holding a list is not.
    assert gc.is_tracked(atomic._ftp_args) is not UNTRACKS
    assert gc.is_tracked(holding._ftp_args)
    gate.set()
    assert atomic.result() == 1 and holding.result() == [1]
    for b in blockers:
        assert b.result()
