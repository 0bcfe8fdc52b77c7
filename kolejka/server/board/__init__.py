"""The web board: server-rendered pages of tasks, batches and nodes at ``/board/``, kept live by
htmx polling (docs/board.md)."""
