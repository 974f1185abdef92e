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
import os
import sys
import threading
import time

# bench/subproc.py runs the cases below, each in its own subprocess.
sys.path.insert(0, os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
import subproc  # noqa: E402
WORKERS = 2


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


def measure(name, mod, n):
    """Runs one case in the child and checks that the pairs balanced."""
    impl, fn, _ = CASES[name]
    elapsed, done, left, want_left = fn(impl, mod, n)
    if done != n or left != want_left:
        return {"error": "%s: %d pairs done (expected %d), %r permits left"
                " (expected %d)" % (name, done, n, left, want_left)}
    return {"elapsed": elapsed, "n": n}


def main(argv=None):
    # Each measurement takes milliseconds, so more rounds (5) cost little
    # and steady the medians on a shared machine.
    ap = subproc.parser(__doc__, CASES, "pairs per case",
                        rounds=5, timeout=300, per_n=" pairs")
    args = ap.parse_args(argv)

    if args.child:
        return subproc.child(CASES[args.child][0], args.ours_from,
                             lambda mod: measure(args.child, mod, args.n),
                             need=("Pool", "Semaphore"))

    n = subproc.main_n(args)
    names = subproc.selected(ap, args, CASES)
    samples, notes, errors = subproc.run_rounds(
        __file__, args, [(c, CASES[c][0], n) for c in names])

    results = {}
    for c in names:
        impl, fn, desc = CASES[c]
        entry = {"impl": impl, "scenario": fn.__name__, "description": desc,
                 "n": n}
        results[c] = subproc.result(entry, c, samples, notes)

    print("## Semaphore: release+acquire pairs, N = %d, %d rounds\n"
          % (n, args.rounds))
    print("| case | object | pairs/s (median) | min - max | ns/pair |")
    print("| --- | --- | ---: | ---: | ---: |")
    subproc.print_rate_rows(results, names, 1e9)

    ratios = subproc.ratio_table(results, GOALS)

    if args.json:
        subproc.write_doc(args.json, {
            "benchmark": "semaphore", "rounds": args.rounds,
            "quick": args.quick, "n": n}, results, ratios, errors)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
