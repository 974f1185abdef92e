"""Sphinx configuration of the fastthreadpool documentation (make docs)."""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The package of this tree, with the extension built in place (make ext):
# the Python reference is read from the real objects.
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(HERE, "_ext"))

import fastthreadpool  # noqa: E402

if not os.path.abspath(fastthreadpool.__file__).startswith(ROOT + os.sep):
    raise RuntimeError("fastthreadpool imported from %s, not from this tree"
                       % fastthreadpool.__file__)

with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
    release = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
version = release
project = "fastthreadpool"
copyright = "the fastthreadpool authors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "ftpool_header",        # docs/_ext: the C reference from the header
    "ftpool_pyref",         # docs/_ext: the Python reference (autodoc)
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_ext"]
# Anchors for the headings of the Markdown pages, for links like
# guide/pools.md#result-shapes.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_typehints = "signature"
toc_object_entries_show_parents = "hide"

# make docs-check builds with -n: every reference must resolve.  No
# intersphinx (CI has no network), so names of the standard library and of
# C's standard headers are taken as they are.
nitpick_ignore = [("c:identifier", t) for t in (
    "size_t", "int64_t", "uint64_t", "int32_t", "uintptr_t")]
nitpick_ignore_regex = [
    (r"py:.*", r"(typing|collections|concurrent|asyncio|threading|time)"
               r"(\..*)?"),
    (r"py:.*", r"(Any|Callable|Optional|Union|Iterable|Iterator|List|"
               r"Tuple|Generic|TypeVar|_T|_DoneMode|_JobEntry|None|bool|"
               r"int|float|str|object|dict|tuple|list|deque|"
               r"BaseException|Exception)"),
]

html_theme = "alabaster"
html_title = "fastthreadpool %s" % release
html_theme_options = {
    "description": "A thread pool with tiny per-job overhead, in C",
    "fixed_sidebar": True,
    "page_width": "1180px",     # room for the wide tables and code
    "sidebar_width": "240px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html",
                        "searchbox.html"]}
