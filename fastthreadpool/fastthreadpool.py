"""fastthreadpool.fastthreadpool - the original's module path.

fastthreadpool 1.7/1.8 defined everything in this submodule and re-exported
it from the package; code written for it imports from here
(``import fastthreadpool.fastthreadpool``, ``from
fastthreadpool.fastthreadpool import Pool``).  The same objects as the
package's.
"""
from collections import deque

from . import (DEFAULT_LOGGING_FORMAT, LOGGER_NAME, Pool, PoolCallback,
               PoolStopped, Semaphore, Shutdown, TimerObj)

__all__ = ['Pool', 'TimerObj', 'Semaphore', 'PoolCallback', 'PoolStopped',
           'Shutdown', 'LOGGER_NAME', 'DEFAULT_LOGGING_FORMAT', 'DBG']

# 1.8's debug trace, to which every job appended (without bound).  Nothing
# appends to it here: it stays so that code that clears or reads it runs.
DBG = deque()

del deque
