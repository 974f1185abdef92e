"""The type stubs (fastthreadpool/__init__.pyi, fastthreadpool.pyi) describe
the code exactly: every public name, method, property and parameter, and
nothing else."""
import ast
import inspect
import os
import subprocess
import sys

import pytest

import fastthreadpool
import fastthreadpool.fastthreadpool

from conftest import ROOT

STUB = os.path.join(os.path.dirname(fastthreadpool.__file__), "__init__.pyi")
SUBMODULE_STUB = os.path.join(os.path.dirname(fastthreadpool.__file__),
                              "fastthreadpool.pyi")


def stub_tree():
    with open(STUB) as f:
        return ast.parse(f.read())


def stub_classes():
    return {node.name: node for node in stub_tree().body
            if isinstance(node, ast.ClassDef)}


def stub_members(cls):
    return {node.name: node for node in cls.body
            if isinstance(node, ast.FunctionDef)}


def public(names):
    return {n for n in names
            if not n.startswith("_") or n in ("__enter__", "__exit__")}


def test_stub_is_typed_package():
    assert os.path.exists(os.path.join(os.path.dirname(STUB), "py.typed"))


def test_stub_all_matches_runtime():
    tree = stub_tree()
    for node in tree.body:
        if (isinstance(node, ast.Assign)
                and node.targets[0].id == "__all__"):
            assert ast.literal_eval(node.value) == fastthreadpool.__all__
            break
    else:
        pytest.fail("__all__ missing from the stub")


def test_every_runtime_name_is_in_the_stub():
    tree = stub_tree()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
    runtime = {n for n in dir(fastthreadpool) if not n.startswith("_")
               and not inspect.ismodule(getattr(fastthreadpool, n))}
    assert runtime - names == set()
    assert {n for n in names if not n.startswith("_")} - runtime == set()


@pytest.mark.parametrize("name", ["Pool", "Semaphore", "TimerObj",
                                  "ResultQueue"])
def test_class_members_match(name):
    cls = getattr(fastthreadpool, name)
    stub = stub_members(stub_classes()[name])
    runtime = public(dir(cls)) - public(dir(object))
    if name == "ResultQueue":
        # Protocol dunders are declared in the stub; dir() shows slots.
        runtime |= {"__len__", "__iter__", "__contains__", "__getitem__",
                    "__bool__"}
    declared = public(stub) | ({"__len__", "__iter__", "__contains__",
                                "__getitem__"} & set(stub))
    if name == "ResultQueue":
        declared.add("__bool__")    # from __len__
    assert runtime == declared - {"__new__"}


def test_pool_parameters_match_runtime_docs():
    members = stub_members(stub_classes()["Pool"])
    params = [a.arg for a in members["__new__"].args.args[1:]]
    assert params == ["max_children", "child_name_prefix", "init_callback",
                      "init_args", "finish_callback", "done_callback",
                      "failed_callback", "log_level", "result_id",
                      "exc_stack", "exc_args", "done_max"]
    pool = fastthreadpool.Pool(1, *[None] * 6, 0, False, False, False, 0)
    try:
        for p in params:
            getattr(pool, p)
    finally:
        pool.shutdown(3)


def test_method_signatures_accept_the_stub_keywords():
    members = stub_members(stub_classes()["Pool"])
    pool = fastthreadpool.Pool(1)
    try:
        kw = {a.arg for a in members["shutdown"].args.args[1:]}
        assert kw == {"timeout", "soon"}
        assert pool.shutdown(timeout=1, soon=False) is True
        kw = [a.arg for a in members["map"].args.args[1:]]
        assert kw == ["fn", "itr", "done_callback", "direct", "unpack_args"]
        kw = [a.arg for a in members["cancel"].args.args[1:]]
        assert kw == ["job_id", "timer"]
        assert pool.cancel(job_id=False, timer=None) is True
    finally:
        pool.shutdown(3)


def test_submodule_stub_names_match_runtime():
    with open(SUBMODULE_STUB) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module is None:
            names |= {a.asname for a in node.names if a.asname}
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif (isinstance(node, ast.Assign)
                and node.targets[0].id == "__all__"):
            assert (ast.literal_eval(node.value)
                    == fastthreadpool.fastthreadpool.__all__)
    mod = fastthreadpool.fastthreadpool
    runtime = {n for n in dir(mod) if not n.startswith("_")}
    assert names == runtime


@pytest.mark.deadline(120)
def test_stubtest_finds_no_difference(tmp_path):
    # mypy's stubtest imports the package and compares every name,
    # signature and type it finds with the stubs, submodules included.
    env = dict(os.environ, PYTHONPATH=ROOT,
               MYPY_CACHE_DIR=str(tmp_path / "mypy-cache"))
    proc = subprocess.run([sys.executable, "-m", "mypy.stubtest",
                           "fastthreadpool"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=110)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checked 3 modules" in proc.stdout or \
        "in 3 modules" in proc.stdout, proc.stdout
