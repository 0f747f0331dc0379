"""The exception tree: inheritance, context attributes and messages."""

from __future__ import annotations

import asyncio

import pytest

import taskmill as tm
from taskmill import _errors


class TestTree:
    @pytest.mark.parametrize(
        ("error", "builtin"),
        [
            (tm.ConfigurationError, ValueError),
            (tm.StateError, RuntimeError),
            (tm.NotRunning, RuntimeError),
            (tm.AlreadyStarted, RuntimeError),
            (tm.TagExists, KeyError),
            (tm.TaskNotFound, LookupError),
            (tm.CannotBeStopped, TypeError),
            (tm.CannotBeConfigured, TypeError),
            (tm.StopTimeout, TimeoutError),
            (tm.TaskTimeout, TimeoutError),
        ],
    )
    def test_errors_inherit_the_builtin_they_mean(
        self, error: type[Exception], builtin: type[Exception]
    ) -> None:
        """`except ValueError` still catches ConfigurationError, and so on."""
        assert issubclass(error, builtin)
        assert issubclass(error, tm.TaskmillError)

    def test_cancellation_is_not_in_the_tree(self) -> None:
        """CancelledError stays a BaseException outside taskmill's root."""
        assert not issubclass(asyncio.CancelledError, tm.TaskmillError)

    def test_every_class_is_drawn_in_the_docstring(self) -> None:
        """The tree in `_errors.py`'s docstring names every exception class."""
        doc = _errors.__doc__ or ""
        for name in _errors.__all__:
            if name != "Next":
                assert name in doc, name


class TestContext:
    def test_tag_exists_carries_the_tag(self) -> None:
        error = tm.TagExists("sync")
        assert error.tag == "sync"
        assert str(error) == "a task tagged 'sync' already exists in this group"

    def test_task_not_found_carries_the_id(self) -> None:
        error = tm.TaskNotFound("abc")
        assert error.task_id == "abc"
        assert str(error) == "no task with id 'abc'"

    def test_stop_timeout_names_what_is_pending(self) -> None:
        error = tm.StopTimeout(2.5, ["indexer", "mailer"])
        assert (error.timeout, error.pending) == (2.5, ("indexer", "mailer"))
        assert str(error) == "stop did not finish within 2.5s; still running: indexer, mailer"

    def test_worker_exited_prematurely_names_the_worker(self) -> None:
        assert str(tm.WorkerExitedPrematurely("poller")) == "poller exited prematurely"

    def test_task_timeout_message(self) -> None:
        error = tm.TaskTimeout(1.5, attempt=2)
        assert (error.timeout, error.attempt) == (1.5, 2)
        assert str(error) == "attempt 2 timed out after 1.5s"

    def test_task_failed_keeps_text_and_cause(self) -> None:
        cause = ValueError("bad")
        error = tm.TaskFailed("t1", "resize", error_type="ValueError", message="bad", cause=cause)
        assert error.__cause__ is cause
        assert str(error) == "task 'resize' (t1) failed: ValueError: bad"

    def test_task_cancelled_message(self) -> None:
        assert str(tm.TaskCancelled("t1", "resize")) == "task 'resize' (t1) was cancelled"


class TestDirectives:
    @pytest.mark.parametrize(
        ("directive", "expected"),
        [
            (tm.StopRetrying, tm.Next.STOP_NOW),
            (tm.RetryNow, tm.Next.RETRY_NOW),
            (tm.ResetBackoff, tm.Next.RESET_BACKOFF),
        ],
    )
    def test_directive_wraps_its_error_as_cause(
        self, directive: type[tm.RetryDirective], expected: tm.Next
    ) -> None:
        cause = OSError("flaky")
        raised = directive(cause)
        assert raised.next is expected
        assert raised.error is cause
        assert raised.__cause__ is cause

    def test_directive_accepts_a_message(self) -> None:
        raised = tm.StopRetrying("config missing")
        assert isinstance(raised.error, tm.TaskmillError)
        assert str(raised.error) == "config missing"

    def test_next_values_match_sc_bos(self) -> None:
        """Next keeps sc-bos's numbering: Normal 0, StopNow 1, RetryNow 2, ResetBackoff 3."""
        assert [0, 1, 2, 3] == [int(n) for n in tm.Next]
