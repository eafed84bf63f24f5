"""Issue 10 (b): an item sent once as a list of parts keeps that shape for the conversation.

A breakpoint on a string item (a ``function_call_output``, a message) turns it into a one-part
list; when the breakpoint moves on next turn, sending the item as a string again changes the
bytes of a prefix that was written with it, and OpenAI renders the two shapes apart (the
emulator does for tool outputs: they are rendered as their JSON).

Before this change (commit 84436d8), on the "agent, tool outputs" workload (10 steps, string
tool outputs, gpt-6.1-sol) safe and auto read 41.3% of the input (0.654 of the reachable) and
wrote 30,122 tokens, 27,437 of them never read; now 82.1% (1.000) and 9,198 written.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from promptcache._api import Api, RequestInfo
from promptcache._plan import DefaultPlanner
from promptcache._plan._state import MAX_SHAPES, PlannerState
from tests.plan._workloads10 import run

LONG = "You are a careful agent who follows the house rules exactly. " * 120


def responses(model: str = "gpt-6.1-sol") -> RequestInfo:
    return RequestInfo(Api.OPENAI_RESPONSES, "https://api.openai.com/v1", model, "t", False)


def chat(model: str = "gpt-6.1-sol") -> RequestInfo:
    return RequestInfo(Api.OPENAI_CHAT, "https://api.openai.com/v1", model, "t", False)


def test_agent_with_tool_outputs_reads_every_earlier_turn(tmp_path: Path) -> None:
    f = run("agent, tool outputs", "auto", tmp_path)
    assert f.of_optimum >= 0.999
    assert all(b > a for a, b in zip(f.reads[1:], f.reads[2:], strict=False))
    # Every tool output present in two consecutive requests went out in the same bytes.
    for prev, cur in zip(f.bodies, f.bodies[1:], strict=False):
        before = {i["call_id"]: i for i in prev["input"] if i.get("type") == "function_call_output"}
        for item in cur["input"]:
            if item.get("type") == "function_call_output" and item["call_id"] in before:
                old = before[item["call_id"]]
                assert _unmarked(item) == _unmarked(old)


def _unmarked(item: dict[str, Any]) -> str:
    # The breakpoint itself is not prompt bytes (the provider renders without it).
    out = item.get("output")
    if isinstance(out, list):
        out = [{k: v for k, v in p.items() if k != "prompt_cache_breakpoint"} for p in out]
    return json.dumps({**item, "output": out}, sort_keys=True)


def test_a_tool_output_stays_a_part_list_after_its_breakpoint_moves_on() -> None:
    p = DefaultPlanner("safe")
    items: list[dict[str, Any]] = [{"role": "user", "content": "Find it. " + LONG}]
    sent: list[dict[str, Any]] = []
    for turn in range(4):
        body = {"model": "gpt-6.1-sol", "instructions": "Be exact.", "input": list(items)}
        sent.append(p.rewrite(responses(), body).body)
        items.append(
            {"type": "function_call", "call_id": f"c{turn}", "name": "f", "arguments": "{}"}
        )
        items.append({"type": "function_call_output", "call_id": f"c{turn}", "output": "r" * 900})
    last = sent[-1]["input"]
    outputs = [i for i in last if i.get("type") == "function_call_output"]
    # c0 carried a breakpoint two turns ago; it no longer does, and is still a part list.
    assert [type(o["output"]).__name__ for o in outputs] == ["list"] * 3
    assert "prompt_cache_breakpoint" not in outputs[0]["output"][0]
    assert outputs[0]["output"][0] == {"type": "input_text", "text": "r" * 900}


def test_a_chat_message_keeps_its_part_list_too() -> None:
    p = DefaultPlanner("safe")
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": LONG},
        {"role": "user", "content": "first question " * 20},
    ]
    sent = []
    for turn in range(4):
        sent.append(p.rewrite(chat(), {"model": "gpt-6.1-sol", "messages": list(msgs)}).body)
        msgs.append({"role": "assistant", "content": f"answer {turn} " * 30})
        msgs.append({"role": "user", "content": f"question {turn} " * 30})
    user = sent[-1]["messages"][1]  # written as a list on the first call, never a string again
    assert isinstance(user["content"], list)
    for prev, cur in itertools.pairwise(sent):
        for a, b in zip(prev["messages"], cur["messages"], strict=False):
            if isinstance(a["content"], list):
                assert isinstance(b["content"], list)
                assert [x["text"] for x in a["content"]] == [x["text"] for x in b["content"]]


def test_the_user_shape_is_left_alone_where_no_breakpoint_ever_went() -> None:
    p = DefaultPlanner("safe")
    body = {
        "model": "gpt-6.1-sol",
        "input": [
            {"role": "user", "content": "short"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": LONG},
        ],
    }
    out = p.rewrite(responses(), body).body["input"]
    assert out[0] == {"role": "user", "content": "short"}  # below the minimum: untouched
    assert out[1] == {"role": "assistant", "content": "ok"}  # assistant output: never parts


def test_shape_memory_is_bounded() -> None:
    s = PlannerState()
    s.record("fam", (1, 2), 0.0)
    s.add_listed("fam", set(range(MAX_SHAPES + 10)))
    kept = s.listed("fam", range(MAX_SHAPES + 10))
    assert len(kept) == MAX_SHAPES and 0 not in kept  # the oldest went first
    assert s.listed("fam", [MAX_SHAPES + 9, 10**9]) == {MAX_SHAPES + 9}
    s.add_listed("unknown family", {1})  # no family: nothing to remember, no error
    assert s.listed("unknown family", [1]) == set()
