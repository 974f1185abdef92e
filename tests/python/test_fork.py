"""os.fork() while a pool is under load.

test_interp_exit.py forks beside one blocked job; here other threads are
submitting, jobs are running and timers are armed at the moment of the
fork, so engine locks may be held: the child must still be able to create
and use a new pool (with a timer and a Semaphore), and the parent's pool
must keep working and lose nothing.
"""
import os
import signal
import threading
import time

import pytest

from conftest import STRESS, wait_until

FORKS = 40 if STRESS else 4
CHILD_TIMEOUT = float(os.environ.get("FTPOOL_FORK_TIMEOUT", "10"))


def _child(ftp):
    """Runs in the forked child; returns the exit status."""
    pool = ftp.Pool(2)
    for i in range(100):
        pool.submit(lambda x: x * 2, i)
    fired = threading.Event()
    pool.submit_later(0.01, fired.set)
    sem = ftp.Semaphore(0)
    pool.submit(sem.release)
    if not sem.acquire(True, 5):
        return 3
    if not fired.wait(5):
        return 4
    if pool.shutdown(5) is not True:
        return 5
    if sorted(x for x in pool.done if x is not None) != \
            [2 * i for i in range(100)]:
        return 6
    return 0


def _wait_child(pid, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


@pytest.mark.deadline(CHILD_TIMEOUT * FORKS + 20)
def test_fork_while_submitting_running_and_timing(ftp, make_pool):
    ran = []            # (submitter, index) of every run
    submitted = [0, 0]
    timers = [0, 0]
    pool = make_pool(3, done_callback=False)
    stop = threading.Event()

    def submitter(k):
        i = 0
        while not stop.is_set():
            pool.submit(ran.append, (k, i))
            i += 1
            if i % 200 == 0:
                pool.submit_later(0.001, ran.append, (k + 2, i))
                timers[k] += 1
            if i % 1000 == 0:
                time.sleep(0.001)   # let the workers catch up
        submitted[k] = i

    threads = [threading.Thread(target=submitter, args=(k,)) for k in (0, 1)]
    armed = pool.schedule(0.001, lambda: None)
    for t in threads:
        t.start()
    statuses = []
    for _ in range(FORKS):
        time.sleep(0.02)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(ftp)
            finally:
                os._exit(code)
        statuses.append(_wait_child(pid, CHILD_TIMEOUT))
    stop.set()
    for t in threads:
        t.join(20)
    assert all(s is not None for s in statuses), "a forked child hung"
    assert [os.WEXITSTATUS(s) if os.WIFEXITED(s) else -os.WTERMSIG(s)
            for s in statuses] == [0] * FORKS
    # The parent's pool kept working through every fork and lost nothing.
    assert armed.cancel() is True
    assert wait_until(lambda: len(pool.delayed) == 0, 3)
    assert pool.shutdown(10) is True
    assert min(submitted) > 0
    assert len(ran) == len(set(ran)), "a job ran twice"
    assert len(ran) == sum(submitted) + sum(timers)
    pool.submit(ran.append, None)
    assert pool.shutdown(5) is True
    assert ran[-1] is None
