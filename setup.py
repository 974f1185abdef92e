"""Builds the C extension: the CPython binding on top of the C engine."""
import glob
import os
import sys

from setuptools import Extension, setup

platform_src = ("src/engine/platform/win32.c" if sys.platform == "win32"
                else "src/engine/platform/posix.c")
sources = (sorted(glob.glob("src/python/*.c"))
           + sorted(glob.glob("src/engine/*.c")) + [platform_src])

extra_compile_args = []
extra_link_args = []
define_macros = []
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
        include_dirs=["include", "src/engine", "src/python"],
        define_macros=define_macros,
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
    )],
)
