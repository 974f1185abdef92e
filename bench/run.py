#!/usr/bin/env python3
"""The benchmark runner: runs every benchmark of the project and assembles
one report.

    python3 bench/run.py [--quick] [--only echo,engine,overhead,semaphore,
                                           dask,freethreading]
                         [--servers MODE,...] [--rounds N] [--ft PATH]
                         [--duration S | --num N] [--no-pin] [--out DIR]

Parts:
  echo       the echo experiment: Python echo servers (asyncio, uvloop,
             threads on fastthreadpool) and the C servers of bench/echo,
             driven by the C load generator and by the original-style
             Python client; every reply is verified.
  engine     build/bench/bench_engine (C engine against GLib and libuv)
  overhead   bench/overhead/run.py (pool overhead, tiny jobs)
  semaphore  bench/semaphore/run.py (Semaphore)
  dask       bench/dask/run.py (a Dask worker on Dask's executor and on ours)
  freethreading  free-threaded CPython (--ft PATH): bench/freethreading/
             run.py (CPU-bound jobs in parallel, overhead, several
             submitting threads) and echo servers run by the free-threaded
             interpreter beside the same servers on the GIL build.

Writes DIR/results.json (all figures, machine, versions), DIR/RESULTS.md
(every table) and DIR/echo_*.png, DIR/overhead.png, DIR/freethreading*.png,
... (bar charts), and prints the tables.  DIR defaults to bench/results.
Exit status 1 if any verification or benchmark failed, or if fastthreadpool
cannot be imported; a C program, script or interpreter that is not built is
reported as such and skipped.
"""
import argparse
import json
import os
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402
from common import progress, fmt_num, fmt_bytes  # noqa: E402

ROOT = common.ROOT
BUILD = os.path.join(ROOT, "build", "bench")
PY = sys.executable

SIZES = (1000, 4096, 16384, 65536)
BUFSIZES_FULL = (4096, 8192, 16384, 32768, 65536, 131072, 262144)
BUFSIZES_QUICK = (4096, 65536, 262144)
CONNS = 5
STREAMS_READ = 65536    # read size of the streams servers
C_BUFSIZE = 65536       # buffer of the C servers

MODULE_NAMES = {
    "asyncio-proto": "asyncio/proto",
    "asyncio-streams": "asyncio/streams",
    "uvloop-proto": "uvloop/proto",
    "uvloop-streams": "uvloop/streams",
    "threads": "threads (fastthreadpool)",
    "threads-notecho": "threads, NOT AN ECHO (original handler)",
    "c-engine": "C engine server",
    "c-libuv": "C libuv server",
}
REFERENCE = "uvloop-proto"


class Failure(Exception):
    pass


# --------------------------------------------------------------------------
# Servers and load generators
# --------------------------------------------------------------------------

class Server:
    """One echo server process; started pinned, stopped with SIGTERM."""

    def __init__(self, cfg, cpu):
        self.cfg = cfg
        mode, bufsize = cfg["mode"], cfg["bufsize"]
        if mode == "c-engine":
            cmd = [os.path.join(BUILD, "c_server_engine"), "--port", "0",
                   "--bufsize", str(bufsize), "--threads", str(CONNS + 1)]
        elif mode == "c-libuv":
            cmd = [os.path.join(BUILD, "c_server_libuv"), "--port", "0",
                   "--bufsize", str(bufsize)]
        else:
            cmd = [cfg.get("python", PY),
                   os.path.join(HERE, "echo", "server.py"),
                   "--mode", mode, "--port", "0",
                   "--bufsize", str(bufsize or STREAMS_READ),
                   "--threads", str(CONNS + 1)]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu)] + cmd
        self.errf = tempfile.TemporaryFile(mode="w+")
        env = dict(os.environ, **cfg["env"]) if cfg.get("env") else None
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=self.errf, text=True, cwd=ROOT,
                                     env=env)
        self.gil = None
        self.port = self._wait_ready(20.0)
        # A configuration may demand the GIL's state (free-threaded
        # CPython turns it back on for a module not declared safe).
        if cfg.get("gil") and self.gil != cfg["gil"]:
            self.kill()
            raise Failure("server %s runs with the GIL %s, expected %s"
                          % (cfg["key"], self.gil, cfg["gil"]))

    def stderr(self):
        self.errf.seek(0)
        return self.errf.read().strip()[-2000:]

    def _wait_ready(self, timeout):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=deadline - time.monotonic()):
                    break
                line = self.proc.stdout.readline()
                if not line:
                    break
                if line.startswith("READY"):
                    # READY <port> [gil=on|off]
                    fields = line.split()
                    self.gil = dict(f.split("=", 1) for f in fields[2:]
                                    if "=" in f).get("gil")
                    return int(fields[1])
        finally:
            sel.close()
        self.kill()
        raise Failure("server %s did not start: %s"
                      % (self.cfg["key"], self.stderr() or "no READY line"))

    def check_alive(self):
        if self.proc.poll() is not None:
            raise Failure("server %s died (exit code %s): %s"
                          % (self.cfg["key"], self.proc.returncode,
                             self.stderr()))

    def stop(self):
        """SIGTERM and wait; returns the lines printed after READY."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure("server %s did not stop on SIGTERM"
                          % self.cfg["key"])
        # The C servers have no SIGTERM handler: dying of it is their
        # normal end.  The Python servers must exit cleanly.
        clean = (0, -signal.SIGTERM) if self.cfg["mode"].startswith("c-") \
            else (0,)
        if self.proc.returncode not in clean:
            raise Failure("server %s exited with code %d: %s"
                          % (self.cfg["key"], self.proc.returncode,
                             self.stderr()))
        return out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def run_json(cmd, timeout):
    """Runs a load generator and returns its JSON line (its last line)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        raise Failure("no result within %d s: %s" % (timeout, " ".join(cmd)))
    lines = p.stdout.strip().splitlines()
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError):
        out = {"ok": False, "error": "no JSON line (exit code %d): %s"
               % (p.returncode, p.stderr.strip()[-1000:])}
    if p.returncode != 0 or not out.get("ok"):
        raise Failure(out.get("error") or p.stderr.strip()[-1000:]
                      or "exit code %d" % p.returncode)
    return out


