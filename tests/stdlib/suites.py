"""Runs CPython's own tests of ThreadPoolExecutor and of asyncio's default
executor, from this interpreter's `test` package, and checks each outcome
against the reviewed list in expected.py.

Started by run.py inside its venv, where fastthreadpool.ThreadPoolExecutor
has replaced concurrent.futures.ThreadPoolExecutor (inject/).  Prints one
line per test, then a summary; exits 1 if a test failed that is not listed,
if a listed test passed, if a listed entry names no test that ran, if the
standard executor's outcome of a listed test contradicts its entry (each
failure runs once more, alone, with the standard executor: --baseline), or
if the substitution is not in place.

The selection:
- test.test_concurrent_futures: every test class on the thread-pool mixin
  (ThreadPoolMixin); the process-pool and Future-only classes are left out.
- test.test_asyncio.test_threads: all (asyncio.to_thread).
- test.test_asyncio.test_base_events, test_events, test_tasks,
  test_subprocess: the test methods whose source mentions an executor or
  to_thread.
"""
import argparse
import faulthandler
import importlib
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import expected  # noqa: E402

# A test that runs longer than this is stuck: faulthandler dumps every
# thread's stack and ends the process (run.py reports it as a failure).
TEST_TIMEOUT = float(os.environ.get("FTP_STDLIB_TEST_TIMEOUT", "120"))

ASYNCIO_SELECTED = ["test_base_events", "test_events", "test_tasks",
                    "test_subprocess"]
USES_EXECUTOR = re.compile(r"executor|to_thread")


def find_module(name):
    """The module `name` of the test package, or None if it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if exc.name is not None and name.startswith(exc.name):
            return None
        raise
    except unittest.SkipTest:
        return None


def all_tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from all_tests(item)
        else:
            yield item


def futures_tests():
    """The thread-pool test classes of test.test_concurrent_futures: a
    package since 3.12, one module before."""
    pkg = find_module("test.test_concurrent_futures")
    if pkg is None:
        return None
    modules = [pkg]
    if hasattr(pkg, "__path__"):
        modules = [importlib.import_module(pkg.__name__ + "." + info.name)
                   for info in pkgutil.iter_modules(pkg.__path__)]
    util = find_module("test.test_concurrent_futures.util") or pkg
    mixin = util.ThreadPoolMixin
    loader = unittest.TestLoader()
    tests = []
    for mod in modules:
        for name, obj in sorted(vars(mod).items()):
            if (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                    and issubclass(obj, mixin)
                    and obj.__module__ == mod.__name__):
                tests.extend(all_tests(loader.loadTestsFromTestCase(obj)))
    return tests


def test_source(test):
    method = getattr(type(test), test._testMethodName)
    try:
        return inspect.getsource(inspect.unwrap(method))
    except (OSError, TypeError):
        return ""


def asyncio_tests():
    if find_module("test.test_asyncio") is None:
        return None
    loader = unittest.TestLoader()
    tests = []
    threads = find_module("test.test_asyncio.test_threads")
    if threads is not None:
        tests.extend(all_tests(loader.loadTestsFromModule(threads)))
    for name in ASYNCIO_SELECTED:
        mod = find_module("test.test_asyncio." + name)
        if mod is None:
            continue
        tests.extend(t for t in all_tests(loader.loadTestsFromModule(mod))
                     if USES_EXECUTOR.search(test_source(t)))
    return tests


SUITES = {"concurrent.futures": futures_tests, "asyncio": asyncio_tests}


class Recorder(unittest.TextTestResult):
    """Records one outcome per test id; prints one line per test."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}

    def startTest(self, test):
        faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
        super().startTest(test)

    def stopTest(self, test):
        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)

    def _set(self, test, outcome):
        # A test that fails in tearDown after passing is a failure; a
        # failure is never downgraded.
        if self.outcomes.get(test.id()) not in ("fail", "error"):
            self.outcomes[test.id()] = outcome

    def addSuccess(self, test):
        super().addSuccess(test)
        self._set(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set(test, "fail")

    def addError(self, test, err):
        super().addError(test, err)
        # Errors of module or class fixtures have no test id of their own.
        self._set(test, "error")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set(test, "skip")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._set(test, "pass")     # the stdlib's own expectation

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set(test, "fail")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = ("fail" if issubclass(err[0], test.failureException)
                    else "error")
            self.outcomes[test.id()] = kind


def check_substitution(wanted):
    """Problems, if this process and an isolated child do not both see
    our executor in the standard library's place (wanted=True), or if they
    do (wanted=False: the baseline run)."""
    import concurrent.futures
    import concurrent.futures.thread

    import fastthreadpool
    ours = fastthreadpool.ThreadPoolExecutor
    seen = {
        "concurrent.futures.ThreadPoolExecutor":
            concurrent.futures.ThreadPoolExecutor is ours,
        "concurrent.futures.thread.ThreadPoolExecutor":
            concurrent.futures.thread.ThreadPoolExecutor is ours,
    }
    child = subprocess.run(
        [sys.executable, "-I", "-c",
         "import concurrent.futures as f, fastthreadpool as t;"
         "print(f.ThreadPoolExecutor is t.ThreadPoolExecutor)"],
        capture_output=True, text=True)
    seen["in an isolated child process"] = child.stdout.strip() == "True"
    return ["%s: %s ours" % (where, "is" if is_ours else "is not")
            for where, is_ours in seen.items() if is_ours != wanted]


def run_tests(tests):
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                     resultclass=Recorder)
    result = runner.run(unittest.TestSuite(tests))
    # Fixture errors (setUpModule...) are not attributed to a test.
    fixture_errors = [test.id() for test, _ in result.errors
                      if test.id() not in result.outcomes]
    return result.outcomes, fixture_errors


