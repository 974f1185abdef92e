"""Pool-level done/failed callbacks and log_level: every result reaches
done_callback and every failure failed_callback (one argument: the failure
entry), also across shutdown() and clear(); a callback raising becomes a
failure, never a lost result; log_level logs each failure once, with its
traceback, through one handler."""
import logging
import threading
import time

import pytest

from conftest import wait_until


def ident(x):
    return x


def tiny(x):
    time.sleep(0.001)
    return x


class Recorder:
    def __init__(self, raise_exc=None):
        self.calls = []
        self.lock = threading.Lock()
        self.raise_exc = raise_exc

    def __call__(self, *args):
        with self.lock:
            self.calls.append((args, threading.current_thread().name))
        if self.raise_exc is not None:
            raise self.raise_exc

    def values(self):
        with self.lock:
            return [a[0] for a, _ in self.calls]

    def count(self):
        # Not __len__: an empty recorder must stay truthy, like any callback.
        with self.lock:
            return len(self.calls)


def test_done_callback_gets_every_result_across_shutdown(make_pool):
    rec = Recorder()
    pool = make_pool(2, done_callback=rec)
    for i in range(200):
        pool.submit(tiny, i)
    assert pool.shutdown(5) is True
    assert sorted(rec.values()) == list(range(200))
    assert all(len(a) == 1 for a, _ in rec.calls)
    assert {name for _, name in rec.calls} == {"ThreadPoolDone"}
    assert len(pool.done) == 0


def test_done_callback_with_context_manager_and_map(make_pool):
    rec = Recorder()
    pool = make_pool(2, done_callback=rec)
    with pool:
        pool.map(tiny, range(200))
    assert sorted(rec.values()) == list(range(200))


def test_done_callback_keeps_working_after_shutdown(make_pool):
    rec = Recorder()
    pool = make_pool(2, done_callback=rec)
    pool.submit(ident, 1)
    assert pool.shutdown(3) is True
    pool.submit(ident, 2)
    pool.map(ident, [3, 4])
    assert pool.shutdown(3) is True
    assert sorted(rec.values()) == [1, 2, 3, 4]


def test_done_callback_keeps_working_after_clear(make_pool):
    rec = Recorder()
    pool = make_pool(2, done_callback=rec)
    for i in range(10):
        pool.submit(ident, i)
    assert wait_until(lambda: rec.count() == 10, 3)
    pool.clear()
    for i in range(10, 20):
        pool.submit(ident, i)
    assert pool.shutdown(3) is True
    assert sorted(rec.values()) == list(range(20))


def test_done_callback_with_result_id(make_pool):
    rec = Recorder()
    pool = make_pool(2, done_callback=rec, result_id=True)
    ids = {pool.submit(ident, i): i for i in range(10)}
    assert pool.shutdown(3) is True
    assert dict(rec.values()) == ids


def test_done_callback_serialised_in_one_thread(make_pool):
    inside = [0]
    overlap = []
    lock = threading.Lock()

    def cb(r):
        with lock:
            inside[0] += 1
            overlap.append(inside[0])
        time.sleep(0.0005)
        with lock:
            inside[0] -= 1

    pool = make_pool(3, done_callback=cb)
    for i in range(60):
        pool.submit(ident, i)
    assert pool.shutdown(5) is True
    assert len(overlap) == 60
    assert max(overlap) == 1


def test_done_callback_exception_becomes_a_failure(make_pool):
    rec = Recorder(raise_exc=RuntimeError("cb"))
    pool = make_pool(1, done_callback=rec)
    pool.submit(ident, 1)
    assert pool.shutdown(3) is True
    assert rec.values() == [1]
    (entry,) = list(pool.failed)
    assert isinstance(entry, RuntimeError)


def test_per_job_callback_overrides_pool_callback(make_pool):
    rec = Recorder()
    own = []
    pool = make_pool(1, done_callback=rec)
    pool.submit_done(ident, own.append, "own")
    pool.submit_done(ident, False, "dropped")
    pool.submit(ident, "pool")
    assert pool.shutdown(3) is True
    assert own == ["own"]
    assert rec.values() == ["pool"]


@pytest.mark.parametrize("result_id, exc_args, exc_stack", [
    (False, False, False), (False, True, False), (True, False, False),
    (True, True, False), (False, False, True), (True, True, True)])