def loadgen_cmd(port, msize, s, surplus):
    cmd = [os.path.join(BUILD, "loadgen"), "--port", str(port),
           "--conns", str(CONNS), "--msize", str(msize)]
    cmd += (["--duration", str(s.duration)] if s.duration
            else ["--num", str(s.num)])
    if surplus:
        cmd.append("--count-surplus")
    if s.client_cpu is not None:
        cmd = ["taskset", "-c", str(s.client_cpu)] + cmd
    return cmd


def pyclient_cmd(port, msize, s, surplus):
    cmd = [PY, os.path.join(HERE, "echo", "client.py"), "--json",
           "--port", str(port), "--workers", str(CONNS),
           "--msize", str(msize)]
    cmd += (["--duration", str(s.duration)] if s.duration
            else ["--num", str(s.num)])
    if surplus:
        cmd.append("--count-surplus")
    if s.client_cpu is not None:
        cmd = ["taskset", "-c", str(s.client_cpu)] + cmd
    return cmd


CLIENTS = {
    "loadgen": ("C load generator (1 thread, epoll, %d connections)"
                % CONNS, loadgen_cmd),
    "python": ("original-style Python client (%d processes, 1 connection "
               "each)" % CONNS, pyclient_cmd),
}


# --------------------------------------------------------------------------
# The echo experiment
# --------------------------------------------------------------------------

def echo_configs(s):
    """Server configurations, each with the (client, msize) cases it runs."""
    have_loadgen = os.access(os.path.join(BUILD, "loadgen"), os.X_OK)
    lg = ["loadgen"] if have_loadgen else []
    py_sizes = (1000, 65536) if s.quick else SIZES
    bufsizes = BUFSIZES_QUICK if s.quick else BUFSIZES_FULL
    notecho_bufsizes = (4096, 65536) if s.quick else BUFSIZES_FULL
    py_bufsizes = (4096, 65536) if s.quick else BUFSIZES_FULL

    def cfg(mode, bufsize, cases):
        key = mode + ("" if bufsize is None else "/%d" % bufsize)
        return {"key": key, "mode": mode, "bufsize": bufsize,
                "module": MODULE_NAMES[mode], "cases": cases}

    def cases(clients_for_size):
        return [(c, m) for m in SIZES for c in clients_for_size(m)]

    out = []
    for mode in ("asyncio-proto", "asyncio-streams", "uvloop-proto",
                 "uvloop-streams"):
        bufsize = STREAMS_READ if mode.endswith("streams") else None
        out.append(cfg(mode, bufsize, cases(
            lambda m: lg + (["python"] if m in py_sizes else []))))
    for b in bufsizes:
        out.append(cfg("threads", b, cases(
            lambda m, b=b: lg + (["python"] if m in py_sizes
                                 and b in py_bufsizes else []))))
    for b in notecho_bufsizes:
        out.append(cfg("threads-notecho", b, cases(
            lambda m: lg + (["python"] if m in py_sizes else []))))
    for mode, exe in (("c-engine", "c_server_engine"),
                      ("c-libuv", "c_server_libuv")):
        if os.access(os.path.join(BUILD, exe), os.X_OK) and lg:
            out.append(cfg(mode, C_BUFSIZE, cases(lambda m: lg)))
    return out


def check_fastthreadpool(python=PY):
    code = ("import sys; sys.path.insert(0, %r); import fastthreadpool;"
            "fastthreadpool.Pool" % ROOT)
    p = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if p.returncode != 0:
        return (p.stderr.strip().splitlines() or ["import failed"])[-1]
    return None


def run_echo(s, report):
    missing = []
    if not os.access(os.path.join(BUILD, "loadgen"), os.X_OK):
        missing.append("C load generator not built (build/bench/loadgen; "
                       "run make -C bench)")
    for exe in ("c_server_engine", "c_server_libuv"):
        if not os.access(os.path.join(BUILD, exe), os.X_OK):
            missing.append("%s not built (build/bench/%s)" % (exe, exe))
    configs = echo_configs(s)
    if s.servers:
        configs = [c for c in configs if c["mode"] in s.servers]
    ftp_err = None
    if any(c["mode"].startswith("threads") for c in configs):
        ftp_err = check_fastthreadpool()
    if ftp_err:
        missing.append("fastthreadpool not importable (%s): threads servers "
                       "skipped; run make ext" % ftp_err)
        report["failures"].append("echo: fastthreadpool not importable: "
                                  + ftp_err)
        configs = [c for c in configs if not c["mode"].startswith("threads")]
    for m in missing:
        progress("echo: NOT BUILT: " + m)
    report["echo"] = echo = {
        "connections": CONNS,
        "pinning": s.pin_note,
        "duration_per_run_s": s.duration or None,
        "messages_per_connection": None if s.duration else s.num,
        "rounds": s.rounds,
        "clients": {k: v[0] for k, v in CLIENTS.items()},
        "not_built": missing,
        "cases": [],
        "failures": [],
    }
    samples, failed = echo_rounds(configs, s, report, echo)
    echo["cases"] = echo_cases(configs, samples, failed)
    add_ratios(echo["cases"])


