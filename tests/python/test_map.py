"""Pool.map: an item is unpacked only if it is a tuple, decided per item
(unpack_args=True always unpacks, False never); any iterable, generators
too; direct=False runs as pool jobs sharing one iterator, within
max_children; done_callback modes as for submit_done."""
import threading
import time

import pytest

from conftest import Gate


def ident(*a):
    return a[0] if len(a) == 1 else a


def add(a, b):
    return a + b


def collect(pool, timeout=3):
    assert pool.shutdown(timeout) is True
    return list(pool.done), list(pool.failed)


def test_map_returns_none_and_results_arrive(make_pool):
    pool = make_pool(2)
    assert pool.map(ident, range(100)) is None
    done, failed = collect(pool)
    assert sorted(done) == list(range(100))
    assert failed == []


def test_map_one_worker_keeps_input_order(make_pool):
    pool = make_pool(1)
    pool.map(ident, range(50))
    done, _ = collect(pool)
    assert done == list(range(50))


def test_map_tuples_are_unpacked(make_pool):
    pool = make_pool(2)
    pool.map(add, [(1, 2), (3, 4), (5, 6)])
    done, failed = collect(pool)
    assert sorted(done) == [3, 7, 11]
    assert failed == []


@pytest.mark.parametrize("items, fn, expected", [
    (["abc", "de", ""], len, [0, 2, 3]),
    ([b"xy", b"z"], len, [1, 2]),
    ([[1, 2, 3], [4]], sum, [4, 6]),
    ([{1: 2, 3: 4}], len, [2]),
    ([frozenset({1, 2})], len, [2]),
    ([range(3)], len, [3]),
])
def test_non_tuple_iterables_are_not_unpacked(make_pool, items, fn,
                                               expected):
    pool = make_pool(2)
    pool.map(fn, items)
    done, failed = collect(pool)
    assert failed == []
    assert sorted(done) == expected


def test_unpacking_is_decided_per_item(make_pool):
    pool = make_pool(1)
    pool.map(ident, [1, (2, 3), "ab", (4,), [5, 6]])
    done, failed = collect(pool)
    assert failed == []
    assert done == [1, (2, 3), "ab", 4, [5, 6]]


def test_first_item_does_not_decide_for_the_rest(make_pool):
    pool = make_pool(1)
    pool.map(ident, ["abc", (1, 2)])
    done, failed = collect(pool)
    assert failed == []
    assert done == ["abc", (1, 2)]
    pool2 = make_pool(1)
    pool2.map(add, [(1, 2), 3], unpack_args=None)
    done, failed = collect(pool2)
    assert done == [3]
    assert len(failed) == 1 and isinstance(failed[0], TypeError)


def test_unpack_true_always_unpacks(make_pool):
    pool = make_pool(1)
    pool.map(add, [[1, 2], "ab", (3, 4)], unpack_args=True)
    done, failed = collect(pool)
    assert done == [3, "ab", 7]
    assert failed == []


def test_unpack_false_never_unpacks(make_pool):
    pool = make_pool(1)
    pool.map(ident, [(1, 2), (3,)], unpack_args=False)
    done, failed = collect(pool)
    assert done == [(1, 2), (3,)]
    assert failed == []


def _gen_items(n):
    for i in range(n):
        yield i


class OnlyIter:
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))


@pytest.mark.parametrize("make_items", [
    lambda: _gen_items(30),
    lambda: (i for i in range(30)),
    lambda: iter(list(range(30))),
    lambda: OnlyIter(30),
    lambda: set(range(30)),
    lambda: dict.fromkeys(range(30)),
    lambda: dict.fromkeys(range(30)).keys(),
    lambda: map(int, range(30)),
])
def test_any_iterable(make_pool, make_items):
    pool = make_pool(3)
    pool.map(ident, make_items())
    done, failed = collect(pool)
    assert failed == []
    assert sorted(done) == list(range(30))


@pytest.mark.parametrize("direct", [True, False])
def test_empty_iterable(make_pool, direct):
    pool = make_pool(2)
    pool.map(ident, [], direct=direct)
    pool.map(ident, iter(()), direct=direct)
    done, failed = collect(pool)
    assert done == [] and failed == []


def test_large_map_sum(make_pool):
    pool = make_pool(4)
    pool.map(ident, range(50000))
    done, failed = collect(pool, 5)
    assert len(done) == 50000
    assert sum(done) == sum(range(50000))


def test_generator_function(make_pool):
    def g(x):
        yield x
        yield x * 100

    pool = make_pool(2)
    pool.map(g, [1, 2, 3])
    done, failed = collect(pool)
    assert sorted(done) == [1, 2, 3, 100, 200, 300]


def test_generator_function_failing_midway(make_pool):
    def g(x):
        yield x
        if x == 2:
            raise ValueError(x)
        yield -x

    pool = make_pool(1, exc_args=True)
    pool.map(g, [1, 2, 3])
    done, failed = collect(pool)
    assert done == [1, -1, 2, 3, -3]
    (entry,) = failed
    assert isinstance(entry[0], ValueError)
    assert entry[1:] == (2, {})


@pytest.mark.parametrize("direct", [True, False])
def test_done_callback_false_discards(make_pool, direct):
    ran = []
    lock = threading.Lock()

    def f(x):
        with lock:
            ran.append(x)
        return x

    pool = make_pool(2)
    pool.map(f, range(20), done_callback=False, direct=direct)
    done, failed = collect(pool)
    assert done == [] and failed == []
    assert sorted(ran) == list(range(20))


