"""help() explains every public name: each class, function, method and
property of the type stubs (fastthreadpool/__init__.pyi), and the
executor's own methods and its Future's, has a docstring that says more
than a signature and names each parameter; each callable has a signature
that inspect.signature() reads, and it agrees with the stub's."""
import ast
import inspect
import os
import re

import pytest

import fastthreadpool
from fastthreadpool import _fastthreadpool

STUB = os.path.join(os.path.dirname(fastthreadpool.__file__), "__init__.pyi")
# Public names the stubs leave to the base classes' stubs: the executor's
# overrides and the type of the futures it returns.
EXTRA = {
    "ThreadPoolExecutor": ["submit", "shutdown"],
    "Future": ["cancel", "cancelled", "running", "done", "result",
               "exception", "add_done_callback",
               "set_running_or_notify_cancel", "set_result",
               "set_exception"],
}
MIN_WORDS = 8


def stub_tree():
    with open(STUB, encoding="utf-8") as f:
        return ast.parse(f.read())


def public(name):
    return not name.startswith("_") or name in ("__enter__", "__exit__")


def runtime(name):
    return getattr(fastthreadpool, name, None) or getattr(_fastthreadpool,
                                                          name)


def documented():
    """(dotted name, object, stub node or None) for every public name."""
    out = []
    for node in stub_tree().body:
        if isinstance(node, ast.FunctionDef) and public(node.name):
            out.append((node.name, runtime(node.name), node))
        elif isinstance(node, ast.ClassDef) and public(node.name):
            cls = runtime(node.name)
            new = [m for m in node.body if isinstance(m, ast.FunctionDef)
                   and m.name == "__new__"]
            out.append((node.name, cls, new[0] if new else None))
            for m in node.body:
                if isinstance(m, ast.FunctionDef) and public(m.name):
                    out.append(("%s.%s" % (node.name, m.name),
                                vars(cls)[m.name], m))
    for cls_name, members in EXTRA.items():
        cls = runtime(cls_name)
        if cls_name not in [name for name, _, _ in out]:
            out.append((cls_name, cls, None))
        for m in members:
            out.append(("%s.%s" % (cls_name, m), vars(cls)[m], None))
    return out


DOCUMENTED = documented()
IDS = [name for name, _, _ in DOCUMENTED]


# The callables (exceptions aside: they take any arguments).
SIGNED = [(name, obj, node) for name, obj, node in DOCUMENTED
          if callable(obj) and not isinstance(obj, property)
          and not (isinstance(obj, type) and issubclass(obj, BaseException))]
SIGNED_IDS = [name for name, _, _ in SIGNED]


def prose(name, obj):
    """The docstring without a signature line at its top."""
    doc = inspect.getdoc(obj) or ""
    short = name.rsplit(".", 1)[-1]
    lines = doc.splitlines()
    if lines and re.match(r"\s*%s\(" % re.escape(short), lines[0]):
        lines = lines[1:]
    return "\n".join(lines).strip()


def parameters(obj):
    """The parameters of a callable, without self (a class: those of its
    constructor)."""
    params = list(inspect.signature(obj).parameters.values())
    if not isinstance(obj, type) and params and params[0].name == "self":
        params = params[1:]
    return params


def test_every_public_name_is_covered():
    names = set(IDS)
    for cls in ("Pool", "Semaphore", "TimerObj", "ResultQueue",
                "ThreadPoolExecutor", "Future"):
        assert cls in names
    assert "Shutdown" in names and "PoolStopped" in names
    assert "Pool.max_children" in names and "Pool.submit" in names
    assert "ResultQueue.popleft" in names
    assert "Pool.__exit__" in names and "Semaphore.__enter__" in names


@pytest.mark.parametrize("name,obj,node", DOCUMENTED, ids=IDS)
def test_docstring_says_more_than_a_signature(name, obj, node):
    text = prose(name, obj)
    words = re.findall(r"[A-Za-z_]\w*", text)
    assert len(words) >= MIN_WORDS, "%s: %r" % (name, text)
    assert re.search(r"\S[.!?](\s|$)", text), "%s: no sentence" % name


@pytest.mark.parametrize("name,obj,node", SIGNED, ids=SIGNED_IDS)
def test_docstring_names_each_parameter(name, obj, node):
    text = prose(name, obj)
    for p in parameters(obj):
        assert re.search(r"(?<!\w)%s(?!\w)" % re.escape(p.name), text), \
            "%s: parameter %s not described" % (name, p.name)


def stub_parameters(node):
    """The stub's parameters as (kind, name, default), without self/cls;
    default is inspect.Parameter.empty, Ellipsis or a literal value."""
    a = node.args
    out = []
    positional = [(inspect.Parameter.POSITIONAL_ONLY, p)
                  for p in a.posonlyargs]
    positional += [(inspect.Parameter.POSITIONAL_OR_KEYWORD, p)
                   for p in a.args]
    defaults = ([inspect.Parameter.empty]
                * (len(positional) - len(a.defaults)) + list(a.defaults))
    for (kind, p), d in zip(positional, defaults):
        out.append((kind, p.arg, d))
    if a.vararg is not None:
        out.append((inspect.Parameter.VAR_POSITIONAL, a.vararg.arg,
                    inspect.Parameter.empty))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((inspect.Parameter.KEYWORD_ONLY, p.arg,
                    inspect.Parameter.empty if d is None else d))
    if a.kwarg is not None:
        out.append((inspect.Parameter.VAR_KEYWORD, a.kwarg.arg,
                    inspect.Parameter.empty))
    out = [(k, n, d if d is inspect.Parameter.empty else ast.literal_eval(d))
           for k, n, d in out]
    if out and out[0][1] in ("self", "cls"):
        out = out[1:]
    return out


@pytest.mark.parametrize("name,obj,node", SIGNED, ids=SIGNED_IDS)
def test_signature_matches_the_stub(name, obj, node):
    """The stub's parameters and literal defaults are the runtime's (a
    positional-only parameter may be named differently)."""
    params = parameters(obj)
    if node is None:
        return      # no stub: that the signature is readable is the test
    expected = stub_parameters(node)
    assert len(params) == len(expected), (name, params, expected)
    for p, (kind, pname, default) in zip(params, expected):
        assert p.kind == kind, (name, p, kind)
        if kind != inspect.Parameter.POSITIONAL_ONLY:
            assert p.name == pname, (name, p, pname)
        assert ((p.default is inspect.Parameter.empty)
                == (default is inspect.Parameter.empty)), (name, p)
        if default not in (inspect.Parameter.empty, Ellipsis):
            assert p.default == default and type(p.default) is type(
                default), (name, p, default)


def test_help_shows_the_signatures():
    import pydoc
    text = pydoc.render_doc(fastthreadpool.Pool, renderer=pydoc.plaintext)
    assert "submit(self, /, fn, *args, **kwargs)" in text
    assert "shutdown(self, /, timeout=None, soon=False)" in text
    text = pydoc.render_doc(fastthreadpool.Shutdown,
                            renderer=pydoc.plaintext)
    assert "Shutdown(now=True)" in text
