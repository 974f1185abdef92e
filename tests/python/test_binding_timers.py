"""Timers across shutdown and clear (SPEC B 7.6, 7.11, 7.12; A D16)."""
import time

from conftest import wait_until


def test_schedule_keeps_running_after_shutdown(make_pool):
    # Part B 7.6: shutdown() does not stop schedules; their runs still get
    # workers afterwards.
    pool = make_pool(1)
    ticks = []
    tobj = pool.schedule(0.02, ticks.append, "tick")
    assert wait_until(lambda: len(ticks) >= 1, 3)
    assert pool.shutdown(3) is True
    n = len(ticks)
    assert wait_until(lambda: len(ticks) >= n + 2, 3)
    assert tobj.cancel() is True
    assert tobj.active is False
    assert tobj.cancel() is False


def test_submit_later_armed_before_shutdown_runs_after_it(make_pool):
    pool = make_pool(1)
    ran = []
    pool.submit(ran.append, "now")
    pool.submit_later(0.1, ran.append, "later")
    assert pool.shutdown(3) is True
    assert ran == ["now"]
    assert wait_until(lambda: ran == ["now", "later"], 3)


def test_timer_handle_cancel_before_first_run(ftp, make_pool):
    pool = make_pool(1)
    ran = []
    for tobj in (pool.schedule(0.05, ran.append, 1),
                 pool.submit_later(0.05, ran.append, 2),
                 pool.submit_at(time.time() + 0.05, 0, ran.append, 3)):
        assert isinstance(tobj, ftp.TimerObj)
        assert tobj.active is True and isinstance(tobj.timer_id, int)
        assert pool.cancel(False, tobj) is True
        assert tobj.active is False
    assert len(pool.delayed) == 0 and len(pool.scheduled) == 0
    time.sleep(0.15)
    assert ran == []


def test_unbound_timer_handle(ftp, make_pool):
    tobj = ftp.TimerObj()
    assert tobj.timer_id is None and tobj.active is False
    assert tobj.cancel() is False
    assert make_pool(1).cancel(False, tobj) is True


def test_timer_results_reach_callbacks_after_shutdown(make_pool):
    got, failed = [], []

    def boom():
        raise ValueError("late")

    pool = make_pool(1, done_callback=got.append,
                     failed_callback=failed.append)
    pool.submit(int, 1)
    assert wait_until(lambda: got == [1], 3)
    pool.submit_later(0.1, int, 2)
    pool.submit_later(0.1, boom)
    assert pool.shutdown(3) is True
    assert wait_until(lambda: got == [1, 2] and len(failed) == 1, 3)
    assert isinstance(failed[0], ValueError)
