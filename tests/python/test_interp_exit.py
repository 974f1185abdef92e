"""Interpreter exit with work left in a pool: exit stays prompt with pending
timers, live schedules, a done_max limit, callback threads, or after a job
raised a BaseException; a running job finishes first. Each case runs in a
fresh interpreter with a hard timeout."""
import textwrap

from conftest import run_script

PRELUDE = """
import sys, threading, time
import fastthreadpool
from fastthreadpool import Pool
"""

# Exit must be prompt: well under a second beyond interpreter start-up.
PROMPT = 2.5


def check(source, timeout=8):
    proc, elapsed = run_script(PRELUDE + textwrap.dedent(source),
                               timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    assert "Fatal Python error" not in proc.stderr
    assert "Segmentation fault" not in proc.stderr
    return proc, elapsed


def test_exit_with_idle_pool():
    proc, elapsed = check("""
        pool = Pool(2)
        for i in range(10):
            pool.submit(lambda x: x, i)
        pool.wait_idle(3)
        print("main done")
    """)
    assert "main done" in proc.stdout
    assert elapsed < PROMPT


def test_exit_with_busy_worker_waits_for_running_job():
    proc, elapsed = check("""
        started = threading.Event()
        def job():
            started.set()
            time.sleep(0.3)
            print("job finished", flush=True)
        pool = Pool(1)
        pool.submit(job)
        started.wait(3)
        print("main done", flush=True)
    """)
    assert "main done" in proc.stdout
    assert "job finished" in proc.stdout
    assert elapsed < PROMPT


def test_exit_with_pending_timer():
    proc, elapsed = check("""
        pool = Pool(1)
        pool.submit_later(30, print, "timer fired")
        print("main done")
    """)
    assert "timer fired" not in proc.stdout
    assert elapsed < PROMPT


def test_exit_with_live_schedule():
    proc, elapsed = check("""
        pool = Pool(1)
        pool.schedule(0.01, lambda: None)
        pool.submit_at(time.time() + 0.01, 0.01, lambda: None)
        time.sleep(0.1)
        print("main done")
    """)
    assert "main done" in proc.stdout
    assert elapsed < PROMPT


def test_exit_with_done_max_limit():
    proc, elapsed = check("""
        pool = Pool(2, done_max=2)
        for i in range(20):
            pool.submit(lambda x: x, i)
        time.sleep(0.1)
        print("stored", len(pool.done))
    """)
    assert "stored" in proc.stdout
    assert elapsed < PROMPT


def test_exit_after_base_exception_in_job():
    proc, elapsed = check("""
        def die(e):
            raise e
        pool = Pool(1)
        pool.submit(die, SystemExit(3))
        pool.submit(die, KeyboardInterrupt())
        pool.submit(lambda: "after")
        pool.wait_idle(3)
        print("failed", len(pool.failed), "done", list(pool.done))
    """)
    assert "failed 2 done ['after']" in proc.stdout
    assert elapsed < PROMPT


def test_exit_after_clear_with_callback_threads():
    proc, elapsed = check("""
        got = []
        pool = Pool(2, done_callback=got.append, failed_callback=print)
        for i in range(10):
            pool.submit(lambda x: x, i)
        pool.wait_idle(3)
        time.sleep(0.05)
        pool.clear()
        pool.submit(lambda x: x, 99)
        pool.wait_idle(3)
        time.sleep(0.05)
        print("got", sorted(got))
    """)
    assert "got [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 99]" in proc.stdout
    assert elapsed < PROMPT


def test_exit_with_queued_jobs_and_shutdown_children():
    proc, elapsed = check("""
        pool = Pool(1)
        gate = threading.Event()
        pool.submit(gate.wait, 0.2)
        for i in range(5):
            pool.submit(time.sleep, 0.01)
        pool.shutdown_children()
        print("main done")
    """)
    assert elapsed < PROMPT


def test_shutdown_registered_at_exit():
    # atexit runs handlers last-in first-out: one registered before the
    # import runs after fastthreadpool's Shutdown.
    proc, elapsed = run_script("""
        import atexit
        state = {}
        def report():
            print("is_shutdown", state["pool"].is_shutdown, flush=True)
        atexit.register(report)
        import fastthreadpool
        pool = fastthreadpool.Pool(1)
        pool.submit(lambda: 1)
        pool.wait_idle(3)
        state["pool"] = pool
    """, timeout=8)
    assert proc.returncode == 0, proc.stderr
    assert "is_shutdown True" in proc.stdout


def test_exit_with_many_pools():
    proc, elapsed = check("""
        pools = [Pool(2, done_callback=lambda r: None) for _ in range(20)]
        for p in pools:
            for i in range(5):
                p.submit(time.sleep, 0.001)
            p.schedule(0.01, lambda: None)
            p.submit_later(5, lambda: None)
        print("main done")
    """)
    assert elapsed < PROMPT + 1


def test_exit_from_a_job_calling_sys_exit_in_main():
    proc, elapsed = run_script(PRELUDE + """
pool = Pool(2)
pool.submit(time.sleep, 0.05)
sys.exit(7)
""", timeout=8)
    assert proc.returncode == 7
    assert elapsed < PROMPT


def test_fork_with_busy_pool():
    proc, elapsed = check("""
        import os
        pool = Pool(2)
        gate = threading.Event()
        pool.submit(gate.wait, 2)
        pool.submit(lambda: 1)
        pid = os.fork()
        if pid == 0:
            p2 = Pool(2)
            for i in range(10):
                p2.submit(lambda x: x, i)
            ok = p2.shutdown(3) and sorted(p2.done) == list(range(10))
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        gate.set()
        pool.submit(lambda: 2)
        print("parent ok", pool.shutdown(3), os.WEXITSTATUS(status))
    """, timeout=8)
    assert "parent ok True 0" in proc.stdout


def test_exit_finishes_running_job_and_drops_queued_ones():
    # Shutdown() runs at exit: the running job completes, queued jobs are
    # dropped (as the original's exit handler does), and exit stays prompt.
    proc, elapsed = check("""
        started = threading.Event()
        def job():
            started.set()
            time.sleep(0.2)
            print("running job finished", flush=True)
        pool = Pool(1)
        pool.submit(job)
        for i in range(3):
            pool.submit(print, "queued job ran", flush=True)
        started.wait(3)
    """)
    assert "running job finished" in proc.stdout
    assert "queued job ran" not in proc.stdout
    assert elapsed < PROMPT
