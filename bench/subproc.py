"""Shared by the Python benchmarks whose every case runs in its own
subprocess (bench/overhead/run.py, bench/semaphore/run.py).

A script defines its cases and goals; this module imports the
fastthreadpool under test in the child (this project's package, or the
original 1.7.0 from build/orig: both have the same import name, hence one
process per measurement), runs the children in interleaved rounds, turns
the rates into medians and min-max, prints the ratio table and writes the
JSON document.

A child prints one JSON line: {"elapsed": s, "n": count, ...} for a
measurement, {"unavailable": why} when the case cannot run here (not a
failure), or {"error": why} when the case ran and gave a wrong result; the
line also names the interpreter that ran it.  The children run under the
interpreter given with --python (default: the one running the script), or
under one given per case (bench/freethreading/run.py runs each case on two
builds of CPython).
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
ORIG = os.path.join(REPO, "build", "orig")

# N per case: full and --quick runs.
N_FULL = 1_000_000
N_QUICK = 200_000


class Unavailable(Exception):
    """The case cannot run here (not a failure of the case)."""


# --- child process -----------------------------------------------------

def load_module(impl, ours_from, need=("Pool",)):
    """Imports the fastthreadpool under test and checks where it came from.

    impl "ours" is the package in ours_from, "orig" the one in build/orig
    (put on PYTHONPATH by child_env); any other impl needs no
    fastthreadpool and gets None.  need: attributes the module must have.
    """
    if impl not in ("ours", "orig"):
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
    for name in need:
        if not hasattr(fastthreadpool, name):
            raise Unavailable("fastthreadpool.%s does not exist" % name)
    return fastthreadpool


def interpreter_label():
    """This interpreter as the tables name it; on a free-threaded build,
    whether the GIL is off now (an extension module that does not declare
    itself safe without the GIL turns it back on when imported)."""
    label = "%s %s" % (platform.python_implementation(),
                       platform.python_version())
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return label + " free-threaded, GIL %s" % (
            "on" if sys._is_gil_enabled() else "off")
    return label + " (GIL)"


def child(impl, ours_from, measure, need=("Pool",)):
    """The child's whole run: measure(mod) returns the JSON line's dict
    ({"elapsed", "n", ...} or {"error"}) and may raise Unavailable."""
    try:
        out = measure(load_module(impl, ours_from, need))
    except Unavailable as exc:
        out = {"unavailable": str(exc)}
    # After the measurement: the GIL's state while it ran.
    out["interpreter"] = interpreter_label()
    print(json.dumps(out))
    return 1 if "error" in out else 0


# --- parent ----------------------------------------------------------------

def parser(doc, cases, n_help, rounds, timeout, per_n="", options=None,
           n_quick=N_QUICK, n_full=N_FULL):
    """The options every script has; options(ap) adds the script's own
    (listed after --rounds).  per_n names the unit of N in --quick's help,
    n_quick and n_full the N it states (a script whose N is not main_n's
    gives its own)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="N = %d%s instead of %d" % (n_quick, per_n, n_full))
    ap.add_argument("--json", metavar="FILE", help="write results as JSON")
    ap.add_argument("--n", type=int, help=n_help)
    ap.add_argument("--rounds", type=int, default=rounds,
                    help="interleaved rounds (default %d)" % rounds)
    if options:
        options(ap)
    ap.add_argument("--cases", help="comma-separated subset of: "
                    + ", ".join(cases))
    ap.add_argument("--timeout", type=int, default=timeout,
                    help="seconds allowed for one measurement")
    ap.add_argument("--ours-from", metavar="DIR", default=REPO,
                    help="directory holding the fastthreadpool package"
                    " measured as 'ours' (default: the repository; pass"
                    " build/orig to check the benchmark itself)")
    ap.add_argument("--python", metavar="PATH", default=sys.executable,
                    help="interpreter that runs the measurements (default:"
                    " this one), e.g. a free-threaded build; the"
                    " extension must be built for it")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    return ap


def main_n(args):
    """The N of a run: --n, or the --quick or full default."""
    return args.n or (N_QUICK if args.quick else N_FULL)


def selected(ap, args, cases):
    """The case names chosen with --cases (all by default), in order."""
    if not args.cases:
        return list(cases)
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in cases]
    if unknown:
        ap.error("unknown case(s): " + ", ".join(unknown))
    return names


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


