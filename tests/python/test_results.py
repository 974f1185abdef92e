"""Shapes of done and failed entries for every combination of result_id,
exc_args and exc_stack; generator jobs give one result per yielded value; a
job raising a BaseException (SystemExit, KeyboardInterrupt) is recorded as
a failure and its worker lives on."""
import functools
import itertools
import threading
import types

import pytest


class Boom(Exception):
    pass


def plain(x, k=0):
    return x * 10 + k


def failing(x, k=0):
    raise Boom("boom%d" % x)


def gen(x, k=0):
    yield x
    yield x + k
    return "ignored"


def gen_midway(x, k=0):
    yield x
    raise Boom("mid%d" % x)


FLAGS = list(itertools.product([False, True], repeat=3))


@pytest.mark.parametrize("result_id, exc_args, exc_stack", FLAGS)
def test_shapes(make_pool, result_id, exc_args, exc_stack):
    pool = make_pool(1, result_id=result_id, exc_args=exc_args,
                     exc_stack=exc_stack)
    ids = [pool.submit(plain, 1, k=2),
           pool.submit(failing, 2, k=3),
           pool.submit(gen, 3, k=4),
           pool.submit(gen_midway, 4, k=5)]
    assert pool.shutdown(3) is True
    if result_id:
        assert all(isinstance(i, int) for i in ids)
        assert len(set(ids)) == 4
    else:
        assert ids == [None] * 4

    def res(jid, value):
        return (jid, value) if result_id else value

    assert list(pool.done) == [res(ids[0], 12), res(ids[2], 3),
                               res(ids[2], 7), res(ids[3], 4)]

    failed = list(pool.failed)
    assert len(failed) == 2
    for entry, jid, x, k, msg in [(failed[0], ids[1], 2, 3, "boom2"),
                                  (failed[1], ids[3], 4, 5, "mid4")]:
        if result_id and exc_args:
            assert isinstance(entry, tuple) and len(entry) == 4
            got_id, exc, args, kwargs = entry
            assert got_id == jid
        elif result_id:
            assert isinstance(entry, tuple) and len(entry) == 2
            got_id, exc = entry
            assert got_id == jid
        elif exc_args:
            assert isinstance(entry, tuple) and len(entry) == 3
            exc, args, kwargs = entry
        else:
            exc = entry
        if exc_args:
            assert args == (x,)
            assert kwargs == {"k": k}
        if exc_stack:
            assert isinstance(exc, str)
            assert exc.startswith("Traceback (most recent call last):")
            assert "Boom: %s" % msg in exc
            assert ("failing" if x == 2 else "gen_midway") in exc
        else:
            assert isinstance(exc, Boom)
            assert exc.args == (msg,)
            assert exc.__traceback__ is not None


def test_generator_return_value_is_ignored(make_pool):
    pool = make_pool(1)
    pool.submit(gen, 1, k=1)
    assert pool.shutdown(3) is True
    assert list(pool.done) == [1, 2]


def test_function_returning_a_generator_object_is_one_result(make_pool):
    pool = make_pool(1)
    pool.submit(lambda: gen(1))
    assert pool.shutdown(3) is True
    (r,) = list(pool.done)
    assert isinstance(r, types.GeneratorType)


def test_partial_and_bound_generator_methods_are_iterated(make_pool):
    class C:
        def g(self, n):
            yield from range(n)

    pool = make_pool(1)
    pool.submit(functools.partial(gen, 5, k=1))
    pool.submit(C().g, 3)
    assert pool.shutdown(3) is True
    assert list(pool.done) == [5, 6, 0, 1, 2]


def test_generator_detection_through_wrappers(make_pool):
    class C:
        def gen(self, n):
            yield from range(n)

    def gen(n, step=1):
        yield from range(0, n, step)

    def returns_generator(n):
        return (i for i in range(n))

    pool = make_pool(1)
    pool.submit(C().gen, 3)
    pool.submit(functools.partial(gen, step=2), 5)
    pool.submit(functools.partial(functools.partial(gen), 2))
    pool.submit(returns_generator, 2)
    assert pool.shutdown(3) is True
    done = list(pool.done)
    assert done[:8] == [0, 1, 2, 0, 2, 4, 0, 1]
    assert len(done) == 9 and hasattr(done[8], "__next__")


def test_empty_generator_gives_no_result(make_pool):
    pool = make_pool(1)

    def empty():
        return
        yield

    pool.submit(empty)
    assert pool.shutdown(3) is True
    assert list(pool.done) == []
    assert list(pool.failed) == []


def test_none_result_is_stored(make_pool):
    pool = make_pool(1)
    pool.submit(lambda: None)
    assert pool.shutdown(3) is True
    assert list(pool.done) == [None]


def test_exception_result_is_a_result_not_a_failure(make_pool):
    pool = make_pool(1)
    pool.submit(lambda: ValueError("returned"))
    assert pool.shutdown(3) is True
    (r,) = list(pool.done)
    assert isinstance(r, ValueError)
    assert list(pool.failed) == []


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt,
                                      GeneratorExit, BaseException])
def test_base_exception_is_a_failure_and_worker_lives(make_pool, exc_type):
    pool = make_pool(1, result_id=True)
    threads = []

    def die():
        threads.append(threading.current_thread())
        raise exc_type("bye")

    def after():
        threads.append(threading.current_thread())
        return "after"

    jid = pool.submit(die)
    assert pool.wait_idle(3) is True
    (entry,) = list(pool.failed)
    assert entry[0] == jid
    assert isinstance(entry[1], exc_type)
    assert pool.busy == 0
    assert pool.child_cnt == 1
    assert all(t.is_alive() for t in pool.children)
    jid2 = pool.submit(after)
    assert pool.wait_idle(3) is True
    assert list(pool.done) == [(jid2, "after")]
    assert threads[0] is threads[1], "the worker must survive"
    assert pool.shutdown(3) is True


def test_base_exception_in_generator(make_pool):
    pool = make_pool(1)

    def g():
        yield 1
        raise SystemExit(3)

    pool.submit(g)
    pool.submit(lambda: 2)
    assert pool.shutdown(3) is True
    assert list(pool.done) == [1, 2]
    (exc,) = list(pool.failed)
    assert isinstance(exc, SystemExit)
