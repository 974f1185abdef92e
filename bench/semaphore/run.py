#!/usr/bin/env python3
"""Semaphore: release()+acquire() pairs, uncontended and contended.

Competitors: this project's ``fastthreadpool.Semaphore``, the original
Cython fastthreadpool 1.7.0's ``Semaphore`` (from build/orig, installed by
tools/install-original.sh), ``threading.Semaphore`` and ``threading.Lock``
(the floor: the C lock under both).

- uncontended: one thread, N times ``release(); acquire()`` on an object
  created empty (``Semaphore(0)``, or a ``Lock`` acquired beforehand), so
  the acquire never waits.
- contended: 2 threads share one object created with one permit
  (``Semaphore(1)``, an unlocked ``Lock``) and each does N/2 pairs of
  ``acquire(); release()``: a mutex that the other thread really waits
  for.  The order is reversed here because a Lock cannot be released by
  two threads in a row.  ours and the original run the two loops as jobs
  of their own ``Pool(2)``; the stdlib objects in two ``threading.Thread``.

Note that the original's Semaphore over-admits (its OS lock counts every
release), so its contended figure is that of a semaphore that does not
exclude; and its acquire() returns False on an immediate success.

Each measurement runs in its own subprocess (ours and the original share
the import name), rounds are interleaved and the table shows the median
and the min-max of pairs/s.

    python3 bench/semaphore/run.py [--quick] [--json FILE] [--n N]
                                   [--rounds R] [--cases A,B,...]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ORIG = os.path.join(REPO, "build", "orig")

N_FULL = 1_000_000
N_QUICK = 200_000
WORKERS = 2


class Unavailable(Exception):
    """The case cannot run here (not a failure of the case)."""


def make(impl, mod, permits):
    """A fresh object of the kind under test holding ``permits`` permits."""
    if impl == "lock":
        lock = threading.Lock()
        if not permits:
            lock.acquire()
        return lock
    if impl == "threading":
        return threading.Semaphore(permits)
    return mod.Semaphore(permits)


def permits_left(impl, obj):
    """The object's permit count, to check that the pairs balanced."""
    if impl == "lock":
        return 0 if obj.locked() else 1
    if impl == "threading":
        return obj._value
    return obj.value


def pairs_release_acquire(obj, n):
    rel = obj.release
    acq = obj.acquire
    for _ in range(n):
        rel()
        acq()
    return n


def pairs_acquire_release(obj, n):
    rel = obj.release
    acq = obj.acquire
    for _ in range(n):
        acq()
        rel()
    return n


def uncontended(impl, mod, n):
    obj = make(impl, mod, 0)
    t0 = time.perf_counter()
    done = pairs_release_acquire(obj, n)
    elapsed = time.perf_counter() - t0
    return elapsed, done, permits_left(impl, obj), 0


def contended(impl, mod, n):
    obj = make(impl, mod, 1)
    share = [n // WORKERS + (1 if i < n % WORKERS else 0)
             for i in range(WORKERS)]
    counts = []
    if mod is not None:
        pool = mod.Pool(WORKERS)
        # Both jobs start only when both workers are up, so that they do
        # run side by side.
        gate = threading.Barrier(WORKERS)

        def job(k):
            gate.wait()
            counts.append(pairs_acquire_release(obj, k))

        t0 = time.perf_counter()
        for k in share:
            pool.submit(job, k)
        pool.shutdown()
        elapsed = time.perf_counter() - t0
        failed = list(pool.failed)
        if failed:
            raise RuntimeError("worker failed: %r" % (failed[0],))
    else:
        gate = threading.Barrier(WORKERS)

        def body(k):
            gate.wait()
            counts.append(pairs_acquire_release(obj, k))

        threads = [threading.Thread(target=body, args=(k,)) for k in share]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    return elapsed, sum(counts), permits_left(impl, obj), 1


# name -> (implementation, scenario, description)
# implementation: "ours", "orig" (1.7.0 from build/orig), "threading",
# "lock".
CASES = {
    "ours-uncontended": ("ours", uncontended, "fastthreadpool.Semaphore"),
    "orig-uncontended": ("orig", uncontended,
                         "fastthreadpool 1.7.0 Semaphore"),
    "threading-uncontended": ("threading", uncontended,
                              "threading.Semaphore"),
    "lock-uncontended": ("lock", uncontended, "threading.Lock (floor)"),
    "ours-contended": ("ours", contended,
                       "fastthreadpool.Semaphore, 2 pool workers"),
    "orig-contended": ("orig", contended,
                       "fastthreadpool 1.7.0 Semaphore, 2 pool workers"),
    "threading-contended": ("threading", contended,
                            "threading.Semaphore, 2 threads"),
    "lock-contended": ("lock", contended,
                       "threading.Lock (floor), 2 threads"),
}