def run_child(script, name, impl, n, timeout, ours_from, extra=(),
              python=None):
    """Runs `script --child name` once under python (default: this
    interpreter); returns its JSON line's dict."""
    python = python or sys.executable
    if os.sep in python:
        # The child runs in the script's directory.
        python = os.path.abspath(python)
    cmd = ([python, os.path.abspath(script), "--child", name, "--n", str(n)]
           + list(extra) + ["--ours-from", ours_from])
    try:
        p = subprocess.run(cmd, env=child_env(impl),
                           cwd=os.path.dirname(os.path.abspath(script)),
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


# The interpreter each case's children reported, by case name: filled by
# run_rounds, named beside the figures by result() and write_doc().
INTERPRETERS = {}


def run_rounds(script, args, jobs, extra=()):
    """Interleaved rounds: every job once per round.

    jobs: [(name, impl, n)] or [(name, impl, n, python, job_extra)]: the
    interpreter (None: --python) and arguments of that job alone.  Returns
    (samples, notes, errors): the rates per name, why a case is unavailable
    (it is not run again), and the failed children's outputs.
    """
    if any(job[1] == "orig" for job in jobs) \
            and not os.path.isdir(os.path.join(ORIG, "fastthreadpool")):
        print("note: %s is missing (run tools/install-original.sh); the"
              " original's cases will be unavailable" % ORIG,
              file=sys.stderr)
    ours_from = os.path.abspath(args.ours_from)
    samples = {job[0]: [] for job in jobs}
    notes = {}
    errors = []
    for r in range(args.rounds):
        for name, impl, n, *more in jobs:
            if name in notes:
                continue
            python = (more[0] if more else None) or args.python
            out = run_child(script, name, impl, n, args.timeout, ours_from,
                            list(extra) + list(more[1] if more else ()),
                            python)
            if out.get("interpreter"):
                INTERPRETERS[name] = out["interpreter"]
            if "unavailable" in out:
                notes[name] = out["unavailable"]
            elif "error" in out:
                errors.append(out)
                print("FAILED: " + out["error"], file=sys.stderr)
                if out.get("stderr"):
                    print(out["stderr"], file=sys.stderr)
            else:
                samples[name].append(out["n"] / out["elapsed"])
        print("round %d/%d done" % (r + 1, args.rounds), file=sys.stderr)
    return samples, notes, errors


def result(entry, src, samples, notes):
    """Completes a case's JSON entry with the rates measured for src:
    median/min/max/rounds, or why it is unavailable, or failed."""
    rates = samples.get(src, [])
    if src in INTERPRETERS:
        entry["interpreter"] = INTERPRETERS[src]
    if rates:
        entry.update(median=statistics.median(rates), min=min(rates),
                     max=max(rates), rounds=rates)
    elif src in notes:
        entry["unavailable"] = notes[src]
    else:
        entry["failed"] = True
    return entry


def fmt_rate(x):
    return "%.0f" % x if x < 1e4 else "{:,.0f}".format(x)


def print_rate_rows(results, names, per_unit):
    """One table row per case: case, description, median rate, its range,
    and the time per item (1 / rate, times per_unit: 1e6 for us, 1e9 for
    ns); "n/a" with the reason for a case that did not run."""
    for c in names:
        e = results[c]
        if "median" in e:
            print("| %s | %s | %s | %s - %s | %.0f |" % (
                c, e["description"], fmt_rate(e["median"]),
                fmt_rate(e["min"]), fmt_rate(e["max"]),
                per_unit / e["median"]))
        else:
            print("| %s | %s | n/a | %s | - |" % (
                c, e["description"], e.get("unavailable", "FAILED")))


def fmt_ratio(x):
    """Two decimals, or two significant digits below 0.1 (a slow
    competitor's share of a fast one would otherwise print as 0.00)."""
    if x >= 0.1 or x <= 0:
        return "%.2f" % x
    return "%.*f" % (1 - math.floor(math.log10(x)), x)


def ratio_table(results, goals):
    """Prints the goals table; returns its rows for the JSON document.

    goals: [(numerator, denominator, goal or None, label)]; pairs with a
    case that was not selected are left out.
    """
    print("\n## Ratios (medians of the same run)\n")
    print("| ratio | measured | per round (min - max) | goal | met |")
    print("| --- | ---: | ---: | ---: | --- |")
    ratios = []
    for num, den, goal, label in goals:
        if num not in results or den not in results:
            continue
        a, b = results[num].get("median"), results[den].get("median")
        v = a / b if a and b else None
        ra = results[num].get("rounds")
        rb = results[den].get("rounds")
        # Ratios within each round: the two ran close together.
        per = ([x / y for x, y in zip(ra, rb)]
               if ra and rb and len(ra) == len(rb) else None)
        met = None if v is None or goal is None else v >= goal
        ratios.append({"numerator": num, "denominator": den, "label": label,
                       "ratio": v, "per_round": per, "goal": goal,
                       "met": met})
        print("| %s | %s | %s | %s | %s |" % (
            label, "n/a" if v is None else fmt_ratio(v),
            "-" if not per else "%s - %s" % (fmt_ratio(min(per)),
                                             fmt_ratio(max(per))),
            "-" if goal is None else ">= %g" % goal,
            "-" if goal is None else "n/a" if v is None
            else "yes" if met else "NO"))
    return ratios


def write_doc(path, head, results, ratios, errors):
    """The JSON document: head's keys first, then the common ones."""
    doc = dict(head)
    doc.update(python=sys.version,
               interpreters=sorted(set(INTERPRETERS.values())),
               cpu_count=os.cpu_count(),
               time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               results=results, ratios=ratios, errors=errors)
    with open(path, "w") as fp:
        json.dump(doc, fp, indent=2)
        fp.write("\n")
