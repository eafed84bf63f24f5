"""The fast body walkers agree with the obvious recursive definitions on any JSON value."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from promptcache._plan._layout import MARK_CHARS, strip_marks
from promptcache._plan._text import count_key, scan, strip_deep

KEYS = st.sampled_from(
    ["cache_control", "prompt_cache_breakpoint", "content", "tools", "input", "x", "text"]
)
# Text that can hold marks, astral and non-ASCII characters, and key-like snippets.
TEXT = st.lists(
    st.sampled_from([*MARK_CHARS, "a", "é", "😀", '"cache_control":', "\\", '"', "\n", "text"]),
    max_size=8,
).map("".join)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | TEXT, inner, max_size=4),
    max_leaves=30,
)


def naive_strip(x: Any) -> Any:
    if isinstance(x, str):
        return strip_marks(x)
    if isinstance(x, dict):
        return {k: naive_strip(v) for k, v in x.items()}
    if isinstance(x, list):
        return [naive_strip(v) for v in x]
    return x


def naive_count(x: Any, key: str) -> int:
    if isinstance(x, dict):
        return (key in x) + sum(naive_count(v, key) for v in x.values())
    if isinstance(x, list):
        return sum(naive_count(v, key) for v in x)
    return 0


def marks_anywhere(x: Any) -> bool:
    return bool(naive_strip(x) != x)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_strip_deep_matches_a_full_recursive_strip(value: Any) -> None:
    out = strip_deep(value)
    assert out == naive_strip(value)
    if not marks_anywhere(value):
        assert out is value  # nothing to strip: the very same object, no copy


@settings(max_examples=300, deadline=None)
@given(JSON, st.sampled_from(["cache_control", "prompt_cache_breakpoint"]))
def test_count_key_matches_a_full_recursive_count(value: Any, key: str) -> None:
    assert count_key(value, key) == naive_count(value, key)


def test_count_key_ignores_the_key_inside_string_values() -> None:
    tools = [
        {"name": "a", "description": 'set "cache_control": on', "input_schema": {"x": 1}},
        {"name": "b", "input_schema": {"cache_control": {"type": "ephemeral"}}},
    ]
    assert count_key(tools, "cache_control") == 1
    assert count_key({"tools": tools, "cache_control": {}}, "cache_control") == 2


@settings(max_examples=300, deadline=None)
@given(JSON, st.sampled_from(["cache_control", "prompt_cache_breakpoint"]))
def test_scan_finds_marks_and_keys_like_the_recursive_definitions(value: Any, key: str) -> None:
    expected = (marks_anywhere(value), naive_count(value, key))
    assert scan(value, key) == expected
    assert scan(value, key, structure=True) == expected
