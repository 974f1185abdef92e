"""Repeated create/use/shutdown cycles leak nothing: no references, objects,
memory, threads or file descriptors, whatever path the jobs, results,
failures, callbacks and timers take.

A release build of CPython has no sys.gettotalrefcount, so leaks are
measured four ways:

- reference counts of probe objects that travel through every path (the
  callable, its arguments, results, exceptions, callbacks, init_args, the
  extension's own types): a single missing Py_DECREF per cycle shows;
- the number of objects the garbage collector tracks;
- bytes held by Python's allocators (tracemalloc) and, where glibc can
  say, by malloc itself (mallinfo2: the engine allocates with malloc);
- OS threads (/proc/self/task: also threads that threading does not know)
  and open file descriptors.

Memory is measured after a warm-up (free lists and caches fill), in
batches of cycles: a leak grows every batch by the same amount, the
filling of caches less and less.  The byte budget (256 per cycle) is
above what CPython's caches still add after the warm-up; a leaked Pool,
job or result shows in the object count or the reference counts first.
FTPOOL_LEAK_CYCLES sets the batch size (default 60).
"""
import ctypes
import ctypes.util
import gc
import os
import sys
import threading
import time
import tracemalloc

import pytest

from conftest import wait_until

CYCLES = int(os.environ.get("FTPOOL_LEAK_CYCLES", "60"))