# (numerator, denominator, goal or None, label)
GOALS = [
    ("ours-uncontended", "orig-uncontended", 1.0,
     "uncontended: ours / original 1.7.0"),
    ("ours-uncontended", "threading-uncontended", 20.0,
     "uncontended: ours / threading.Semaphore"),
    ("ours-uncontended", "lock-uncontended", None,
     "uncontended: ours / threading.Lock"),
    ("ours-contended", "orig-contended", 1.0,
     "contended: ours / original 1.7.0"),
    ("ours-contended", "threading-contended", 20.0,
     "contended: ours / threading.Semaphore"),
    ("ours-contended", "lock-contended", None,
     "contended: ours / threading.Lock"),
]


# --- child process -----------------------------------------------------

def load_module(impl, ours_from):
    """Imports the fastthreadpool under test and checks where it came from."""
    if impl in ("threading", "lock"):
        return None
    if impl == "ours":
        sys.path.insert(0, ours_from)
        want = os.path.join(ours_from, "fastthreadpool")
    else:
        want = os.path.join(ORIG, "fastthreadpool")
    try:
        import fastthreadpool
    except ImportError as exc:
        raise Unavailable("import fastthreadpool failed: %s" % exc)
    if getattr(fastthreadpool, "__file__", None) is None:
        # A directory without __init__.py imports as a namespace package.
        raise Unavailable("fastthreadpool in %s is not a package yet"
                          % os.path.dirname(want))
    got = os.path.dirname(os.path.abspath(fastthreadpool.__file__))
    if got != want:
        raise SystemExit("fastthreadpool imported from %s, expected %s"
                         % (got, want))
    for name in ("Pool", "Semaphore"):
        if not hasattr(fastthreadpool, name):
            raise Unavailable("fastthreadpool.%s does not exist" % name)
    return fastthreadpool


def child(name, n, ours_from):
    impl, fn, _ = CASES[name]
    try:
        mod = load_module(impl, ours_from)
        elapsed, done, left, want_left = fn(impl, mod, n)
    except Unavailable as exc:
        print(json.dumps({"unavailable": str(exc)}))
        return 0
    if done != n or left != want_left:
        print(json.dumps({"error": "%s: %d pairs done (expected %d), %r"
                          " permits left (expected %d)"
                          % (name, done, n, left, want_left)}))
        return 1
    print(json.dumps({"elapsed": elapsed, "n": n}))
    return 0


# --- parent ----------------------------------------------------------------

def child_env(impl):
    env = dict(os.environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
             if p and os.path.abspath(p) != ORIG]
    if impl == "orig":
        parts.insert(0, ORIG)
    if parts:
        env["PYTHONPATH"] = os.pathsep.join(parts)
    else:
        env.pop("PYTHONPATH", None)
    return env


def run_child(name, n, timeout, ours_from):
    impl = CASES[name][0]
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name,
           "--n", str(n), "--ours-from", ours_from]
    try:
        p = subprocess.run(cmd, env=child_env(impl), cwd=HERE,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "%s: no result within %d s" % (name, timeout)}
    lines = p.stdout.strip().splitlines()
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError):
        out = {"error": "%s: exit code %d, no result" % (name, p.returncode)}
    if p.returncode != 0 and "error" not in out:
        out = {"error": "%s: exit code %d" % (name, p.returncode)}
    if "error" in out and p.stderr.strip():
        out["stderr"] = p.stderr.strip()[-2000:]
    return out


