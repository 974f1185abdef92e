#!/usr/bin/env python3
"""Pool overhead: tiny jobs ``f(x) -> x`` through every way of running them.

Every case runs N jobs, collects the N results and checks that they sum to
N(N-1)/2; a wrong sum or a wrong count fails the run.  Each measurement runs
in a fresh subprocess: this project's package and the original Cython
fastthreadpool 1.7.0 (installed by tools/install-original.sh into
build/orig) share the import name, and a fresh process also keeps threads
left over by one case from disturbing the next.  Rounds are interleaved
(every case once per round) and the table shows the median and the min-max
of jobs/s over the rounds.

The time covers submitting the jobs and waiting until every result is
available to the caller (in ``pool.done``, a list or a Future); creating the
pool and checking the sum are outside it.

    python3 bench/overhead/run.py [--quick] [--json FILE] [--n N]
                                  [--rounds R] [--cases A,B,...]
"""
import os
import sys
import time

# bench/subproc.py runs the cases below, each in its own subprocess.
sys.path.insert(0, os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
import subproc  # noqa: E402

EXEC_N = 200_000        # executor submit+result figure
ASYNCIO_N = 100_000     # asyncio run_in_executor figure
ASYNCIO_SEQ_N = 20_000  # the same, one call awaited at a time


def f(x):
    return x


def g(x):
    yield x


# --- the cases; each returns (elapsed seconds, collected results) ---------
#
# ``mod`` is the fastthreadpool module under test (ours or the original),
# or None for the standard-library cases.

def case_loop(mod, n, workers):
    t0 = time.perf_counter()
    res = []
    app = res.append
    for x in range(n):
        app(f(x))
    return time.perf_counter() - t0, res


def pool_submit(mod, n, workers):
    pool = mod.Pool(workers)
    submit = pool.submit
    t0 = time.perf_counter()
    for x in range(n):
        submit(f, x)
    pool.shutdown()
    return time.perf_counter() - t0, pool.done


def pool_map(mod, n, workers):
    pool = mod.Pool(workers)
    t0 = time.perf_counter()
    # 1.7.0 unpacks every item by default (and then fails on ints).
    pool.map(f, range(n), unpack_args=False)
    pool.shutdown()
    return time.perf_counter() - t0, pool.done


def pool_submit_done(mod, n, workers):
    pool = mod.Pool(workers)
    submit_done = pool.submit_done
    res = []
    cb = res.append
    t0 = time.perf_counter()
    for x in range(n):
        submit_done(f, cb, x)
    pool.shutdown()
    return time.perf_counter() - t0, res


def pool_generator(mod, n, workers):
    pool = mod.Pool(workers)
    submit = pool.submit
    t0 = time.perf_counter()
    for x in range(n):
        submit(g, x)
    pool.shutdown()
    return time.perf_counter() - t0, pool.done


def pool_as_completed(mod, n, workers):
    pool = mod.Pool(workers)
    submit = pool.submit
    t0 = time.perf_counter()
    for x in range(n):
        submit(f, x)
    res = list(pool.as_completed())
    elapsed = time.perf_counter() - t0
    pool.shutdown()
    return elapsed, res


def executor_submit(executor_cls, n, workers):
    ex = executor_cls(max_workers=workers)
    submit = ex.submit
    t0 = time.perf_counter()
    futs = [submit(f, x) for x in range(n)]
    res = [fu.result() for fu in futs]
    elapsed = time.perf_counter() - t0
    ex.shutdown()
    return elapsed, res


def executor_map(executor_cls, n, workers):
    ex = executor_cls(max_workers=workers)
    t0 = time.perf_counter()
    res = list(ex.map(f, range(n)))
    elapsed = time.perf_counter() - t0
    ex.shutdown()
    return elapsed, res


def asyncio_default(executor_cls, n, workers, one_at_a_time=False):
    """run_in_executor(None, ...) as asyncio.to_thread does it: all n calls
    gathered, or awaited one at a time (then each call's latency counts).

    With executor_cls None, asyncio creates its standard default executor
    (concurrent.futures.ThreadPoolExecutor with its default max_workers).
    """
    import asyncio

    async def main():
        loop = asyncio.get_running_loop()
        ex = None
        if executor_cls is not None:
            ex = executor_cls(max_workers=workers)
            loop.set_default_executor(ex)
        run = loop.run_in_executor
        t0 = time.perf_counter()
        if one_at_a_time:
            res = [await run(None, f, x) for x in range(n)]
        else:
            res = await asyncio.gather(*[run(None, f, x) for x in range(n)])
        return time.perf_counter() - t0, res

    return asyncio.run(main())


def tp_apply_async(mod, n, workers):
    from multiprocessing.pool import ThreadPool
    with ThreadPool(workers) as tp:
        apply_async = tp.apply_async
        t0 = time.perf_counter()
        rs = [apply_async(f, (x,)) for x in range(n)]
        res = [r.get() for r in rs]
        return time.perf_counter() - t0, res


def tp_map(mod, n, workers):
    from multiprocessing.pool import ThreadPool
    with ThreadPool(workers) as tp:
        t0 = time.perf_counter()
        res = tp.map(f, range(n))
        return time.perf_counter() - t0, res


def tp_map_async(mod, n, workers):
    from multiprocessing.pool import ThreadPool
    with ThreadPool(workers) as tp:
        t0 = time.perf_counter()
        res = tp.map_async(f, range(n)).get()
        return time.perf_counter() - t0, res


def _ours_executor(mod):
    cls = getattr(mod, "ThreadPoolExecutor", None)
    if cls is None:
        raise subproc.Unavailable(
            "fastthreadpool.ThreadPoolExecutor does not exist")
    return cls


def _tpe(mod):
    import concurrent.futures
    return concurrent.futures.ThreadPoolExecutor


# name -> (implementation, description, function, kind of N)
# implementation: "ours", "orig" (1.7.0 from build/orig) or "std".
# kind of N: "n" (the main N), "exec" (EXEC_N), "asyncio" (ASYNCIO_N),
# "asyncio_seq" (ASYNCIO_SEQ_N).
CASES = {
    "loop": ("std", "plain for loop calling f (floor)", case_loop, "n"),
    "ours-submit": ("ours", "Pool.submit + done", pool_submit, "n"),
    "ours-map": ("ours", "Pool.map + done", pool_map, "n"),
    "ours-submit_done": ("ours", "Pool.submit_done, callback",
                         pool_submit_done, "n"),
    "ours-generator": ("ours", "Pool.submit of a generator fn",
                       pool_generator, "n"),
    "ours-as_completed": ("ours", "Pool.submit + as_completed()",
                          pool_as_completed, "n"),
    "ours-executor": ("ours", "ThreadPoolExecutor.submit + result()",
                      lambda m, n, w: executor_submit(_ours_executor(m), n, w),
                      "n"),
    "orig-submit": ("orig", "Pool.submit + done", pool_submit, "n"),
    "orig-map": ("orig", "Pool.map(unpack_args=False) + done", pool_map,
                 "n"),
    "orig-submit_done": ("orig", "Pool.submit_done, callback",
                         pool_submit_done, "n"),
    "orig-generator": ("orig", "Pool.submit of a generator fn",
                       pool_generator, "n"),
    "orig-as_completed": ("orig", "Pool.submit + as_completed()",
                          pool_as_completed, "n"),
    "tpe-submit": ("std", "concurrent.futures TPE submit + result()",
                   lambda m, n, w: executor_submit(_tpe(m), n, w), "n"),
    "tpe-map": ("std", "concurrent.futures TPE map",
                lambda m, n, w: executor_map(_tpe(m), n, w), "n"),
    "tp-apply_async": ("std", "multiprocessing ThreadPool apply_async + get",
                       tp_apply_async, "n"),
    "tp-map": ("std", "multiprocessing ThreadPool map", tp_map, "n"),
    "tp-map_async": ("std", "multiprocessing ThreadPool map_async + get",
                     tp_map_async, "n"),
    # Issue-6 figures at their own sizes.  When the main N equals EXEC_N
    # the main ours-executor / tpe-submit measurements serve instead.
    "exec-ours": ("ours", "ThreadPoolExecutor.submit + result()",
                  lambda m, n, w: executor_submit(_ours_executor(m), n, w),
                  "exec"),
    "exec-tpe": ("std", "concurrent.futures TPE submit + result()",
                 lambda m, n, w: executor_submit(_tpe(m), n, w), "exec"),
    "asyncio-ours": ("ours", "run_in_executor, ours as default executor",
                     lambda m, n, w: asyncio_default(_ours_executor(m), n, w),
                     "asyncio"),
    "asyncio-std": ("std", "run_in_executor, standard default executor",
                    lambda m, n, w: asyncio_default(None, n, w), "asyncio"),
    "asyncio-tpe": ("std", "run_in_executor, TPE(max_workers=2) as default",
                    lambda m, n, w: asyncio_default(_tpe(m), n, w),
                    "asyncio"),
    "asyncio-ours-seq": ("ours", "await run_in_executor one call at a time, "
                         "ours as default executor",
                         lambda m, n, w: asyncio_default(_ours_executor(m),
                                                         n, w, True),
                         "asyncio_seq"),
    "asyncio-std-seq": ("std", "await run_in_executor one call at a time, "
                        "standard default executor",
                        lambda m, n, w: asyncio_default(None, n, w, True),
                        "asyncio_seq"),
}

# (numerator, denominator, goal, label)
GOALS = [
    ("ours-submit", "orig-submit", 5.0, "submit: ours / original 1.7.0"),
    ("ours-submit", "tpe-submit", 80.0, "submit: ours / TPE submit"),
    ("ours-map", "loop", 0.7, "map: ours / plain loop"),
    ("ours-map", "orig-map", 1.0, "map: ours / original 1.7.0 map"),
    ("exec-ours", "exec-tpe", 15.0,
     "executor submit+result: ours / TPE"),
    ("asyncio-ours", "asyncio-std", 3.0,
     "run_in_executor: ours / standard default"),
    ("asyncio-ours-seq", "asyncio-std-seq", None,
     "run_in_executor one at a time: ours / standard default"),
]


def measure(name, mod, n, workers):
    """Runs one case in the child and checks its N results."""
    elapsed, res = CASES[name][2](mod, n, workers)
    count = len(res)
    total = sum(res)
    expected = n * (n - 1) // 2
    if count != n or total != expected:
        return {"error": "%s: %d results summing to %d, expected %d summing"
                " to %d" % (name, count, total, n, expected)}
    return {"elapsed": elapsed, "n": n,
            "module": getattr(mod, "__file__", None)}


def workers_option(ap):
    ap.add_argument("--workers", type=int, default=2,
                    help="max_children / max_workers (default 2)")


def main(argv=None):
    ap = subproc.parser(__doc__, CASES, "number of jobs per case",
                        rounds=3, timeout=600, options=workers_option)
    args = ap.parse_args(argv)

    if args.child:
        return subproc.child(
            CASES[args.child][0], args.ours_from,
            lambda mod: measure(args.child, mod, args.n, args.workers))

    n = subproc.main_n(args)
    sizes = {"n": n,
             "exec": min(n, EXEC_N) if args.n else EXEC_N,
             "asyncio": min(n, ASYNCIO_N) if args.n else ASYNCIO_N,
             "asyncio_seq": (min(n, ASYNCIO_SEQ_N) if args.n
                             else ASYNCIO_SEQ_N)}
    names = subproc.selected(ap, args, CASES)
    # The executor figure reuses the main measurements when the
    # sizes agree.
    alias = {}
    if sizes["exec"] == n:
        alias = {"exec-ours": "ours-executor", "exec-tpe": "tpe-submit"}
    jobs = [(c, CASES[c][0], sizes[CASES[c][3]]) for c in names
            if not (c in alias and alias[c] in names)]
    samples, notes, errors = subproc.run_rounds(
        __file__, args, jobs, ["--workers", str(args.workers)])

    results = {}
    for c in names:
        src = alias.get(c, c) if c not in samples else c
        impl, desc, _, kind = CASES[c]
        entry = {"impl": impl, "description": desc, "n": sizes[kind]}
        if src != c:
            entry["same_measurement_as"] = src
        results[c] = subproc.result(entry, src, samples, notes)

    floor = results.get("loop", {}).get("median")
    print("## Pool overhead: tiny jobs f(x) -> x, %d workers, %d rounds\n"
          % (args.workers, args.rounds))
    print("| case | implementation | N | jobs/s (median) | min - max"
          " | x loop |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    impl_names = {"ours": "fastthreadpool (this)", "orig": "fastthreadpool"
                  " 1.7.0", "std": "stdlib"}
    rate = subproc.fmt_rate
    for c in names:
        e = results[c]
        label = "%s: %s" % (c, e["description"])
        if "median" in e:
            rel = subproc.fmt_ratio(e["median"] / floor) if floor else "-"
            print("| %s | %s | %d | %s | %s - %s | %s |" % (
                label, impl_names[e["impl"]], e["n"], rate(e["median"]),
                rate(e["min"]), rate(e["max"]), rel))
        else:
            why = e.get("unavailable", "FAILED")
            print("| %s | %s | %d | n/a | %s | - |" % (
                label, impl_names[e["impl"]], e["n"], why))

    ratios = subproc.ratio_table(results, GOALS)

    # ours against every competitor of the main size
    comp = [c for c in names if CASES[c][0] != "ours"
            and CASES[c][3] == "n" and "median" in results[c]]
    ours = [c for c in names if CASES[c][0] == "ours"
            and CASES[c][3] == "n" and "median" in results[c]]
    if ours and comp:
        print("\n## Each of ours against each competitor (ratio of medians)"
              "\n")
        print("| ours \\ competitor | " + " | ".join(comp) + " |")
        print("| --- |" + " ---: |" * len(comp))
        for o in ours:
            cells = [subproc.fmt_ratio(results[o]["median"]
                                       / results[c]["median"]) for c in comp]
            print("| %s | %s |" % (o, " | ".join(cells)))

    if args.json:
        subproc.write_doc(args.json, {
            "benchmark": "overhead", "workers": args.workers,
            "rounds": args.rounds, "quick": args.quick, "sizes": sizes},
            results, ratios, errors)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
