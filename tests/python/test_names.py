"""Public names, exceptions, constructor keywords and settings: code written
for the original fastthreadpool runs unchanged (the same names, keyword
names, positional order and defaults, the max_children convention, settings
readable as read-only attributes)."""
import logging
import threading

import pytest

from conftest import usable_cpus

CPUS = usable_cpus()

PUBLIC = ["Pool", "TimerObj", "Semaphore", "PoolCallback", "PoolStopped",
          "Shutdown"]

METHODS = ["submit", "submit_done", "submit_first", "submit_done_first",
           "submit_later", "submit_done_later", "submit_at", "submit_done_at",
           "schedule", "schedule_done", "map", "as_completed", "cancel",
           "clear", "shutdown", "shutdown_children", "cleanup_children",
           "join", "wait_idle", "__enter__", "__exit__"]

PROPERTIES = ["alive", "busy", "pending", "jobs", "done", "done_cnt",
              "failed", "failed_cnt", "children", "child_cnt", "delayed",
              "scheduled", "is_shutdown"]


def test_all_lists_the_public_names(ftp):
    assert sorted(ftp.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert hasattr(ftp, name), name


def test_star_import_gives_exactly_the_public_names():
    ns = {}
    exec("from fastthreadpool import *", ns)
    ns.pop("__builtins__")
    assert sorted(ns) == sorted(PUBLIC)


def test_exceptions_are_plain_exception_subclasses(ftp):
    assert issubclass(ftp.PoolCallback, Exception)
    assert issubclass(ftp.PoolStopped, Exception)
    assert not issubclass(ftp.PoolStopped, ftp.PoolCallback)
    assert not issubclass(ftp.PoolCallback, ftp.PoolStopped)
    with pytest.raises(ftp.PoolStopped, match="x"):
        raise ftp.PoolStopped("x")


def test_pool_has_every_method_and_property(make_pool):
    pool = make_pool(1)
    for name in METHODS:
        assert callable(getattr(pool, name)), name
    for name in PROPERTIES:
        getattr(pool, name)


def test_fresh_pool_properties(ftp, make_pool):
    pool = make_pool(2)
    assert pool.alive == 0
    assert pool.busy == 0
    assert pool.pending == 0
    assert pool.child_cnt == 0
    assert pool.children == ()
    assert isinstance(pool.children, tuple)
    assert len(pool.jobs) == 0 and not pool.jobs
    assert len(pool.done) == 0 and not pool.done
    assert len(pool.failed) == 0 and not pool.failed
    assert len(pool.delayed) == 0
    assert len(pool.scheduled) == 0
    assert pool.is_shutdown is False
    assert isinstance(pool.done_cnt, ftp.Semaphore)
    assert isinstance(pool.failed_cnt, ftp.Semaphore)
    assert pool.done_cnt.value == 0
    assert pool.failed_cnt.value == 0


def test_properties_are_read_only(make_pool):
    pool = make_pool(1)
    for name in ["alive", "busy", "pending", "child_cnt", "is_shutdown",
                 "done", "failed", "jobs"]:
        with pytest.raises(AttributeError):
            setattr(pool, name, 1)


def test_pool_accepts_every_keyword(ftp, make_pool):
    def cb(*a):
        pass

    pool = make_pool(max_children=2, child_name_prefix="kw",
                     init_callback=cb, init_args=(), finish_callback=cb,
                     done_callback=None, failed_callback=None, log_level=0,
                     result_id=True, exc_stack=False, exc_args=True,
                     done_max=0)
    assert pool.max_children == 2
    assert pool.child_name_prefix == "kw"
    assert pool.init_callback is cb
    assert pool.finish_callback is cb
    assert bool(pool.result_id) is True
    assert bool(pool.exc_stack) is False
    assert bool(pool.exc_args) is True
    assert pool.done_max == 0


def test_pool_positional_order(make_pool):
    calls = []

    def init(thread, *args):
        calls.append(("init", args))

    def fin():
        calls.append(("fin",))

    pool = make_pool(3, "pos", init, (7, 8), fin, None, None, 0, True, True,
                     True, 5)
    assert pool.max_children == 3
    assert pool.child_name_prefix == "pos"
    assert pool.init_callback is init
    assert tuple(pool.init_args) == (7, 8)
    assert pool.finish_callback is fin
    assert pool.log_level == 0
    assert bool(pool.result_id) and bool(pool.exc_stack)
    assert bool(pool.exc_args)
    assert pool.done_max == 5
    jid = pool.submit(lambda: threading.current_thread().name)
    assert isinstance(jid, int)
    assert pool.shutdown(3) is True
    (got_id, name), = list(pool.done)
    assert got_id == jid
    assert name.startswith("pos-")
    assert calls[0] == ("init", (7, 8))
    assert ("fin",) in calls


def test_pool_rejects_a_thirteenth_positional_argument(ftp):
    with pytest.raises(TypeError):
        ftp.Pool(1, "", None, None, None, None, None, 0, False, False, False,
                 0, 99)


def test_pool_rejects_unknown_keyword(ftp):
    with pytest.raises(TypeError):
        ftp.Pool(max_threads=2)


@pytest.mark.parametrize("value, expected", [
    (-9999, CPUS), (-10000, CPUS), (-10 ** 6, CPUS), (1, 1), (3, 3),
    (17, 17), (0, CPUS)])
def test_max_children_convention(make_pool, value, expected):
    assert make_pool(value).max_children == expected


def test_max_children_default_is_cpu_count(make_pool):
    assert make_pool().max_children == CPUS


def test_max_children_relative_to_cpu_count(ftp, make_pool):
    if CPUS > 1:
        assert make_pool(-1).max_children == CPUS - 1
    with pytest.raises(ValueError,
                       match="Number of child threads must be greater than 0"):
        ftp.Pool(-CPUS)
    with pytest.raises(ValueError):
        ftp.Pool(-CPUS - 5)
    with pytest.raises(ValueError):
        ftp.Pool(-9998)


def test_log_level_none_is_accepted(make_pool):
    pool = make_pool(1, log_level=None)
    pool.submit(lambda: 1)
    assert pool.shutdown(3) is True
    assert list(pool.done) == [1]


def test_log_level_readable(make_pool):
    pool = make_pool(1, log_level=logging.CRITICAL)
    assert pool.log_level == logging.CRITICAL


def test_callbacks_readable(make_pool):
    def done(r):
        pass

    def failed(e):
        pass

    pool = make_pool(1, done_callback=done, failed_callback=failed)
    assert pool.done_callback is done
    assert pool.failed_callback is failed


def test_semaphore_keyword_value(ftp):
    assert ftp.Semaphore(value=3).value == 3
    assert ftp.Semaphore().value == 1


def test_timerobj_constructible_without_arguments(ftp):
    ftp.TimerObj()


def test_shutdown_is_callable_with_now_keyword(ftp):
    assert callable(ftp.Shutdown)


def test_keyword_names_of_methods(make_pool):
    pool = make_pool(1)
    assert pool.submit(fn=lambda: 1) is None
    pool.map(fn=lambda x: x, itr=[1, 2], done_callback=True, direct=True,
             unpack_args=None)
    assert pool.wait_idle(timeout=3) is True
    assert pool.cancel(job_id=False, timer=None) is True
    assert list(pool.as_completed(wait=False, cnt_max=0)) != []
    assert pool.join(timeout=3) is True
    assert pool.shutdown(timeout=3, soon=False) is True


def test_pool_can_be_subclassed(ftp):
    class MyPool(ftp.Pool):
        def double(self, x):
            return self.submit(lambda: 2 * x)

    pool = MyPool(1)
    pool.double(21)
    assert pool.shutdown(3) is True
    assert list(pool.done) == [42]
