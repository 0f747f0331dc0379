from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskmill._names import MAX_NAME_LENGTH, sanitize_name


def _h(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:10]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("reindex", "reindex"),
        ("A-z_09", "A-z_09"),
        ("", ""),
        ("x" * 100, "x" * 100),
        ("sync users", f"syncusers-{_h('sync users')}"),
        ("job/1.2", f"job12-{_h('job/1.2')}"),
        ("héllo", f"hllo-{_h('héllo')}"),
        ("!!!", f"-{_h('!!!')}"),
        ("x" * 101, "x" * 89 + f"-{_h('x' * 101)}"),
        ("é" + "x" * 200, "x" * 89 + f"-{_h('é' + 'x' * 200)}"),
    ],
)
def test_sanitize_table(name: str, expected: str) -> None:
    """Names follow hive's rule: strip, truncate and hash when changed."""
    assert expected == sanitize_name(name)


@given(st.text(max_size=300))
def test_sanitized_is_clean_short_and_idempotent(name: str) -> None:
    """The result is always <= 100 allowed characters and sanitising it again is a no-op."""
    out = sanitize_name(name)
    assert len(out) <= MAX_NAME_LENGTH
    assert all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in out)
    assert out == sanitize_name(out)


@given(st.text(max_size=50), st.text(max_size=50))
def test_different_dirty_names_stay_distinct(a: str, b: str) -> None:
    """Two different names that needed changes do not collide (the hash tells them apart)."""
    if a != b and sanitize_name(a) != a and sanitize_name(b) != b:
        assert sanitize_name(a) != sanitize_name(b)
