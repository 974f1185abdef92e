"""Ctrl-C interrupts the main thread's waits promptly (join, shutdown,
wait_idle, as_completed, Semaphore.acquire), so a program blocked on the
pool can always be stopped. Each case runs in a fresh interpreter with a
hard timeout."""
import textwrap

import pytest

from conftest import run_script

TEMPLATE = """
import os, signal, threading, time
import fastthreadpool
from fastthreadpool import Pool, Semaphore

# Python raises KeyboardInterrupt only if SIGINT was not ignored when it
# started, and a shell ignores it for the commands it runs in the
# background: the test must not depend on how it was launched.
signal.signal(signal.SIGINT, signal.default_int_handler)

gate = threading.Event()
pool = Pool(2)
pool.submit(gate.wait, 5)

def interrupt():
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt, daemon=True).start()
t0 = time.monotonic()
try:
{wait}
    print("not interrupted", flush=True)
except KeyboardInterrupt:
    print("interrupted %.3f" % (time.monotonic() - t0), flush=True)
gate.set()
print("shutdown", pool.shutdown(3), flush=True)
"""

WAITS = {
    "join": "pool.join()",
    "shutdown": "pool.shutdown()",
    "wait_idle": "pool.wait_idle()",
    "as_completed": "list(pool.as_completed())",
    "semaphore": "Semaphore(0).acquire()",
    "semaphore_timeout": "Semaphore(0).acquire(True, 5)",
}


@pytest.mark.parametrize("name", sorted(WAITS))
def test_ctrl_c_interrupts_wait(name):
    wait = textwrap.indent(WAITS[name], "    ")
    proc, elapsed = run_script(TEMPLATE.replace("{wait}", wait),
                               timeout=8)
    out = proc.stdout
    assert "interrupted" in out, (out, proc.stderr)
    took = float(out.split("interrupted ")[1].split()[0])
    assert took < 0.7, took
    assert "shutdown True" in out, (out, proc.stderr)
    assert proc.returncode == 0, proc.stderr
