#!/usr/bin/env python3
"""The pool on free-threaded CPython and on the GIL build, side by side.

CPU-bound jobs, tiny jobs and several submitting threads, against the
standard library's executor on the same interpreter and against the GIL
build, in one run.

Every case runs on both builds: the free-threaded one (--ft, the GIL off)
and the GIL build (--python, default: the interpreter running this
script).  Each measurement runs in a fresh subprocess; rounds are
interleaved and the tables show the median and the min-max over rounds.

  CPU-bound jobs   pure-Python arithmetic of about 1 ms each (the loop is
                   calibrated to 1 ms once per interpreter before the
                   rounds), through a plain loop, Pool(1), Pool(2), our
                   ThreadPoolExecutor(2) and concurrent.futures'
                   ThreadPoolExecutor(2); every result is checked.  On the
                   free-threaded build Pool(2) should run them in parallel.
                   Two plain threads running half of the jobs each show
                   what the machine gives two threads during the run: on a
                   shared machine, less than two cores.
  tiny jobs        f(x) -> x: the overhead cases of bench/overhead/run.py
                   (the same functions, run here on both builds).
  submitters       tiny jobs submitted to one Pool(2) by 1, 2 or 4 threads,
                   N/k jobs each; the time runs from the start of the
                   submitters until every result is in pool.done, whose sum
                   is checked.  More submitters must not make it slower.

    python3 bench/freethreading/run.py --ft PATH [--python PATH] [--quick]
                                       [--json FILE] [--n N] [--rounds R]
                                       [--cases A,B,...]
"""
import argparse
import importlib.util
import os
import sys
import sysconfig
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
# bench/subproc.py runs the cases below, each in its own subprocess.
sys.path.insert(0, BENCH)
import subproc  # noqa: E402