def echo_rounds(configs, s, report, echo):
    """Every configuration's cases, s.rounds interleaved rounds.  Returns
    the results, {(key, client, msize): [round results]}, and the set of
    configuration keys that failed (their later rounds are skipped); the
    failures go into echo["failures"] and report["failures"]."""
    samples = {}        # (key, client, msize) -> list of round results
    failed = set()      # config keys that failed: their rounds stop
    nruns = sum(len(c["cases"]) for c in configs) * s.rounds
    done = 0
    progress("echo: %d server configurations, %d runs of %s each, %s"
             % (len(configs), nruns,
                "%.2g s" % s.duration if s.duration
                else "%d messages/connection" % s.num, s.pin_note))
    for r in range(s.rounds):
        # Alternate the order so that slow drifts of a shared machine do
        # not always hit the same configurations.
        order = configs if r % 2 == 0 else configs[::-1]
        for cfg in order:
            if cfg["key"] in failed:
                done += len(cfg["cases"])
                continue
            try:
                server = Server(cfg, s.server_cpu)
            except Failure as e:
                fail_config(echo, report, failed, cfg, None, str(e))
                done += len(cfg["cases"])
                continue
            try:
                # One untimed run first: the first run on a fresh server is
                # slower for every kind of server (connection set-up, thread
                # creation, caches), and no one-off cost belongs in a rate.
                cases = cfg["cases"]
                warm = "loadgen" if any(c == "loadgen" for c, _ in cases) \
                    else "python"
                notecho = cfg["mode"] == "threads-notecho"
                try:
                    run_json(CLIENTS[warm][1](server.port, 1000, s.warmup,
                                              notecho), s.case_timeout)
                except Failure as e:
                    fail_config(echo, report, failed, cfg, (warm, 1000),
                                "warm-up: " + str(e))
                    cases = []
                for client, msize in cases:
                    done += 1
                    surplus = cfg["mode"] == "threads-notecho"
                    cmd = CLIENTS[client][1](server.port, msize, s, surplus)
                    try:
                        out = run_json(cmd, s.case_timeout)
                        server.check_alive()
                    except Failure as e:
                        fail_config(echo, report, failed, cfg, (client, msize),
                                    str(e))
                        break
                    samples.setdefault((cfg["key"], client, msize),
                                       []).append(out)
                    progress("echo %d/%d round %d/%d %-40s %7s %-8s "
                             "%10s msg/s%s"
                             % (done, nruns, r + 1, s.rounds,
                                label(cfg), fmt_bytes(msize), client,
                                fmt_num(out["msg_per_s"]),
                                "  surplus %s B" % fmt_num(
                                    out.get("surplus_bytes"))
                                if surplus else ""))
            finally:
                try:
                    tail = server.stop()
                except Failure as e:
                    if cfg["key"] not in failed:
                        fail_config(echo, report, failed, cfg, None, str(e))
                    tail = ""
            for line in tail.splitlines():
                if line.startswith("STATS"):
                    cfg.setdefault("server_stats", []).append(line)
    return samples, failed


def echo_cases(configs, samples, failed):
    """The cases' summaries (medians, min-max) for the report."""
    out = []
    for cfg in configs:
        for client, msize in cfg["cases"]:
            outs = samples.get((cfg["key"], client, msize))
            if not outs or cfg["key"] in failed:
                continue
            case = {
                "server": cfg["key"], "mode": cfg["mode"],
                "module": cfg["module"],
                "echo": cfg["mode"] != "threads-notecho",
                "server_buffer_size": cfg["bufsize"],
                "client": client, "message_size": msize,
                "msg_per_s": common.summary([o["msg_per_s"] for o in outs]),
                "mb_per_s": common.summary([o["mb_per_s"] for o in outs]),
                "messages": [o["messages"] for o in outs],
                "seconds": [o["seconds"] for o in outs],
                "bytes_sent": [o["bytes_sent"] for o in outs],
                "bytes_received": [o["bytes_received"] for o in outs],
            }
            if not case["echo"]:
                case["surplus_bytes"] = common.summary(
                    [o["surplus_bytes"] for o in outs])
                case["server_stats"] = cfg.get("server_stats", [])
            out.append(case)
    return out


def label(cfg):
    name = cfg["module"]
    if cfg.get("build"):
        name += " [%s]" % cfg["build"]
    if cfg["bufsize"] is None or cfg["mode"].endswith("streams"):
        return name
    return "%s %s" % (name, fmt_bytes(cfg["bufsize"]))


def fail_config(echo, report, failed, cfg, case, msg):
    failed.add(cfg["key"])
    where = cfg["key"] + ("" if case is None
                          else " (%s, message size %d)" % case)
    echo["failures"].append({"server": cfg["key"], "case": case,
                             "error": msg})
    report["failures"].append("echo %s: %s" % (where, msg))
    progress("echo: FAILED %s: %s" % (where, msg))


