"""submit_later, schedule, submit_at and their cancellation, also before a
schedule's first run; submit_at takes time.time() seconds or a struct_time;
timers keep running across shutdown() and their results still reach the
callbacks."""
import threading
import time

import pytest

from conftest import Gate, wait_until


class Ticks:
    """Records the monotonic time of every call."""

    def __init__(self):
        self.times = []
        self.lock = threading.Lock()

    def __call__(self, value=None):
        with self.lock:
            self.times.append(time.monotonic())
        return value

    def __len__(self):
        with self.lock:
            return len(self.times)


def test_submit_later_runs_after_delay(make_pool):
    pool = make_pool(2)
    ticks = Ticks()
    t0 = time.monotonic()
    handle = pool.submit_later(0.15, ticks, "later")
    assert handle is not None
    assert len(pool.delayed) == 1
    assert wait_until(lambda: len(ticks) == 1, 3)
    assert ticks.times[0] - t0 >= 0.145
    assert ticks.times[0] - t0 < 0.6
    assert wait_until(lambda: list(pool.done) == ["later"])
    assert wait_until(lambda: len(pool.delayed) == 0)


def test_submit_done_later_callback(make_pool):
    pool = make_pool(1)
    got = []
    pool.submit_done_later(0.05, lambda x: x * 2, got.append, 21)
    assert wait_until(lambda: got == [42], 3)
    assert list(pool.done) == []


def test_submit_later_result_id(make_pool):
    pool = make_pool(1, result_id=True)
    pool.submit_later(0.01, lambda: "x")
    assert wait_until(lambda: len(pool.done) == 1, 3)
    (jid, value), = list(pool.done)
    assert isinstance(jid, int) and value == "x"


def test_cancel_submit_later_via_pool(make_pool):
    pool = make_pool(1)
    ran = []
    handle = pool.submit_later(0.1, ran.append, 1)
    keep = pool.submit_later(0.1, ran.append, 2)
    assert len(pool.delayed) == 2
    assert pool.cancel(False, handle) is True
    assert len(pool.delayed) == 1
    time.sleep(0.25)
    assert ran == [2]
    assert keep is not None


def test_cancel_submit_later_via_handle(make_pool):
    pool = make_pool(1)
    ran = []
    handle = pool.submit_later(0.1, ran.append, 1)
    handle.cancel()
    assert wait_until(lambda: len(pool.delayed) == 0, 1)
    time.sleep(0.2)
    assert ran == []


def test_cancel_false_keeps_the_queue(make_pool):
    pool = make_pool(1)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(3)
    pool.submit(lambda: "queued")
    handle = pool.submit_later(5, lambda: "never")
    assert pool.cancel(False, handle) is True
    assert len(pool.jobs) == 1
    gate.open()
    assert pool.shutdown(3) is True
    assert list(pool.done) == ["gate", "queued"]


def test_timer_jobs_go_to_the_front(make_pool):
    pool = make_pool(1)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(3)
    pool.submit(lambda: "n0")
    pool.submit(lambda: "n1")
    pool.submit_later(0.01, lambda: "timer")
    assert wait_until(lambda: len(pool.delayed) == 0, 3)
    assert wait_until(lambda: len(pool.jobs) == 3, 3)
    gate.open()
    assert pool.shutdown(3) is True
    assert list(pool.done) == ["gate", "timer", "n0", "n1"]


def test_schedule_repeats_without_drift(ftp, make_pool):
    pool = make_pool(2)
    ticks = Ticks()
    interval = 0.08
    t0 = time.monotonic()
    tobj = pool.schedule(interval, ticks)
    assert isinstance(tobj, ftp.TimerObj)
    assert len(pool.scheduled) == 1
    assert wait_until(lambda: len(ticks) >= 8, 3)
    pool.cancel(False, tobj)
    times = list(ticks.times)
    # First run one interval after the call, not immediately.
    assert times[0] - t0 >= interval - 0.005
    # Tick k is due at t0 + (k + 1) * interval; lateness must not pile up.
    for k, t in enumerate(times[:8]):
        due = t0 + (k + 1) * interval
        assert t >= due - 0.005, (k, t - due)
        assert t - due < 0.06, (k, t - due)
    assert len(pool.scheduled) == 0


def test_schedule_stops_after_cancel(make_pool):
    pool = make_pool(1)
    ticks = Ticks()
    tobj = pool.schedule(0.03, ticks)
    assert wait_until(lambda: len(ticks) >= 3, 3)
    assert pool.cancel(False, tobj) is True
    time.sleep(0.05)
    n = len(ticks)
    time.sleep(0.15)
    assert len(ticks) == n
    assert len(pool.scheduled) == 0


def test_schedule_done_callback(make_pool):
    pool = make_pool(1)
    got = []
    tobj = pool.schedule_done(0.03, lambda: "tick", got.append)
    assert wait_until(lambda: len(got) >= 2, 3)
    tobj.cancel()
    assert set(got) == {"tick"}
    assert list(pool.done) == []


def test_cancel_schedule_before_first_run_via_pool(make_pool):
    pool = make_pool(1)
    ran = []
    tobj = pool.schedule(0.1, ran.append, 1)
    assert pool.cancel(False, tobj) is True
    time.sleep(0.25)
    assert ran == []
    assert len(pool.scheduled) == 0


