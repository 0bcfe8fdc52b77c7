"""The exit statuses of ``kolejka-client``, in one place (also shown by ``--help``)."""

from __future__ import annotations

SUCCESS = 0
TASK_FAILURE = 1
USAGE = 2
PLATFORM = 3
CANCELLED = 4
INTERRUPTED = 130

EXIT_CODES = """\
exit status:
  0    success; for execute and result wait: the task ran and its verdict is OK
  1    the task ran but its verdict is not OK (RUNTIME_ERROR, TIME_LIMIT, MEMORY_LIMIT, ...)
  2    a mistake in the request: bad arguments, an invalid task (the message names the
       field), a missing folder, an unknown key, a wrong password
  3    the platform failed: the server cannot be reached or failed, the task failed
       (state 'failed'), or its verdict is SYSTEM_ERROR
  4    the task was cancelled
  130  interrupted (Ctrl-C); a task already submitted keeps running
"""