def add_ratios(cases):
    ref = {(c["client"], c["message_size"]): c["msg_per_s"]["median"]
           for c in cases if c["mode"] == REFERENCE}
    for c in cases:
        r = ref.get((c["client"], c["message_size"]))
        c["vs_uvloop_proto"] = c["msg_per_s"]["median"] / r if r else None


def buffer_cell(c):
    b = c["server_buffer_size"]
    if b is None:
        return ""
    if c["mode"].endswith("streams"):
        return "read(%s)" % fmt_bytes(b)
    return fmt_bytes(b)


def case_order(c):
    """The original table's order: message size, then module, then
    buffer size."""
    modes = list(MODULE_NAMES)
    return (c["message_size"], modes.index(c["mode"]),
            c["server_buffer_size"] or 0)


def ratio_cell(c):
    return "%.2f×" % c["vs_uvloop_proto"] if c["vs_uvloop_proto"] else "-"


def echo_tables(echo):
    """Markdown sections: one table per load generator, notecho apart."""
    parts = []
    headers = ["Module", "Server buffer size", "Message size", "Messages/s",
               "MB/s", "vs uvloop/proto"]
    cases = sorted(echo["cases"], key=case_order)
    for client, (desc, _) in CLIENTS.items():
        rows = [[c["module"], buffer_cell(c), fmt_bytes(c["message_size"]),
                 common.fmt_range(c["msg_per_s"]),
                 fmt_num(c["mb_per_s"]["median"], 1), ratio_cell(c)]
                for c in cases if c["client"] == client and c["echo"]]
        if rows:
            parts.append("### Echo servers, %s\n\n%s" % (
                desc, common.md_table(headers, rows, "llrrrr")))
        nrows = []
        for c in cases:
            if c["client"] != client or c["echo"]:
                continue
            sent = statistics.median(c["bytes_sent"])
            surplus = c["surplus_bytes"]["median"]
            nrows.append([c["module"], buffer_cell(c),
                          fmt_bytes(c["message_size"]),
                          common.fmt_range(c["msg_per_s"]),
                          fmt_num(c["mb_per_s"]["median"], 1), ratio_cell(c),
                          fmt_num(surplus),
                          "%.0f%%" % (100.0 * surplus / sent)
                          if sent else "-"])
        if nrows:
            parts.append(
                "### NOT AN ECHO: the original handler, %s\n\n"
                "The server sends its whole buffer after every receive. "
                "The client cannot verify replies; it counts bytes as the "
                "original client did, so surplus bytes already in its socket "
                "buffer satisfy later replies without a round trip. These "
                "rates are not round-trip rates. Surplus = bytes received "
                "beyond the bytes sent in one run (median over rounds). One "
                "change to the original handler: it stops at the client's "
                "EOF, where the original sent whole buffers until the client "
                "closed.\n\n%s" % (
                    desc, common.md_table(
                        headers + ["Surplus bytes received",
                                   "Surplus / bytes sent"],
                        nrows, "llrrrrrr")))
    return parts


def echo_charts(echo, outdir):
    files = []
    for client, (desc, _) in CLIENTS.items():
        panels = []
        for m in SIZES:
            bars = []
            for c in echo["cases"]:
                if c["client"] != client or c["message_size"] != m:
                    continue
                lbl = c["module"].replace(" (fastthreadpool)", "").replace(
                    ", NOT AN ECHO (original handler)", " NOT AN ECHO")
                if c["server_buffer_size"] and not c["mode"].endswith(
                        "streams"):
                    lbl += " " + fmt_bytes(c["server_buffer_size"])
                s = c["msg_per_s"]
                bars.append((lbl, s["median"], s["min"], s["max"]))
            if bars:
                panels.append(("message size %s" % fmt_bytes(m), bars))
        path = os.path.join(outdir, "echo_%s.png" % client)
        if common.bar_chart(path, "Echo, %s: messages/s (median, min–max); "
                            "red = not an echo" % desc, panels,
                            "messages/s"):
            files.append(os.path.basename(path))
    return files


# --------------------------------------------------------------------------
# The free-threaded build: bench/freethreading/run.py, then echo servers run
# by the free-threaded interpreter beside the same servers on the GIL build
# --------------------------------------------------------------------------

FT_DEFAULT = os.path.join(ROOT, "build", "python3.13t", "bin", "python3.13t")
FT_MODES = ("uvloop-proto", "uvloop-streams", "asyncio-proto",
            "asyncio-streams", "threads")
FT_SIZES_QUICK = (1000, 65536)
FT_BUFSIZE = 65536      # the threads servers' buffer
BUILDS = {"ft": "free-threaded", "ftgil": "free-threaded, GIL on",
          "gil": "GIL build"}
# The free-threaded binary with the GIL turned on: against GIL off, the
# effect of the GIL alone; against the GIL build, that of the version and of
# the build (3.13's free-threaded build runs without the specializing
# interpreter even with the GIL on).  A few servers only.
GIL_ON = {"PYTHON_GIL": "1"}
GIL_ON_MODES = ("uvloop-proto", "asyncio-proto", "threads")


def interpreter_label(python, env=None):
    """The interpreter as bench/subproc.py names it, once fastthreadpool
    is imported; None if that fails."""
    code = ("import sys; sys.path[:0] = [%r, %r]; import fastthreadpool;"
            "import subproc; print(subproc.interpreter_label())"
            % (ROOT, HERE))
    p = subprocess.run([python, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, **env) if env else None)
    if p.returncode != 0:
        return None
    return p.stdout.strip() + (" (PYTHON_GIL=1)" if env == GIL_ON else "")


