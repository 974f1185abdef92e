"""fastthreadpool - a fast thread pool, implemented in C.

A drop-in replacement for fastthreadpool 1.7/1.8: the same public names,
parameters and result shapes, with the defects of the original fixed (see
docs/guide/migrating.md, "Differences from fastthreadpool 1.7/1.8").
"""
import atexit

from ._fastthreadpool import (DEFAULT_LOGGING_FORMAT, LOGGER_NAME, Pool,
                              PoolCallback, PoolStopped, ResultQueue,
                              Semaphore, Shutdown, TimerObj)

try:
    from ._fastthreadpool import ThreadPoolExecutor
except ImportError:     # built without the concurrent.futures executor
    pass

__all__ = ['Pool', 'TimerObj', 'Semaphore', 'PoolCallback', 'PoolStopped',
           'Shutdown']
__status__ = "beta"

# Stop every live pool when the interpreter exits: timers are cancelled,
# queued jobs dropped, running jobs finished (see Shutdown).
atexit.register(Shutdown)
