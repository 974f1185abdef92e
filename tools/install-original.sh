#!/bin/sh
# Installs the original Cython fastthreadpool 1.7.0 from PyPI into build/orig,
# an isolated directory, for the side-by-side benchmarks.  It has the same
# import name as this project, so it must never go into site-packages: the
# benchmarks run it in its own process with PYTHONPATH=build/orig.
#
# 1.7.0 ships as an sdist that needs Cython < 3 to build.  That Cython goes
# into its own directory (build/cython0) and is put on PYTHONPATH only for
# the build, so the environment's Cython stays as it is.
#
# Safe to run again: it does nothing when build/orig already holds a
# compiled fastthreadpool.
set -e
PYTHON=${PYTHON:-python3}
cd "$(dirname "$0")/.."
ORIG=build/orig
CYTHON_DIR=build/cython0
VERSION=1.7.0

# Checks run inside build/orig: "python -c" puts the current directory first
# on sys.path, and in the repository root that would find this project's
# package instead.
in_orig() { (cd $ORIG 2>/dev/null && PYTHONPATH=. "$@"); }

is_installed() {
    in_orig $PYTHON -c '
import sys, fastthreadpool, fastthreadpool.fastthreadpool as m
f = m.__file__
sys.exit(0 if "/build/orig/" in fastthreadpool.__file__
         and f.endswith(".so") and fastthreadpool.Pool.__module__ ==
         "fastthreadpool.fastthreadpool" else 1)
' 2>/dev/null
}

if is_installed; then
    echo "original fastthreadpool $VERSION: already in $ORIG"
    exit 0
fi

if ! PYTHONPATH=$CYTHON_DIR $PYTHON -c '
import sys, Cython
sys.exit(0 if Cython.__version__.split(".")[0] in ("0",) else 1)
' 2>/dev/null; then
    echo "installing Cython<3 into $CYTHON_DIR (build only)"
    rm -rf $CYTHON_DIR
    $PYTHON -m pip install -q --target $CYTHON_DIR 'cython<3'
fi

echo "building original fastthreadpool $VERSION into $ORIG"
rm -rf $ORIG
# --no-build-isolation: build with the Cython < 3 found on PYTHONPATH and the
# environment's setuptools.  --no-binary: always compile from the sdist.
PYTHONPATH=$CYTHON_DIR $PYTHON -m pip install -q --no-deps \
    --no-build-isolation --no-binary fastthreadpool --no-cache-dir \
    --target $ORIG "fastthreadpool==$VERSION"

if ! is_installed; then
    echo "error: $ORIG does not hold a compiled fastthreadpool" >&2
    in_orig $PYTHON -c \
        'import fastthreadpool; print(fastthreadpool.__file__)' >&2 || true
    exit 1
fi
in_orig $PYTHON -c 'import fastthreadpool.fastthreadpool as m
print("installed", m.__file__)'