def can_import(python, module):
    return subprocess.run([python, "-c", "import " + module],
                          capture_output=True).returncode == 0


def ft_echo_configs(s, pythons):
    sizes = FT_SIZES_QUICK if s.quick else SIZES
    out = []
    for b, py in pythons.items():
        for mode in FT_MODES:
            if b == "ftgil" and mode not in GIL_ON_MODES:
                continue
            bufsize = (FT_BUFSIZE if mode == "threads"
                       else STREAMS_READ if mode.endswith("streams")
                       else None)
            out.append({"key": "%s:%s" % (b, mode), "mode": mode,
                        "bufsize": bufsize, "module": MODULE_NAMES[mode],
                        "build": BUILDS[b], "python": py,
                        "env": GIL_ON if b == "ftgil" else None,
                        "gil": "off" if b == "ft" else "on",
                        "cases": [("loadgen", m) for m in sizes]})
    return out


def run_freethreading(s, report, outdir):
    """The part's Markdown (headings from ##), or None if there is no
    free-threaded interpreter."""
    ft = s.python_ft
    if not (ft and os.access(ft, os.X_OK)):
        msg = ("freethreading: NOT BUILT (no free-threaded interpreter at %s;"
               " sh tools/build-python-ft.sh builds it)" % ft)
        progress(msg)
        report["not_built"].append(msg)
        return None
    script = os.path.join(HERE, "freethreading", "run.py")
    # The rounds of the whole run, as for its echo servers below.
    text = run_part("freethreading", [PY, script, "--ft", ft, "--rounds",
                                      str(s.rounds)], s, report,
                    outdir) or ""
    part = report["freethreading"]
    pythons = {"ft": ft, "ftgil": ft, "gil": PY}
    labels = {b: interpreter_label(py, GIL_ON if b == "ftgil" else None)
              for b, py in pythons.items()}
    part["echo"] = echo = {
        "connections": CONNS, "pinning": s.pin_note, "client": "loadgen",
        "interpreters": {b: {"python": os.path.relpath(pythons[b], ROOT)
                             if pythons[b].startswith(ROOT + os.sep)
                             else pythons[b], "interpreter": labels[b]}
                         for b in pythons},
        "cases": [], "skipped": [], "failures": []}
    configs = ft_echo_configs(s, pythons)
    if not os.access(os.path.join(BUILD, "loadgen"), os.X_OK):
        echo["skipped"].append("every server: the C load generator is not "
                               "built (make -C bench)")
        configs = []
    for b, py in pythons.items():
        if labels[b] is None:
            err = check_fastthreadpool(py) or "no interpreter label"
            report["failures"].append("freethreading echo: fastthreadpool "
                                      "not importable by %s: %s" % (py, err))
            configs = [c for c in configs if case_build(c) != b]
        elif not can_import(py, "uvloop"):
            echo["skipped"].append("uvloop servers, %s: uvloop is not "
                                   "installed for %s" % (BUILDS[b], py))
            configs = [c for c in configs if case_build(c) != b
                       or not c["mode"].startswith("uvloop")]
    for m in echo["skipped"]:
        progress("freethreading echo: skipped " + m)
    samples, failed = echo_rounds(configs, s, report, echo)
    echo["cases"] = echo_cases(configs, samples, failed)
    ft_echo_ratios(echo["cases"])

    md = [text.rstrip(), ""]
    part["charts"] = []
    name = "freethreading.png"
    if part["data"] and ft_chart(part["data"], os.path.join(outdir, name)):
        part["charts"].append(name)
        md += ["![%s](%s)" % (name, name), ""]
    md += [ft_echo_md(echo, labels, s), ""]
    name = "freethreading_echo.png"
    if ft_echo_chart(echo, os.path.join(outdir, name)):
        part["charts"].append(name)
        md += ["![%s](%s)" % (name, name)]
    return "\n".join(md)


def case_build(c):
    """A key of BUILDS: the prefix of the configuration's key (a case's
    "server")."""
    return (c.get("server") or c["key"]).split(":", 1)[0]


def ft_echo_ratios(cases):
    """Each case against uvloop/proto on the GIL build; the free-threaded
    build's against the same server on the GIL build and with the GIL on;
    same message size, same run."""
    med = {(case_build(c), c["mode"], c["message_size"]):
           c["msg_per_s"]["median"] for c in cases}

    def ratio(c, build, mode):
        ref = med.get((build, mode, c["message_size"]))
        return c["msg_per_s"]["median"] / ref if ref else None

    for c in cases:
        ft = case_build(c) == "ft"
        c["vs_uvloop_proto_gil"] = ratio(c, "gil", REFERENCE)
        c["vs_same_on_gil"] = ratio(c, "gil", c["mode"]) if ft else None
        c["vs_same_gil_on"] = ratio(c, "ftgil", c["mode"]) if ft else None


