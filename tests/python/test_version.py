"""fastthreadpool.__version__: the installed metadata's version when that
metadata is this very package's, else the version compiled into the
extension from pyproject.toml; never another distribution's (the original
fastthreadpool has the same name)."""
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, SOURCE

PRINT_VERSION = ("import fastthreadpool, importlib.metadata as m;"
                 "print(fastthreadpool.__version__);"
                 "print(m.version('fastthreadpool'));"
                 "print(fastthreadpool.__file__)")


def project_version():
    section = None
    with open(os.path.join(SOURCE, "pyproject.toml")) as f:
        for line in f:
            header = re.match(r"\s*\[([^\]]+)\]", line)
            if header:
                section = header.group(1)
            m = re.match(r'\s*version\s*=\s*"([^"]+)"', line)
            if m and section == "project":
                return m.group(1)
    raise AssertionError("no [project] version")


def run(pythonpath, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath))
    proc = subprocess.run([sys.executable, "-c", PRINT_VERSION],
                          capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("\n")[:3]


def test_in_place_build_reports_the_project_version():
    import fastthreadpool
    from fastthreadpool import _fastthreadpool
    assert fastthreadpool.__version__ == project_version()
    assert _fastthreadpool._version == project_version()
    assert isinstance(fastthreadpool.__version__, str)


def test_the_original_installed_beside_is_never_reported(tmp_path):
    # The original's metadata, as pip leaves it in site-packages, comes
    # first on the path; the package itself is imported from the tree.
    info = tmp_path / "fastthreadpool-1.7.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fastthreadpool\nVersion: 1.7.0\n")
    (info / "RECORD").write_text(
        "fastthreadpool/__init__.py,,\n"
        "fastthreadpool/fastthreadpool.py,,\n"
        "fastthreadpool-1.7.0.dist-info/METADATA,,\n"
        "fastthreadpool-1.7.0.dist-info/RECORD,,\n")
    ours, theirs, where = run([str(tmp_path), ROOT], cwd=str(tmp_path))
    assert theirs == "1.7.0"        # importlib.metadata sees the original
    assert where == os.path.join(ROOT, "fastthreadpool", "__init__.py")
    assert ours == project_version()


@pytest.mark.deadline(180)
def test_an_installed_copy_reports_its_metadata(tmp_path):
    # pip installs a copy of the sources for real (the copy keeps pip's
    # build files out of the tree); the metadata is then edited so that it
    # differs from the compiled version and shows which one won.
    src, target = tmp_path / "src", tmp_path / "site"
    tree = SOURCE
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy(os.path.join(tree, name), str(src / name))
    for name in ("include", "src"):
        shutil.copytree(os.path.join(tree, name), str(src / name))
    shutil.copytree(os.path.join(tree, "fastthreadpool"),
                    str(src / "fastthreadpool"),
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    # pip builds it as pyproject.toml says (in an isolated environment
    # with the setuptools it asks for: an older one may not read it).
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
         "--target", str(target), str(src)], capture_output=True, text=True,
        timeout=170, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info, = target.glob("fastthreadpool-*.dist-info")
    meta = info / "METADATA"
    text = meta.read_text()
    assert "\nVersion: %s\n" % project_version() in text
    meta.write_text(text.replace("\nVersion: %s\n" % project_version(),
                                 "\nVersion: %s.post7\n"
                                 % project_version()))
    ours, theirs, where = run([str(target)], cwd=str(tmp_path))
    assert where == str(target / "fastthreadpool" / "__init__.py")
    assert ours == theirs == project_version() + ".post7"


def test_version_is_read_once_and_lazily():
    # Reading the metadata is not paid at import; the answer is kept.
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import fastthreadpool
        print("__version__" in vars(fastthreadpool))
        v = fastthreadpool.__version__
        print(vars(fastthreadpool)["__version__"] is v)
    """)], capture_output=True, text=True, timeout=30, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]