def fmt_rate(x):
    return "{:,.0f}".format(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="N = %d pairs instead of %d" % (N_QUICK, N_FULL))
    ap.add_argument("--json", metavar="FILE", help="write results as JSON")
    ap.add_argument("--n", type=int, help="pairs per case")
    # Each measurement takes milliseconds, so more rounds cost little and
    # steady the medians on a shared machine.
    ap.add_argument("--rounds", type=int, default=5,
                    help="interleaved rounds (default 5)")
    ap.add_argument("--cases", help="comma-separated subset of: "
                    + ", ".join(CASES))
    ap.add_argument("--timeout", type=int, default=300,
                    help="seconds allowed for one measurement")
    ap.add_argument("--ours-from", metavar="DIR", default=REPO,
                    help="directory holding the fastthreadpool package"
                    " measured as 'ours' (default: the repository; pass"
                    " build/orig to check the benchmark itself)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        return child(args.child, args.n, args.ours_from)

    n = args.n or (N_QUICK if args.quick else N_FULL)
    names = list(CASES)
    if args.cases:
        names = [c.strip() for c in args.cases.split(",") if c.strip()]
        unknown = [c for c in names if c not in CASES]
        if unknown:
            ap.error("unknown case(s): " + ", ".join(unknown))
    if not os.path.isdir(os.path.join(ORIG, "fastthreadpool")):
        print("note: %s is missing (run tools/install-original.sh); the"
              " original's cases will be unavailable" % ORIG,
              file=sys.stderr)

    samples = {c: [] for c in names}
    notes = {}
    errors = []
    for r in range(args.rounds):
        for c in names:
            if c in notes:
                continue
            out = run_child(c, n, args.timeout,
                            os.path.abspath(args.ours_from))
            if "unavailable" in out:
                notes[c] = out["unavailable"]
            elif "error" in out:
                errors.append(out)
                print("FAILED: " + out["error"], file=sys.stderr)
                if out.get("stderr"):
                    print(out["stderr"], file=sys.stderr)
            else:
                samples[c].append(out["n"] / out["elapsed"])
        print("round %d/%d done" % (r + 1, args.rounds), file=sys.stderr)

    results = {}
    for c in names:
        impl, fn, desc = CASES[c]
        entry = {"impl": impl, "scenario": fn.__name__, "description": desc,
                 "n": n}
        rates = samples[c]
        if rates:
            entry.update(median=statistics.median(rates), min=min(rates),
                         max=max(rates), rounds=rates)
        elif c in notes:
            entry["unavailable"] = notes[c]
        else:
            entry["failed"] = True
        results[c] = entry

    print("## Semaphore: release+acquire pairs, N = %d, %d rounds\n"
          % (n, args.rounds))
    print("| case | object | pairs/s (median) | min - max | ns/pair |")
    print("| --- | --- | ---: | ---: | ---: |")
    for c in names:
        e = results[c]
        if "median" in e:
            print("| %s | %s | %s | %s - %s | %.0f |" % (
                c, e["description"], fmt_rate(e["median"]),
                fmt_rate(e["min"]), fmt_rate(e["max"]), 1e9 / e["median"]))
        else:
            print("| %s | %s | n/a | %s | - |" % (
                c, e["description"], e.get("unavailable", "FAILED")))

    print("\n## Ratios (medians of the same run)\n")
    print("| ratio | measured | per round (min - max) | goal | met |")
    print("| --- | ---: | ---: | ---: | --- |")
    ratios = []
    for num, den, goal, label in GOALS:
        if num not in results or den not in results:
            continue
        a, b = results[num].get("median"), results[den].get("median")
        v = a / b if a and b else None
        ra = results[num].get("rounds") or []
        rb = results[den].get("rounds") or []
        # Ratios within each round: the two ran close together.
        per = ([x / y for x, y in zip(ra, rb)]
               if ra and len(ra) == len(rb) else None)
        met = None if v is None or goal is None else v >= goal
        ratios.append({"numerator": num, "denominator": den, "label": label,
                       "ratio": v, "per_round": per, "goal": goal,
                       "met": met})
        print("| %s | %s | %s | %s | %s |" % (
            label, "n/a" if v is None else "%.2f" % v,
            "-" if not per else "%.2f - %.2f" % (min(per), max(per)),
            "-" if goal is None else ">= %g" % goal,
            "-" if met is None else ("yes" if met else "NO")))

    if args.json:
        doc = {"benchmark": "semaphore", "rounds": args.rounds,
               "quick": args.quick, "n": n, "python": sys.version,
               "cpu_count": os.cpu_count(),
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "results": results, "ratios": ratios, "errors": errors}
        with open(args.json, "w") as fp:
            json.dump(doc, fp, indent=2)
            fp.write("\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
