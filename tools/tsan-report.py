"""Summarise the ThreadSanitizer logs written by tools/sanitize-python.sh tsan.

Exit status 1 if any report has a frame of the fastthreadpool extension
(src/python, src/engine) in one of its accesses: the stacks of a data
race, of a use after free, of a crash, of a lock-order cycle.  The stacks
that only say where the memory was allocated, which mutex was involved or
where a thread was created do not count: a block that our code allocated
and CPython alone races on is CPython's business.  Reports of CPython
alone are listed and counted, not failed (tools/tsan-python.supp
suppresses the known ones).  Reports are grouped by their kind and the
innermost frame of ours in each access stack, and the first report of
each group is printed with its innermost frames.

    python tools/tsan-report.py LOGDIR [--brief]
"""
import collections
import glob
import os
import re
import sys

OURS = re.compile(r"\bsrc/(python|engine)/\S+\.c:\d+")
FRAME = re.compile(r"^\s+#(\d+) (\S+) (\S+)")
KIND = re.compile(r"(?:WARNING|ERROR): ThreadSanitizer: ([a-zA-Z -]+)")
# Sections whose stack does not say who did the access.
CONTEXT = re.compile(r"^\s+(Location is|Mutex |Thread T\d+|"
                     r"Thread .* created by)")
# Frames printed of each stack of the first report of a group.
MAX_FRAMES = 12


def reports(text):
    """Yield the reports of one log as lists of lines: from the line that
    names the kind (WARNING: or ERROR: ThreadSanitizer: ...) to the
    SUMMARY line, or to the end of a log cut short by a crash."""
    cur = None
    for line in text.splitlines():
        if KIND.search(line):
            if cur:
                yield cur
            cur = []
        if cur is not None:
            cur.append(line)
            if line.startswith("SUMMARY: ThreadSanitizer"):
                yield cur
                cur = None
    if cur:
        yield cur


def access_stacks(lines):
    """The stacks of a report that describe accesses, as frame lists."""
    stacks, cur, skip = [], None, False
    for line in lines:
        m = FRAME.match(line)
        if m:
            if cur is not None and not skip:
                cur.append((m.group(2), m.group(3)))
            continue
        if cur:
            stacks.append(cur)
        cur = []
        skip = bool(CONTEXT.match(line))
    if cur:
        stacks.append(cur)
    return stacks


def signature(lines):
    """(kind, the innermost frame of ours of each access stack)."""
    kind = "unknown"
    for line in lines:
        m = KIND.search(line)
        if m:
            kind = m.group(1).strip()
            break
    ours = []
    for stack in access_stacks(lines):
        for func, where in stack:
            if OURS.search(where):
                # Without the column, and the path from src/ on.
                where = where[where.index("src/"):]
                ours.append("%s %s" % (func, ":".join(where.split(":")[:2])))
                break
    return kind, tuple(ours)


def main(logdir, brief=False):
    groups = collections.OrderedDict()
    theirs = collections.Counter()
    total = 0
    for path in sorted(glob.glob(os.path.join(logdir, "tsan.*"))):
        with open(path, errors="replace") as f:
            text = f.read()
        for lines in reports(text):
            total += 1
            kind, ours = signature(lines)
            if ours:
                groups.setdefault((kind, ours), []).append(lines)
            else:
                top = "?"
                for stack in access_stacks(lines):
                    if stack:
                        top = stack[0][0]
                        break
                theirs["%s in %s" % (kind, top)] += 1
    n_ours = sum(len(v) for v in groups.values())
    for (kind, ours), items in groups.items():
        print("---- %d x %s:" % (len(items), kind))
        for frame in ours:
            print("       " + frame)
        if not brief:
            for line in items[0]:
                m = FRAME.match(line)
                if not m or int(m.group(1)) < MAX_FRAMES:
                    print(line)
    if theirs:
        print("---- reports without a frame of ours (not failed):")
        for what, n in theirs.most_common():
            print("  %4d x %s" % (n, what))
    print("tsan-report: %d reports, %d through fastthreadpool (%d distinct),"
          " %d in CPython alone" % (total, n_ours, len(groups),
                                    total - n_ours))
    return 1 if groups else 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(main(args[0], brief="--brief" in sys.argv))