def ft_echo_md(echo, labels, s):
    out = ["## Echo servers on the free-threaded build", "",
           "The echo experiment's servers run by each interpreter: %s; the "
           "threads servers with a %s buffer (`fastthreadpool.Pool(%d)`, one "
           "job per connection), the streams servers reading at most %s per "
           "call. C load generator, %d connections, %s per run, every reply "
           "verified; %s. Ratios: against uvloop/proto on the GIL build; the "
           "free-threaded build's against the same server on the GIL build "
           "and on the free-threaded build with the GIL on (`PYTHON_GIL=1`, "
           "the same binary: the effect of the GIL alone); same message "
           "size, same run." % (
               "; ".join("%s = %s" % (BUILDS[b], labels[b] or "?")
                         for b in BUILDS),
               fmt_bytes(FT_BUFSIZE), CONNS + 1, fmt_bytes(STREAMS_READ),
               CONNS, "%g s" % s.duration if s.duration
               else "%d messages per connection" % s.num, s.pin_note), ""]
    for m in echo["skipped"]:
        out.append("- skipped: " + m)
    for f in echo["failures"]:
        out.append("- **FAILED** %s: %s" % (f["server"], f["error"]))
    if echo["skipped"] or echo["failures"]:
        out.append("")
    cases = sorted(echo["cases"], key=lambda c: (
        c["message_size"], ft_order(c)))

    def cell(r):
        return "%.2f×" % r if r else "-"

    rows = [[labels[case_build(c)] or BUILDS[case_build(c)], c["module"],
             buffer_cell(c), fmt_bytes(c["message_size"]),
             common.fmt_range(c["msg_per_s"]),
             fmt_num(c["mb_per_s"]["median"], 1),
             cell(c["vs_uvloop_proto_gil"]), cell(c["vs_same_on_gil"]),
             cell(c["vs_same_gil_on"])]
            for c in cases]
    if rows:
        out.append(common.md_table(
            ["Interpreter", "Module", "Server buffer size", "Message size",
             "Messages/s", "MB/s", "vs uvloop/proto, GIL build",
             "free-threaded / GIL build", "GIL off / GIL on"], rows,
            "lllrrrrrr"))
    return "\n".join(out)


def ft_order(c):
    """Each server on every build next to each other."""
    return FT_MODES.index(c["mode"]), list(BUILDS).index(case_build(c))


FT_SHORT = {
    "cpu-loop": "loop", "cpu-threads2": "2 plain Threads",
    "cpu-pool1": "ours Pool(1)", "cpu-pool2": "ours Pool(2)",
    "cpu-executor2": "ours executor(2)", "cpu-tpe2": "stdlib TPE(2)",
    "loop": "loop", "ours-submit": "ours submit", "ours-map": "ours map",
    "ours-executor": "ours executor", "tpe-submit": "stdlib TPE submit",
    "submit-1": "ours, 1 submitter", "submit-2": "ours, 2 submitters",
    "submit-4": "ours, 4 submitters",
}
FT_PANELS = {"cpu": ("CPU-bound jobs of about 1 ms: jobs/s", "linear"),
             "tiny": ("tiny jobs f(x) -> x: jobs/s (log scale)", "log"),
             "submitters": ("tiny jobs, submitting threads: jobs/s",
                            "linear")}


def ft_chart(data, path):
    """Bar charts of bench/freethreading/run.py's results: one panel per
    group of cases, both builds."""
    panels = []
    for group, (title, scale) in FT_PANELS.items():
        bars = [("%s, %s" % (FT_SHORT.get(e["case"], e["case"]), e["build"]),
                 e["median"], e["min"], e["max"])
                for e in data.get("results", {}).values()
                if e.get("group") == group and "median" in e]
        if bars:
            panels.append((title, bars, scale))
    return common.bar_chart(path, "Free-threaded build and GIL build "
                            "(median, min–max)", panels, "jobs/s")


def ft_echo_chart(echo, path):
    panels = []
    for m in sorted({c["message_size"] for c in echo["cases"]}):
        cases = sorted((c for c in echo["cases"] if c["message_size"] == m),
                       key=ft_order)
        bars = [("%s (%s)" % (c["module"].replace(" (fastthreadpool)", ""),
                              BUILDS[case_build(c)]),
                 c["msg_per_s"]["median"], c["msg_per_s"]["min"],
                 c["msg_per_s"]["max"])
                for c in cases]
        panels.append(("message size %s" % fmt_bytes(m), bars))
    return common.bar_chart(path, "Echo, C load generator: messages/s "
                            "(median, min–max)", panels, "messages/s")

def find_engine():
    for name in ("bench_engine", "engine"):
        p = os.path.join(BUILD, name)
        if os.access(p, os.X_OK):
            return [p]
    return None


def find_script(part):
    d = os.path.join(HERE, part)
    for name in ("run.py", part + ".py", "bench_%s.py" % part):
        if os.path.isfile(os.path.join(d, name)):
            return [PY, os.path.join(d, name)]
    return None


