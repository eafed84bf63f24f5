from __future__ import annotations

import itertools

import pytest

from promptcache._plan._core import Pos, Strategy, choose_ttl, place
from promptcache._plan._models import anthropic_min_tokens, openai_explicit
from promptcache._plan._volatile import diff_label, volatile_lines


@pytest.mark.parametrize(
    ("model", "minimum"),
    [
        ("claude-opus-5", 512),
        ("claude-fable-5-1", 512),
        ("claude-sonnet-4-5-20250929", 1024),
        ("claude-sonnet-4-20250514", 1024),
        ("claude-opus-4-5", 4096),
        ("claude-haiku-4-5", 4096),
        ("claude-opus-4-7", 2048),
        ("claude-3-5-haiku-latest", 2048),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", 1024),
        ("claude-sonnet-5-5", 4096),  # unverified: conservative
        ("some-new-model", 4096),
        (None, 4096),
    ],
)
def test_anthropic_minimums(model: str | None, minimum: int) -> None:
    assert anthropic_min_tokens(model) == minimum


@pytest.mark.parametrize(
    ("model", "explicit"),
    [
        ("gpt-6.1-sol", True),
        ("gpt-5.6-sol", True),
        ("gpt-6-astra", True),
        ("gpt-5.5", False),
        ("gpt-4.1", False),
        ("gpt-4o-mini", False),
        ("o3", False),
        ("deepseek-chat", False),
        (None, False),
    ],
)
def test_openai_explicit_support(model: str | None, explicit: bool) -> None:
    assert openai_explicit(model) is explicit


def test_ttl_choice_from_reuse_intervals() -> None:
    assert choose_ttl([]) == "5m"
    assert choose_ttl([30, 40, 60]) == "5m"
    assert choose_ttl([600, 900, 1200]) == "1h"  # gaps past 5m but inside an hour
    assert choose_ttl([120, 900, 120, 900]) == "1h"  # half the reads would miss at 5m
    assert choose_ttl([7200, 9000]) is None  # never read again in time: do not write
    assert choose_ttl([600, 7200, 7200, 7200]) is None  # 2x write not paid back


def test_volatile_lines_found_and_prose_left_alone() -> None:
    text = (
        "Current time: 2026-11-28T10:24:19Z\n"
        "You are helpful.\n"
        "Request id: 3f2b8c1e-4a5d-4e6f-9a0b-1c2d3e4f5a6b\n"
        "Trace: req_8f3kd93jd0\n"
        "Visit #1234\n" + "On 1850-03-12 the river flooded the valley and " * 10 + "\nThe end.\n"
    )
    moved = [text[a:b] for a, b in volatile_lines(text)]
    assert moved == [
        "Current time: 2026-11-28T10:24:19Z\n",
        "Request id: 3f2b8c1e-4a5d-4e6f-9a0b-1c2d3e4f5a6b\n",
        "Trace: req_8f3kd93jd0\n",
        "Visit #1234\n",
    ]


def test_observed_change_gives_a_label_found_later() -> None:
    old = "Intro\nUsers online: seven hundred\nRules"
    new = "Intro\nUsers online: eight hundred\nRules"
    label = diff_label(old, new)
    assert label == "Users online: "
    spans = volatile_lines("Intro\nUsers online: many\nRules", frozenset({label}))
    assert spans == [(6, 25)]
    assert diff_label(old, old) is None
    assert diff_label("a" * 500, "b" * 500) is None


def _pos(n: int, chars: int = 400) -> list[Pos]:
    return [Pos(chars, i, True, "messages", msg=i) for i in range(n)]


def test_place_never_exceeds_slots_and_adds_lookback_stones() -> None:
    pos = _pos(60)
    s = Strategy(slots=4, min_tokens=100, chars_per_token=4.0, lookback=20)
    bps = place(
        pos,
        strategy=s,
        common=0,
        new_family=True,
        conversation=True,
        head_ttl="5m",
        anchor_ttl="5m",
    )
    idx = [b.index for b in bps]
    assert len(bps) == 4 and idx[-1] == 59
    assert all(b - a <= 18 for a, b in itertools.pairwise(idx))


def test_place_respects_minimum_and_user_breakpoints() -> None:
    pos = _pos(3, chars=100)  # 25 tokens each
    s = Strategy(slots=4, min_tokens=1000, chars_per_token=4.0, lookback=20)
    assert (
        place(
            pos,
            strategy=s,
            common=0,
            new_family=True,
            conversation=True,
            head_ttl="5m",
            anchor_ttl="5m",
        )
        == []
    )
    pos = _pos(5)
    pos[4].user_ttl = "1h"  # the user's own 1h breakpoint at the end
    s = Strategy(slots=3, min_tokens=100, chars_per_token=4.0, lookback=20)
    bps = place(
        pos,
        strategy=s,
        common=3,
        new_family=False,
        conversation=True,
        head_ttl="5m",
        anchor_ttl="5m",
    )
    assert bps and all(b.index != 4 and b.ttl == "1h" for b in bps)  # 1h never after 5m


def test_place_skips_unreused_one_shot_after_first_call() -> None:
    pos = _pos(4)
    s = Strategy(slots=4, min_tokens=10, chars_per_token=4.0, lookback=20)
    assert (
        place(
            pos,
            strategy=s,
            common=0,
            new_family=False,
            conversation=False,
            head_ttl="5m",
            anchor_ttl="5m",
        )
        == []
    )
    first = place(
        pos,
        strategy=s,
        common=0,
        new_family=True,
        conversation=False,
        head_ttl="5m",
        anchor_ttl="5m",
    )
    # The end is written; the end of what precedes the last message rides along for free.
    assert [(b.index, b.reason) for b in first] == [(2, "prelude"), (3, "anchor")]
