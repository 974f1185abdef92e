"""fastthreadpool - a fast thread pool, implemented in C.

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
