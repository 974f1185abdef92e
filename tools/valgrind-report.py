"""Summarise the memcheck logs written by tools/sanitize-python.sh valgrind.

Exit status 1 if any process reported a memory error or a definite leak
whose stacks pass through the fastthreadpool extension: the stack where
it happened or, for a bad access, where the block was allocated or freed.
Errors of CPython alone (its 3.11 startup reads uninitialised digits in
int.from_bytes, and the value spreads) are counted, not failed.  Not
leaks either: tracemalloc's own bookkeeping (allocated inside whatever
it traces), and anything in a forked child (it exits with os._exit and
has lost the threads whose stacks referenced the memory).
"""
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A frame of ours: the extension's file name (frames without line info),
# a path under src/ (valgrind --fullpath-after=), or one of our source
# file names followed by a line number.
_NAMES = sorted({os.path.basename(f) for pattern in ("src/python/*.c",
                                                     "src/engine/*.c",
                                                     "src/engine/*/*.c")
                 for f in glob.glob(os.path.join(ROOT, pattern))})
OURS = re.compile(r"_fastthreadpool|src/(engine|python)/|\b(%s):\d"
                  % "|".join(re.escape(n) for n in _NAMES))
SUMMARY = re.compile(r"ERROR SUMMARY: (\d+) errors")
KINDS = ("Invalid read", "Invalid write", "Invalid free",
         "Mismatched free", "Conditional jump", "Use of uninitialised",
         "Syscall param", "Source and destination overlap",
         "Argument 'size'", "Process terminating")


def blocks(text):
    """Yield the records of a log: runs of lines between blank lines."""
    block = []
    for line in text.splitlines():
        body = re.sub(r"^==\d+== ?", "", line)
        if body.strip():
            block.append(body)
        elif block:
            yield block
            block = []
    if block:
        yield block


def main(logdir):
    logs = sorted(glob.glob(os.path.join(logdir, "vg.*.log")))
    if not logs:
        print("valgrind-report: no logs in", logdir)
        return 1
    ours = theirs = leaks_theirs = unfinished = 0
    texts = {}
    for path in logs:
        with open(path, errors="replace") as f:
            texts[path] = f.read()
    commands = {}
    for path, text in texts.items():
        m = re.search(r"==(\d+)== Command: (.*)", text)
        if m:
            commands[m.group(1)] = m.group(2)
    for path, text in texts.items():
        m = re.search(r"==(\d+)== Command: (.*)", text)
        if m is None:
            continue
        parent = re.search(r"Parent PID: (\d+)", text)
        forked = parent is not None and \
            commands.get(parent.group(1)) == m.group(2)
        if not SUMMARY.search(text):
            # Killed by a test's timeout, or exec'd: nothing to judge.
            unfinished += 1
        for block in blocks(text):
            head = block[0]
            mine = any(OURS.search(line) for line in block)
            if "definitely lost" in head and "loss record" in head:
                if mine and not forked and not any(
                        "_tracemalloc.c" in line for line in block):
                    ours += 1
                    print("%s: definite leak in our code:\n  %s\n"
                          % (path, "\n  ".join(block)))
                else:
                    leaks_theirs += 1
            elif head.startswith(KINDS):
                if mine:
                    ours += 1
                    print("%s: memory error in our code:\n  %s\n"
                          % (path, "\n  ".join(block)))
                else:
                    theirs += 1
    print("valgrind-report: %d processes (%d without summary); "
          "%d problems in our code; CPython alone: %d error contexts, "
          "%d definite leak records"
          % (len(logs), unfinished, ours, theirs, leaks_theirs))
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build/valgrind-py"))
