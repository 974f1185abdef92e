"""os.fork() while a pool is under load.

test_interp_exit.py forks beside one blocked job; here other threads are
submitting, jobs are running and timers are armed at the moment of the
fork, so engine locks may be held: the child must still be able to create
and use a new pool (with a timer and a Semaphore), and the parent's pool
must keep working and lose nothing.
"""
import os
import textwrap
import signal
import threading
import time

import pytest

from conftest import STRESS, run_script, wait_until

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


# The parent's pools and executors, busy at the fork (each job submits the
# next), with a timer armed: in the child none of their worker threads
# exist.
INHERITED = """
import os, sys, threading, time
import fastthreadpool
from fastthreadpool import Pool, ThreadPoolExecutor

pool = Pool(2)
ex = ThreadPoolExecutor(1)
stop = threading.Event()

def pool_again():
    if not stop.is_set():
        pool.submit(pool_again)

def ex_again():
    if not stop.is_set():
        ex.submit(ex_again)

pool.submit(pool_again)
ex.submit(ex_again)
pool.submit_later(30, print, "timer fired")
time.sleep(0.05)
sys.stdout.flush()

def wait_child(pid):
    end = time.monotonic() + 5
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return "hung"

def parent_carries_on(status):
    stop.set()
    print("child status", status)
    print("parent ok", ex.submit(lambda: 7).result(3), pool.shutdown(3))
"""


def _run_inherited(child_part):
    proc, _ = run_script(INHERITED + textwrap.dedent(child_part), timeout=30)
    assert "Fatal Python error" not in proc.stderr, proc.stderr
    return proc


def test_child_exit_skips_the_parents_pools():
    # A forked child that leaves through the normal interpreter exit runs
    # threading's exit hook and atexit: they must not wait for the
    # parent's workers, which do not exist in the child.
    proc = _run_inherited("""
        pid = os.fork()
        if pid == 0:
            print("child exits", flush=True)
            sys.exit(0)
        parent_carries_on(wait_child(pid))
    """)
    assert "child exits" in proc.stdout
    assert "child status 0" in proc.stdout, proc.stdout + proc.stderr
    assert "parent ok 7 True" in proc.stdout, proc.stderr


def test_multiprocessing_fork_child_exits():
    # multiprocessing's forked children run threading's exit hook before
    # they leave (as ProcessPoolExecutor's workers do).
    proc = _run_inherited("""
        import multiprocessing
        p = multiprocessing.get_context("fork").Process(target=print,
                                                        args=("in child",))
        p.start()
        p.join(5)
        alive = p.is_alive()
        if alive:
            p.kill()
            p.join()
        parent_carries_on("hung" if alive else p.exitcode)
    """)
    assert "in child" in proc.stdout
    assert "child status 0" in proc.stdout, proc.stdout + proc.stderr
    assert "parent ok 7 True" in proc.stdout, proc.stderr


def test_child_refuses_the_parents_pools_and_makes_new_ones():
    # The parent's objects cannot run anything in the child: they say so
    # instead of queueing work nobody runs.  New ones work, and dropping
    # the inherited ones costs no wait.
    proc = _run_inherited("""
        pid = os.fork()
        if pid == 0:
            code = 0
            for name, call in (("submit", lambda: pool.submit(print)),
                               ("map", lambda: pool.map(print, [1])),
                               ("shutdown", lambda: pool.shutdown(1)),
                               ("executor", lambda: ex.submit(print))):
                try:
                    call()
                    print(name, "accepted", flush=True)
                    code = 1
                except RuntimeError as e:
                    print(name, "refused:", e, flush=True)
                    code = code if "fork" in str(e) else 1
            ex.shutdown()
            del pool, ex
            p2 = Pool(1)
            p2.submit(lambda: 5)
            ok = p2.shutdown(3) is True and list(p2.done) == [5]
            with ThreadPoolExecutor(1) as e2:
                ok = ok and e2.submit(lambda: 6).result(3) == 6
            print("child new ok", ok, flush=True)
            os._exit(code if ok else 2)
        parent_carries_on(wait_child(pid))
    """)
    assert "child new ok True" in proc.stdout, proc.stdout + proc.stderr
    assert "child status 0" in proc.stdout, proc.stdout + proc.stderr
    assert "parent ok 7 True" in proc.stdout, proc.stderr
