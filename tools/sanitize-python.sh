#!/bin/sh
# Run the Python test suite against an instrumented build of the extension.
#
#   tools/sanitize-python.sh asan      [pytest args...]
#   tools/sanitize-python.sh valgrind  [pytest args...]
#   tools/sanitize-python.sh tsan      [pytest args...]
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
# tsan: builds the extension with ThreadSanitizer into build/tsan-py/ and
# runs pytest there on a free-threaded CPython 3.13 built with
# --with-thread-sanitizer (TSan must see the synchronisation of every
# thread, CPython's included, so the interpreter itself is instrumented).
# TSAN_PYTHON names that interpreter; by default tools/build-python-ft.sh
# builds it once into build/python3.13t-tsan.  Reports go to files;
# tools/tsan-report.py fails the run for every one with a frame of ours in
# the accesses, and tools/tsan-python.supp suppresses known reports of
# CPython alone.
#
# An exception that kills a test's helper thread fails that test (pytest would
# only warn).  asan and valgrind use PYTHONMALLOC=malloc so that a Python
# object freed too early by the extension is a real heap block the checker can
# see, not a slot in a pymalloc arena (a free-threaded CPython knows only
# mimalloc).  Knobs: PYTHON, CC, BUILD, FTPOOL_TEST_DEADLINE (per-test
# deadline, raised here because everything runs several times slower),
# FTPOOL_STRESS_N (the job count of test_stress.py, 50,000 under ASan,
# 20,000 under TSan),
# FTPOOL_LEAK_CYCLES (test_leaks.py, 16 under memcheck),
# FTPOOL_TIMER_SPREAD (the timer delays of test_timers_cancel_race.py, 2 s
# under memcheck, where arming the timers takes longer than 30 ms),
# FTPOOL_TSAN_TIMEOUT, PYTHON_GIL (tsan: see there).
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

# A mirror of the package and the tests in $1: conftest.py puts its own
# repository root first on sys.path, so the tests must live next to the
# instrumented package.  Files keep their times (cp -p), so that compiled
# test modules left there stay valid.
mirror() {
    rm -rf "$1/fastthreadpool"
    mkdir -p "$1/fastthreadpool" "$1/tests/python"
    find "$1/tests/python" -mindepth 1 -maxdepth 1 ! -name __pycache__ \
        -exec rm -rf {} +
    cp -p fastthreadpool/*.py fastthreadpool/*.pyi fastthreadpool/py.typed \
        "$1/fastthreadpool/"
    cp -pR tests/python/. "$1/tests/python/"
}

case "$mode" in
asan)
    out="$BUILD/asan-py"
    mirror "$out"
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
tsan)
    if [ -z "${TSAN_PYTHON:-}" ]; then
        # The standard library's test modules are left out: byte-compiling
        # them with the instrumented interpreter would take longer than
        # the rest of the build.
        TSAN_PYTHON=$(FTPOOL_PY_CONFIGURE="--with-thread-sanitizer \
                          --disable-test-modules" \
                      sh tools/build-python-ft.sh "$BUILD/python3.13t-tsan" \
                      | tail -n 1)
    fi
    # Set-up steps run with reports off: pip's own threads are not ours.
    quiet="env TSAN_OPTIONS=report_bugs=0"
    PYTHON=$($quiet "$TSAN_PYTHON" -c 'import sys; print(sys.executable)')
    # Wheels first: where no wheel of the newest hypothesis fits (free-
    # threaded 3.13), pip would build its native part from source.
    $quiet "$PYTHON" -c 'import pytest, hypothesis, setuptools' \
        2>/dev/null \
        || $quiet "$PYTHON" -m pip install -q --prefer-binary \
               pytest hypothesis setuptools
    out="$BUILD/tsan-py"
    mirror "$out"
    FTPOOL_SANITIZE=thread $quiet "$PYTHON" setup.py -q build_ext \
        --force --build-lib "$out" --build-temp "$out/temp"
    cd "$out"
    rm -rf reports
    mkdir reports
    # The module declares that it does not need the GIL, so the GIL stays
    # off unless PYTHON_GIL is given (PYTHON_GIL=1: the same run with it).
    gil=${PYTHON_GIL-}
    # Every report goes to a file (log_path: one per process, children
    # included) and is judged there.  Hence exitcode=0: a race must not
    # also fail a test that looks at a child's exit status; and no
    # halt_on_error, which would stop the run at the first report.  The
    # longer access history lets TSan show both sides of a race in a long
    # run (TSAN_OPTIONS given by the caller come last and win).
    tsan="suppressions=$ROOT/tools/tsan-python.supp:exitcode=0"
    tsan="$tsan:history_size=6:log_path=$ROOT/$out/reports/tsan"
    status=0
    # Parsing and pytest's assertion rewriting are slow under TSan: the
    # compiled test modules are kept in the mirror between runs.  Memory
    # corrupted by a race can leave the interpreter spinning at exit:
    # FTPOOL_TSAN_TIMEOUT (seconds) bounds the whole run.  -v names the
    # test during which the process died: the deadline watchdog's dump
    # goes to the captured output, which dies with it.
    env -u PYTHONDONTWRITEBYTECODE -u PYTHON_GIL ${gil:+PYTHON_GIL=$gil} \
        TSAN_OPTIONS="$tsan${TSAN_OPTIONS:+:$TSAN_OPTIONS}" \
        FTPOOL_TEST_DEADLINE="${FTPOOL_TEST_DEADLINE:-60}" \
        FTPOOL_STRESS_N="${FTPOOL_STRESS_N:-20000}" \
        timeout -k 30 "${FTPOOL_TSAN_TIMEOUT:-3600}" \
        "$PYTHON" -m pytest -v -p no:cacheprovider $paths \
            -W error::pytest.PytestUnhandledThreadExceptionWarning "$@" \
        || status=$?
    if [ $status -eq 124 ]; then
        echo "tsan-py: timed out" >&2
    fi
    $quiet "$PYTHON" "$ROOT/tools/tsan-report.py" reports || status=1
    exit $status
    ;;
*)
    echo "usage: $0 asan|valgrind|tsan [pytest args...]" >&2
    exit 2
    ;;
esac