def run_part(part, cmd, s, report, outdir):
    if cmd is None:
        msg = "%s: NOT BUILT (%s)" % (part, "build/bench/bench_engine"
                                      if part == "engine"
                                      else "bench/%s/run.py" % part)
        progress(msg)
        report["not_built"].append(msg)
        return None
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tf:
        jpath = tf.name
    cmd = cmd + (["--quick"] if s.quick else []) + ["--json", jpath]
    progress("%s: %s" % (part, " ".join(os.path.relpath(c, ROOT)
                                        if c.startswith(ROOT) else c
                                        for c in cmd)))
    t0 = time.monotonic()
    # stderr (its progress) goes straight to ours; stdout is its report.
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        stdout, _ = p.communicate(timeout=s.part_timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        stdout, _ = p.communicate()
        report["failures"].append("%s: no result within %d s"
                                  % (part, s.part_timeout))
    data = None
    try:
        with open(jpath) as f:
            data = json.load(f)
    except (OSError, ValueError):
        pass
    finally:
        try:
            os.unlink(jpath)
        except OSError:
            pass
    if p.returncode != 0:
        report["failures"].append("%s: exit code %s" % (part, p.returncode))
    if data is None:
        report["failures"].append("%s: no JSON written" % part)
    progress("%s: done in %.0f s, exit code %s"
             % (part, time.monotonic() - t0, p.returncode))
    report[part] = {"exit_code": p.returncode, "report": stdout,
                    "data": data}
    chart = part_chart(part, data, outdir)
    if chart:
        report[part]["chart"] = chart
    return stdout


def metric_bars(data):
    """Generic extraction of {metric: [(label, median, min, max)]} from a
    benchmark's JSON: entries that hold {median, min, max} summaries."""
    metrics = {}
    res = data.get("results") if isinstance(data, dict) else None
    if isinstance(res, dict):
        items = list(res.items())
    elif isinstance(res, list):
        items = []
        for e in res:
            if not isinstance(e, dict):
                continue
            name = " ".join(str(e[k]) for k in ("pool", "name", "case", "impl")
                            if k in e)
            if "workers" in e:
                name += " (%s worker%s)" % (e["workers"],
                                            "" if e["workers"] == 1 else "s")
            items.append((name, e))
    else:
        return metrics
    for name, e in items:
        if not isinstance(e, dict):
            continue
        if "median" in e and isinstance(e["median"], (int, float)):
            unit = {"overhead": "jobs/s", "semaphore": "pairs/s",
                    "dask": "tasks/s"}.get(
                data.get("benchmark"), "per second")
            metrics.setdefault(unit, []).append(
                (name, e["median"], e.get("min", e["median"]),
                 e.get("max", e["median"])))
            continue
        for k, v in e.items():
            if isinstance(v, dict) and isinstance(v.get("median"),
                                                  (int, float)):
                metrics.setdefault(k, []).append(
                    (name, v["median"], v.get("min", v["median"]),
                     v.get("max", v["median"])))
    # A metric that only some entries have (a footnote figure) is left out
    # of the chart; the tables show it.
    n = max(len(v) for v in metrics.values()) if metrics else 0
    return {k: v for k, v in metrics.items() if len(v) == n}


def part_chart(part, data, outdir):
    # run_freethreading draws the freethreading part's charts.
    if not isinstance(data, dict) or part == "freethreading":
        return None
    metrics = metric_bars(data)
    if not metrics:
        return None
    panels = [(k.replace("_", " "), bars) for k, bars in metrics.items()]
    path = os.path.join(outdir, "%s.png" % part)
    if common.bar_chart(path, "%s (median, min–max)" % part, panels,
                        "", ncols=min(2, len(panels))):
        return os.path.basename(path)
    return None


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def machine_md(m, s):
    pk = m["packages"]
    return "\n".join([
        "- Date: %s; mode: %s" % (m["date"], m["mode"]),
        "- CPU: %s, %s CPUs (usable: %s); %s %s" % (
            m["cpu_model"], m["cpu_count"], m["cpus_usable"], m["kernel"],
            m["machine"]),
        "- %s; fastthreadpool %s; uvloop %s; matplotlib %s; "
        "distributed %s" % (
            m["python"], pk["fastthreadpool"], pk["uvloop"],
            pk["matplotlib"], pk.get("distributed")),
        "- Compiler: %s" % m["gcc"],
        "- Load average at start: %s" % ", ".join(
            "%.2f" % x for x in m["loadavg_at_start"] or []),
    ])


def write_report(report, s, outdir, sections):
    md = ["# Benchmark results", "",
          "Produced by `python3 bench/run.py%s`. Every figure is the median "
          "of %d rounds with the min–max range in parentheses; ratios "
          "compare medians measured in the same run." % (s.cmdline,
                                                         s.rounds), "",
          "## Machine", "", machine_md(report["machine"], s), ""]
    echo = report.get("echo")
    if echo:
        md += ["## Echo servers", "",
               "%d connections; each run lasts %s; every reply of every echo "
               "server is verified byte by byte (content depends on "
               "connection and sequence number); a mismatch, a surplus byte, "
               "a stall or a closed connection fails the run. MB/s = "
               "messages/s × message size / 2^20. The ratio compares with "
               "uvloop/proto driven by the same load generator in the same "
               "run. %s." % (
                   echo["connections"],
                   "%g s" % s.duration if s.duration
                   else "%d messages per connection" % s.num,
                   s.pin_note[0].upper() + s.pin_note[1:]), ""]
        md += ["Servers: one process each, restarted for every round, with "
               "one untimed warm-up run before the measured ones; TCP_NODELAY "
               "on every connection. threads = `fastthreadpool.Pool(%d)`: a "
               "pool job runs the accept loop (as in the original) and each "
               "connection is one job looping `recv_into`/`sendall(view[:n])`"
               "; the main thread waits in `pool.join()`. streams servers "
               "read at most %s per call. The C servers (one engine job per "
               "connection; libuv) use %s buffers. The rounds run the "
               "servers in alternating order." % (
                   CONNS + 1, fmt_bytes(STREAMS_READ), fmt_bytes(C_BUFSIZE)),
               ""]
        for m in echo["not_built"]:
            md += ["- not built: " + m]
        for f in echo["failures"]:
            md += ["- **FAILED** %s: %s" % (f["server"], f["error"])]
        md += [""]
        for t in echo_tables(echo):
            md += [t, ""]
        for f in echo.get("charts", []):
            md += ["![%s](%s)" % (f, f), ""]
    titles = {"engine": "C engine", "overhead": "Pool overhead",
              "semaphore": "Semaphore", "dask": "Dask",
              "freethreading": "Free-threaded CPython"}
    for part, text in sections:
        md += ["## %s" % titles[part], ""]
        if text is None:
            md += ["Not built.", ""]
            continue
        # Its headings go one level down, under this section's.
        md += ["#" + line if line.startswith("#") else line
               for line in text.strip().splitlines()] + [""]
        chart = report.get(part, {}).get("chart")
        if chart:
            md += ["![%s](%s)" % (chart, chart), ""]
    if report["failures"]:
        md += ["## FAILURES", ""] + ["- " + f for f in report["failures"]]
    text = "\n".join(md).rstrip() + "\n"
    with open(os.path.join(outdir, "RESULTS.md"), "w") as f:
        f.write(text)
    common.write_json(os.path.join(outdir, "results.json"), report)
    return text


class Settings:
    pass


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="short runs, fewer configurations (a few minutes)")
    ap.add_argument("--only", default="echo,engine,overhead,semaphore,dask,"
                    "freethreading",
                    help="comma-separated parts to run")
    ap.add_argument("--rounds", type=int, help="rounds (default 3 quick, "
                    "5 full)")
    ap.add_argument("--duration", type=float,
                    help="seconds per echo run (default 0.5 quick, 1.5 full)")
    ap.add_argument("--num", type=int,
                    help="messages per connection per echo run instead "
                         "of --duration")
    ap.add_argument("--servers",
                    help="echo: comma-separated subset of the server modes "
                         + ", ".join(MODULE_NAMES))
    ap.add_argument("--ft", metavar="PATH", default=FT_DEFAULT,
                    help="the free-threaded interpreter of the freethreading"
                         " part (default: %s, where sh"
                         " tools/build-python-ft.sh installs it)"
                         % os.path.relpath(FT_DEFAULT, ROOT))
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin server and load generator to CPUs")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args(argv)

    s = Settings()
    # The command line as the report quotes it, paths in the tree relative.
    s.cmdline = "".join(
        " " + (os.path.relpath(a, ROOT) if a.startswith(ROOT + os.sep) else a)
        for a in (sys.argv[1:] if argv is None else argv))
    s.quick = args.quick
    s.rounds = args.rounds or (3 if args.quick else 5)
    s.num = args.num or 0
    s.duration = 0 if s.num else (args.duration or
                                  (0.5 if args.quick else 1.5))
    s.case_timeout = 120
    s.warmup = Settings()
    s.warmup.duration, s.warmup.num = 0.2, 0
    s.warmup.client_cpu = None
    s.part_timeout = 1800
    s.python_ft = os.path.abspath(args.ft)
    s.servers = [m.strip() for m in (args.servers or "").split(",")
                 if m.strip()]
    bad = set(s.servers) - set(MODULE_NAMES)
    if bad:
        ap.error("unknown server mode(s): " + ", ".join(sorted(bad)))
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    bad = set(parts) - {"echo", "engine", "overhead", "semaphore", "dask",
                        "freethreading"}
    if bad:
        ap.error("unknown part(s): " + ", ".join(sorted(bad)))

    cpus = sorted(os.sched_getaffinity(0))
    if args.no_pin or len(cpus) < 2 or not shutil.which("taskset"):
        s.server_cpu = s.client_cpu = None
        s.pin_note = ("server and load generator not pinned (%s)"
                      % ("--no-pin" if args.no_pin else
                         "fewer than 2 CPUs" if len(cpus) < 2
                         else "taskset missing"))
    else:
        s.server_cpu, s.client_cpu = cpus[0], cpus[1]
        s.warmup.client_cpu = s.client_cpu
        s.pin_note = ("server pinned to CPU %d, load generator (C or all "
                      "Python client processes) pinned to CPU %d with taskset"
                      % (s.server_cpu, s.client_cpu))

    outdir = os.path.abspath(args.out)
    os.makedirs(outdir, exist_ok=True)
    mode = "quick" if s.quick else "full"
    report = {"machine": common.machine_info(mode), "failures": [],
              "not_built": [],
              "settings": {"mode": mode, "rounds": s.rounds,
                           "parts": parts}}
    m = report["machine"]
    progress("benchmarks (%s): %s, %s CPUs, %s, %s" % (
        mode, m["cpu_model"], m["cpu_count"], m["kernel"], m["python"]))

    if "echo" in parts:
        run_echo(s, report)
        report["echo"]["charts"] = echo_charts(report["echo"], outdir)
    sections = []
    for part in ("engine", "overhead", "semaphore", "dask"):
        if part not in parts:
            continue
        cmd = find_engine() if part == "engine" else find_script(part)
        sections.append((part, run_part(part, cmd, s, report, outdir)))
    if "freethreading" in parts:
        sections.append(("freethreading",
                         run_freethreading(s, report, outdir)))

    text = write_report(report, s, outdir, sections)
    print()
    print(text)
    progress("wrote %s" % ", ".join(
        sorted(os.path.relpath(os.path.join(outdir, f), ROOT)
               for f in os.listdir(outdir)
               if f.endswith((".md", ".json", ".png")))))
    if report["failures"]:
        progress("FAILED: %d failure(s):" % len(report["failures"]))
        for f in report["failures"]:
            print("  - " + f, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
