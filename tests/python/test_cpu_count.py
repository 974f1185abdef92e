"""Default worker counts follow the CPUs this process may use:
os.process_cpu_count() (3.13+), else len(os.sched_getaffinity(0)), else
os.cpu_count(), else 1; for Pool() (and max_children <= 0, relative to
it) and for ThreadPoolExecutor() (min(32, cpus + 4))."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

# Each case runs in a fresh interpreter whose CPU set the snippet narrows
# first, as `taskset -c 0` would.
PRELUDE = """
import os, sys
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
import fastthreadpool
def pool(*args):
    p = fastthreadpool.Pool(*args)
    n = p.max_children
    p.shutdown()
    return n
def executor():
    ex = fastthreadpool.ThreadPoolExecutor()
    n = ex._max_workers
    ex.shutdown()
    return n
"""


def run(body, *options):
    """The words the snippet prints; `options` go to the interpreter."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PYTHON_CPU_COUNT", None)    # 3.13's override of the count
    proc = subprocess.run([sys.executable, *options, "-c", PRELUDE + body],
                          capture_output=True, text=True, timeout=30,
                          env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_pool_default_is_the_cpus_of_the_affinity_mask():
    out = run("""
print(pool(), pool(-9999), pool(-10 ** 6), pool(0))
""")
    assert out == ["1", "1", "1", "1"]


def test_negative_max_children_is_relative_to_the_affinity_mask():
    # With one usable CPU, -1 leaves none: on the whole machine (2 CPUs
    # or more) it would have been cpu_count() - 1 threads.
    out = run("""
try:
    pool(-1)
except ValueError as exc:
    print("ValueError:", exc)
""")
    assert out == "ValueError: Number of child threads must be greater " \
                  "than 0".split()


def test_executor_default_is_cpus_of_the_affinity_mask_plus_4():
    assert run("print(executor())") == ["5"]


def test_the_rule_matches_the_standard_library_executor():
    # 3.13's own ThreadPoolExecutor uses os.process_cpu_count(); before
    # 3.13 it used os.cpu_count(), and ours keeps the 3.13 rule.
    out = run("""
import concurrent.futures
std = concurrent.futures.ThreadPoolExecutor()
print(std._max_workers, executor())
std.shutdown()
""")
    if sys.version_info >= (3, 13):
        assert out == ["5", "5"]
    else:
        assert out == [str(min(32, os.cpu_count() + 4)), "5"]


def test_process_cpu_count_comes_first():
    # 3.13+: -X cpu_count sets os.process_cpu_count(), whatever the
    # affinity mask says.  Before 3.13 the option means nothing and the
    # mask decides.
    out = run("print(pool(), executor())", "-X", "cpu_count=3")
    if sys.version_info >= (3, 13):
        assert out == ["3", "7"]
    else:
        assert out == ["1", "5"]


@pytest.mark.parametrize("patch, expected", [
    # No process_cpu_count (before 3.13): the affinity mask.
    ("os.process_cpu_count = None", ["1", "5"]),
    # sched_getaffinity missing or failing: os.cpu_count().
    ("os.process_cpu_count = None; del os.sched_getaffinity",
     ["7", "11"]),
    ("os.process_cpu_count = lambda: None\n"
     "def fail(pid): raise OSError('no')\n"
     "os.sched_getaffinity = fail", ["7", "11"]),
    # Nothing known: 1.
    ("os.process_cpu_count = None; del os.sched_getaffinity\n"
     "os.cpu_count = lambda: None", ["1", "5"]),
    # More than 28 CPUs: the executor stops at 32 threads.
    ("os.process_cpu_count = lambda: 40", ["40", "32"]),
])
def test_each_step_of_the_rule_falls_back_to_the_next(patch, expected):
    body = ("if not hasattr(os, 'process_cpu_count'):\n"
            "    os.process_cpu_count = None\n"
            "if not hasattr(os, 'sched_getaffinity'):\n"
            "    os.sched_getaffinity = lambda pid: {0}\n"
            "os.cpu_count = lambda: 7\n"
            + patch + "\nprint(pool(), executor())\n")
    assert run(body) == expected
