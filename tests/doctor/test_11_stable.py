"""promptcache.testing.assert_prefix_stable: the doctor's check for users' own CI."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from promptcache.testing import assert_prefix_stable

SYSTEM = "You are the ACME assistant. Answer from the policy below.\n" + "Policy text. " * 50


def _anthropic(question: str, *, system: str = SYSTEM, tools: Any = None) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "model": "claude-sonnet-5",
        "max_tokens": 100,
        "system": system,
        "messages": [{"role": "user", "content": question}],
    }
    if tools is not None:
        kw["tools"] = tools
    return kw


def test_a_stable_prompt_passes() -> None:
    assert_prefix_stable([_anthropic("one"), _anthropic("two"), _anthropic("three")])


def test_a_growing_conversation_passes() -> None:
    turns: list[Any] = [{"role": "system", "content": SYSTEM}]
    requests = []
    for i in range(3):
        turns = [*turns, {"role": "user", "content": f"q{i}"}]
        requests.append({"model": "gpt-4.1", "messages": turns})
        turns = [*turns, {"role": "assistant", "content": f"a{i}"}]
    assert_prefix_stable(requests)


def test_a_timestamp_in_the_system_prompt_fails_with_the_place() -> None:
    counter = itertools.count()

    def build() -> dict[str, Any]:
        return _anthropic("hi", system=f"Request time: 10:0{next(counter)}\n{SYSTEM}")

    with pytest.raises(AssertionError) as err:
        assert_prefix_stable(build, calls=2)
    text = str(err.value)
    assert "system, char 18" in text and "timestamp" in text and "10:01" in text


def test_tools_in_another_order_fail() -> None:
    a: Any = {"name": "a", "input_schema": {"type": "object"}}
    b: Any = {"name": "b", "input_schema": {"type": "object"}}
    with pytest.raises(AssertionError, match="tools order"):
        assert_prefix_stable([_anthropic("x", tools=[a, b]), _anthropic("x", tools=[b, a])])


def test_an_edited_history_fails_for_responses() -> None:
    first = {"model": "gpt-5.6-sol", "instructions": SYSTEM, "input": "Summarise the report."}
    second = {
        "model": "gpt-5.6-sol",
        "instructions": SYSTEM,
        "input": [
            {"role": "user", "content": "Summarise the report!"},
            {"role": "assistant", "content": "Done."},
            {"role": "user", "content": "Thanks"},
        ],
    }
    with pytest.raises(AssertionError, match="message 0, char 20"):
        assert_prefix_stable([first, second])


def test_needs_two_requests() -> None:
    with pytest.raises(ValueError):
        assert_prefix_stable([_anthropic("one")])
