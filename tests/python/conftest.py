"""Shared fixtures for the fastthreadpool test suite.

The extension is built in place (``make ext``), so the repository root goes
first on ``sys.path``: the tests import the package from the source tree and
never an installed copy.

Every test runs under a deadline so that a hang fails the test instead of
hanging the run: SIGALRM raises ``DeadlineExceeded`` in the main thread, and
``faulthandler`` dumps all stacks and exits a little later if the main thread
is stuck somewhere that does not check for signals.
"""
import faulthandler
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if not sys.path or sys.path[0] != ROOT:
    sys.path.insert(0, ROOT)

import pytest  # noqa: E402


def _source_tree():
    path = ROOT
    while not os.path.exists(os.path.join(path, "setup.py")):
        parent = os.path.dirname(path)
        if parent == path:
            return ROOT
        path = parent
    return path


# The repository (setup.py, pyproject.toml, tests/stdlib): ROOT, or above
# it when the package and these tests were mirrored next to an
# instrumented build (make asan-py).
SOURCE = _source_tree()

DEFAULT_DEADLINE = float(os.environ.get("FTPOOL_TEST_DEADLINE", "10"))
STRESS = os.environ.get("FTPOOL_STRESS") == "1"


class DeadlineExceeded(Exception):
    """Raised in the main thread when a test runs past its deadline."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "deadline(seconds): per-test deadline (default %g s)"
        % DEFAULT_DEADLINE)


@pytest.fixture(autouse=True)
def _deadline(request):
    marker = request.node.get_closest_marker("deadline")
    seconds = float(marker.args[0]) if marker else DEFAULT_DEADLINE

    def on_alarm(signum, frame):
        raise DeadlineExceeded("test ran longer than %g s" % seconds)

    # Without SIGALRM (Windows) only the faulthandler backstop remains.
    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(seconds + 15, exit=True)
    try:
        yield
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def ftp():
    import fastthreadpool
    return fastthreadpool


@pytest.fixture
def make_pool(ftp):
    """Create pools that are stopped and emptied when the test ends."""
    pools = []

    def make(*args, **kwargs):
        pool = ftp.Pool(*args, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        # Best effort: a test that failed may leave the pool in any state;
        # the point is to leave no running workers or timers behind.
        for step in (lambda: pool.cancel(None, True),
                     lambda: pool.shutdown(2.0)):
            try:
                step()
            except Exception:
                pass
    pools.clear()


def usable_cpus():
    """The CPUs this process may use, by the rule of the default worker
    counts: os.process_cpu_count() (3.13+), else the affinity mask, else
    os.cpu_count(), else 1."""
    if hasattr(os, "process_cpu_count"):
        n = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:
        n = os.cpu_count()
    return n or 1


def wait_until(predicate, timeout=3.0, interval=0.002):
    """Poll predicate() until it is true; return its last value."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= end:
            return value
        time.sleep(interval)


class Gate:
    """A job that blocks until the test opens the gate.

    ``started`` is set once the job runs, so a test knows the worker is
    occupied before it queues more work behind it.
    """

    def __init__(self, timeout=5.0):
        self.started = threading.Event()
        self.opened = threading.Event()
        self.timeout = timeout

    def __call__(self, value="gate"):
        self.started.set()
        if not self.opened.wait(self.timeout):
            raise RuntimeError("gate never opened")
        return value

    def open(self):
        self.opened.set()


def run_script(source, timeout=10.0, env=None):
    """Run a Python snippet in a fresh interpreter with the repo importable.

    Returns (CompletedProcess, elapsed seconds). A hang raises
    subprocess.TimeoutExpired, which fails the test.
    """
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env["PYTHONFAULTHANDLER"] = "1"
    if env:
        full_env.update(env)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(source)],
                          capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=ROOT)
    return proc, time.monotonic() - t0
