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
from ._fastthreadpool import (DEFAULT_LOGGING_FORMAT, LOGGER_NAME, Pool,
                              PoolCallback, PoolStopped, ResultQueue,
                              Semaphore, Shutdown, ThreadPoolExecutor,
                              TimerObj)

__all__ = ['Pool', 'TimerObj', 'Semaphore', 'PoolCallback', 'PoolStopped',
           'Shutdown']
__status__ = "beta"

# The original's module path: importing the package imported it too, and
# code reaches it as an attribute (fastthreadpool.fastthreadpool.Pool).
from . import fastthreadpool  # noqa: E402
