#!/bin/sh
# Installs what the tests (default), the full checks (--check: valgrind),
# the benchmarks (--bench), the Windows build (--win: the MinGW-w64 cross
# compiler and Wine, for make test-win), the documentation (--docs: Sphinx
# and MyST-Parser, for make docs) or make test-stdlib (--stdlib: the test
# package of Debian's python3) need on a fresh Debian machine; --bench-ft:
# what the benchmarks need from the free-threaded interpreter given as
# $PYTHON (setuptools to build the extension, uvloop if it builds).  Safe to
# run again: it only installs what is missing.
set -e
PYTHON=${PYTHON:-python3}
want_bench=0
want_check=0
want_win=0
want_docs=0
want_stdlib=0
want_bench_ft=0
[ "${1:-}" = "--bench" ] && want_bench=1
[ "${1:-}" = "--check" ] && want_check=1
[ "${1:-}" = "--win" ] && want_win=1
[ "${1:-}" = "--docs" ] && want_docs=1
[ "${1:-}" = "--stdlib" ] && want_stdlib=1
[ "${1:-}" = "--bench-ft" ] && want_bench_ft=1
# Sphinx gets a virtual environment of its own: it needs a newer docutils
# than other tools installed beside the interpreter may accept.
DOCS_VENV=${DOCS_VENV:-build/docs-venv}

SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO=sudo

apt_pkgs=""
need_pkg() { dpkg -s "$1" >/dev/null 2>&1 || apt_pkgs="$apt_pkgs $1"; }
if command -v dpkg >/dev/null 2>&1; then
    if [ $want_check = 1 ]; then need_pkg valgrind; fi
    if [ $want_win = 1 ]; then
        need_pkg gcc-mingw-w64-x86-64
        need_pkg wine
    fi
    if [ $want_docs = 1 ] && ! $PYTHON -c "import ensurepip" 2>/dev/null; then
        need_pkg python3-venv
    fi
    if [ $want_stdlib = 1 ] && [ -x /usr/bin/python3 ]; then
        # Debian ships CPython's own tests apart from the interpreter.
        v=$(/usr/bin/python3 -c \
            'import sys; print("%d.%d" % sys.version_info[:2])')
        need_pkg libpython$v-testsuite
    fi
    if [ $want_bench = 1 ]; then
        need_pkg libglib2.0-dev
        need_pkg libuv1-dev
        need_pkg pkg-config
    fi
    if [ -n "$apt_pkgs" ]; then
        echo "installing Debian packages:$apt_pkgs"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $apt_pkgs >/dev/null
    fi
fi

py_need() { $PYTHON -c "import $1" 2>/dev/null || py_pkgs="$py_pkgs $2"; }
# mypy 2 depends on ast-serialize, which has no wheel for the free-threaded
# build (3.13t) and whose sources need Rust crates from the network; pip's
# --prefer-binary does not help with a dependency.  mypy 1 is pure Python.
mypy_req=mypy
if $PYTHON -c 'import sys, sysconfig
sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") else 1)'; then
    mypy_req="mypy<2"
fi
py_pkgs=""
py_need pytest pytest
py_need hypothesis hypothesis
py_need mypy "$mypy_req"
py_need setuptools setuptools
py_need distributed distributed     # tests/python/test_dask.py, bench/dask
if [ $want_bench = 1 ]; then
    py_need uvloop uvloop
    py_need matplotlib matplotlib
fi
if [ -n "$py_pkgs" ]; then
    echo "installing Python packages:$py_pkgs"
    # --prefer-binary: a release without a wheel for this interpreter (a
    # free-threaded one, say) may need a compiler toolchain to build.
    $PYTHON -m pip install -q --prefer-binary $py_pkgs
fi
if [ $want_bench = 1 ]; then PYTHON=$PYTHON sh "$(dirname "$0")/install-original.sh"; fi
# uvloop builds from source where it has no wheel (free-threaded 3.13); if it
# does not, the benchmark reports the uvloop servers of that interpreter as
# skipped.
if [ $want_bench_ft = 1 ] && ! $PYTHON -c "import uvloop" 2>/dev/null; then
    echo "installing Python packages: uvloop (for $PYTHON)"
    $PYTHON -m pip install -q --prefer-binary uvloop \
        || echo "uvloop did not install for $PYTHON: its echo servers will be skipped"
fi
# The environment must run the interpreter the extension is built for, since
# autodoc imports the extension.
py_version() { "$1" -c 'import sys; print(sys.version_info[:2])'; }
if [ $want_docs = 1 ] && { ! "$DOCS_VENV/bin/python" -c "import sphinx, myst_parser" \
        2>/dev/null || [ "$(py_version "$DOCS_VENV/bin/python")" != "$(py_version $PYTHON)" ]; }; then
    echo "installing Sphinx and MyST-Parser into $DOCS_VENV"
    $PYTHON -m venv --clear "$DOCS_VENV"
    "$DOCS_VENV/bin/python" -m pip install -q sphinx myst-parser
fi