def test_failed_callback_gets_one_argument_the_entry(make_pool, result_id,
                                                     exc_args, exc_stack):
    rec = Recorder()

    def boom(x, k=None):
        raise ValueError(x)

    pool = make_pool(2, failed_callback=rec, result_id=result_id,
                     exc_args=exc_args, exc_stack=exc_stack)
    ids = {}
    for i in range(10):
        ids[i] = pool.submit(boom, i, k=i)
    assert pool.shutdown(3) is True
    assert rec.count() == 10
    assert {name for _, name in rec.calls} == {"ThreadPoolFailed"}
    assert len(pool.failed) == 0
    seen = set()
    for args, _ in rec.calls:
        assert len(args) == 1, "the failed callback gets one argument"
        entry = args[0]
        if result_id and exc_args:
            jid, exc, a, kw = entry
            assert kw == {"k": a[0]}
        elif result_id:
            jid, exc = entry
        elif exc_args:
            exc, a, kw = entry
            assert kw == {"k": a[0]}
        else:
            exc = entry
        if exc_stack:
            assert isinstance(exc, str) and "ValueError" in exc
            assert exc.startswith("Traceback (most recent call last):")
        else:
            assert isinstance(exc, ValueError)
            x = exc.args[0]
            seen.add(x)
            if result_id:
                assert jid == ids[x]
            if exc_args:
                assert a == (x,)
    if not exc_stack:
        assert seen == set(range(10))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_failed_callback_that_raises_is_called_once(make_pool):
    rec = Recorder(raise_exc=RuntimeError("in callback"))

    def boom():
        raise ValueError("job")

    pool = make_pool(1, failed_callback=rec)
    for _ in range(3):
        pool.submit(boom)
    assert pool.shutdown(3) is True
    assert rec.count() == 3


def test_failed_callback_across_shutdown_and_clear(make_pool):
    rec = Recorder()

    def boom(x):
        raise ValueError(x)

    pool = make_pool(2, failed_callback=rec)
    for i in range(50):
        pool.submit(boom, i)
    assert pool.shutdown(3) is True
    assert rec.count() == 50
    pool.clear()
    for i in range(50, 60):
        pool.submit(boom, i)
    pool.map(boom, range(60, 70))
    assert pool.shutdown(3) is True
    assert sorted(e.args[0] for e in rec.values()) == list(range(70))


def test_failed_callback_gets_map_failures(make_pool):
    rec = Recorder()

    def f(x):
        if x % 2:
            raise ValueError(x)
        return x

    pool = make_pool(2, failed_callback=rec)
    pool.map(f, range(20))
    assert pool.shutdown(3) is True
    assert sorted(e.args[0] for e in rec.values()) == list(range(1, 20, 2))
    assert sorted(pool.done) == list(range(0, 20, 2))


def test_failed_callback_gets_base_exceptions(make_pool):
    rec = Recorder()

    def die():
        raise SystemExit(2)

    pool = make_pool(1, failed_callback=rec)
    pool.submit(die)
    assert pool.shutdown(3) is True
    (exc,) = rec.values()
    assert isinstance(exc, SystemExit)


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def ftp_logger():
    logger = logging.getLogger("fastthreadpool")
    handler = ListHandler()
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)


def failing_job_for_log(x):
    raise ValueError("log me %d" % x)


@pytest.mark.parametrize("result_id, exc_args", [
    (False, False), (True, False), (False, True), (True, True)])
def test_log_level_logs_each_failure_once_with_traceback(
        make_pool, ftp_logger, result_id, exc_args):
    logger, handler = ftp_logger
    pool = make_pool(2, log_level=logging.ERROR, result_id=result_id,
                     exc_args=exc_args)
    for i in range(5):
        pool.submit(failing_job_for_log, i)
    assert pool.shutdown(3) is True
    assert wait_until(lambda: len(handler.records) >= 5, 2)
    time.sleep(0.05)
    assert len(handler.records) == 5
    fmt = logging.Formatter("%(message)s")
    seen = set()
    for rec in handler.records:
        assert rec.levelno >= logging.ERROR
        text = fmt.format(rec)
        assert "Traceback (most recent call last)" in text
        assert "failing_job_for_log" in text
        assert "NoneType: None" not in text
        for i in range(5):
            if "log me %d" % i in text:
                seen.add(i)
    assert seen == set(range(5))
    assert len(pool.failed) == 0


def test_log_handlers_do_not_accumulate(make_pool, ftp_logger):
    logger, handler = ftp_logger
    pools = [make_pool(1, log_level=logging.ERROR) for _ in range(4)]
    n_handlers = len(logger.handlers)
    pools.append(make_pool(1, log_level=logging.ERROR))
    assert len(logger.handlers) == n_handlers
    pools[0].submit(failing_job_for_log, 1)
    assert pools[0].shutdown(3) is True
    assert wait_until(lambda: len(handler.records) >= 1, 2)
    time.sleep(0.05)
    assert len(handler.records) == 1


def test_log_level_logs_base_exceptions(make_pool, ftp_logger):
    logger, handler = ftp_logger

    def die():
        raise KeyboardInterrupt("from job")

    pool = make_pool(1, log_level=logging.ERROR)
    pool.submit(die)
    assert pool.shutdown(3) is True
    assert wait_until(lambda: len(handler.records) == 1, 2)
    text = logging.Formatter("%(message)s").format(handler.records[0])
    assert "KeyboardInterrupt" in text
