#!/bin/sh
# Builds free-threaded CPython 3.13 (configure --disable-gil) from Debian 13's
# source package python3.13 and installs it under a prefix; prints the path
# of the interpreter on its last line.  Reuses an interpreter already
# installed there.
#
#   sh tools/build-python-ft.sh [PREFIX]    default: $BUILD/python3.13t (build/)
#   FTPOOL_PY_CONFIGURE="--with-thread-sanitizer" sh tools/build-python-ft.sh build/python3.13t-tsan
#                                          extra configure flags (make tsan-py)
#
# The source comes through a private apt configuration (its own source list,
# package lists and cache under the build directory) on the mirror that the
# system's apt sources already use, so the system's own apt set-up is never
# changed.  About 5 minutes on 2 cores.
set -eu
cd "$(dirname "$0")/.."
prefix=${1:-${BUILD:-build}/python3.13t}
case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac
py="$prefix/bin/python3.13t"
if [ -x "$py" ] && "$py" -c 'import sys, ssl; sys.exit(sys._is_gil_enabled())' \
        2>/dev/null; then
    echo "$py"
    exit 0
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO=sudo

# What CPython's build needs for the modules the tests use (ssl for pip,
# ctypes, zlib, bz2, lzma, sqlite3, readline), where missing.
pkgs=""
for p in build-essential pkg-config libssl-dev zlib1g-dev libffi-dev \
         libbz2-dev liblzma-dev libsqlite3-dev libreadline-dev uuid-dev \
         xz-utils; do
    dpkg -s "$p" >/dev/null 2>&1 || pkgs="$pkgs $p"
done
if [ -n "$pkgs" ]; then
    echo "installing Debian packages:$pkgs" >&2
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $pkgs >&2
fi

# The Debian mirror the system already uses: the first URI of a source that
# serves Debian's main archive (deb822 .sources files or sources.list).
mirror=$(
    { cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
          | awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }';
      cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | awk '$1 == "deb" || $1 == "deb-src" {
                     for (i = 2; i <= NF; i++)
                         if ($i ~ /^[a-z]+:\/\//) { print $i; break } }';
    } | grep -v -e security -e '^$' | grep '/debian/*$' | head -n 1)
[ -n "$mirror" ] || { echo "no Debian mirror in the apt sources" >&2; exit 1; }

# Sources and the private apt state sit beside the prefix, so that two
# builds (plain and ThreadSanitizer) never share a directory.
work="$prefix.src"
apt="$work/apt"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/parts"
echo "deb-src $mirror trixie main" > "$apt/sources.list"
aptopts="-o Dir::Etc::SourceList=$apt/sources.list
         -o Dir::Etc::SourceParts=$apt/parts
         -o Dir::State::Lists=$apt/lists
         -o Dir::Cache=$apt/cache
         -o APT::Sandbox::User=root"
echo "fetching python3.13 (trixie) from $mirror" >&2
# shellcheck disable=SC2086
apt-get -qq $aptopts update >&2
(cd "$work" && apt-get -qq $aptopts source --download-only python3.13 >&2)
orig=$(ls "$work"/python3.13_*.orig.tar.xz | tail -n 1)

src="$work/src"
rm -rf "$src"
mkdir -p "$src"
tar -xJf "$orig" -C "$src" --strip-components=1
cd "$src"
# shellcheck disable=SC2086
./configure -q --disable-gil --prefix="$prefix" ${FTPOOL_PY_CONFIGURE:-} >&2
make -s -j"$(nproc 2>/dev/null || echo 2)" >&2
make -s install >&2
"$py" -c 'import sys, ssl; assert not sys._is_gil_enabled()'
echo "$py"
