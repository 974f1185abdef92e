from collections import deque
from typing import Any

from . import DEFAULT_LOGGING_FORMAT as DEFAULT_LOGGING_FORMAT
from . import LOGGER_NAME as LOGGER_NAME
from . import Pool as Pool
from . import PoolCallback as PoolCallback
from . import PoolStopped as PoolStopped
from . import Semaphore as Semaphore
from . import Shutdown as Shutdown
from . import TimerObj as TimerObj

__all__ = ['Pool', 'TimerObj', 'Semaphore', 'PoolCallback', 'PoolStopped',
           'Shutdown', 'LOGGER_NAME', 'DEFAULT_LOGGING_FORMAT', 'DBG']

# Always empty: 1.8's debug trace, kept for code that clears it.
DBG: deque[Any]
