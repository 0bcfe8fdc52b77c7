"""kolejka worker: run one task folder to one result folder in a hardened, limited container.

The foreman calls `execute` in-process (many tasks at once, in threads); ``kolejka-worker
execute`` is the same call from the command line.
"""

from .config import Placement, PullPolicy, WorkerConfig
from .deadline import Deadline
from .run import execute
from .sweep import sweep

__all__ = ["Deadline", "Placement", "PullPolicy", "WorkerConfig", "execute", "sweep"]
