from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from ..client.live import live_server
from .grid import Grid, observer


@pytest.fixture
def make_grid(tmp_path) -> Iterator:
    """Start a grid (server settings as keyword arguments, e.g. KOLEJKA_LEASE_TTL="4s")."""
    with ExitStack() as stack:

        def make(**settings: str) -> Grid:
            root = tmp_path / f"grid{len(grids)}"
            root.mkdir()
            server = stack.enter_context(live_server(root / "server", **settings))
            daemon = stack.enter_context(observer(root))
            grid = Grid(server, daemon, root)
            stack.callback(grid.close)
            grids.append(grid)
            return grid

        grids: list[Grid] = []
        yield make
