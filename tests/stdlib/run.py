"""Runs CPython's ThreadPoolExecutor and asyncio executor tests with
fastthreadpool.ThreadPoolExecutor in the standard one's place, on each
interpreter given (default: this one; --all: every CPython 3.9+ found;
--ends: of those, the oldest and newest with the GIL, every free-threaded
one and this one, a quicker run).

    python3 tests/stdlib/run.py [--all | --ends] [PYTHON ...]

For each interpreter: a private venv build/stdlib-venv-<tag> whose .pth
imports inject/fastthreadpool_substitute.py at start-up (child processes in
isolated mode included), the extension built in place for that interpreter,
then suites.py in the venv.  Prints every test and a summary line per
interpreter; exits 1 if any run failed, or (--all) if no interpreter had
test.test_concurrent_futures.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
# The whole run of one interpreter; each test also has its own deadline
# (suites.TEST_TIMEOUT).
RUN_TIMEOUT = 1800

PROBE = """
import importlib.util, os, sys, sysconfig
def has(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False
print("%d.%d%s" % (sys.version_info[:2]
                   + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED")
                      else "",)))
print(int(has("test.test_concurrent_futures")))
print(int(has("test.test_asyncio")))
try:
    import setuptools
    print(1)
except ImportError:
    print(0)
print(os.path.realpath(sys.executable))
"""


def find_pythons():
    """Every CPython 3.9+ on PATH, under pyenv, Debian's /usr/bin and the
    free-threaded build of tools/build-python-ft.sh; one per version."""
    found = {}      # real executable -> the path given
    home = os.path.expanduser("~")
    candidates = []
    for minor in range(9, 20):
        candidates += sorted(glob.glob(
            os.path.join(home, ".pyenv/versions/3.%d.*/bin/python3" % minor)))
        candidates.append(shutil.which("python3.%d" % minor))
        candidates.append("/usr/bin/python3.%d" % minor)
    candidates += glob.glob(os.path.join(BUILD, "python3.*t/bin/python3.*t"))
    for path in candidates:
        if not path or not os.access(path, os.X_OK):
            continue
        info = probe(path)
        # pyenv's shims and symlinks lead to one executable.  pyenv's and
        # Debian's 3.11 are distinct builds and both kept (Debian's has the
        # whole test package with libpython3.11-testsuite).
        if info is not None:
            found.setdefault(info["real"], path)
    return list(found.values())


def ends(pythons):
    """The oldest and newest GIL builds, and the free-threaded ones."""
    gil, free = [], []
    for python in pythons:
        tag = probe(python)["tag"]
        if tag.endswith("t"):
            free.append(python)
        else:
            gil.append((tuple(int(x) for x in tag.split(".")), python))
    gil.sort()
    return [p for _, p in gil[:1] + gil[-1:]] + free


def probe(python):
    os.makedirs(BUILD, exist_ok=True)
    try:
        out = subprocess.run([python, "-c", PROBE], capture_output=True,
                             text=True, timeout=60, cwd=BUILD)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    tag, futures, aio, setuptools, real = out.stdout.split("\n")[:5]
    return {"tag": tag, "futures": futures == "1",
            "asyncio": aio == "1", "setuptools": setuptools == "1",
            "real": real}


def venv_name(python, info):
    # Distinct builds of one version (pyenv, Debian) get distinct venvs.
    kind = "-debian" if info["real"].startswith("/usr/") else ""
    return os.path.join(BUILD, "stdlib-venv-%s%s" % (info["tag"], kind))


def prepare(python, info):
    """The venv's python, with the extension built for it, or raise."""
    venv = venv_name(python, info)
    vpy = os.path.join(venv, "bin", "python")
    if not os.path.exists(vpy):
        args = [python, "-m", "venv"]
        if info["setuptools"]:
            # The base interpreter builds the extension; the venv needs
            # neither pip nor setuptools.
            args.append("--without-pip")
        subprocess.run(args + [venv], check=True)
        if not info["setuptools"]:
            subprocess.run([vpy, "-m", "pip", "install", "-q", "setuptools"],
                           check=True)
    purelib = subprocess.run(
        [vpy, "-c", "import sysconfig; print(sysconfig.get_paths()"
         "['purelib'])"], capture_output=True, text=True,
        check=True).stdout.strip()
    with open(os.path.join(purelib, "fastthreadpool_stdlib.pth"), "w") as f:
        f.write("%s\n%s\nimport fastthreadpool_substitute\n"
                % (ROOT, os.path.join(HERE, "inject")))
    builder = python if info["setuptools"] else vpy
    env = dict(os.environ)
    env.pop("FTP_STDLIB_SUBSTITUTE", None)
    build = subprocess.run(
        [builder, "setup.py", "-q", "build_ext", "--inplace"], cwd=ROOT,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if build.returncode != 0:
        sys.stdout.write(build.stdout)
        raise RuntimeError("the extension did not build for " + python)
    return vpy


def run_one(python):
    info = probe(python)
    if info is None:
        return None, "does not run"
    label = "CPython %s (%s)" % (info["tag"], python)
    if not (info["futures"] or info["asyncio"]):
        return info, "%s: no stdlib test package, nothing run" % label
    print("\n######## %s" % label, flush=True)
    try:
        vpy = prepare(python, info)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        info["ok"] = False
        return info, "%s: FAILED to prepare: %s" % (label, exc)
    env = dict(os.environ)
    env["FTP_STDLIB_SUBSTITUTE"] = "1"
    env.pop("PYTHONPATH", None)
    os.makedirs(BUILD, exist_ok=True)
    # The tests write scratch files into the current directory.
    cwd = tempfile.mkdtemp(prefix="stdlib-run-", dir=BUILD)
    try:
        proc = subprocess.run(
            [vpy, "-X", "faulthandler", os.path.join(HERE, "suites.py")],
            cwd=cwd, env=env, timeout=RUN_TIMEOUT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        out, rc = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out, rc = (exc.stdout or b"").decode(errors="replace"), "timeout"
    finally:
        shutil.rmtree(cwd, ignore_errors=True)
    sys.stdout.write(out)
    summary = [line for line in out.splitlines()
               if line.startswith(("concurrent.futures: ", "asyncio: "))]
    status = "OK" if rc == 0 else "FAILED (exit %s)" % rc
    info["ok"] = rc == 0
    return info, "%s: %s; %s" % (label, status, "; ".join(summary)
                                 or "no summary")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--all", action="store_true",
                        help="every CPython 3.9+ found")
    parser.add_argument("--ends", action="store_true",
                        help="of those, the oldest and newest with the "
                        "GIL, the free-threaded ones and this one")
    parser.add_argument("pythons", nargs="*")
    args = parser.parse_args()
    pythons = list(args.pythons)
    if args.all:
        pythons += find_pythons()
    elif args.ends:
        pythons += [sys.executable] + ends(find_pythons())
        args.all = True
    if not pythons:
        pythons = [sys.executable]
    # One run per interpreter, however many paths lead to it.
    seen = set()
    unique = []
    for python in pythons:
        info = probe(python)
        key = info["real"] if info else python
        if key not in seen:
            seen.add(key)
            unique.append(python)
    pythons = unique

    ok = True
    futures_ran = False
    lines = []
    for python in pythons:
        info, line = run_one(python)
        lines.append(line)
        if info is None or info.get("ok") is False:
            ok = False
        if info is not None and "ok" in info and info["futures"]:
            futures_ran = True
    print("\n######## Summary")
    for line in lines:
        print(line)
    if args.all and not futures_ran:
        print("no interpreter found has test.test_concurrent_futures")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
