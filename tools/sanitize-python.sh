#!/bin/sh
# Run the Python test suite against an instrumented build of the extension.
#
#   tools/sanitize-python.sh asan      [pytest args...]
#   tools/sanitize-python.sh valgrind  [pytest args...]
#
# asan: builds the extension with ASan+UBSan into build/asan-py/ (the normal
# in-place .so is left alone) and runs pytest there with gcc's libasan
# preloaded, because the python3 binary itself is not instrumented.
# valgrind: runs pytest under memcheck against the normal in-place build
# (make ext).  CPython 3.11 itself reports uninitialised reads at startup
# (int.from_bytes), which then spread to every use of the value, so the
# exit status of valgrind is not used: tools/valgrind-report.py fails the
# run for every memory error and every definite leak whose stacks (where
# it happened, where the block was allocated or freed) pass through our
# extension.
#
# An exception that kills a test's helper thread fails that test (pytest
# would only warn).  Both use PYTHONMALLOC=malloc so that a Python object freed too early by
# the extension is a real heap block the checker can see, not a slot in a
# pymalloc arena.  Knobs: PYTHON, CC, BUILD, FTPOOL_TEST_DEADLINE (per-test
# deadline, raised here because everything runs several times slower),
# FTPOOL_STRESS_N (the job count of test_stress.py, 50,000 under ASan),
# FTPOOL_LEAK_CYCLES (test_leaks.py, 16 under memcheck),
# FTPOOL_TIMER_SPREAD (the timer delays of test_timers_cancel_race.py, 2 s
# under memcheck, where arming the timers takes longer than 30 ms).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
# The interpreter itself, not a wrapper script (pyenv shims are shell
# scripts: valgrind would trace bash, and the preload would reach it too).
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')
BUILD=${BUILD:-build}
mode=${1:-}
[ $# -gt 0 ] && shift
# Without test paths among the arguments, the whole suite runs.
paths=tests/python
for arg in "$@"; do
    case "$arg" in tests/*) paths= ;; esac
done

case "$mode" in
asan)
    out="$BUILD/asan-py"
    # A mirror of the package and the tests: conftest.py puts its own
    # repository root first on sys.path, so the tests must live next to
    # the instrumented package.
    rm -rf "$out/fastthreadpool" "$out/tests"
    mkdir -p "$out/fastthreadpool" "$out/tests"
    cp fastthreadpool/*.py fastthreadpool/*.pyi fastthreadpool/py.typed \
        "$out/fastthreadpool/"
    cp -r tests/python "$out/tests/python"
    rm -rf "$out/tests/python/__pycache__"
    FTPOOL_SANITIZE=address,undefined "$PYTHON" setup.py -q build_ext \
        --force --build-lib "$out" --build-temp "$out/temp"
    libasan=$(${CC:-gcc} -print-file-name=libasan.so)
    [ -f "$libasan" ] || { echo "libasan.so not found" >&2; exit 2; }
    cd "$out"
    # Reports also go to files, so that an error in an interpreter that a
    # test starts (whose exit status the test may not look at) fails the
    # run too.  detect_leaks=0: CPython does not free everything at exit;
    # leaks are covered by valgrind-py and test_leaks.py.
    rm -rf reports
    mkdir reports
    logs="log_path=$ROOT/$out/reports/san"
    asan="detect_leaks=0:exitcode=86:$logs${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    ubsan="print_stacktrace=1:halt_on_error=1:$logs"
    status=0
    env LD_PRELOAD="$libasan" PYTHONMALLOC=malloc \
        ASAN_OPTIONS="$asan" \
        UBSAN_OPTIONS="$ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
        FTPOOL_TEST_DEADLINE="${FTPOOL_TEST_DEADLINE:-60}" \
        FTPOOL_STRESS_N="${FTPOOL_STRESS_N:-50000}" \
        "$PYTHON" -m pytest -q -p no:cacheprovider $paths \
            -W error::pytest.PytestUnhandledThreadExceptionWarning "$@" \
        || status=$?
    for report in reports/san.*; do
        [ -e "$report" ] || continue
        cat "$report" >&2
        status=1
    done
    [ $status -eq 0 ] && echo "asan-py: no ASan/UBSan reports"
    exit $status
    ;;
valgrind)
    log="$BUILD/valgrind-py"
    rm -rf "$log"
    mkdir -p "$log"
    status=0
    # Interpreters started by subprocess tests run natively (under
    # memcheck they could not meet those tests' timeouts; asan-py covers
    # them); forked children are followed.  One log per process.
    env PYTHONMALLOC=malloc \
        FTPOOL_TEST_DEADLINE="${FTPOOL_TEST_DEADLINE:-300}" \
        FTPOOL_LEAK_CYCLES="${FTPOOL_LEAK_CYCLES:-16}" \
        FTPOOL_TIMER_SPREAD="${FTPOOL_TIMER_SPREAD:-2}" \
        valgrind --tool=memcheck --trace-children=no \
            --leak-check=full --show-leak-kinds=definite \
            --errors-for-leak-kinds=none --num-callers=40 --fullpath-after= \
            --suppressions="$ROOT/tools/valgrind-python.supp" \
            --log-file="$ROOT/$log/vg.%p.log" \
        "$PYTHON" -m pytest -q -p no:cacheprovider $paths \
            -W error::pytest.PytestUnhandledThreadExceptionWarning "$@" \
        || status=$?
    # Definite leaks are reported for the whole process; only those whose
    # stack passes through our extension count.
    "$PYTHON" tools/valgrind-report.py "$log" || status=$?
    exit $status
    ;;
*)
    echo "usage: $0 asan|valgrind [pytest args...]" >&2
    exit 2
    ;;
esac
