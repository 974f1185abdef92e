"""The bookkeeping of tests/stdlib (the run of CPython's own executor tests
against ours): a failure passes only if the reviewed list names it and the
standard executor's outcome agrees with the entry; a listed test that
passes, an entry that names nothing and an unlisted failure fail the run.
(The suites themselves run with `make test-stdlib`.)"""
import fnmatch
import importlib.util
import os

import pytest

from conftest import SOURCE


@pytest.fixture
def expected(monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "stdlib_expected", os.path.join(SOURCE, "tests", "stdlib",
                                        "expected.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def use(*entries):
        monkeypatch.setattr(mod, "EXPECTED_FAILURES", list(entries))
    mod.use = use
    return mod


RAN = {"suite": ["test.m.A.test_1", "test.m.A.test_2", "test.m.B.test_3"]}


def entry(expected, pattern, ours=True, when=None, reason="why"):
    return expected.Entry(pattern, ours, when or (lambda v: True), reason)


def compare(expected, outcomes, baseline=None):
    return expected.compare(outcomes, RAN, baseline or {})


def test_all_passing_and_nothing_listed_is_ok(expected):
    expected.use()
    report = compare(expected, dict.fromkeys(RAN["suite"], "pass"))
    assert report.ok
    assert [report.outcome(i) for i in RAN["suite"]] == ["pass"] * 3


def test_an_unlisted_failure_fails_the_run(expected):
    expected.use()
    outcomes = dict.fromkeys(RAN["suite"], "pass")
    outcomes["test.m.A.test_2"] = "error"
    report = compare(expected, outcomes, {"test.m.A.test_2": "pass"})
    assert not report.ok
    assert report.outcome("test.m.A.test_2") == "UNEXPECTED ERROR"
    assert any("UNEXPECTED ERROR: test.m.A.test_2" in line
               and "standard executor: pass" in line
               for line in report.lines())


def test_a_test_that_never_reported_fails_the_run(expected):
    expected.use()
    outcomes = {"test.m.A.test_1": "pass", "test.m.B.test_3": "pass"}
    report = compare(expected, outcomes)
    assert not report.ok
    assert report.outcome("test.m.A.test_2") == "UNEXPECTED NOT RUN"


def test_a_listed_failure_with_a_matching_baseline_is_ok(expected):
    expected.use(entry(expected, "test.m.A.test_2", ours=True),
                 entry(expected, "test.m.B.*", ours=False))
    outcomes = {"test.m.A.test_1": "pass", "test.m.A.test_2": "fail",
                "test.m.B.test_3": "error"}
    report = compare(expected, outcomes, {"test.m.A.test_2": "pass",
                                          "test.m.B.test_3": "fail"})
    assert report.ok, report.lines()
    assert report.outcome("test.m.A.test_2") == "expected failure"
    assert report.outcome("test.m.B.test_3") == "expected failure"


@pytest.mark.parametrize("ours, baseline", [(True, "fail"),
                                            (False, "pass")])
def test_a_baseline_that_contradicts_the_entry_fails(expected, ours,
                                                     baseline):
    expected.use(entry(expected, "test.m.A.test_2", ours=ours))
    outcomes = dict.fromkeys(RAN["suite"], "pass")
    outcomes["test.m.A.test_2"] = "fail"
    report = compare(expected, outcomes, {"test.m.A.test_2": baseline})
    assert not report.ok
    assert report.outcome("test.m.A.test_2") == "WRONG ENTRY"


def test_a_listed_test_that_passes_fails_the_run(expected):
    expected.use(entry(expected, "test.m.A.*"))
    outcomes = dict.fromkeys(RAN["suite"], "pass")
    outcomes["test.m.A.test_1"] = "fail"
    report = compare(expected, outcomes, {"test.m.A.test_1": "pass"})
    assert not report.ok
    assert report.outcome("test.m.A.test_1") == "expected failure"
    assert report.outcome("test.m.A.test_2") == "UNEXPECTED PASS"


def test_a_listed_test_the_stdlib_skipped_is_neither(expected):
    expected.use(entry(expected, "test.m.A.test_1"))
    outcomes = dict.fromkeys(RAN["suite"], "pass")
    outcomes["test.m.A.test_1"] = "skip"
    report = compare(expected, outcomes)
    assert report.ok
    assert report.outcome("test.m.A.test_1") == "skip"


def test_an_entry_that_names_no_test_fails_the_run(expected):
    expected.use(entry(expected, "test.m.C.*"))
    report = compare(expected, dict.fromkeys(RAN["suite"], "pass"))
    assert not report.ok
    assert any("STALE ENTRY" in line for line in report.lines())


def test_an_entry_for_other_versions_is_ignored(expected):
    expected.use(entry(expected, "test.m.C.*", when=lambda v: False))
    report = compare(expected, dict.fromkeys(RAN["suite"], "pass"))
    assert report.ok


def test_the_list_itself_is_well_formed(expected):
    assert expected.EXPECTED_FAILURES
    for e in expected.EXPECTED_FAILURES:
        assert e.pattern.startswith("test.test_")
        assert fnmatch.fnmatchcase(e.pattern, "*.test_*")
        assert isinstance(e.ours, bool)
        assert len(e.reason) > 40
        assert isinstance(e.when((3, 13, 0, "final", 0)), bool)


def test_ends_keeps_oldest_and_newest_gil_builds_and_every_free_threaded(
        monkeypatch):
    # A quicker run keeps the ends of the range; versions sort as numbers
    # (3.10 after 3.9).
    spec = importlib.util.spec_from_file_location(
        "stdlib_run", os.path.join(SOURCE, "tests", "stdlib", "run.py"))
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    tags = {"a": "3.10", "b": "3.9", "c": "3.13t", "d": "3.12", "e": "3.11",
            "f": "3.14t"}
    monkeypatch.setattr(run, "probe", lambda p: {"tag": tags[p]})
    assert run.ends(list(tags)) == ["b", "d", "c", "f"]
