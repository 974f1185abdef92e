"""Sphinx extension: the Python reference, autodoc on the real objects.

``ftpool-pyref NAME`` documents fastthreadpool.NAME with autodoc: a class
with its members in the order of the type stubs (fastthreadpool/
__init__.pyi), then any public member the stubs do not list.  A name the
stubs list is shown with the stub's signature, which has the types and
the return value; the object's own (its __text_signature__, which the
tests keep in step with the stub) serves the names the stubs leave to a
base class.  Docstrings are plain text: they are shown as written, with
`x` as code.  A public name of the stubs that no ``ftpool-pyref``
documents is a warning (an error under ``-W``).
"""
import ast
import os
import re

from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from ftpool_header import parse_rst

logger = logging.getLogger(__name__)
MODULE = "fastthreadpool"


class Stubs:
    """Public names of the stubs, their members and signatures, in order."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        self.names = []         # public module-level names, in order
        self.members = {}       # class -> [member names], in order
        self.sigs = {}          # dotted name -> "(args) -> ret"
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                self.names.append(node.name)
                self.members[node.name] = []
                for m in node.body:
                    if not isinstance(m, ast.FunctionDef):
                        continue
                    if m.name == "__new__":
                        self.sigs[node.name] = self.sig(m, ret=False)
                    else:
                        self.members[node.name].append(m.name)
                        self.sigs[node.name + "." + m.name] = self.sig(m)
            elif isinstance(node, ast.FunctionDef):
                self.names.append(node.name)
                self.sigs[node.name] = self.sig(node)
            elif isinstance(node, ast.AnnAssign):
                self.names.append(node.target.id)
        self.names = [n for n in self.names if not n.startswith("_")]

    @staticmethod
    def sig(fn, ret=True):
        args = fn.args
        params = args.posonlyargs + args.args
        if params and params[0].arg in ("self", "cls"):
            if args.posonlyargs:
                args.posonlyargs = args.posonlyargs[1:]
            else:
                args.args = args.args[1:]
        text = "(%s)" % ast.unparse(args)
        if ret and fn.returns is not None:
            text += " -> " + ast.unparse(fn.returns).strip("'\"")
        return text


def is_data(obj):
    return not callable(obj) and not isinstance(obj, type)


class FtpoolPyref(SphinxDirective):
    required_arguments = 1
    has_content = False

    def run(self):
        import fastthreadpool
        stubs = self.env.app.ftpool_stubs
        name = self.arguments[0]
        obj = getattr(fastthreadpool, name)
        self.env.note_dependency(self.env.app.ftpool_stub_path)
        documented = self.env.__dict__.setdefault("ftpool_pyref", {})
        documented[name] = self.env.docname
        full = "%s.%s" % (MODULE, name)
        if is_data(obj):
            return parse_rst(self, ".. autodata:: %s\n" % full)
        if not isinstance(obj, type):
            return parse_rst(self, ".. autofunction:: %s%s\n"
                             % (full, self.sig(name)))
        kind = ("autoexception" if issubclass(obj, BaseException)
                else "autoclass")
        lines = [".. %s:: %s%s" % (kind, full, self.sig(name))]
        bases = [b for b in obj.__bases__ if b is not object]
        if bases:
            lines.append("   :show-inheritance:")
        lines.append("")
        members = list(stubs.members.get(name, []))
        own = sorted(k for k in vars(obj)
                     if not k.startswith("_") and k not in members)
        for m in members + own:
            attr = vars(obj).get(m)
            if attr is None:
                logger.warning("%s.%s is in the stubs but not on the class",
                               name, m, location=self.get_location())
                continue
            if callable(attr):
                lines.append("   .. automethod:: %s.%s%s" % (
                    full, m, self.sig(name + "." + m)))
            else:
                lines.append("   .. autoattribute:: %s.%s" % (full, m))
            lines.append("")
        return parse_rst(self, "\n".join(lines))

    def sig(self, dotted):
        """The stub's signature, or "" for the object's own."""
        return self.env.app.ftpool_stubs.sigs.get(dotted, "")


def plain_docstring(app, what, name, obj, options, lines):
    """The C docstrings are plain text: escape what reST would read as
    markup and show `x` as code."""
    if not name.startswith(MODULE + "."):
        return
    if what == "data" and obj.__doc__ == type(obj).__doc__:
        lines[:] = []   # a constant has no docstring of its own
        return
    for i, line in enumerate(lines):
        parts = re.split(r"(`[^`]+`)", line)
        for k, part in enumerate(parts):
            if k % 2:
                parts[k] = "`" + part + "`"
            else:
                part = part.replace("\\", "\\\\")
                for ch in "*|":
                    part = part.replace(ch, "\\" + ch)
                parts[k] = re.sub(r"(\w)_(?=\W|$)", r"\1\\_", part)
        lines[i] = "".join(parts)


def check_complete(app, env):
    documented = getattr(env, "ftpool_pyref", {})
    for name in app.ftpool_stubs.names:
        if name not in documented:
            logger.warning("fastthreadpool.%s is not in the Python "
                           "reference (no ftpool-pyref directive)", name)


def merge(app, env, docnames, other):
    env.__dict__.setdefault("ftpool_pyref", {}).update(
        getattr(other, "ftpool_pyref", {}))


def purge(app, env, docname):
    documented = getattr(env, "ftpool_pyref", {})
    for name in [n for n, d in documented.items() if d == docname]:
        del documented[name]


def setup(app):
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    app.ftpool_stub_path = os.path.join(root, MODULE, "__init__.pyi")
    app.ftpool_stubs = Stubs(app.ftpool_stub_path)
    app.add_directive("ftpool-pyref", FtpoolPyref)
    app.connect("autodoc-process-docstring", plain_docstring)
    app.connect("env-check-consistency", check_complete)
    app.connect("env-merge-info", merge)
    app.connect("env-purge-doc", purge)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
