from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskmill import Health, HealthError, HealthLevel, HealthSnapshot
from taskmill._health import worst

U, OK, DEG, STOP = HealthLevel.UNKNOWN, HealthLevel.OK, HealthLevel.DEGRADED, HealthLevel.STOPPED


def state(node: Health) -> tuple[HealthLevel, str, HealthError | None]:
    """Read a node (a call, so mypy does not narrow properties between reports)."""
    return node.own_level, node.message, node.error


def parent_of(node: Health) -> Health | None:
    return node.parent


def report(node: Health, level: HealthLevel) -> None:
    if level is OK:
        node.ok()
    elif level is DEG:
        node.degraded("x")
    elif level is STOP:
        node.stopped()


class TestReporting:
    def test_initial_state_is_unknown(self) -> None:
        """A fresh node is UNKNOWN with no message or error."""
        node = Health.root("r")
        assert (node.level, node.own_level, node.message, node.error) == (U, U, "", None)
        assert node.since.tzinfo is not None

    def test_reports_set_level_message_and_error(self) -> None:
        """ok/degraded/stopped set the level, message and error (kept as text)."""
        node = Health.root()
        node.degraded("db down", ConnectionError("refused"))
        refused = HealthError(type="ConnectionError", message="refused")
        assert state(node) == (DEG, "db down", refused)
        node.ok("back")
        assert state(node) == (OK, "back", None)
        node.stopped("done")
        assert state(node) == (STOP, "done", None)

    def test_error_type_is_qualified_outside_builtins(self) -> None:
        """Non-builtin error types carry their module."""
        assert HealthError.from_exception(json.JSONDecodeError("x", "", 0)).type == (
            "json.decoder.JSONDecodeError"
        )

    async def test_since_changes_only_when_the_level_changes(self) -> None:
        """since moves on a level change; updated_at on every report (virtual time)."""
        node = Health.root()
        node.ok("a")
        first = node.since
        await asyncio.sleep(10)
        node.ok("b")
        assert node.since == first
        assert node.updated_at - first == dt.timedelta(seconds=10)
        await asyncio.sleep(5)
        node.degraded("c")
        assert node.since - first == dt.timedelta(seconds=15)
        assert node.updated_at == node.since


class TestTree:
    def test_scope_path_and_close(self) -> None:
        """Scopes nest; close() removes a scope from its parent."""
        root = Health.root("app")
        jobs = root.scope("jobs")
        a = jobs.scope("a")
        assert a.path == ("app", "jobs", "a")
        assert parent_of(a) is jobs
        a.close()
        a.close()  # idempotent
        assert jobs.children == ()
        assert a.closed
        assert parent_of(a) is None
        a.degraded("still usable")  # reports to a closed node change only that node
        assert root.level is U

    @pytest.mark.parametrize(
        ("own", "children", "expected"),
        [
            (U, [], U),
            (U, [OK, OK], OK),  # a silent container shows its children
            (U, [OK, U], U),
            (U, [STOP, OK], STOP),
            (OK, [STOP], STOP),
            (OK, [U], U),
            (STOP, [U], U),
            (OK, [DEG, STOP, U], DEG),
            (DEG, [OK], DEG),
            (OK, [], OK),
        ],
    )
    def test_aggregation(
        self, own: HealthLevel, children: list[HealthLevel], expected: HealthLevel
    ) -> None:
        """Effective level = worst of own and children: DEGRADED > UNKNOWN > STOPPED > OK."""
        root = Health.root()
        report(root, own)
        for level in children:
            report(root.scope("c"), level)
        assert expected is root.level
        assert expected is root.snapshot().level

    def test_aggregation_is_deep(self) -> None:
        """A degraded grandchild makes the root degraded."""
        root = Health.root()
        root.ok()
        root.scope("a").scope("b").degraded("deep")
        assert root.level is DEG

    def test_worst_order(self) -> None:
        """worst() ranks DEGRADED > UNKNOWN > STOPPED > OK; empty is OK."""
        assert worst() is OK
        assert worst(OK, STOP) is STOP
        assert worst(STOP, U) is U
        assert worst(U, DEG) is DEG


class TestSnapshot:
    def test_snapshot_is_frozen_and_serialisable(self) -> None:
        """snapshot()/statistics() give a frozen tree; as_dict/to_json are JSON."""
        root = Health.root("app")
        root.ok("up")
        root.scope("db").degraded("slow", TimeoutError("5s"))
        snap = root.statistics()
        assert isinstance(snap, HealthSnapshot)
        with pytest.raises(AttributeError):
            snap.level = OK  # type: ignore[misc]
        data = json.loads(root.to_json())
        assert data["level"] == "degraded"
        assert data["own_level"] == "ok"
        assert data["children"][0]["error"] == {"type": "TimeoutError", "message": "5s"}
        assert data == root.as_dict()
        assert dt.datetime.fromisoformat(data["since"]).tzinfo is not None
        db = snap.find("db")
        assert db is not None
        assert db.message == "slow"
        assert snap.find("nope") is None
        assert snap.find() is snap

    def test_repr_shows_path_and_level(self) -> None:
        """repr shows the path and the effective level."""
        node = Health.root("app").scope("x")
        node.ok("fine")
        assert repr(node) == "<Health 'app/x' level=ok message='fine'>"


class TestListeners:
    def test_listeners_see_changes_in_their_subtree(self) -> None:
        """A listener on the root is told about reports and closes below it."""
        root = Health.root("r")
        seen: list[tuple[str, ...]] = []
        remove = root.add_listener(lambda n: seen.append(n.path))
        child = root.scope("c")
        child.ok()
        child.close()
        remove()
        root.ok()
        assert seen == [("r", "c"), ("r",)]

    def test_failing_listener_is_logged_not_raised(self, caplog: pytest.LogCaptureFixture) -> None:
        """A listener that raises does not break reporting."""
        root = Health.root()

        def bad(node: Health) -> None:
            raise RuntimeError("listener bug")

        root.add_listener(bad)
        with caplog.at_level(logging.ERROR, logger="taskmill._health"):
            root.ok()
        assert root.own_level is OK
        assert "listener" in caplog.text


_LEVELS = st.sampled_from([OK, DEG, STOP, U])


@given(own=_LEVELS, children=st.lists(_LEVELS, max_size=6))
def test_effective_level_is_the_worst_reported(
    own: HealthLevel, children: list[HealthLevel]
) -> None:
    """The effective level is the worst of every level that counts in the subtree."""
    root = Health.root()
    report(root, own)
    for level in children:
        report(root.scope("c"), level)
    counted = children + ([own] if own is not U or not children else [])
    assert max(counted, key=lambda lv: lv.severity) is root.level