def _load_overhead():
    """bench/overhead/run.py as a module: its tiny-job cases run here."""
    spec = importlib.util.spec_from_file_location(
        "overhead_cases", os.path.join(BENCH, "overhead", "run.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


overhead = _load_overhead()

CPU_JOBS_FULL = 2000
CPU_JOBS_QUICK = 400
JOB_SECONDS = 0.001     # what the CPU-bound job is calibrated to
WORKERS = 2             # the pool of the tiny-job and submitter cases

BUILDS = {"ft": "free-threaded", "gil": "GIL build"}


def work(k):
    """The CPU-bound job: k iterations of integer arithmetic, no I/O and
    no shared object written."""
    s = 0
    for i in range(k):
        s += i * i
    return s


def calibrate():
    """The k for which work(k) takes JOB_SECONDS on one thread (the median
    of 21 timings after a rough doubling search)."""
    k = 1000
    while True:
        t0 = time.perf_counter()
        work(k)
        t = time.perf_counter() - t0
        if t >= 0.01:
            break
        k *= 2
    k = max(1, int(k * JOB_SECONDS / t))
    times = []
    for _ in range(21):
        t0 = time.perf_counter()
        work(k)
        times.append(time.perf_counter() - t0)
    times.sort()
    return max(1, int(k * JOB_SECONDS / times[len(times) // 2]))


# --- CPU-bound cases; each returns (elapsed seconds, results) ------------

def cpu_loop(mod, n, k):
    t0 = time.perf_counter()
    res = [work(k) for _ in range(n)]
    return time.perf_counter() - t0, res


def cpu_threads(mod, n, k):
    """Two plain threads, n/2 jobs each: what the machine gives two threads
    at this moment, the ceiling of any pool of two."""
    res = [[], []]

    def run(out, count):
        for _ in range(count):
            out.append(work(k))

    threads = [threading.Thread(target=run, args=(res[i], (n + i) // 2))
               for i in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, res[0] + res[1]


def cpu_pool(workers):
    def run(mod, n, k):
        pool = mod.Pool(workers)
        submit = pool.submit
        t0 = time.perf_counter()
        for _ in range(n):
            submit(work, k)
        pool.shutdown()
        return time.perf_counter() - t0, pool.done
    return run


def cpu_executor(which):
    def run(mod, n, k):
        if which == "ours":
            cls = overhead._ours_executor(mod)
        else:
            cls = overhead._tpe(mod)
        ex = cls(max_workers=2)
        submit = ex.submit
        t0 = time.perf_counter()
        futs = [submit(work, k) for _ in range(n)]
        res = [fu.result() for fu in futs]
        elapsed = time.perf_counter() - t0
        ex.shutdown()
        return elapsed, res
    return run


# --- several submitting threads ------------------------------------------

def submitters(nthreads):
    def run(mod, n, workers):
        pool = mod.Pool(workers)
        bounds = [n * i // nthreads for i in range(nthreads + 1)]
        start = threading.Barrier(nthreads + 1)
        f = overhead.f

        def submit_range(lo, hi):
            submit = pool.submit
            start.wait()
            for x in range(lo, hi):
                submit(f, x)

        threads = [threading.Thread(target=submit_range,
                                    args=(bounds[i], bounds[i + 1]))
                   for i in range(nthreads)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        pool.shutdown()
        return time.perf_counter() - t0, pool.done
    return run


# name -> (group, implementation, description, function)
# group: "cpu" (CPU-bound jobs, function(mod, n, k)), "tiny" (a case of
# bench/overhead/run.py) or "submitters" (function(mod, n, workers)).
CASES = {
    "cpu-loop": ("cpu", "std", "plain loop, one thread (floor)", cpu_loop),
    "cpu-threads2": ("cpu", "std", "2 plain threads, N/2 jobs each"
                     " (ceiling)", cpu_threads),
    "cpu-pool1": ("cpu", "ours", "Pool(1).submit + done", cpu_pool(1)),
    "cpu-pool2": ("cpu", "ours", "Pool(2).submit + done", cpu_pool(2)),
    "cpu-executor2": ("cpu", "ours", "ThreadPoolExecutor(2) submit + "
                      "result()", cpu_executor("ours")),
    "cpu-tpe2": ("cpu", "std", "concurrent.futures TPE(2) submit + "
                 "result()", cpu_executor("std")),
    "submit-1": ("submitters", "ours", "1 thread submits to Pool(2)",
                 submitters(1)),
    "submit-2": ("submitters", "ours", "2 threads submit to Pool(2)",
                 submitters(2)),
    "submit-4": ("submitters", "ours", "4 threads submit to Pool(2)",
                 submitters(4)),
}
for _name in ("loop", "ours-submit", "ours-map", "ours-executor",
              "tpe-submit"):
    _impl, _desc, _fn, _kind = overhead.CASES[_name]
    CASES[_name] = ("tiny", _impl, _desc, None)

# (numerator, denominator, goal, label); names without the build's tag are
# completed for both builds where the goal says so.
GOALS = [
    ("cpu-threads2@ft", "cpu-loop@ft", None,
     "free-threaded, 1 ms jobs: 2 plain threads / loop (the machine's"
     " ceiling in this run)"),
    ("cpu-pool2@ft", "cpu-pool1@ft", 1.8,
     "free-threaded, 1 ms jobs: Pool(2) / Pool(1)"),
    ("cpu-pool2@ft", "cpu-threads2@ft", None,
     "free-threaded, 1 ms jobs: Pool(2) / 2 plain threads"),
    ("cpu-pool2@ft", "cpu-tpe2@ft", 1.0,
     "free-threaded, 1 ms jobs: Pool(2) / TPE(2)"),
    ("cpu-executor2@ft", "cpu-tpe2@ft", None,
     "free-threaded, 1 ms jobs: our executor(2) / TPE(2)"),
    ("cpu-pool2@gil", "cpu-pool1@gil", None,
     "GIL build, 1 ms jobs: Pool(2) / Pool(1)"),
    ("ours-submit@ft", "tpe-submit@ft", 30.0,
     "free-threaded, tiny jobs: submit + done / TPE submit + result()"),
    ("ours-executor@ft", "tpe-submit@ft", None,
     "free-threaded, tiny jobs: our executor / TPE, submit + result()"),
    ("ours-map@ft", "loop@ft", 0.7,
     "free-threaded, tiny jobs: map / plain loop"),
    ("ours-submit@gil", "tpe-submit@gil", None,
     "GIL build, tiny jobs: submit + done / TPE submit + result()"),
    ("ours-map@gil", "loop@gil", None,
     "GIL build, tiny jobs: map / plain loop"),
    ("submit-2@ft", "submit-1@ft", 1.0,
     "free-threaded: 2 submitting threads / 1"),
    ("submit-4@ft", "submit-1@ft", None,
     "free-threaded: 4 submitting threads / 1"),
    ("submit-2@gil", "submit-1@gil", 1.0,
     "GIL build: 2 submitting threads / 1"),
    ("submit-4@gil", "submit-1@gil", None,
     "GIL build: 4 submitting threads / 1"),
]


def gil_off():
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED")) \
        and not sys._is_gil_enabled()


def measure(key, mod, n, work_k):
    """Runs one case in the child (key = case@build) and checks its
    results; on the free-threaded build the GIL must have stayed off."""
    name, _, build = key.partition("@")
    group = CASES[name][0]
    if group == "tiny":
        out = overhead.measure(name, mod, n, WORKERS)
    else:
        fn = CASES[name][3]
        if group == "cpu":
            elapsed, res = fn(mod, n, work_k)
            want = work(work_k)
            res = list(res)
            bad = sum(1 for r in res if r != want)
            ok = len(res) == n and not bad
            why = "%d results, %d wrong, expected %d" % (len(res), bad, n)
        else:
            elapsed, res = fn(mod, n, WORKERS)
            res = list(res)
            ok = len(res) == n and sum(res) == n * (n - 1) // 2
            why = "%d results summing to %d, expected %d summing to %d" % (
                len(res), sum(res), n, n * (n - 1) // 2)
        out = ({"elapsed": elapsed, "n": n} if ok
               else {"error": "%s: %s" % (key, why)})
    if build == "ft" and not gil_off():
        out = {"error": "%s: the GIL was on (%s)"
               % (key, subproc.interpreter_label())}
    return out


def options(ap):
    ap.add_argument("--ft", metavar="PATH",
                    help="the free-threaded interpreter (required; sh"
                    " tools/build-python-ft.sh builds one and prints its"
                    " path); --python names the GIL build")
    # The calibrated size of the CPU-bound job, passed to the children.
    ap.add_argument("--work", type=int, help=argparse.SUPPRESS)


def main(argv=None):
    ap = subproc.parser(__doc__, CASES, "tiny jobs per case (CPU-bound"
                        " cases: %d, --quick %d, at most N)"
                        % (CPU_JOBS_FULL, CPU_JOBS_QUICK),
                        rounds=3, timeout=600, options=options)
    args = ap.parse_args(argv)

    if args.child:
        if args.child.startswith("calibrate@"):
            return subproc.child("std", args.ours_from,
                                 lambda mod: {"work": calibrate()})
        name = args.child.partition("@")[0]
        return subproc.child(
            CASES[name][1], args.ours_from,
            lambda mod: measure(args.child, mod, args.n, args.work))
    if not args.ft:
        ap.error("--ft PATH is required")

    pythons = {"ft": os.path.abspath(args.ft), "gil": args.python}
    ours_from = os.path.abspath(args.ours_from)
    names = subproc.selected(ap, args, CASES)
    tiny_n = subproc.main_n(args)
    cpu_n = (min(tiny_n, CPU_JOBS_QUICK) if args.n
             else CPU_JOBS_QUICK if args.quick else CPU_JOBS_FULL)

    # The CPU-bound job's size, once per build.
    work_k = {}
    errors = []
    if any(CASES[c][0] == "cpu" for c in names):
        for b, py in pythons.items():
            out = subproc.run_child(__file__, "calibrate@" + b, "std", 0,
                                    args.timeout, ours_from, python=py)
            if "work" not in out:
                errors.append(out)
                print("FAILED: calibration on %s: %s"
                      % (py, out.get("error")), file=sys.stderr)
                continue
            work_k[b] = out["work"]
            print("%s: work(%d) takes about %g ms (%s)"
                  % (BUILDS[b], out["work"], JOB_SECONDS * 1e3,
                     out["interpreter"]), file=sys.stderr)

    jobs = []
    for c in names:
        group, impl = CASES[c][0], CASES[c][1]
        for b, py in pythons.items():
            if group == "cpu":
                if b in work_k:
                    jobs.append((c + "@" + b, impl, cpu_n, py,
                                 ["--work", str(work_k[b])]))
            else:
                jobs.append((c + "@" + b, impl, tiny_n, py, []))
    samples, notes, more_errors = subproc.run_rounds(__file__, args, jobs)
    errors += more_errors

    results = {}
    for key, impl, n, py, _ in jobs:
        name, _, b = key.partition("@")
        entry = {"case": name, "group": CASES[name][0], "build": BUILDS[b],
                 "python": shown(py), "impl": impl,
                 "description": CASES[name][2], "n": n}
        if CASES[name][0] == "cpu":
            entry["work"] = work_k[b]
        results[key] = subproc.result(entry, key, samples, notes)

    # Each build as its children named it.
    label = dict(BUILDS)
    for key, e in results.items():
        if e.get("interpreter"):
            label[key.partition("@")[2]] = e["interpreter"]
    print_tables(results, names, label, work_k, cpu_n, tiny_n, args.rounds)
    goals = [g for g in GOALS if g[0] in results and g[1] in results]
    ratios = subproc.ratio_table(results, goals)

    if args.json:
        subproc.write_doc(args.json, {
            "benchmark": "freethreading", "workers": WORKERS,
            "rounds": args.rounds, "quick": args.quick,
            "builds": {b: {"python": shown(pythons[b]),
                           "interpreter": label[b]} for b in pythons},
            "work_per_job": work_k, "job_seconds": JOB_SECONDS,
            "sizes": {"cpu": cpu_n, "tiny": tiny_n}},
            results, ratios, errors)
    return 1 if errors else 0


def shown(path):
    """An interpreter's path as the JSON document gives it: relative to the
    repository when it lies inside."""
    if path.startswith(subproc.REPO + os.sep):
        return os.path.relpath(path, subproc.REPO)
    return path


GROUP_TITLES = {
    "cpu": "CPU-bound jobs of about %g ms" % (JOB_SECONDS * 1e3),
    "tiny": "tiny jobs f(x) -> x (the overhead cases)",
    "submitters": "tiny jobs from several submitting threads",
}


def print_tables(results, names, label, work_k, cpu_n, tiny_n, rounds):
    rate = subproc.fmt_rate
    print("## Free-threaded CPython and the GIL build, %d rounds\n" % rounds)
    print("- free-threaded: %s" % label["ft"])
    print("- GIL build: %s" % label["gil"])
    if work_k:
        print("- CPU-bound job: `work(k)`, k iterations of `s += i * i`,"
              " k calibrated to about %g ms on one thread of each build"
              " (%s); %d jobs per case"
              % (JOB_SECONDS * 1e3, ", ".join(
                  "%s k = %d" % (BUILDS[b], k) for b, k in work_k.items()),
                 cpu_n))
    print("- tiny jobs and submitters: N = %d per case, pool of %d workers"
          % (tiny_n, WORKERS))
    for group, title in GROUP_TITLES.items():
        rows = [c for c in names if CASES[c][0] == group]
        if not rows:
            continue
        print("\n### %s%s\n" % (title[0].upper(), title[1:]))
        print("| case | %s: jobs/s | min - max | %s: jobs/s | min - max"
              " | free-threaded / GIL |" % (label["ft"], label["gil"]))
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for c in rows:
            cells = []
            meds = []
            for b in ("ft", "gil"):
                e = results.get(c + "@" + b, {})
                if "median" in e:
                    cells += [rate(e["median"]),
                              "%s - %s" % (rate(e["min"]), rate(e["max"]))]
                    meds.append(e["median"])
                else:
                    cells += ["n/a", e.get("unavailable", "FAILED")]
            rel = (subproc.fmt_ratio(meds[0] / meds[1]) if len(meds) == 2
                   else "-")
            print("| %s: %s | %s | %s |" % (c, CASES[c][2],
                                             " | ".join(cells), rel))


if __name__ == "__main__":
    sys.exit(main())
