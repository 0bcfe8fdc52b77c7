#!/usr/bin/env python3
"""The server's management commands, as `kolejka-server` runs them (see docs/operations.md)."""

from kolejka.server.cli import main

if __name__ == "__main__":
    main()
