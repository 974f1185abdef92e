"""Shared by the benchmark scripts: machine description, statistics,
JSON output, Markdown tables, bar charts and progress lines."""
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_t0 = time.monotonic()


def progress(msg):
    """One progress line with the time elapsed since start-up."""
    t = time.monotonic() - _t0
    print("[%4d:%02d] %s" % (t // 60, t % 60, msg), flush=True)


def _first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name):
    """Version of an installed distribution, or of the in-tree package."""
    if name == "fastthreadpool":
        # The in-tree build is what the benchmarks import.
        code = ("import sys; sys.path.insert(0, %r);"
                "import fastthreadpool as m; m.Pool;"
                "print(getattr(m, '__version__', 'in-tree'))" % ROOT)
        line = _first_line([sys.executable, "-c", code])
        if line and not line.startswith("Traceback"):
            return line
        return None
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:
        return None


def machine_info(mode):
    """What the figures were measured on."""
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%d %H:%M:%S UTC"),
        "mode": mode,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "kernel": platform.system() + " " + platform.release(),
        "machine": platform.machine(),
        "python": platform.python_implementation() + " "
                  + platform.python_version(),
        "packages": {
            "fastthreadpool": package_version("fastthreadpool"),
            "uvloop": package_version("uvloop"),
            "matplotlib": package_version("matplotlib"),
            "distributed": package_version("distributed"),
        },
        "gcc": _first_line(["gcc", "--version"]),
        "loadavg_at_start": (list(os.getloadavg())
                             if hasattr(os, "getloadavg") else None),
    }


def summary(values):
    """Median, min and max of a list of round results."""
    vals = [float(v) for v in values]
    return {"median": statistics.median(vals), "min": min(vals),
            "max": max(vals), "rounds": vals}


def fmt_num(x, digits=0):
    if x is None:
        return "-"
    if digits == 0:
        return "{:,.0f}".format(x)
    return "{:,.{}f}".format(x, digits)


def fmt_range(s, digits=0):
    """'median (min–max)' for a summary()."""
    return "%s (%s–%s)" % (fmt_num(s["median"], digits),
                           fmt_num(s["min"], digits),
                           fmt_num(s["max"], digits))


def fmt_bytes(n):
    if n is None:
        return ""
    if n >= 1024 and n % 1024 == 0:
        return "%d KiB" % (n // 1024)
    return "%d B" % n


def md_table(headers, rows, align=None):
    """A Markdown table; align is a string of 'l'/'r' per column."""
    align = align or "l" * len(headers)
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells])
              for i, h in enumerate(headers)]

    def line(vals):
        out = []
        for v, w, a in zip(vals, widths, align):
            out.append(v.rjust(w) if a == "r" else v.ljust(w))
        return "| " + " | ".join(out) + " |"

    sep = ["-" * (w - 1) + (":" if a == "r" else "-")
           for w, a in zip(widths, align)]
    return "\n".join([line(headers), "| " + " | ".join(sep) + " |"]
                     + [line(r) for r in cells])


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def bar_chart(path, title, panels, ylabel, ncols=2):
    """Horizontal bar charts, one panel per entry of `panels`.

    panels: list of (panel_title, [(label, median, min, max), ...]), or
    of (panel_title, bars, "log") for a panel whose rates span decades.
    Error bars show min–max over the rounds.  Returns False when matplotlib
    is missing (the tables are still written).
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not panels:
        return False
    ncols = min(ncols, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    nbars = max(len(p[1]) for p in panels)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(6.5 * ncols, 0.8 + 0.32 * nbars * nrows
                                      + 0.9 * nrows))
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (ptitle, bars, *scale) in zip(axes.flat, panels):
        labels = [b[0] for b in bars]
        med = [b[1] for b in bars]
        lo = [max(0.0, b[1] - b[2]) for b in bars]
        hi = [max(0.0, b[3] - b[1]) for b in bars]
        ypos = list(range(len(bars)))[::-1]
        colors = ["#c44e52" if "not an echo" in lbl.lower()
                  else "#4c72b0" if ("threads" in lbl or "ours" in lbl
                                     or lbl.startswith("ftpool"))
                  else "#55a868" if lbl.startswith("C ")
                  else "#dd8452" if lbl.startswith("uvloop")
                  else "#8c8c8c" for lbl in labels]
        ax.barh(ypos, med, xerr=[lo, hi], color=colors, capsize=2)
        if scale:
            ax.set_xscale(scale[0])
        ax.set_yticks(ypos)
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_title(ptitle, fontsize=10)
        ax.set_xlabel(ylabel, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
