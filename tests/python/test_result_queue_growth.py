"""The result queue's ring buffer grows in place: entries that wrapped
around its end must keep their order whatever the growth pattern."""
import collections
import random

import pytest


@pytest.mark.parametrize("seed", range(8))
def test_growth_keeps_order_against_deque(ftp, seed):
    rnd = random.Random(seed)
    queue = ftp.ResultQueue()
    expected = collections.deque()
    n = 0
    for _ in range(3000):
        op = rnd.random()
        if op < 0.35:
            queue.append(n)
            expected.append(n)
        elif op < 0.5:
            queue.appendleft(n)
            expected.appendleft(n)
        elif op < 0.6:
            # A batch that may need several doublings at once.
            batch = list(range(n, n + rnd.randrange(1, 200)))
            queue.extend(batch)
            expected.extend(batch)
        elif op < 0.8 and expected:
            assert queue.popleft() == expected.popleft()
        elif expected:
            assert queue.pop() == expected.pop()
        n += 1
        if rnd.random() < 0.02:
            assert list(queue) == list(expected)
    assert list(queue) == list(expected)
    assert len(queue) == len(expected)
    while expected:
        assert queue.popleft() == expected.popleft()
    assert len(queue) == 0


def test_wrapped_then_grown(ftp):
    queue = ftp.ResultQueue()
    # Fill, empty most of it from the left, then grow past the capacity
    # while the live entries straddle the end of the buffer.
    for size in (16, 32, 64, 1024):
        queue.clear()
        queue.extend(range(size))
        for i in range(size - 3):
            assert queue.popleft() == i
        queue.extend(range(size, 3 * size))
        assert list(queue) == list(range(size - 3, 3 * size))
