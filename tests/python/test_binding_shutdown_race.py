"""shutdown(timeout) racing submit() (which starts workers) reports a
timeout as False, even when a worker it must join is still being started
by another thread (join() refuses a thread before its start()).  The race
is hit within a second or two here; the loop runs 2.5 s."""
import threading
import time


def test_short_shutdown_racing_submit_returns_a_bool(make_pool, ftp):
    pool = make_pool(3, done_callback=False)
    stop = threading.Event()
    bad, errors = [], []

    def submitter():
        try:
            while not stop.is_set():
                for i in range(2000):
                    pool.submit(int, i)
        except ftp.PoolStopped:
            pass
        except BaseException as e:      # noqa: B902 - reported below
            errors.append(e)

    ts = [threading.Thread(target=submitter) for _ in range(2)]
    for t in ts:
        t.start()
    try:
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            r = pool.shutdown(0.001, soon=True)
            if r not in (True, False):
                bad.append(r)
    finally:
        stop.set()
        for t in ts:
            t.join(10)
    assert bad == [] and errors == []
    assert pool.shutdown(10) is True
