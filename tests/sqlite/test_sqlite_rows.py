"""Row checks and decoding: any value SQLite can hold, never an exception (Hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskmill import BackendError
from taskmill.sqlite import ErrorText, Status, _rows

# What a SQLite column can hand back to Python.
VALUES = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)

GOOD: tuple[Any, ...] = (
    1,  # seq
    "id-1",
    "mail.send",
    "default",
    0,  # priority
    "queued",
    b"payload",
    100.0,  # run_at
    None,  # unique_key
    1,  # attempt
    0,  # deliveries
    0,  # worker_lost
    None,  # worker
    0,  # cancel_requested
    99.0,  # enqueued_at
    None,
    None,
    None,
    None,  # result
    None,
    None,
    None,
    None,  # dead_reason
)


def test_a_good_row_has_no_problem() -> None:
    """A row as the store writes it passes and becomes a claim and a record."""
    assert _rows.problem(GOOD) is None
    claim = _rows.claim(GOOD, "tok", 42.0)
    assert ("id-1", "tok", 1, 42.0) == (
        claim.task_id,
        claim.token,
        claim.deliveries,
        claim.lease_until,
    )
    assert Status.QUEUED == _rows.record(GOOD).status


@pytest.mark.parametrize(
    ("index", "value", "reason"),
    [
        (_rows.PAYLOAD, None, "payload is NULL, expected a blob"),
        (_rows.RUN_AT, float("nan"), "run_at is real nan, expected a finite number"),
        (_rows.ENQUEUED_AT, float("inf"), "enqueued_at is real inf, expected a finite number"),
        (_rows.ID, "", "id is text '', expected a non-empty text"),
        (_rows.PAYLOAD, "x" * 100, "payload is text '" + "x" * 36 + "..., expected a blob"),
    ],
)
def test_problems_are_named(index: int, value: object, reason: str) -> None:
    """The reason names the column, shows the value (shortened) and what was expected."""
    row = list(GOOD)
    row[index] = value
    problem = _rows.problem(tuple(row))
    assert problem is not None
    assert problem.startswith("malformed row: " + reason)


@given(st.lists(VALUES, min_size=len(GOOD), max_size=len(GOOD)))
def test_any_row_is_checked_without_raising(values: list[object]) -> None:
    """problem() answers for any row; when it finds none, the claim can be built."""
    row = tuple(values)
    problem = _rows.problem(row)
    if problem is None:
        _rows.claim(row, "t", 0.0)
    else:
        assert problem.startswith("malformed row: ")
        assert len(problem) < 200


@given(
    st.lists(VALUES, min_size=len(GOOD), max_size=len(GOOD)),
    st.sampled_from([status.value for status in Status]),
)
def test_any_row_with_a_known_status_decodes(values: list[object], status: str) -> None:
    """record() never raises on garbage columns when the status is known."""
    values[_rows.STATUS] = status
    record = _rows.record(tuple(values))
    assert Status(status) == record.status
    assert isinstance(record.payload, bytes)
    assert record.error is None or isinstance(record.error, ErrorText)


def test_unknown_status_is_a_backend_error() -> None:
    """Only an unknown status makes a record undecodable."""
    row = list(GOOD)
    row[_rows.STATUS] = "paused"
    with pytest.raises(BackendError, match="unknown status"):
        _rows.record(tuple(row))
