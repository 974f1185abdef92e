"""Dask: a real distributed scheduler, worker and client in this process, the
worker running its tasks on our ThreadPoolExecutor
(distributed.Worker(executor=...)).  Results, a task's exception, and the
worker's shutdown of our executor."""
import asyncio
import contextlib
import logging
import sysconfig
import threading

import pytest

import dask
import distributed  # installed by tools/install-deps.sh

import fastthreadpool

PREFIX = "ftp-dask"


@pytest.fixture(autouse=True)
def _quiet_dask():
    # distributed logs every start and stop at INFO.
    logger = logging.getLogger("distributed")
    old = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(old)


# The worker's statistical profiler reads the frames of other running
# threads (sys._current_frames()), which crashes free-threaded CPython 3.13
# in distributed/profile.py whatever executor runs the tasks: off there.
PROFILE = not sysconfig.get_config_var("Py_GIL_DISABLED")


@contextlib.asynccontextmanager
async def cluster(executor, nthreads):
    with dask.config.set({"distributed.worker.profile.enabled": PROFILE}):
        async with _cluster(executor, nthreads) as scw:
            yield scw


@contextlib.asynccontextmanager
async def _cluster(executor, nthreads):
    async with distributed.Scheduler(host="127.0.0.1", port=0,
                                     dashboard=False) as s:
        async with distributed.Worker(s.address, nthreads=nthreads,
                                      executor=executor) as w:
            async with distributed.Client(s.address,
                                          asynchronous=True) as c:
                yield s, w, c


def run(coro, timeout=90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def square_and_thread(x):
    return x * x, threading.current_thread().name


def fail(x):
    raise ValueError("task %d failed" % x)


@pytest.mark.deadline(120)
def test_thousands_of_tasks_run_on_our_executor():
    ex = fastthreadpool.ThreadPoolExecutor(2, thread_name_prefix=PREFIX)
    n = 2000

    async def main():
        async with cluster(ex, 2) as (s, w, c):
            assert w.executor is ex
            futures = c.map(square_and_thread, range(n))
            results = await c.gather(futures)
            # A graph: each task depends on two others.
            total = c.submit(sum, [c.submit(lambda a, b: a + b, i, i + 1)
                                   for i in range(200)])
            return results, await total

    results, total = run(main())
    assert [r for r, _ in results] == [i * i for i in range(n)]
    names = {name for _, name in results}
    assert names and all(name.startswith(PREFIX + "_") for name in names)
    assert total == sum(2 * i + 1 for i in range(200))


@pytest.mark.deadline(120)
def test_a_failing_task_raises_its_exception_in_the_client():
    ex = fastthreadpool.ThreadPoolExecutor(2, thread_name_prefix=PREFIX)

    async def main():
        async with cluster(ex, 2) as (s, w, c):
            bad = c.submit(fail, 42)
            with pytest.raises(ValueError, match="task 42 failed"):
                await bad
            assert bad.status == "error"
            tb = await bad.traceback()
            # The traceback that reaches the client ends in the task.
            frames = []
            while tb is not None:
                frames.append(tb.tb_frame.f_code.co_name)
                tb = tb.tb_next
            assert frames[-1] == "fail"
            # The worker goes on with the next tasks.
            good = c.map(square_and_thread, range(50))
            return [r for r, _ in await c.gather(good)]

    assert run(main()) == [i * i for i in range(50)]


@pytest.mark.deadline(120)
def test_closing_the_worker_shuts_our_executor_down():
    ex = fastthreadpool.ThreadPoolExecutor(3, thread_name_prefix=PREFIX)

    async def main():
        async with cluster(ex, 3) as (s, w, c):
            await c.gather(c.map(square_and_thread, range(300)))
            assert not ex._shutdown
            threads = set(ex._threads)
            assert threads and all(t.is_alive() for t in threads)
        return threads

    threads = run(main())
    # Worker.close() called shutdown(wait=True): the flag is set and every
    # worker thread has ended.
    assert ex._shutdown
    for t in threads:
        t.join(5)
        assert not t.is_alive(), t.name
    with pytest.raises(RuntimeError):
        ex.submit(abs, -1)
