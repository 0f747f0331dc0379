"""A health tree: one reporter node per job, sub-scopes, levels aggregated upward.

Each :class:`Health` node holds its *own* report (level, message, last error, when
the level last changed, when it was last updated) and any number of child scopes.
Its *effective* level is the worst of its own report and its children's effective
levels, in this order (worst first):

``DEGRADED`` > ``UNKNOWN`` > ``STOPPED`` > ``OK``

* DEGRADED is worst: something is running and failing.
* UNKNOWN comes next: something has not said it works yet, so a tree that contains
  a silent job is not "ok".
* STOPPED ranks below UNKNOWN: stopping is a normal end (a finished one-shot, a
  stopped group). A failed stop keeps its error visible on the node.
* OK is best.

A node that never reported (own level UNKNOWN) but has children is a pure container:
its own UNKNOWN is ignored and it shows its children's worst level.

The tree is not thread-safe: report from the event loop's thread.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, final

from . import _clock

__all__ = ["Health", "HealthError", "HealthLevel", "HealthSnapshot", "worst"]

logger = logging.getLogger(__name__)


@final
class HealthLevel(enum.Enum):
    """How a health node reports itself."""

    UNKNOWN = "unknown"
    """Nothing reported yet (the initial level)."""
    OK = "ok"
    """Working."""
    DEGRADED = "degraded"
    """Running, but failing."""
    STOPPED = "stopped"
    """Ended (normally or after a failure)."""

    @property
    def severity(self) -> int:
        """Rank used for aggregation: higher is worse."""
        return _SEVERITY[self]


_SEVERITY = {
    HealthLevel.OK: 0,
    HealthLevel.STOPPED: 1,
    HealthLevel.UNKNOWN: 2,
    HealthLevel.DEGRADED: 3,
}


def worst(*levels: HealthLevel) -> HealthLevel:
    """Return the worst of ``levels`` (``OK`` when there are none)."""
    return max(levels, key=_SEVERITY.__getitem__, default=HealthLevel.OK)


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthError:
    """The last error a node reported, kept as text (never the live exception).

    Attributes:
        type: The qualified type name, e.g. ``"ValueError"`` or ``"mypkg.Boom"``.
        message: ``str()`` of the error.
    """

    type: str
    message: str

    @classmethod
    def from_exception(cls, error: BaseException) -> HealthError:
        """Describe ``error``."""
        kind = type(error)
        module = kind.__module__
        name = kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
        return cls(type=name, message=str(error))


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSnapshot:
    """A frozen copy of a health node and its subtree.

    Attributes:
        name: The node's scope name.
        level: The effective level (worst of the node and its subtree).
        own_level: What the node itself last reported.
        message: The node's last message.
        error: The node's last error, if its last report carried one.
        since: When the node's own level last changed (aware UTC).
        updated_at: When the node last reported (aware UTC).
        children: Snapshots of the child scopes, in creation order.
    """

    name: str
    level: HealthLevel
    own_level: HealthLevel
    message: str
    error: HealthError | None
    since: _dt.datetime
    updated_at: _dt.datetime
    children: tuple[HealthSnapshot, ...] = ()

    def find(self, *path: str) -> HealthSnapshot | None:
        """Return the descendant reached by following child names in ``path``."""
        node: HealthSnapshot | None = self
        for name in path:
            node = next((c for c in node.children if c.name == name), None) if node else None
        return node

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly nested dict (levels as strings, times as ISO 8601)."""
        return {
            "name": self.name,
            "level": self.level.value,
            "own_level": self.own_level.value,
            "message": self.message,
            "error": None
            if self.error is None
            else {"type": self.error.type, "message": self.error.message},
            "since": self.since.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "children": [child.as_dict() for child in self.children],
        }

    def to_json(self, **kwargs: Any) -> str:
        """Return :meth:`as_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.as_dict(), **kwargs)


HealthListener = Callable[["Health"], None]


def _as_datetime(timestamp: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(timestamp, _dt.UTC)


@final
class Health:
    """A health reporter node; create a tree with :meth:`root` and :meth:`scope`.

    Args:
        name: The node's scope name (``Health()`` makes a root node).

    Example:
        >>> root = Health.root("app")
        >>> db = root.scope("db")
        >>> db.ok("connected")
        >>> root.level
        <HealthLevel.OK: 'ok'>
    """

    __slots__ = (
        "_children",
        "_closed",
        "_error",
        "_level",
        "_listeners",
        "_message",
        "_name",
        "_parent",
        "_since",
        "_updated_at",
    )

    def __init__(self, name: str = "") -> None:
        stamp = _clock.wall_time()
        self._name = name
        self._parent: Health | None = None
        self._children: list[Health] | None = None  # created by the first scope()
        self._level = HealthLevel.UNKNOWN
        self._message = ""
        self._error: HealthError | None = None
        self._since = stamp
        self._updated_at = stamp
        self._listeners: list[HealthListener] | None = None
        self._closed = False

    @classmethod
    def root(cls, name: str = "") -> Health:
        """Return a new root node (a tree of its own)."""
        return cls(name)

    # -- reporting ------------------------------------------------------------------
    def ok(self, message: str = "ok") -> None:
        """Report that this scope works."""
        self._report(HealthLevel.OK, message, None)

    def degraded(self, message: str, error: BaseException | None = None) -> None:
        """Report that this scope runs but fails; ``error`` is kept as text."""
        self._report(HealthLevel.DEGRADED, message, error)

    def stopped(self, message: str = "stopped", error: BaseException | None = None) -> None:
        """Report that this scope has ended (``error`` when it ended by failing)."""
        self._report(HealthLevel.STOPPED, message, error)

    def _report(self, level: HealthLevel, message: str, error: BaseException | None) -> None:
        stamp = _clock.wall_time()
        if level is not self._level:
            self._since = stamp
        self._level = level
        self._message = message
        self._error = None if error is None else HealthError.from_exception(error)
        self._updated_at = stamp
        self._notify(self)

    # -- the tree -----------------------------------------------------------------
    def scope(self, name: str) -> Health:
        """Return a new child scope named ``name`` (names may repeat)."""
        child = Health(name)
        child._parent = self
        if self._children is None:
            self._children = []
        self._children.append(child)
        return child

    def close(self) -> None:
        """Remove this scope from its parent; later reports only update the detached node."""
        if self._closed:
            return
        self._closed = True
        parent, self._parent = self._parent, None
        if parent is not None:
            siblings = parent._children  # noqa: SLF001 - same class
            if siblings is not None:
                siblings.remove(self)
            parent._notify(parent)  # noqa: SLF001 - same class

    def add_listener(self, listener: HealthListener) -> Callable[[], None]:
        """Call ``listener(node)`` whenever ``node`` in this subtree reports or closes.

        A listener that raises is logged and otherwise ignored.

        Returns:
            A function that removes the listener.
        """
        if self._listeners is None:
            self._listeners = []
        listeners = self._listeners
        listeners.append(listener)

        def remove() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return remove

    def _notify(self, changed: Health) -> None:
        node: Health | None = self
        while node is not None:
            if node._listeners:  # noqa: SLF001 - same class
                for listener in tuple(node._listeners):  # noqa: SLF001 - same class
                    try:
                        listener(changed)
                    except Exception:
                        logger.exception("health listener %r failed", listener)
            node = node._parent  # noqa: SLF001 - same class

    # -- reading ------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The scope name."""
        return self._name

    @property
    def parent(self) -> Health | None:
        """The parent scope (``None`` for a root or a closed scope)."""
        return self._parent

    @property
    def path(self) -> tuple[str, ...]:
        """Scope names from the root down to this node."""
        names: list[str] = []
        node: Health | None = self
        while node is not None:
            names.append(node.name)
            node = node.parent
        return tuple(reversed(names))

    @property
    def own_level(self) -> HealthLevel:
        """What this node itself last reported."""
        return self._level

    @property
    def level(self) -> HealthLevel:
        """The effective level: the worst of this node and its subtree."""
        own = self._level
        if not self._children:
            return own
        children = worst(*(child.level for child in self._children))
        return children if own is HealthLevel.UNKNOWN else worst(own, children)

    @property
    def message(self) -> str:
        """The last message."""
        return self._message

    @property
    def error(self) -> HealthError | None:
        """The last report's error, if any."""
        return self._error

    @property
    def since(self) -> _dt.datetime:
        """When the own level last changed (aware UTC)."""
        return _as_datetime(self._since)

    @property
    def updated_at(self) -> _dt.datetime:
        """When this node last reported (aware UTC)."""
        return _as_datetime(self._updated_at)

    @property
    def children(self) -> tuple[Health, ...]:
        """The open child scopes."""
        return tuple(self._children or ())

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def snapshot(self) -> HealthSnapshot:
        """Return a frozen copy of this node and its subtree."""
        children = tuple(child.snapshot() for child in self._children or ())
        own = self._level
        level = own
        if children:
            below = worst(*(c.level for c in children))
            level = below if own is HealthLevel.UNKNOWN else worst(own, below)
        return HealthSnapshot(
            name=self._name,
            level=level,
            own_level=own,
            message=self._message,
            error=self._error,
            since=_as_datetime(self._since),
            updated_at=_as_datetime(self._updated_at),
            children=children,
        )

    statistics = snapshot

    def as_dict(self) -> dict[str, Any]:
        """Return the subtree as a JSON-friendly dict (see :meth:`HealthSnapshot.as_dict`)."""
        return self.snapshot().as_dict()

    def to_json(self, **kwargs: Any) -> str:
        """Return the subtree as JSON."""
        return self.snapshot().to_json(**kwargs)

    def __repr__(self) -> str:
        path = "/".join(self.path) or "<root>"
        return f"<Health {path!r} level={self.level.value} message={self._message!r}>"
