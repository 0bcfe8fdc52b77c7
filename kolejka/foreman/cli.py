"""``kolejka-foreman``: the node daemon's command line."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from types import FrameType

import docker

from kolejka import __version__
from kolejka.client import ClientError, KolejkaClient, load_settings
from kolejka.common import KolejkaError
from kolejka.worker import WorkerConfig, execute, sweep
from kolejka.worker.config import DEFAULT_LIMITS, DEFAULT_MAXIMA

from .config import add_arguments, build_config, describe
from .foreman import Foreman
from .hardware import detect_gpus, detect_tags
from .health import Checks
from .lock import Locked, acquire

log = logging.getLogger("kolejka.foreman")

DESCRIPTION = """\
Run tasks from a kolejka server on this node: register the node, claim tasks that fit its free
cores, memory and GPUs, run each in a limited container (with the observer when one runs), and
report the results. SIGTERM or Ctrl-C: stop claiming and let running tasks finish within the grace
period, then hand the rest back; a second signal hands everything back at once.

The server and credentials are the client's (flags, KOLEJKA_SERVER / KOLEJKA_USERNAME /
KOLEJKA_PASSWORD / KOLEJKA_TOKEN, kolejka.conf); the user needs the foreman role. Every foreman
flag --some-name is also the environment variable KOLEJKA_FOREMAN_SOME_NAME and the key
some_name under [foreman] in /etc/kolejka/kolejka.conf or ~/.config/kolejka/kolejka.conf;
flags win, then the environment, then the files.
"""

EXIT_CODES = """\
exit status:
  0    stopped as asked (signal, --burst with nothing left, --max-tasks reached)
  2    bad configuration (the message says which setting)
  3    the server refused the node (wrong credentials or role) or could not be reached
  4    another foreman runs on this work dir, or with this node name for this server
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kolejka-foreman",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kolejka-foreman {__version__}")
    parser.add_argument("--server", metavar="URL", help="the server's URL (env KOLEJKA_SERVER)")
    parser.add_argument("--username", help="user name, role foreman (env KOLEJKA_USERNAME)")
    parser.add_argument("--password", help="password (env KOLEJKA_PASSWORD)")
    parser.add_argument("--token", help="API token (env KOLEJKA_TOKEN)")
    parser.add_argument(
        "--detect", action="store_true", help="print what this node offers, as JSON, and exit"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = load_settings(
            server=args.server, username=args.username, password=args.password, token=args.token
        )
        gpus = detect_gpus()
        config = build_config(args, settings, gpus, frozenset(detect_tags(gpus)))
        # The node's defaults are the worker's built-in ones where the operator set none; the
        # server places tasks by the same figures the worker will apply.
        config = replace(config, defaults=config.defaults.with_defaults(DEFAULT_LIMITS))
    except KolejkaError as error:
        print(f"kolejka-foreman: {error}", file=sys.stderr)
        return 2
    if args.detect:
        print(json.dumps(describe(config), indent=2))
        return 0
    try:
        locks = acquire(config.work_dir, config.name, settings.require_server(), config.lock_dir)
    except (Locked, KolejkaError, OSError) as error:
        print(f"kolejka-foreman: {error}", file=sys.stderr)
        return 4 if isinstance(error, Locked) else 2
    worker = WorkerConfig(
        defaults=config.defaults,
        maxima=config.maxima.with_defaults(DEFAULT_MAXIMA),
        max_output=config.max_output,
        root_images=config.root_images,
        observer=config.observer,
        tags=tuple(sorted(config.tags)),
        temp_dir=config.work_dir / "workspaces",
        owner=config.identity,
    )
    worker.temp_dir.mkdir(parents=True, exist_ok=True)
    for leftover in sweep(worker):
        log.info("removed what a previous run left: %s", leftover)
    try:
        account = KolejkaClient.from_settings(settings)
        account.whoami()  # checks the credentials once, and fetches a token for a password
    except ClientError as error:
        print(f"kolejka-foreman: {error}", file=sys.stderr)
        return 3

    def connect() -> KolejkaClient:
        return KolejkaClient(account.server, token=account.token)

    runner = functools.partial(execute, config=worker)
    checks = Checks(
        docker_url=worker.docker_url,
        observer=config.observer,
        gpus=config.capacity.gpus,
        work_dir=config.work_dir,
        min_free=config.min_free_disk,
    )
    foreman = Foreman(config, connect, runner, docker.from_env(), checks)
    signals = 0

    def on_signal(number: int, frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        log.info("signal %d: %s", number, "stopping" if signals == 1 else "handing tasks back")
        foreman.stop(now=signals > 1)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("starting: %s", json.dumps(describe(config)))
    try:
        count = foreman.run()
    except ClientError as error:
        print(f"kolejka-foreman: {error}", file=sys.stderr)
        return 3
    log.info("stopped after %d tasks", count)
    for lock in locks:
        lock.release()
    return 0