def test_cancel_schedule_before_first_run_via_handle(make_pool):
    pool = make_pool(1)
    ran = []
    tobj = pool.schedule(0.1, ran.append, 1)
    tobj.cancel()
    time.sleep(0.25)
    assert ran == []
    assert len(pool.scheduled) == 0


def test_cancel_handle_twice_is_harmless(make_pool):
    pool = make_pool(1)
    tobj = pool.schedule(0.1, lambda: 1)
    tobj.cancel()
    tobj.cancel()
    assert pool.cancel(False, tobj) in (True, False)
    h = pool.submit_later(0.1, lambda: 1)
    h.cancel()
    h.cancel()


def test_cancel_all_timers(make_pool):
    pool = make_pool(1)
    ran = []
    pool.submit_later(0.1, ran.append, 1)
    pool.submit_later(0.1, ran.append, 2)
    pool.schedule(0.05, ran.append, 3)
    pool.submit_at(time.time() + 0.1, 0.05, ran.append, 4)
    assert len(pool.delayed) == 2
    assert len(pool.scheduled) == 2
    assert pool.cancel(False, True) is True
    assert len(pool.delayed) == 0
    assert len(pool.scheduled) == 0
    time.sleep(0.25)
    assert ran == []


def test_submit_at_epoch_time(ftp, make_pool):
    pool = make_pool(1)
    ticks = Ticks()
    target = time.time() + 0.2
    t0 = time.monotonic()
    tobj = pool.submit_at(target, 0, ticks, "at")
    assert isinstance(tobj, ftp.TimerObj)
    assert len(pool.scheduled) == 1
    assert wait_until(lambda: len(ticks) == 1, 3)
    assert 0.19 <= ticks.times[0] - t0 < 0.6
    assert wait_until(lambda: list(pool.done) == ["at"])
    time.sleep(0.1)
    assert len(ticks) == 1, "interval 0 runs once"
    assert len(pool.scheduled) == 0


def test_submit_at_struct_time(make_pool):
    pool = make_pool(1)
    ran = []
    # struct_time has one-second resolution: the next whole second.
    whole = int(time.time()) + 1
    pool.submit_at(time.localtime(whole), 0, ran.append, "st")
    assert wait_until(lambda: ran == ["st"], 2.5)
    assert time.time() >= whole - 0.01


def test_submit_at_with_interval_repeats(make_pool):
    pool = make_pool(1)
    ticks = Ticks()
    t0 = time.monotonic()
    tobj = pool.submit_at(time.time() + 0.1, 0.05, ticks)
    assert wait_until(lambda: len(ticks) >= 4, 3)
    pool.cancel(False, tobj)
    times = ticks.times[:4]
    assert times[0] - t0 >= 0.095
    for k, t in enumerate(times):
        due = t0 + 0.1 + k * 0.05
        assert t - due < 0.06, (k, t - due)


def test_submit_done_at(make_pool):
    pool = make_pool(1)
    got = []
    pool.submit_done_at(time.time() + 0.05, 0, lambda: 5, got.append)
    assert wait_until(lambda: got == [5], 3)


def test_submit_at_in_the_past_is_value_error(make_pool):
    pool = make_pool(1)
    with pytest.raises(ValueError):
        pool.submit_at(time.time() - 10, 0, lambda: 1)
    assert len(pool.scheduled) == 0


def test_cancel_schedule_while_it_fires_often(make_pool):
    pool = make_pool(2)
    for _ in range(20):
        tobj = pool.schedule(0.001, lambda: None)
        time.sleep(0.003)
        pool.cancel(False, tobj)
    assert wait_until(lambda: len(pool.scheduled) == 0, 1)
    assert pool.wait_idle(3) is True
    n = len(pool.done)
    time.sleep(0.05)
    assert len(pool.done) == n


def test_delayed_and_scheduled_are_readable_while_running(make_pool):
    pool = make_pool(2)
    handles = [pool.submit_later(0.001 * i, lambda: None)
               for i in range(50)]
    seen = 0
    while len(pool.delayed):
        seen += len(list(pool.delayed))
        if seen > 10 ** 6:
            break
    assert len(handles) == 50
    assert wait_until(lambda: len(pool.done) == 50, 3)


def test_timer_firing_after_shutdown_children_does_not_run(make_pool):
    pool = make_pool(1)
    ran = []
    pool.submit_later(0.05, ran.append, "later")
    pool.schedule(0.02, ran.append, "tick")
    pool.shutdown_children()
    time.sleep(0.15)
    assert ran == []
    pool.cancel(False, True)
    pool.clear()
    pool.submit_later(0.01, ran.append, "after clear")
    assert wait_until(lambda: ran == ["after clear"], 2)


def test_many_timers_fire_in_deadline_order(make_pool):
    pool = make_pool(1)
    order = []
    for i in reversed(range(10)):
        pool.submit_later(0.02 + i * 0.01, order.append, i)
    assert wait_until(lambda: len(order) == 10, 3)
    assert order == list(range(10))


def test_schedule_keeps_running_after_shutdown(make_pool):
    # As in the original, shutdown() does not stop schedules (only a cancel
    # does); their runs still get workers afterwards.
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