class Probe:
    """An object whose reference count is watched."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "Probe(%s)" % self.name


def os_threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def open_fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _mallinfo():
    """Bytes in use by malloc, or None where that cannot be known (not
    glibc, or an interposed malloc such as ASan's or valgrind's, which
    report zero)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        fn = libc.mallinfo2
    except (OSError, AttributeError, TypeError):
        return None

    class MallInfo2(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost")]

    fn.restype = MallInfo2

    def in_use():
        info = fn()
        return info.uordblks + info.hblkhd
    return in_use if in_use() > 0 else None


MALLOC_IN_USE = _mallinfo()


def settle(base_threads):
    """Collect garbage and wait for exiting threads to be gone."""
    def quiet():
        gc.collect()
        return os_threads() <= base_threads
    return wait_until(quiet, 5, 0.005)


def quiesce():
    """Wait until threads left by earlier tests have exited and their
    objects are freed: the thread count stops changing."""
    last, stable = os_threads(), 0
    end = time.monotonic() + 5
    while stable < 3 and time.monotonic() < end:
        time.sleep(0.02)
        gc.collect()
        now = os_threads()
        stable = stable + 1 if now == last else 0
        last = now
    return last


class Meter:
    """Snapshot of everything a leak could grow."""

    def __init__(self):
        gc.collect()
        gc.collect()
        self.objects = len(gc.get_objects())
        self.traced = tracemalloc.get_traced_memory()[0]
        self.malloc = MALLOC_IN_USE() if MALLOC_IN_USE else 0
        self.threads = os_threads()
        self.fds = open_fds()


def _over_budget(before, after, cycles, bytes_per_cycle,
                 objects_per_cycle):
    """What grew past its budget between two Meters ("" if nothing)."""
    problems = []
    grown = after.objects - before.objects
    if grown > cycles * objects_per_cycle:
        problems.append("GC-tracked objects +%d" % grown)
    grown = after.traced - before.traced
    if grown > cycles * bytes_per_cycle:
        problems.append("Python heap +%d bytes" % grown)
    # malloc also serves CPython's large blocks and thread bookkeeping
    # (reused, but not always the same chunk): a looser budget that a
    # leaked engine pool (hundreds of bytes plus its queue) still breaks.
    grown = after.malloc - before.malloc
    if MALLOC_IN_USE and grown > cycles * bytes_per_cycle * 4:
        problems.append("malloc heap +%d bytes" % grown)
    return ", ".join(problems)


def check_no_growth(cycle, cycles=CYCLES, bytes_per_cycle=256,
                    objects_per_cycle=0.5, batches=3):
    """Run cycle() `cycles` times to warm up, then in batches of `cycles`
    until one batch grows nothing past its budget.

    The warm-up fills free lists and caches, including CPython's own,
    which keep growing (slower and slower) for a few hundred cycles; a
    leak grows every batch by the same amount, so it fails all of them.
    The budgets are far below what one leaked object per cycle costs
    (a Pool, a job, a tuple, a result: 56 bytes and up, and at least one
    GC-tracked object for anything that holds references).
    """
    base_threads = quiesce()
    history = []
    tracemalloc.start(1)
    try:
        for _ in range(cycles):
            cycle()
        assert settle(base_threads), threading.enumerate()
        first = before = Meter()
        for _ in range(batches):
            for _ in range(cycles):
                cycle()
            assert settle(base_threads), threading.enumerate()
            after = Meter()
            problem = _over_budget(before, after, cycles, bytes_per_cycle,
                                   objects_per_cycle)
            history.append(problem)
            if not problem:
                break
            before = after
    finally:
        tracemalloc.stop()
    assert not history[-1], "grew in every batch of %d cycles: %s" % (
        cycles, history)
    assert after.threads <= first.threads, (first.threads, after.threads)
    assert after.fds <= first.fds, (first.fds, after.fds)


class Refcounts:
    """sys.getrefcount of a set of objects, before and after."""

    def __init__(self, *objects):
        # A list of our own: the argument tuple of this call is gone once
        # start() measures.
        self.objects = list(objects)
        self.before = None

    def start(self):
        quiesce()
        self.before = [sys.getrefcount(o) for o in self.objects]
        return self

    def assert_unchanged(self):
        def same():
            gc.collect()
            return [sys.getrefcount(o) for o in self.objects] == self.before
        if not wait_until(same, 3, 0.005):
            now = [sys.getrefcount(o) for o in self.objects]
            leaked = {repr(o): b - a for o, a, b in
                      zip(self.objects, self.before, now) if a != b}
            pytest.fail("reference counts changed: %r" % leaked)


def _pool_cycle(ftp, p, **pool_kwargs):
    """One full life of a Pool, with every probe passed through it."""
    pool = ftp.Pool(2, init_callback=p["init"], init_args=(p["init_arg"],),
                    finish_callback=p["finish"], **pool_kwargs)
    pool.submit(p["fn"], p["arg"], key=p["kwarg"])
    pool.submit_first(p["fn"], p["arg"])
    pool.submit_done(p["fn"], p["done"], p["arg"])
    pool.submit_done(p["fn"], False, p["arg"])
    pool.submit(p["fail"], p["arg"])
    pool.submit(p["gen"], p["arg"])
    pool.map(p["fn"], [p["arg"], (p["arg"],)], done_callback=p["done"])
    pool.map(p["fn"], [p["arg"]], direct=False)
    pool.submit_later(0.001, p["fn"], p["arg"])
    armed = pool.submit_later(30, p["fn"], p["arg"])
    ran = threading.Event()
    sched = pool.schedule(0.001, p["mark"], ran, p["arg"])
    assert ran.wait(3)
    assert pool.cancel(False, sched) is True
    assert armed.cancel() is True
    assert pool.wait_idle(3) is True
    if "done_callback" not in pool_kwargs:
        list(pool.as_completed(wait=False))
    pool.failed.clear()
    pool.submit(p["fn"], p["arg"])
    assert pool.shutdown(3) is True
    # A pool that is dropped without shutdown, with results still stored.
    pool = ftp.Pool(1, result_id=True, exc_stack=True, exc_args=True)
    pool.submit(p["fn"], p["arg"])
    pool.submit(p["fail"], p["arg"])
    assert pool.wait_idle(3) is True
    del pool


def _probes():
    arg, kwarg, result, init_arg = (Probe(n) for n in
                                    ("arg", "kwarg", "result", "init_arg"))

    def fn(a, key=None):
        return result

    def fail(a):
        raise ValueError(a)

    def gen(a):
        yield result
        yield a

    def done(r):
        pass

    def init(thread, x):
        pass

    def finish():
        pass

    def mark(event, a):
        event.set()
        return result

    return dict(arg=arg, kwarg=kwarg, result=result, init_arg=init_arg,
                fn=fn, fail=fail, gen=gen, done=done, init=init,
                finish=finish, mark=mark)


@pytest.mark.deadline(60)
def test_pool_cycles_release_every_reference(ftp):
    p = _probes()
    callbacks = {"done_callback": lambda r: None,
                 "failed_callback": lambda e: None}
    for kwargs in ({}, callbacks):
        _pool_cycle(ftp, p, **kwargs)
    counts = Refcounts(*p.values(), *callbacks.values(), ftp.Pool,
                       ftp.TimerObj, ftp.ResultQueue,
                       ftp.Semaphore).start()
    for _ in range(5):
        for kwargs in ({}, callbacks):
            _pool_cycle(ftp, p, **kwargs)
    counts.assert_unchanged()


@pytest.mark.deadline(60)
def test_pool_cycles_do_not_grow_memory_or_threads(ftp):
    p = _probes()
    callbacks = {"done_callback": lambda r: None,
                 "failed_callback": lambda e: None}
    flip = [0]

    def cycle():
        flip[0] ^= 1
        _pool_cycle(ftp, p, **(callbacks if flip[0] else {}))

    check_no_growth(cycle, cycles=max(4, CYCLES // 2))


@pytest.mark.deadline(60)
def test_many_jobs_through_one_pool_cycle_do_not_grow_memory(ftp):
    # The per-job path (job structs, argument tuples, results) repeated
    # many times per cycle: a leak per job is multiplied by 2000.
    result = Probe("result")

    def cycle():
        pool = ftp.Pool(2, done_callback=False)
        for i in range(1000):
            pool.submit(int, i)
        pool.map(lambda x: result, range(1000))
        assert pool.shutdown(3) is True

    counts = Refcounts(result, ftp.Pool).start()
    check_no_growth(cycle, cycles=max(4, CYCLES // 4), bytes_per_cycle=512)
    counts.assert_unchanged()


@pytest.mark.deadline(60)
def test_semaphore_cycles(ftp):
    def cycle():
        sem = ftp.Semaphore(2)
        assert sem.acquire() is True
        with sem:
            assert sem.acquire(False) is False
            assert sem.acquire(True, 0.001) is False
        got = []
        waiter = threading.Thread(target=lambda: got.append(
            sem.acquire(True, 3)))
        assert sem.acquire(True, 1) is True
        waiter.start()
        time.sleep(0.001)
        sem.release(2)
        waiter.join(3)
        assert got == [True]
        with pytest.raises(ValueError):
            sem.release(-1)
        del sem

    counts = Refcounts(ftp.Semaphore).start()
    check_no_growth(cycle, cycles=CYCLES * 2)
    counts.assert_unchanged()


@pytest.mark.deadline(60)
def test_executor_cycles(ftp):
    executor_type = ftp.ThreadPoolExecutor
    arg, result = Probe("arg"), Probe("result")

    def fn(a, key=None):
        return result

    def fail(a):
        raise ValueError(a)

    def init(x):
        pass

    def cycle():
        ex = executor_type(2, initializer=init, initargs=(arg,))
        futures = [ex.submit(fn, arg, key=arg) for _ in range(5)]
        futures.append(ex.submit(fail, arg))
        assert list(ex.map(fn, [arg, arg])) == [result, result]
        assert [f.result(3) for f in futures[:5]] == [result] * 5
        assert isinstance(futures[5].exception(3), ValueError)
        blocker = threading.Event()
        ex.submit(blocker.wait, 3)
        queued = [ex.submit(fn, arg) for _ in range(3)]
        blocker.set()
        for f in queued:
            f.cancel()
        ex.shutdown(wait=True)
        del futures, queued, ex

    for _ in range(2):
        cycle()
    counts = Refcounts(arg, result, fn, fail, init,
                       executor_type).start()
    check_no_growth(cycle, cycles=CYCLES)
    counts.assert_unchanged()
