"""Builds the C extension: the CPython binding on top of the C engine."""
import glob
import os
import re
import sys

from setuptools import Extension, setup

platform_src = ("src/engine/platform/win32.c" if sys.platform == "win32"
                else "src/engine/platform/posix.c")
sources = (sorted(glob.glob("src/python/*.c"))
           + sorted(glob.glob("src/engine/*.c")) + [platform_src])



def project_version():
    """[project] version of pyproject.toml (no tomllib before 3.11)."""
    here = os.path.dirname(os.path.abspath(__file__))
    section = None
    with open(os.path.join(here, "pyproject.toml")) as f:
        for line in f:
            header = re.match(r"\s*\[([^\]]+)\]", line)
            if header:
                section = header.group(1).strip()
            m = re.match(r'\s*version\s*=\s*"([^"]+)"', line)
            if m and section == "project":
                return m.group(1)
    raise RuntimeError("no [project] version in pyproject.toml")


extra_compile_args = []
extra_link_args = []
# The version is compiled in: fastthreadpool.__version__ falls back to it
# when no installed metadata belongs to this very package (a build in
# place, or the original fastthreadpool installed beside it).
define_macros = [("FTP_VERSION", '"%s"' % project_version())]
if sys.platform != "win32":
    # -fvisibility=hidden: the extension exports its module init only
    # (PyMODINIT_FUNC), not the binding's and the engine's own names.
    extra_compile_args += ["-std=c11", "-Wall", "-Wextra",
                           "-Wno-unused-parameter", "-Wno-missing-field-initializers",
                           "-Wno-cast-function-type", "-fvisibility=hidden"]
    define_macros += [("_POSIX_C_SOURCE", "200809L")]
    extra_link_args += ["-lpthread"]
# FTPOOL_SANITIZE=address,undefined builds an instrumented extension.
sanitize = os.environ.get("FTPOOL_SANITIZE")
if sanitize:
    flags = ["-fsanitize=" + sanitize, "-fno-omit-frame-pointer", "-O1", "-g"]
    extra_compile_args += flags
    extra_link_args += flags

setup(
    ext_modules=[Extension(
        "fastthreadpool._fastthreadpool",
        sources=sources,
        # A new version in pyproject.toml rebuilds the extension.
        depends=["pyproject.toml"],
        include_dirs=["include", "src/engine", "src/python"],
        define_macros=define_macros,
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
    )],
)
