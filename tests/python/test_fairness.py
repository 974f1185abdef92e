"""Busy workers leave the other threads their share of the interpreter.

With the GIL, a thread that wants it asks the holder to let go after the
switch interval; a worker that runs job after job must honour that request
(and never defeat it), whether its jobs are Python functions or C
functions that run no bytecode at all.
"""
import threading
import time

import pytest


def _main_thread_sleeps(n=20):
    """Seconds for n short sleeps, each of which must take the GIL back."""
    t0 = time.monotonic()
    for _ in range(n):
        time.sleep(0.002)
    return time.monotonic() - t0


@pytest.mark.deadline(60)
@pytest.mark.parametrize("kind", ["pool", "executor"])
def test_job_resubmitting_itself_leaves_other_threads_running(ftp, kind):
    # One worker always has a Python job to run: each submits the next.
    stop = threading.Event()
    if kind == "pool":
        pool = ftp.Pool(1, done_callback=False)
    else:
        pool = ftp.ThreadPoolExecutor(1)

    def again():
        if not stop.is_set():
            pool.submit(again)

    pool.submit(again)
    try:
        elapsed = _main_thread_sleeps()
    finally:
        stop.set()
    if kind == "pool":
        assert pool.shutdown(10) is True
    else:
        pool.shutdown()
    # 20 sleeps of 2 ms, each followed by at most a few switch intervals
    # (5 ms) of waiting for the GIL: well under a second, not "never".
    assert elapsed < 2.0


@pytest.mark.deadline(60)
def test_queue_of_c_jobs_leaves_other_threads_running(ftp):
    # Jobs that are C functions run no bytecode, so nothing in them
    # hands the GIL over: the worker must, between jobs.
    pool = ftp.Pool(1, done_callback=False)
    gate = threading.Event()
    pool.submit(gate.wait, 10)
    for _ in range(2_000_000):
        pool.submit(abs, -1)
    gate.set()
    # Each sleep takes the GIL back: with it handed over within a switch
    # interval or so, five of them end long before 2 million jobs have
    # run; a starved thread gets it back only when the queue is empty.
    sleeps = 0
    while sleeps < 5 and pool.pending > 0:
        time.sleep(0.002)
        sleeps += 1
    assert pool.shutdown(60) is True
    assert sleeps == 5, "the main thread waited until the queue drained"
