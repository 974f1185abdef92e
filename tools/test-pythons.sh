#!/bin/sh
# Builds the extension and runs the Python suite on every CPython given, or
# on every python3.N found on PATH and under pyenv (each in its own venv
# under build/, which gets pytest and hypothesis).  Exits non-zero if a
# build or a suite fails; prints one line per interpreter at the end.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."

if [ $# -gt 0 ]; then
    pythons="$*"
else
    pythons=""
    for v in 9 10 11 12 13 14; do
        # pyenv's shims exist for versions that are not selected: take
        # the first interpreter that runs.
        for p in "$HOME"/.pyenv/versions/3.$v.*/bin/python3 \
                 $(command -v python3.$v 2>/dev/null); do
            [ -x "$p" ] && "$p" -c pass 2>/dev/null \
                && { pythons="$pythons $p"; break; }
        done
    done
fi
[ -n "$pythons" ] || { echo "no CPython found"; exit 1; }

status=0
summary=""
for py in $pythons; do
    ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    venv="$BUILD/venv-$ver"
    line="CPython $ver ($py):"
    if [ ! -x "$venv/bin/python" ] \
       && ! { "$py" -m venv "$venv" \
              && "$venv/bin/pip" -q install pytest hypothesis setuptools; }
    then
        summary="$summary
$line cannot make a venv with pytest"
        status=1
        continue
    fi
    if ! "$venv/bin/python" setup.py -q build_ext --inplace >/dev/null; then
        summary="$summary
$line build FAILED"
        status=1
        continue
    fi
    out=$("$venv/bin/python" -m pytest -q -p no:cacheprovider tests/python \
          2>&1 | tail -1)
    case "$out" in
        *failed*|*error*|"") status=1 ;;
    esac
    summary="$summary
$line $out"
done
echo "$summary"
exit $status