@pytest.mark.parametrize("direct", [True, False])
def test_done_callback_callable_runs_in_worker(make_pool, direct):
    got = []
    lock = threading.Lock()
    main = threading.current_thread()

    def cb(r):
        with lock:
            got.append((r, threading.current_thread()))

    pool = make_pool(2, child_name_prefix="mapcb")
    pool.map(ident, range(20), done_callback=cb, direct=direct)
    done, failed = collect(pool)
    assert done == [] and failed == []
    assert sorted(r for r, _ in got) == list(range(20))
    for _, t in got:
        assert t is not main
        assert t.name.startswith("mapcb-")


def test_done_callback_none_stores(make_pool):
    pool = make_pool(2)
    pool.map(ident, range(10), done_callback=None)
    done, _ = collect(pool)
    assert sorted(done) == list(range(10))


@pytest.mark.parametrize("bad", [5, "x", 2.0, [1]])
def test_done_callback_wrong_type_is_type_error(make_pool, bad):
    pool = make_pool(2)
    with pytest.raises(TypeError):
        pool.map(ident, range(10), done_callback=bad)
    done, failed = collect(pool)
    assert done == [] and failed == []


def test_map_ignores_pool_done_callback_false(make_pool):
    pool = make_pool(2, done_callback=False)
    pool.map(ident, range(10))
    done, _ = collect(pool)
    assert sorted(done) == list(range(10))


@pytest.mark.parametrize("result_id", [False, True])
@pytest.mark.parametrize("exc_args", [False, True])
def test_map_failures_and_unwrapped_results(make_pool, result_id, exc_args):
    def f(x):
        if x % 3 == 0:
            raise ValueError(x)
        return x

    pool = make_pool(1, result_id=result_id, exc_args=exc_args)
    pool.map(f, range(9))
    done, failed = collect(pool)
    assert done == [1, 2, 4, 5, 7, 8], "map results are never wrapped"
    assert len(failed) == 3
    for entry, item in zip(failed, [0, 3, 6]):
        if result_id and exc_args:
            assert entry[0] == 0
            assert isinstance(entry[1], ValueError)
            assert entry[2] == item and entry[3] == {}
        elif result_id:
            assert entry[0] == 0 and len(entry) == 2
            assert isinstance(entry[1], ValueError)
        elif exc_args:
            assert isinstance(entry[0], ValueError)
            assert entry[1] == item and entry[2] == {}
        else:
            assert isinstance(entry, ValueError)
            assert entry.args == (item,)


def test_map_failure_args_slot_is_the_raw_item(make_pool):
    pool = make_pool(1, exc_args=True)

    def f(a, b):
        raise KeyError(a)

    pool.map(f, [(1, 2)])
    _, failed = collect(pool)
    (entry,) = failed
    assert entry[1] == (1, 2)
    assert entry[2] == {}


def test_map_exc_stack(make_pool):
    def explode(x):
        raise ValueError("kaboom")

    pool = make_pool(1, exc_stack=True)
    pool.map(explode, [1])
    _, failed = collect(pool)
    (tb,) = failed
    assert isinstance(tb, str)
    assert tb.startswith("Traceback (most recent call last):")
    assert "explode" in tb and "ValueError: kaboom" in tb


def test_direct_false_respects_max_children(make_pool):
    pool = make_pool(2)
    peak = []
    lock = threading.Lock()
    active = [0]

    def f(x):
        with lock:
            active[0] += 1
            peak.append(active[0])
        time.sleep(0.001)
        with lock:
            active[0] -= 1
        return x

    pool.map(f, range(60), direct=False)
    assert pool.child_cnt <= 2
    for i in range(10):
        pool.submit(f, 100 + i)
    assert pool.child_cnt <= 2
    assert pool.wait_idle(3) is True
    assert pool.child_cnt <= 2
    assert max(peak) <= 2
    assert pool.busy == 0
    done, failed = collect(pool)
    assert sorted(done) == list(range(60)) + list(range(100, 110))
    assert pool.child_cnt == 0


def test_direct_false_runs_in_pool_workers(make_pool):
    pool = make_pool(2)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(3)
    names = set()
    lock = threading.Lock()

    def f(x):
        with lock:
            names.add(threading.current_thread().name)
        return x

    pool.map(f, range(20), direct=False)
    gate.open()
    done, _ = collect(pool)
    assert sorted(d for d in done if d != "gate") == list(range(20))
    assert len(names) <= 2


def test_direct_false_repeated_does_not_leak_threads(make_pool):
    pool = make_pool(2)
    base = threading.active_count()
    for _ in range(5):
        pool.map(ident, range(20), direct=False)
        assert pool.wait_idle(3) is True
        assert threading.active_count() <= base + 2
    assert pool.shutdown(3) is True


def test_map_direct_true_init_callback(make_pool):
    seen = []
    pool = make_pool(2, init_callback=lambda t: seen.append(t))
    pool.map(ident, range(10))
    assert pool.shutdown(3) is True
    assert len(seen) >= 1
    assert sorted(pool.done) == list(range(10))


def test_map_after_shutdown_children_raises(ftp, make_pool):
    pool = make_pool(2)
    pool.shutdown_children()
    with pytest.raises(ftp.PoolStopped):
        pool.map(ident, range(3))
    pool.clear()
    pool.map(ident, range(3))
    done, _ = collect(pool)
    assert sorted(done) == [0, 1, 2]


def test_map_and_submit_mixed(make_pool):
    pool = make_pool(3)
    pool.map(ident, range(100))
    for i in range(100, 200):
        pool.submit(ident, i)
    pool.map(ident, range(200, 300), direct=False)
    done, _ = collect(pool)
    assert sorted(done) == list(range(300))
