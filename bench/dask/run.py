#!/usr/bin/env python3
"""Dask: tasks/s of a distributed worker on Dask's default executor and on
fastthreadpool.ThreadPoolExecutor.

Each measurement starts, in a fresh process, a scheduler, one worker with 2
threads and a client (all in that process, on TCP over loopback), then times
``client.gather(client.map(inc, range(N)))`` for N tiny tasks; the results
are checked.  The worker runs its tasks on Dask's own ThreadPoolExecutor
(``default``) or on ours (``Worker(executor=fastthreadpool.
ThreadPoolExecutor(2))``); everything else is the same.  Two scheduler
settings: Dask's defaults, where the scheduler hands the worker only about
as many tasks as it has threads (worker-saturation 1.1) and each task
waits for a round trip, and ``unthrottled`` (worker-saturation inf: every
task goes to the worker at once, which leaves more of the time to the
executor).  Rounds alternate the cases; the table shows the median and the
min-max of tasks/s.

    python3 bench/dask/run.py [--quick] [--json FILE] [--n N]
                              [--rounds R] [--cases A,B]
"""
import asyncio
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
import subproc  # noqa: E402

NTHREADS = 2
N_FULL = 10_000
N_QUICK = 1_000

UNTHROTTLED = {"distributed.scheduler.worker-saturation": float("inf")}

# name -> (implementation, the worker's executor, Dask settings)
CASES = {
    "dask-default": ("dask", "Dask's default ThreadPoolExecutor", {}),
    "dask-ours": ("ours", "fastthreadpool.ThreadPoolExecutor", {}),
    "unthrottled-default": ("dask", "Dask's default ThreadPoolExecutor",
                            UNTHROTTLED),
    "unthrottled-ours": ("ours", "fastthreadpool.ThreadPoolExecutor",
                         UNTHROTTLED),
}

GOALS = [("dask-ours", "dask-default", None,
          "tasks/s: ours / Dask's default executor"),
         ("unthrottled-ours", "unthrottled-default", None,
          "unthrottled tasks/s: ours / Dask's default executor")]


def inc(x):
    return x + 1


def measure(name, mod, n):
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise subproc.Unavailable("distributed: %s" % exc)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    settings = CASES[name][2]

    async def main():
        executor = (None if mod is None
                    else mod.ThreadPoolExecutor(NTHREADS))
        async with distributed.Scheduler(host="127.0.0.1", port=0,
                                         dashboard=False) as s:
            async with distributed.Worker(s.address, nthreads=NTHREADS,
                                          executor=executor) as w:
                async with distributed.Client(s.address,
                                              asynchronous=True) as c:
                    used = type(w.executor).__module__
                    # One warm-up batch: connections, imports, caches.
                    await c.gather(c.map(inc, range(100), key="warm"))
                    t0 = time.perf_counter()
                    results = await c.gather(c.map(inc, range(n)))
                    elapsed = time.perf_counter() - t0
        return elapsed, results, used

    with dask.config.set(settings):
        elapsed, results, used = asyncio.run(main())
    want = "fastthreadpool" if mod is not None else "distributed"
    if not used.startswith(want):
        return {"error": "%s: the worker's executor came from %s"
                % (name, used)}
    if results != list(range(1, n + 1)):
        return {"error": "%s: wrong results" % name}
    return {"elapsed": elapsed, "n": n}


def main(argv=None):
    ap = subproc.parser(__doc__, CASES, "tasks per measurement",
                        rounds=3, timeout=600, per_n=" tasks",
                        n_quick=N_QUICK, n_full=N_FULL)
    args = ap.parse_args(argv)
    if args.child:
        return subproc.child(CASES[args.child][0], args.ours_from,
                             lambda mod: measure(args.child, mod, args.n),
                             need=("ThreadPoolExecutor",))

    n = args.n or (N_QUICK if args.quick else N_FULL)
    names = subproc.selected(ap, args, CASES)
    samples, notes, errors = subproc.run_rounds(
        __file__, args, [(c, CASES[c][0], n) for c in names])
    results = {}
    for c in names:
        entry = {"impl": CASES[c][0], "description": CASES[c][1],
                 "settings": CASES[c][2], "n": n}
        results[c] = subproc.result(entry, c, samples, notes)

    print("## Dask: %d tiny tasks on one worker with %d threads, scheduler "
          "and client in the same process, %d rounds\n"
          % (n, NTHREADS, args.rounds))
    print("| case | worker's executor | tasks/s (median) | min - max "
          "| us/task |")
    print("| --- | --- | ---: | ---: | ---: |")
    subproc.print_rate_rows(results, names, 1e6)
    ratios = subproc.ratio_table(results, GOALS)
    if args.json:
        subproc.write_doc(args.json, {
            "benchmark": "dask", "rounds": args.rounds,
            "quick": args.quick, "n": n}, results, ratios, errors)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
