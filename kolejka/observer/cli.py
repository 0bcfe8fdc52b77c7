"""``kolejka-observer``: the daemon that accounts tasks' cgroups and enforces their time limits.

It serves HTTP + JSON on a unix socket (protocol: docs/observer.md) until SIGTERM or SIGINT, then
kills the processes of the sessions still open and removes their groups. Run it as root. Every
option can also be given as an environment variable (in brackets in ``--help``).
"""

from __future__ import annotations

import argparse
import grp
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from kolejka.common import KolejkaError

DEFAULT_SOCKET = "/run/kolejka/observer.sock"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kolejka-observer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--socket",
        type=Path,
        default=Path(os.environ.get("KOLEJKA_OBSERVER_SOCKET", DEFAULT_SOCKET)),
        help=f"the main socket (default {DEFAULT_SOCKET}) [KOLEJKA_OBSERVER_SOCKET]",
    )
    parser.add_argument(
        "--group",
        default=os.environ.get("KOLEJKA_OBSERVER_GROUP"),
        help="a group whose members may use the main socket (default: root only) "
        "[KOLEJKA_OBSERVER_GROUP]",
    )
    parser.add_argument(
        "--cgroup-base",
        default=os.environ.get("KOLEJKA_OBSERVER_CGROUP_BASE", "kolejka"),
        help="the cgroup under which sessions' groups are made [KOLEJKA_OBSERVER_CGROUP_BASE]",
    )
    parser.add_argument(
        "--sessions-dir",
        type=Path,
        default=os.environ.get("KOLEJKA_OBSERVER_SESSIONS_DIR"),
        help="where sessions' own sockets are made (default: 'sessions' next to the socket) "
        "[KOLEJKA_OBSERVER_SESSIONS_DIR]",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="kolejka-observer: %(message)s",
    )
    from .server import Observer

    try:
        group = grp.getgrnam(args.group).gr_gid if args.group else None
        observer = Observer(
            args.socket,
            cgroup_base=args.cgroup_base,
            sessions_dir=args.sessions_dir,
            group=group,
        )
        observer.start()
    except (KolejkaError, OSError, KeyError) as error:
        print(f"kolejka-observer: {error}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        observer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.info("serving %s (cgroup v%d)", args.socket, observer.hierarchy.version)
    observer.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
