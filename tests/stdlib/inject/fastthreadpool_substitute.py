"""Puts fastthreadpool.ThreadPoolExecutor in the place of the standard
library's concurrent.futures.ThreadPoolExecutor, for the CPython test suites
that tests/stdlib/run.py runs against it.

Imported at interpreter start-up by a .pth file in the runner's private
venv, so that the child processes the tests start get it too, even in
isolated mode (-I ignores PYTHONPATH, not site-packages).  It does nothing
unless FTP_STDLIB_SUBSTITUTE=1: the runner builds the extension with the
same venv, before the extension for it may exist.
"""
import os

if os.environ.get("FTP_STDLIB_SUBSTITUTE") == "1":
    import concurrent.futures
    import concurrent.futures.thread

    import fastthreadpool

    # Both places code takes the class from: the package (asyncio, most
    # tests) and the module that defines it.  Ours subclasses the original,
    # which was captured when fastthreadpool was imported above.
    concurrent.futures.ThreadPoolExecutor = fastthreadpool.ThreadPoolExecutor
    concurrent.futures.thread.ThreadPoolExecutor = \
        fastthreadpool.ThreadPoolExecutor
