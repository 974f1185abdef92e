#!/bin/sh
# Builds the extension and runs the Python suite on every CPython given, or
# on every python3.N and free-threaded python3.Nt found on PATH, under pyenv
# and under build/ (tools/build-python-ft.sh), each in its own venv under
# build/, which gets what tools/install-deps.sh installs for the tests.  A
# free-threaded interpreter runs with the GIL as the module leaves it
# (PYTHON_GIL unset: off).  Exits non-zero if a build or a suite fails;
# prints one line per interpreter at the end.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."

if [ $# -gt 0 ]; then
    pythons="$*"
else
    pythons=""
    for v in 9 10 11 12 13 14 15; do
        # pyenv's shims exist for versions that are not selected: take
        # the first interpreter that runs.
        for p in "$HOME"/.pyenv/versions/3.$v.*/bin/python3 \
                 $(command -v python3.$v 2>/dev/null); do
            [ -x "$p" ] && "$p" -c pass 2>/dev/null \
                && { pythons="$pythons $p"; break; }
        done
        for p in "$BUILD"/python3.${v}t/bin/python3.${v}t \
                 "$HOME"/.pyenv/versions/3.$v.*t/bin/python3.${v}t \
                 $(command -v python3.${v}t 2>/dev/null); do
            [ -x "$p" ] && "$p" -c pass 2>/dev/null \
                && { pythons="$pythons $p"; break; }
        done
    done
fi
[ -n "$pythons" ] || { echo "no CPython found"; exit 1; }

status=0
summary=""
for py in $pythons; do
    ver=$("$py" -c 'import sys, sysconfig; print("%d.%d%s" % (
        sys.version_info[:2]
        + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "",)))')
    venv="$BUILD/venv-$ver"
    line="CPython $ver ($py):"
    if ! { [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"; } \
       || ! PYTHON="$venv/bin/python" sh tools/install-deps.sh >/dev/null
    then
        summary="$summary
$line cannot make a venv with the test dependencies"
        status=1
        continue
    fi
    if ! "$venv/bin/python" setup.py -q build_ext --inplace >/dev/null; then
        summary="$summary
$line build FAILED"
        status=1
        continue
    fi
    log="$BUILD/test-$ver.log"
    if env -u PYTHON_GIL "$venv/bin/python" -m pytest -q -p no:cacheprovider \
           tests/python > "$log" 2>&1; then
        out=$(tail -n 1 "$log")
    else
        # pytest's own exit status: a crash leaves no summary line.
        out="FAILED (exit status $?, see $log): $(tail -n 1 "$log")"
        status=1
    fi
    summary="$summary
$line $out"
done
echo "$summary"
exit $status
