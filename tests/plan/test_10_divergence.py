"""Issue 10 (c) and the Anthropic many-shot family: write where the family will diverge.

The first request of a new family used to write only its end, so a later request that shares
the examples (or the document) but asks something else read nothing (OpenAI gpt-5.6+: no
fallback to unmarked prefixes) or re-wrote the stretch back to the last stepping stone
(Anthropic: 20-block lookback). It now also marks the end of everything before its last
message and, inside the last message, the end of all but its last part — free beside the end
(only the last breakpoint of a request decides what is written). A family whose requests never
extend one another stops writing its end after the first call.

Before (commit 84436d8) → after, read share (reads / reachable reads), tokens written:
  few-shot items, gpt-6.1-sol:        84.0% (0.929), 14,321 → 90.5% (1.000), 5,997
  fan-out document part, gpt-6.1-sol: 83.0% (0.909), 24,095 → 91.3% (1.000), 12,069
  many-shot messages, claude-sonnet-5 and claude-opus-5:
                                      93.3% (0.989), 11,690 → 94.4% (1.000), 8,803
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from promptcache._api import Api, RequestInfo
from promptcache._plan import DefaultPlanner
from promptcache._plan._core import Pos, Strategy, place
from promptcache._plan._text import count_key
from tests.plan._workloads10 import run


def _marks(body: dict[str, Any], key: str) -> list[int]:
    """Indices of the messages/items that carry a breakpoint."""
    items = body.get("input") or body.get("messages") or []
    return [i for i, m in enumerate(items) if key in str(m)]


def test_few_shot_items_later_questions_read_the_examples(tmp_path: Path) -> None:
    f = run("few-shot items", "safe", tmp_path)
    first = f.bodies[0]
    n = len(first["input"])
    # The end (the question) and the last example a breakpoint can sit on (assistant items
    # cannot carry one on the Responses API): the user example before the last answer.
    assert _marks(first, "prompt_cache_breakpoint")[-2:] == [n - 3, n - 1]
    assert f.reads[0] == 0 and min(f.reads[1:]) > 5_000
    assert f.of_optimum >= 0.999
    assert f.writes[1:] == [0] * (len(f.writes) - 1)  # the family diverges: no end writes


def test_fan_out_over_a_document_part_reads_the_document(tmp_path: Path) -> None:
    f = run("fan-out, document part", "auto", tmp_path)
    parts = f.bodies[0]["input"][0]["content"]
    assert "prompt_cache_breakpoint" in parts[0]  # the document part: where calls diverge
    assert min(f.reads[1:]) >= 12_000
    assert f.of_optimum >= 0.999
    assert f.writes[1:] == [0] * (len(f.writes) - 1)


@pytest.mark.parametrize("name", ["many-shot messages (sonnet-5)", "many-shot messages (opus-5)"])
def test_anthropic_many_shot_reaches_the_optimum_without_rewrites(
    tmp_path: Path, name: str
) -> None:
    f = run(name, "auto", tmp_path)
    first = f.bodies[0]
    n = len(first["messages"])
    marked = _marks(first, "cache_control")
    assert len(marked) <= 4 and marked[-2:] == [n - 2, n - 1]  # end of the examples, the end
    # Every later call reads exactly up to the end of the examples and writes nothing.
    assert len(set(f.reads[1:])) == 1 and f.reads[1] > 8_000
    assert f.writes[1:] == [0] * (len(f.writes) - 1)
    assert f.of_optimum >= 0.999


def test_a_growing_conversation_still_writes_its_end_every_turn(tmp_path: Path) -> None:
    f = run("chat, instructions", "safe", tmp_path)
    assert all(w > 0 for w in f.writes)  # each turn writes what the next turn reads
    assert all(b > a for a, b in zip(f.reads[1:], f.reads[2:], strict=False))
    assert f.of_optimum >= 0.999


def test_boundaries_are_placed_only_on_a_new_family_and_within_the_slots() -> None:
    # Three messages: a long head, an example, and a last message of three parts.
    pos = [
        Pos(8000, 1, True, "system", msg=0),
        Pos(4000, 2, True, "messages", msg=1),
        Pos(4000, 3, True, "messages", msg=2),
        Pos(4000, 4, True, "messages", msg=2),
        Pos(400, 5, True, "messages", msg=2),
    ]
    s = Strategy(slots=4, min_tokens=1024, chars_per_token=4.0, lookback=None)
    kw: dict[str, Any] = {"common": 0, "conversation": False, "head_ttl": "5m", "anchor_ttl": "5m"}
    first = place(pos, strategy=s, new_family=True, **kw)
    assert [(b.index, b.reason) for b in first] == [
        (0, "head"),
        (1, "prelude"),
        (3, "part"),
        (4, "anchor"),
    ]
    assert place(pos, strategy=s, new_family=False, **kw) == []  # one-shot: nothing speculative
    tight = Strategy(slots=2, min_tokens=1024, chars_per_token=4.0, lookback=None)
    assert [b.reason for b in place(pos, strategy=tight, new_family=True, **kw)] == [
        "head",
        "anchor",
    ]
    # No head TTL (calls come too far apart to read anything): no speculative boundaries.
    cold = place(pos, strategy=s, new_family=True, **{**kw, "head_ttl": None})
    assert [b.reason for b in cold] == ["anchor"]


def test_a_users_own_breakpoints_still_count_against_the_limit() -> None:
    info = RequestInfo(
        Api.ANTHROPIC_MESSAGES, "https://api.anthropic.com", "claude-sonnet-5", "t", False
    )
    shots: list[dict[str, Any]] = []
    for i in range(30):
        shots.append({"role": "user", "content": f"Example {i}: " + "words " * 150})
        shots.append({"role": "assistant", "content": "answer " * 200})
    system = [
        {"type": "text", "text": "rules " * 900, "cache_control": {"type": "ephemeral"}},
    ]
    body = {
        "max_tokens": 5,
        "system": system,
        "messages": [*shots, {"role": "user", "content": "Q?"}],
        "cache_control": {"type": "ephemeral"},
    }
    out = DefaultPlanner("safe").rewrite(info, body).body
    assert count_key(out, "cache_control") <= 4  # the app's two (one automatic) and ours
    assert out["messages"][-2]["content"][0]["cache_control"] == {"type": "ephemeral"}
