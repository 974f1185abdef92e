"""ResultQueue, the type of Pool.done and Pool.failed: deque-like behaviour,
and done_cnt/failed_cnt following every removal (popleft, pop, clear,
as_completed), which is what releases a done_max limit."""
import collections
import threading

import pytest

from conftest import wait_until


def ident(x):
    return x


def fail(x):
    raise ValueError(x)


@pytest.fixture
def queue(ftp):
    return ftp.ResultQueue()


def test_deque_like_operations(queue):
    assert len(queue) == 0 and not queue
    queue.append(2)
    queue.appendleft(1)
    queue.extend([3, 4])
    assert len(queue) == 4 and queue
    assert list(queue) == [1, 2, 3, 4]
    assert queue[0] == 1 and queue[-1] == 4 and queue[2] == 3
    assert 3 in queue and 9 not in queue
    assert sum(queue) == 10
    assert repr(queue) == "deque([1, 2, 3, 4])"
    assert queue == [1, 2, 3, 4]
    assert queue == collections.deque([1, 2, 3, 4])
    assert queue != [1, 2, 3]
    assert queue.popleft() == 1
    assert queue.pop() == 4
    assert list(queue) == [2, 3]
    queue.clear()
    assert len(queue) == 0
    with pytest.raises(IndexError):
        queue.popleft()
    with pytest.raises(IndexError):
        queue.pop()
    with pytest.raises(IndexError):
        queue[0]
    with pytest.raises(TypeError):
        queue["a"]


def test_queue_grows_and_wraps(queue):
    # Interleave pushes and pops so that the ring buffer wraps around
    # while it grows.
    expected = collections.deque()
    for i in range(5000):
        queue.append(i)
        expected.append(i)
        if i % 3 == 0:
            assert queue.popleft() == expected.popleft()
    assert list(queue) == list(expected)
    assert len(queue) == len(expected)


def test_counter_follows_every_removal(ftp, make_pool):
    pool = make_pool(2)
    for i in range(10):
        pool.submit(ident, i)
    for i in range(4):
        pool.submit(fail, i)
    assert pool.wait_idle(3) is True
    assert pool.done_cnt.value == 10 == len(pool.done)
    assert pool.failed_cnt.value == 4 == len(pool.failed)
    pool.done.popleft()
    pool.done.pop()
    assert pool.done_cnt.value == 8
    pool.done.clear()
    assert pool.done_cnt.value == 0
    pool.failed.popleft()
    assert pool.failed_cnt.value == 3
    got = list(pool.as_completed(False))
    assert len(got) == 3
    assert pool.failed_cnt.value == 0


def test_iteration_is_a_snapshot_while_workers_append(make_pool):
    pool = make_pool(2)
    stop = threading.Event()

    def producer():
        i = 0
        while not stop.is_set() and i < 200000:
            pool.done.append(i)
            i += 1
        return "producer"

    pool.submit_done(producer, False)
    assert wait_until(lambda: len(pool.done) > 100, 3)
    for _ in range(20):
        snap = list(pool.done)
        assert snap == sorted(snap)
    stop.set()
    assert pool.shutdown(3) is True


def test_result_queue_is_not_hashable(queue):
    with pytest.raises(TypeError):
        hash(queue)


class Marker:
    pass


def test_queue_holding_itself_is_collected(ftp):
    import gc
    import weakref

    q = ftp.ResultQueue()
    q.append(q)
    assert repr(q) == "deque([[...]])"
    marker = Marker()
    ref = weakref.ref(marker)
    q.append(marker)
    del q, marker
    gc.collect()
    assert ref() is None
