"""Making and shutting down executors and pools does not make the heap
grow.  The name strings the C code looks attributes up with must be
interned: CPython keeps recent lookup names alive in its type attribute
cache, one slot per name object, so a fresh string per call kept up to
4096 of them alive (about 60 bytes each)."""
import gc
import time
import tracemalloc

import pytest

CYCLES = 150
# Bytes per cycle; fresh name strings cost 100-300 here.
LIMIT = 40


def growth(cycle):
    for _ in range(10):
        cycle()
    gc.collect()
    time.sleep(0.05)
    gc.collect()
    tracemalloc.start(1)
    try:
        for _ in range(5):
            cycle()
        gc.collect()
        time.sleep(0.05)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(CYCLES):
            cycle()
        gc.collect()
        time.sleep(0.05)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / CYCLES


def test_executor_cycles_do_not_grow(ftp):
    def cycle():
        ex = ftp.ThreadPoolExecutor(2)
        fs = [ex.submit(int, 1) for _ in range(5)]
        assert [f.result() for f in fs] == [1] * 5
        ex.shutdown(wait=True)

    assert growth(cycle) < LIMIT


def test_pool_cycles_do_not_grow(ftp):
    def cycle():
        pool = ftp.Pool(2)
        for _ in range(5):
            pool.submit(int, 1)
        pool.shutdown()
        assert list(pool.done) == [1] * 5

    assert growth(cycle) < LIMIT
