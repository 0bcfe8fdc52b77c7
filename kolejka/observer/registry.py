"""The observer's sessions: open ones by id, the final reports of recently closed ones (so `close`
is idempotent), caps on how many there may be, and the start-up sweep of groups a previous
observer left behind."""

from __future__ import annotations

import hmac
import logging
import threading
from collections import OrderedDict

from kolejka.common import KolejkaError, Limits

from .cgroups import CgroupError, Hierarchy
from .sessions import Report, Session

log = logging.getLogger(__name__)

CLOSED_KEPT = 1024


class TooMany(KolejkaError):
    """The cap on open sessions was reached."""


def is_within(session: Session, ancestor: Session) -> bool:
    """Whether `session` is `ancestor` or nested in it."""
    current: Session | None = session
    while current is not None:
        if current is ancestor:
            return True
        current = current.parent
    return False


def innermost(scope: Session, group: str | None) -> Session:
    """The deepest session, `scope` or one nested in it, whose group holds cgroup `group` (a
    process's group, as `group_of` gives it): the session that process runs in."""
    current = scope
    while group is not None:
        inner = [
            child
            for child in list(current.children.values())
            if group == child.cgroup.path or group.startswith(child.cgroup.path + "/")
        ]
        if not inner:
            break
        current = inner[0]
    return current


def _enclosing(session: Session) -> frozenset[str]:
    ids = set()
    current = session.parent
    while current is not None:
        ids.add(current.id)
        current = current.parent
    return frozenset(ids)


def _descendants(session: Session) -> int:
    return sum(1 + _descendants(child) for child in list(session.children.values()))


class Registry:
    """Sessions by id. Thread-safe."""

    def __init__(
        self,
        hierarchy: Hierarchy,
        base: str = "kolejka",
        *,
        max_sessions: int = 4096,
        max_nested: int = 64,
    ) -> None:
        self.hierarchy = hierarchy
        self.base = base.strip("/")
        self.max_sessions = max_sessions
        self.max_nested = max_nested
        self._lock = threading.Lock()
        self._open: dict[str, Session] = {}
        # Closed sessions by id: their secret, final report, and the ids of the sessions that
        # enclosed them (so that a task is shown only its own).
        self._closed: OrderedDict[str, tuple[str, Report, frozenset[str]]] = OrderedDict()

    def sweep(self) -> list[str]:
        """Kill and remove every group under the base: sessions of an observer that died. Return
        their names."""
        names = self.hierarchy.leftovers(self.base)
        for name in names:
            try:
                self.hierarchy.group(f"{self.base}/{name}").remove()
            except CgroupError as error:
                log.warning("cannot sweep %s/%s: %s", self.base, name, error)
        return names

    def remove_base(self) -> None:
        """Remove the base group from every hierarchy, where it is empty (at exit)."""
        roots = set(self.hierarchy.mounts.values()) | set(self.hierarchy.extra)
        for root in sorted(roots):
            try:
                (root / self.base).rmdir()
            except FileNotFoundError:
                continue
            except OSError as error:  # groups not ours are in it: leave it to them
                log.warning("cannot remove the base group %s: %s", root / self.base, error.strerror)

    def open(
        self,
        limits: Limits,
        *,
        cpuset: tuple[int, ...] | None = None,
        container: bool = False,
        parent: Session | None = None,
    ) -> Session:
        """A new session (nested in `parent` if given). Raise `TooMany` past the caps."""
        with self._lock:
            if len(self._open) >= self.max_sessions:
                raise TooMany(f"the observer has {len(self._open)} sessions open, its maximum")
            if parent is not None:
                top = parent
                while top.parent is not None:
                    top = top.parent
                if _descendants(top) >= self.max_nested:
                    raise TooMany(f"a session may hold at most {self.max_nested} nested sessions")
        if parent is None:
            from secrets import token_hex

            session_id = token_hex(8)
            session = Session(
                self.hierarchy.group(f"{self.base}/{session_id}"),
                limits,
                cpuset=cpuset,
                container=container,
                session_id=session_id,
            )
        else:
            session = parent.open_child(limits, container=container)
        with self._lock:
            self._open[session.id] = session
        return session

    def find(self, session_id: str, secret: str | None) -> Session | None:
        """The open session with this id and secret, else `None` (whichever was wrong)."""
        with self._lock:
            session = self._open.get(session_id)
        if session is None or secret is None:
            return None
        if not hmac.compare_digest(session.secret.encode(), secret.encode()):
            return None
        return session

    def get(self, session_id: str) -> Session | None:
        """The open session with this id, without a secret: only for the observer itself."""
        with self._lock:
            return self._open.get(session_id)

    def final(
        self, session_id: str, secret: str | None, within: Session | None = None
    ) -> Report | None:
        """The final report of a recently closed session, given its secret; with `within`, only
        of a session that was nested in that one."""
        with self._lock:
            kept = self._closed.get(session_id)
        if kept is None or secret is None:
            return None
        if not hmac.compare_digest(kept[0].encode(), secret.encode()):
            return None
        if within is not None and within.id not in kept[2]:
            return None
        return kept[1]

    def close(self, session: Session) -> Report:
        """Close `session` and its nested sessions; keep the final reports for a while."""
        nested = [session]
        index = 0
        while index < len(nested):
            nested.extend(nested[index].children.values())
            index += 1
        report = session.close()
        with self._lock:
            for closed in nested:
                self._open.pop(closed.id, None)
                final = closed.report()
                self._closed[closed.id] = (closed.secret, final, _enclosing(closed))
            while len(self._closed) > CLOSED_KEPT:
                self._closed.popitem(last=False)
        return report

    def close_all(self) -> None:
        with self._lock:
            tops = [session for session in self._open.values() if session.parent is None]
        for session in tops:
            try:
                self.close(session)
            except CgroupError as error:
                log.warning("cannot close session %s: %s", session.id, error)
