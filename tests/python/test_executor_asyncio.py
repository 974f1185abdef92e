"""loop.run_in_executor() and asyncio.to_thread() on our executor.

When asyncio's BaseEventLoop.run_in_executor submits to our executor,
submit() returns an asyncio future completed from the worker, instead of a
concurrent.futures Future that asyncio would chain to one.  Every test that
can runs against the standard library's ThreadPoolExecutor too: the two must
behave the same through run_in_executor().
"""
import asyncio
import concurrent.futures as cf
import concurrent.futures.thread as cfthread
import contextvars
import logging
import sys
import threading

import pytest

from conftest import Gate, run_script, wait_until

import fastthreadpool


@pytest.fixture(params=["ours", "stdlib"])
def kind(request):
    return request.param


def make_executor(kind, **kwargs):
    if kind == "ours":
        return fastthreadpool.ThreadPoolExecutor(**kwargs)
    return cf.ThreadPoolExecutor(**kwargs)


@pytest.fixture
def single(kind):
    ex = make_executor(kind, max_workers=1)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def executor(kind):
    ex = make_executor(kind, max_workers=4)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


def test_results_and_loop(executor, kind, monkeypatch):
    # run_in_executor() passes what submit() returned to wrap_future(): our
    # submit() hands it the asyncio future itself, so nothing is chained;
    # the standard executor hands it a concurrent.futures.Future.
    handed = []
    wrap_future = asyncio.futures.wrap_future

    def recording(future, **kwargs):
        handed.append(asyncio.isfuture(future))
        return wrap_future(future, **kwargs)

    monkeypatch.setattr(asyncio.futures, "wrap_future", recording)

    async def main():
        loop = asyncio.get_running_loop()
        futs = [loop.run_in_executor(executor, pow, i, 2) for i in range(200)]
        assert all(asyncio.isfuture(f) and f.get_loop() is loop
                   for f in futs)
        return await asyncio.gather(*futs)

    assert asyncio.run(main()) == [i * i for i in range(200)]
    assert handed == [kind == "ours"] * 200


def test_default_executor_and_to_thread(kind):
    ex = make_executor(kind, max_workers=2, thread_name_prefix="aio")
    var = contextvars.ContextVar("var")

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ex)
        var.set("from the task")
        name, seen = await asyncio.to_thread(
            lambda: (threading.current_thread().name, var.get()))
        many = await asyncio.gather(
            *[loop.run_in_executor(None, abs, -i) for i in range(300)])
        return name, seen, many

    name, seen, many = asyncio.run(main())
    assert name.startswith("aio_")
    assert seen == "from the task"
    assert many == list(range(300))


def test_exception_keeps_its_traceback(executor):
    def fails():
        raise ValueError("boom")

    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(ValueError, match="boom") as info:
            await loop.run_in_executor(executor, fails)
        return info.value

    exc = asyncio.run(main())
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "fails" in frames


@pytest.mark.parametrize("raised, expected", [
    (cf.CancelledError, asyncio.CancelledError),
    (cf.InvalidStateError, asyncio.InvalidStateError),
    (cf.TimeoutError, asyncio.TimeoutError),
    (KeyboardInterrupt, KeyboardInterrupt),
])
def test_concurrent_futures_exceptions_are_converted(executor, raised,
                                                     expected):
    def fails():
        raise raised("converted")

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(executor, fails)
        await asyncio.wait([fut])
        return fut.exception() if not fut.cancelled() else "cancelled"

    exc = asyncio.run(main())
    assert type(exc) is expected
    assert exc.args == ("converted",)


def test_cancelled_before_it_starts_never_runs(single):
    gate = Gate()
    blocker = single.submit(gate)
    assert gate.started.wait(5)
    ran = []

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(single, ran.append, 1)
        fut.cancel()
        await asyncio.sleep(0)
        gate.open()
        await loop.run_in_executor(single, int)     # after the cancelled one
        return fut

    fut = asyncio.run(main())
    assert fut.cancelled()
    blocker.result(timeout=5)
    assert ran == []


def test_cancelled_while_running_is_quiet(single):
    gate = Gate()
    errors = []

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        fut = loop.run_in_executor(single, gate)
        while not gate.started.is_set():
            await asyncio.sleep(0.001)
        fut.cancel()
        gate.open()
        # The call completes; its result has nowhere to go.
        assert await loop.run_in_executor(single, int, "7") == 7
        await asyncio.sleep(0.01)
        return fut

    assert asyncio.run(main()).cancelled()
    assert errors == []


def test_shutdown_cancel_futures_cancels_the_asyncio_futures(single):
    gate = Gate()

    async def main():
        loop = asyncio.get_running_loop()
        first = loop.run_in_executor(single, gate)
        while not gate.started.is_set():
            await asyncio.sleep(0.001)
        queued = [loop.run_in_executor(single, abs, -i) for i in range(5)]
        single.shutdown(wait=False, cancel_futures=True)
        gate.open()
        assert await first == "gate"
        done, _ = await asyncio.wait(queued, timeout=5)
        return queued, done

    queued, done = asyncio.run(main())
    assert len(done) == len(queued)
    assert all(f.cancelled() for f in queued)


def test_submit_after_shutdown_raises(executor):
    executor.shutdown(wait=True)

    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(RuntimeError, match="after shutdown"):
            loop.run_in_executor(executor, int)

    asyncio.run(main())