def baseline(ids):
    """The outcomes of the tests `ids` with the standard library's own
    executor, each run on its own in a fresh process."""
    outcomes = {}
    env = dict(os.environ, FTP_STDLIB_SUBSTITUTE="0")
    for test_id in ids:
        try:
            proc = subprocess.run(
                [sys.executable, "-X", "faulthandler",
                 os.path.abspath(__file__), "--baseline", test_id],
                env=env, capture_output=True, text=True,
                timeout=TEST_TIMEOUT + 60)
        except subprocess.TimeoutExpired:
            outcomes[test_id] = "error"
            continue
        lines = proc.stdout.strip().splitlines()
        try:
            outcomes.update(json.loads(lines[-1]))
        except (IndexError, ValueError):
            outcomes[test_id] = "error"
    return outcomes


def run_baseline(ids):
    """--baseline: runs `ids` with the standard executor, prints their
    outcomes as JSON on the last line."""
    problems = check_substitution(False)
    if problems:
        print("BASELINE NOT CLEAN:", "; ".join(problems))
        return 1
    loader = unittest.TestLoader()
    tests = [t for i in ids for t in all_tests(loader.loadTestsFromName(i))]
    outcomes, _ = run_tests(tests)
    print(json.dumps({i: outcomes.get(i, "error") for i in ids}))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", nargs="+", metavar="TEST_ID",
                        help="run these with the standard executor")
    args = parser.parse_args()
    if args.baseline:
        return run_baseline(args.baseline)

    problems = check_substitution(True)
    if problems:
        for p in problems:
            print("SUBSTITUTION FAILED:", p)
        return 1
    import fastthreadpool
    print("fastthreadpool.ThreadPoolExecutor from %s substituted for "
          "concurrent.futures.ThreadPoolExecutor"
          % os.path.dirname(fastthreadpool.__file__))
    print("Python %s (%s)" % (sys.version.replace("\n", " "), sys.executable))

    ran = {}
    outcomes = {}
    ok = True
    for suite_name, collect in SUITES.items():
        tests = collect()
        if tests is None:
            print("\n== %s: not in this interpreter's test package"
                  % suite_name)
            continue
        print("\n== %s: %d tests" % (suite_name, len(tests)), flush=True)
        got, fixture_errors = run_tests(tests)
        ran[suite_name] = [t.id() for t in tests]
        outcomes.update(got)
        for test_id in fixture_errors:
            print("FIXTURE ERROR:", test_id)
            ok = False

    failed = sorted(i for i, o in outcomes.items() if o in ("fail", "error"))
    listed = expected.listed(ran)
    again = sorted(set(failed) | set(listed))
    if again:
        print("\n== The failures and the listed tests again, each alone, "
              "with the standard library's executor", flush=True)
    report = expected.compare(outcomes, ran, baseline(again))
    print("\n== Outcomes against tests/stdlib/expected.py")
    for line in report.lines():
        print(line)
    for suite_name, ids in ran.items():
        counts = {}
        for i in ids:
            o = report.outcome(i)
            counts[o] = counts.get(o, 0) + 1
        print("%s: %d ran: %s" % (suite_name, len(ids), ", ".join(
            "%d %s" % (n, o) for o, n in sorted(counts.items()))))
    ok = ok and report.ok
    print("\nRESULT:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
