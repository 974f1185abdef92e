"""A fast thread pool, implemented in C.

Pool runs jobs, calls fn(*args, **kwargs), on worker threads and keeps
their results in Pool.done and their failures in Pool.failed (both
ResultQueue objects).  TimerObj is the handle of a delayed or periodic
job, Semaphore a counting semaphore, and ThreadPoolExecutor a
concurrent.futures executor on the same engine.  PoolStopped and
PoolCallback are the exceptions of Pool, and Shutdown() stops every pool.
Everything may be used from any number of threads, also on free-threaded
CPython, where importing the module leaves the GIL off.

A drop-in replacement for fastthreadpool 1.7/1.8: the same public names,
parameters and result shapes, with the defects of the original fixed (see
docs/guide/migrating.md, "Differences from fastthreadpool 1.7/1.8").  The
extension registers Shutdown() with atexit: every live pool stops when
the interpreter exits (timers cancelled, queued jobs dropped, running jobs
finished).
"""
import os

from ._fastthreadpool import (DEFAULT_LOGGING_FORMAT, LOGGER_NAME, Pool,
                              PoolCallback, PoolStopped, ResultQueue,
                              Semaphore, Shutdown, ThreadPoolExecutor,
                              TimerObj)

__all__ = ['Pool', 'TimerObj', 'Semaphore', 'PoolCallback', 'PoolStopped',
           'Shutdown']
__status__ = "beta"


def _version():
    """The installed metadata's version if that metadata is this very
    package's (its file list holds this file), else the version compiled
    into the extension.  The original fastthreadpool has the same
    distribution name: its metadata, or any other copy's, never counts;
    neither does a build in place, which has none."""
    from . import _fastthreadpool
    try:
        from importlib.metadata import PackageNotFoundError, distribution
        dist = distribution(__name__)
    except (ImportError, PackageNotFoundError):
        return _fastthreadpool._version
    here = os.path.realpath(__file__)
    for f in dist.files or ():
        if (f.name == "__init__.py"
                and os.path.realpath(dist.locate_file(f)) == here):
            return dist.version
    return _fastthreadpool._version


def __getattr__(name):
    # __version__ is computed on first use: reading the metadata costs
    # more than the rest of the import.
    if name == "__version__":
        global __version__
        __version__ = _version()
        return __version__
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


# The original's module path: importing the package imported it too, and
# code reaches it as an attribute (fastthreadpool.fastthreadpool.Pool).
from . import fastthreadpool  # noqa: E402
