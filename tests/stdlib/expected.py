"""The reviewed list of CPython tests that fail with
fastthreadpool.ThreadPoolExecutor in the standard one's place, each with the
reason, and the comparison of a run's outcomes with it.

An entry names tests by an fnmatch pattern on the unittest id (the module
part differs between versions: test.test_concurrent_futures.X before 3.12,
test.test_concurrent_futures.test_thread_pool.X since).  It applies when
`when(sys.version_info)` is true; an applicable entry must match at least
one test of a suite that ran, and every test it matches must fail: a listed
test that passes is reported, so the list never keeps stale entries.
docs/compatibility.md explains each entry for users.
"""
import fnmatch
import os
import sys
from collections import namedtuple

# ours: True if the test fails only with our executor (the standard one
# passes it), False if it fails with the standard executor too.  suites.py
# runs every listed test once more, alone, with the standard executor, and
# checks that claim.
Entry = namedtuple("Entry", "pattern ours when reason")


def affinity_restricted():
    """True if this process may use fewer CPUs than the machine has
    (taskset, a container's CPU set)."""
    return (hasattr(os, "sched_getaffinity")
            and len(os.sched_getaffinity(0)) < (os.cpu_count() or 1))


EXPECTED_FAILURES = [
    Entry("test.test_concurrent_futures*.ThreadPoolExecutorTest"
          ".test_default_workers", True,
          lambda v: v < (3, 13) and affinity_restricted(),
          "Before 3.13 the standard executor's default max_workers counts "
          "every CPU of the machine (os.cpu_count()) and the test expects "
          "that; ours counts the CPUs this process may use, as 3.13 does "
          "(os.process_cpu_count()).  The numbers differ only under a "
          "narrowed CPU affinity mask (taskset, container CPU sets)."),
    Entry("test.test_asyncio.test_subprocess.GenericWatcherTests"
          ".test_create_subprocess_with_pidfd", False,
          lambda v: v[:2] == (3, 12),
          "3.12 (seen on 3.12.1): the test expects the main thread's event "
          "loop policy to raise RuntimeError for a missing loop, which "
          "holds only after an earlier test of its module has called "
          "asyncio.set_event_loop(); run on its own, or after other "
          "modules' tests, the policy makes a loop instead (with a "
          "DeprecationWarning), with the standard executor as well."),
]


def applicable(version=None):
    version = version or sys.version_info
    return [e for e in EXPECTED_FAILURES if e.when(version)]


def listed(ran, version=None):
    """The ids among `ran` ({suite: [test ids]}) that an entry names."""
    ids = [i for tests in ran.values() for i in tests]
    return [i for i in ids if any(fnmatch.fnmatchcase(i, e.pattern)
                                  for e in applicable(version))]


class Report:
    """The outcome of each test that ran, against the list and against
    the run of the failures with the standard executor (`baseline`)."""

    def __init__(self, outcomes, ran, baseline, entries):
        self.ran_ids = [i for ids in ran.values() for i in ids]
        self._outcome = {}
        self._problems = []
        self._entry = {}
        for entry in entries:
            matched = [i for i in self.ran_ids
                       if fnmatch.fnmatchcase(i, entry.pattern)]
            if not matched:
                self._problems.append(
                    "STALE ENTRY (names no test that ran): %s"
                    % entry.pattern)
            for i in matched:
                self._entry[i] = entry
        for i in self.ran_ids:
            got = outcomes.get(i, "not run")
            base = baseline.get(i)
            entry = self._entry.get(i)
            failed = got in ("fail", "error", "not run")
            if entry is None:
                o = "UNEXPECTED " + got.upper() if failed else got
                if failed:
                    self._problems.append(
                        "%s: %s (with the standard executor: %s)"
                        % (o, i, base))
            elif got == "skip":
                # The stdlib skipped it here (a missing OS feature...):
                # neither confirms nor contradicts the entry.
                o = got
            elif not failed:
                o = "UNEXPECTED " + got.upper()
                self._problems.append("%s of a listed test: %s" % (o, i))
            elif (base == "pass") != entry.ours:
                o = "WRONG ENTRY"
                self._problems.append(
                    "WRONG ENTRY: %s is listed as failing %s, but with the "
                    "standard executor its outcome is %s"
                    % (i, "only with ours" if entry.ours
                       else "with the standard executor too", base))
            else:
                o = "expected failure"
            self._outcome[i] = o

    def outcome(self, test_id):
        return self._outcome[test_id]

    @property
    def ok(self):
        return not self._problems

    def lines(self):
        out = []
        for i in self.ran_ids:
            if self._outcome[i] == "expected failure":
                e = self._entry[i]
                out.append("expected failure (%s): %s\n    %s"
                           % ("only with ours" if e.ours
                              else "the standard executor fails it too",
                              i, e.reason))
        out.extend(self._problems)
        return out


def compare(outcomes, ran, baseline, version=None):
    """A Report of `outcomes` ({test id: "pass"|"fail"|"error"|"skip"})
    for the tests `ran` ({suite: [test ids]}), with the outcomes of the
    failed and listed tests with the standard executor (`baseline`)."""
    return Report(outcomes, ran, baseline, applicable(version))