def test_broken_executor_fails_the_asyncio_future(kind):
    def init():
        raise ValueError("no init")

    ex = make_executor(kind, max_workers=1, initializer=init)
    logging.getLogger("concurrent.futures").disabled = True
    try:
        async def main():
            loop = asyncio.get_running_loop()
            with pytest.raises(cfthread.BrokenThreadPool):
                await loop.run_in_executor(ex, int)
        asyncio.run(main())
    finally:
        logging.getLogger("concurrent.futures").disabled = False
        ex.shutdown(wait=True)


def test_loop_closed_before_the_call_ends(caplog):
    ex = fastthreadpool.ThreadPoolExecutor(max_workers=1)
    gate = Gate()
    loop = asyncio.new_event_loop()
    try:
        fut = loop.run_in_executor(ex, gate)
        assert gate.started.wait(5)
    finally:
        loop.close()
    with caplog.at_level(logging.DEBUG):
        gate.open()
        ex.shutdown(wait=True)
    # Nobody can receive the result: it is dropped without an error.
    assert not fut.done()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_arguments_are_released(executor):
    arg = object()
    before = sys.getrefcount(arg)

    async def main():
        loop = asyncio.get_running_loop()
        for _ in range(50):
            assert await loop.run_in_executor(executor, id, arg) == id(arg)

    asyncio.run(main())
    assert wait_until(lambda: sys.getrefcount(arg) == before)


def test_debug_mode(executor):
    async def main():
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, sum, [1, 2, 3])

    assert asyncio.run(main(), debug=True) == 6


def test_other_callers_get_concurrent_futures(kind):
    """Only asyncio's own run_in_executor() gets an asyncio future: a loop
    that overrides it, a submit() override and plain calls inside a
    coroutine see concurrent.futures Futures as before."""
    seen = []

    class OwnLoop(asyncio.SelectorEventLoop):
        def run_in_executor(self, executor, func, *args):
            cfut = executor.submit(func, *args)
            seen.append(cfut)
            return asyncio.wrap_future(cfut, loop=self)

    class SuperLoop(asyncio.SelectorEventLoop):
        def run_in_executor(self, executor, func, *args):
            return super().run_in_executor(executor, func, *args)

    base = (fastthreadpool.ThreadPoolExecutor if kind == "ours"
            else cf.ThreadPoolExecutor)

    class Logged(base):
        def submit(self, fn, /, *args, **kwargs):
            cfut = super().submit(fn, *args, **kwargs)
            seen.append(cfut)
            return cfut

    async def work(ex):
        loop = asyncio.get_running_loop()
        assert isinstance(ex.submit(abs, -1), cf.Future)
        return await loop.run_in_executor(ex, abs, -2)

    for loop_cls, ex_cls in ((OwnLoop, base), (SuperLoop, base),
                             (asyncio.SelectorEventLoop, Logged)):
        ex = ex_cls(max_workers=2)
        loop = loop_cls()
        try:
            assert loop.run_until_complete(work(ex)) == 2
        finally:
            loop.close()
            ex.shutdown(wait=True)
    # OwnLoop's submission, then Logged's two (the plain one first).
    assert all(isinstance(f, cf.Future) for f in seen)
    assert [f.result() for f in seen] == [2, 1, 2]


def test_explicit_base_method_call(executor):
    async def main():
        loop = asyncio.get_running_loop()
        return await asyncio.BaseEventLoop.run_in_executor(
            loop, executor, divmod, 7, 2)

    assert asyncio.run(main()) == (3, 1)


def test_many_loops_in_threads(kind):
    """Each thread runs its own event loop on one shared executor."""
    ex = make_executor(kind, max_workers=3)
    results = {}

    def thread_main(n):
        async def main():
            loop = asyncio.get_running_loop()
            return await asyncio.gather(
                *[loop.run_in_executor(ex, pow, n, i) for i in range(100)])
        results[n] = asyncio.run(main())

    threads = [threading.Thread(target=thread_main, args=(n,))
               for n in (2, 3, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    ex.shutdown(wait=True)
    assert {n: r for n, r in results.items()} == {
        n: [n ** i for i in range(100)] for n in (2, 3, 5)}


def test_a_run_in_executor_that_does_not_wrap_gets_concurrent_futures():
    """The shortcut is for a run_in_executor() that passes submit()'s result
    to wrap_future(); a replacement that does not is never recognised."""
    proc, _ = run_script("""
        import asyncio, concurrent.futures as cf
        import fastthreadpool

        wrap = getattr(asyncio, "wrap_" + "future")   # not a code name
        got = []

        def run_in_executor(self, executor, func, *args):
            fut = executor.submit(func, *args)
            got.append(fut)
            return wrap(fut, loop=self)

        asyncio.BaseEventLoop.run_in_executor = run_in_executor

        async def main():
            ex = fastthreadpool.ThreadPoolExecutor(max_workers=2)
            loop = asyncio.get_running_loop()
            r = await asyncio.gather(
                *[loop.run_in_executor(ex, abs, -i) for i in range(20)])
            ex.shutdown()
            return r

        assert asyncio.run(main()) == list(range(20))
        assert len(got) == 20
        assert all(type(f) is fastthreadpool._fastthreadpool.Future
                   for f in got), got[0]
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
