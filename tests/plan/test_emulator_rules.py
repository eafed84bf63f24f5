"""Each planner rule, end to end: real SDKs -> PromptCache.wrap -> emulator on loopback."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import anthropic
import httpx2
import openai
import pytest

import promptcache
from promptcache._errors import HintRejectedWarning
from promptcache._plan import OpenAIOptions
from promptcache._plan._layout import MARK_CHARS
from promptcache.testing import Emulator, FakeClock

Mode = Literal["off", "safe", "auto"]
LONG = "You are a careful assistant who follows the house rules exactly. " * 120  # ~2k tokens


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(clock=clock) as e:
        yield e


def pc_for(
    tmp_path: Path, clock: FakeClock, mode: Mode = "safe", **kw: Any
) -> promptcache.PromptCache:
    return promptcache.PromptCache(
        directory=tmp_path / "pc",
        response_cache=False,
        restructure=mode,
        clock=clock.now,
        openai=kw.pop("openai", OpenAIOptions(endpoint="openai")),
        **kw,
    )


_OPEN: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def claude(emu: Emulator, pc: promptcache.PromptCache) -> anthropic.Anthropic:
    raw = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x", max_retries=0)
    _OPEN.extend([raw, pc])
    return pc.wrap(raw)


def gpt(emu: Emulator, pc: promptcache.PromptCache) -> openai.OpenAI:
    raw = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
    _OPEN.extend([raw, pc])
    return pc.wrap(raw)


def test_each_turn_reads_what_the_previous_turn_wrote(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    pc = pc_for(tmp_path, clock)
    client = claude(emu, pc)
    msgs: list[Any] = []
    for turn in range(6):
        msgs.append(
            {"role": "user", "content": f"Turn {turn}: " + "tell me more about caching. " * 30}
        )
        client.messages.create(model="claude-sonnet-5", max_tokens=20, system=LONG, messages=msgs)
        msgs.append({"role": "assistant", "content": "Here is more. " * 40})
        clock.advance(30)
    calls = emu.calls
    for prev, cur in itertools.pairwise(calls):
        assert cur.cache_read_tokens == prev.cache_read_tokens + prev.cache_write_tokens
        assert cur.uncached_input_tokens < 20  # only the reply primer is left uncached
    pc.close()


def test_long_agent_turns_stay_within_the_lookback(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    # 30 new blocks per turn: further than the 20-block lookback from the previous write.
    pc = pc_for(tmp_path, clock)
    client = claude(emu, pc)
    msgs: list[Any] = [{"role": "user", "content": "Start. " * 200}]
    for turn in range(3):
        client.messages.create(model="claude-sonnet-5", max_tokens=5, system=LONG, messages=msgs)
        for k in range(15):
            msgs.append(
                {"role": "assistant", "content": [{"type": "text", "text": f"a{turn}.{k} " * 20}]}
            )
            msgs.append(
                {"role": "user", "content": [{"type": "text", "text": f"u{turn}.{k} " * 20}]}
            )
        clock.advance(20)
    calls = emu.calls
    assert all(c.status == 200 for c in calls)
    for prev, cur in itertools.pairwise(calls):
        assert cur.cache_read_tokens == prev.cache_read_tokens + prev.cache_write_tokens


def test_below_minimum_is_not_marked(emu: Emulator, clock: FakeClock, tmp_path: Path) -> None:
    pc = pc_for(tmp_path, clock)
    client = claude(emu, pc)
    client.messages.create(
        model="claude-sonnet-5",
        max_tokens=5,
        system="Be brief. " * 50,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert "cache_control" not in json.dumps(emu.calls[-1].request_body)
    client.messages.create(
        model="claude-opus-5",
        max_tokens=5,
        system="Be brief. " * 300,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert emu.calls[-1].cache_write_tokens > 0  # 512-token minimum model: cached


def test_1h_before_5m_with_a_user_1h_breakpoint(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    pc = pc_for(tmp_path, clock)
    client = claude(emu, pc)
    msgs: list[Any] = []
    for turn in range(3):
        msgs.append({"role": "user", "content": f"Q{turn} " * 100})
        last: list[Any] = [
            {
                "type": "text",
                "text": f"Tail {turn} " * 50,
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            }
        ]
        head: list[Any] = [{"type": "text", "text": msgs[-1]["content"]}]
        sent: list[Any] = [*msgs[:-1], {"role": "user", "content": head + last}]
        client.messages.create(model="claude-sonnet-5", max_tokens=5, system=LONG, messages=sent)
        msgs.append({"role": "assistant", "content": "ok " * 30})
        clock.advance(60)
    assert [c.status for c in emu.calls] == [200, 200, 200]
    body = emu.calls[-1].request_body
    assert body is not None
    ttls = [b["cache_control"].get("ttl", "5m") for b in _blocks(body) if "cache_control" in b]
    assert ttls == sorted(ttls, key=lambda t: t != "1h")  # every 1h before every 5m
    assert emu.calls[-1].cache_read_tokens > 0


def _blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = list(body.get("tools") or [])
    s = body.get("system")
    out += s if isinstance(s, list) else []
    for m in body["messages"]:
        c = m["content"]
        out += c if isinstance(c, list) else []
    return out


def test_reuse_every_15_minutes_switches_to_1h(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    pc = pc_for(tmp_path, clock)
    client = claude(emu, pc)
    for i in range(5):
        client.messages.create(
            model="claude-sonnet-5",
            max_tokens=5,
            system=LONG,
            messages=[{"role": "user", "content": f"q{i}"}],
        )
        clock.advance(15 * 60)
    calls = emu.calls
    assert calls[0].cache_write_by_ttl.get("5m", 0) > 0  # no history yet: 5m
    assert calls[1].cache_write_by_ttl.get("1h", 0) > 0  # 15 min gap seen: 1h
    assert all(c.cache_read_tokens > 0 for c in calls[2:])  # and it is read across the gaps


def test_one_shot_prompts_are_not_written_again(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    pc = pc_for(tmp_path, clock)
    client = claude(emu, pc)
    for i in range(4):
        # the system prompt changes every call: nothing is ever read, so stop writing
        client.messages.create(
            model="claude-sonnet-5",
            max_tokens=5,
            system=f"Build {i}\n" + LONG,
            messages=[{"role": "user", "content": "q"}],
        )
        clock.advance(30)
    assert [c.cache_write_tokens > 0 for c in emu.calls] == [True, False, False, False]


def test_auto_moves_the_timestamp_and_the_system_prompt_is_read(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    cases: list[tuple[Mode, bool]] = [("safe", False), ("auto", True)]
    for mode, reads in cases:
        emu.reset()
        client = claude(emu, pc_for(tmp_path / mode, clock, mode))
        for i in range(3):
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                system=f"Current time: 2026-11-28T10:{i:02d}:00Z\n" + LONG,
                messages=[{"role": "user", "content": f"question {i}"}],
            )
            clock.advance(30)
        assert (emu.calls[-1].cache_read_tokens > 0) is reads, mode


def test_layout_marks_reorder_and_never_reach_the_provider(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    @promptcache.layout(static=["rules"])
    def system(rules: str, user_name: str) -> str:
        return f"User: {user_name}\n{rules}"

    client = gpt(emu, pc_for(tmp_path, clock, "off"))
    client.chat.completions.create(
        model="gpt-5.5",
        messages=[
            {"role": "system", "content": system(LONG, "ada")},
            {"role": "user", "content": "hi"},
        ],
    )
    sent = json.dumps(emu.calls[-1].request_body, ensure_ascii=False)
    assert not any(c in sent for c in MARK_CHARS)  # off: stripped, not moved
    client = gpt(emu, pc_for(tmp_path / "s", clock, "safe"))
    for name in ("ada", "bob"):
        client.chat.completions.create(
            model="gpt-6.1-sol",
            messages=[
                {"role": "system", "content": system(LONG, name)},
                {"role": "user", "content": "hi"},
            ],
        )
        clock.advance(10)
    body = emu.calls[-1].request_body
    assert body is not None
    assert body["messages"][0]["content"][0]["text"] == LONG
    assert body["messages"][-1] == {"role": "system", "content": "User: bob\n"}
    assert emu.calls[-1].cache_read_tokens > 0


def test_openai_pre_56_gets_no_new_parameters_and_56_reads_prior_turns(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    client = gpt(emu, pc_for(tmp_path, clock))
    for model in ("gpt-5.5", "gpt-6.1-sol"):
        msgs: list[Any] = [{"role": "system", "content": LONG}]
        for turn in range(3):
            msgs.append({"role": "user", "content": f"Turn {turn} " * 80})
            r = client.chat.completions.create(model=model, messages=msgs)
            msgs.append({"role": "assistant", "content": r.choices[0].message.content})
            clock.advance(20)
        calls = [c for c in emu.calls if c.model == model]
        assert all(c.status == 200 and c.prompt_cache_key for c in calls)
        assert len({c.prompt_cache_key for c in calls}) == 1
        assert calls[-1].cache_read_tokens > calls[1].cache_read_tokens > 0
        body = calls[-1].request_body
        assert body is not None
        assert ("prompt_cache_options" in body) is (model == "gpt-6.1-sol")
        assert "prompt_cache_retention" not in body


def test_compatible_endpoint_rejecting_the_key_is_retried_and_remembered(
    clock: FakeClock, tmp_path: Path
) -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body)
        if "prompt_cache_key" in body:
            return httpx2.Response(
                400,
                json={
                    "error": {
                        "message": "Unrecognized request argument supplied: prompt_cache_key",
                        "type": "invalid_request_error",
                    }
                },
            )
        return httpx2.Response(
            200,
            json={
                "id": "c1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            },
        )

    pc = pc_for(tmp_path, clock, openai=OpenAIOptions(compatible_accepts_cache_key=True))
    raw = openai.OpenAI(
        base_url="http://127.0.0.1:9/v1",
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    client = pc.wrap(raw)
    for q in ("a", "b"):
        with contextlib.ExitStack() as once:
            if q == "a":  # warned once, on the refusal
                once.enter_context(pytest.warns(HintRejectedWarning, match="prompt_cache_key"))
            r = client.chat.completions.create(
                model="gpt-4.1", messages=[{"role": "user", "content": q}]
            )
        assert r.choices[0].message.content == "ok"
    assert ["prompt_cache_key" in b for b in seen] == [True, False, False]


def test_unique_one_shot_prompts_stop_writing_speculatively(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    pc = pc_for(tmp_path, clock)
    client = claude(emu, pc)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    for w in words:  # no system prompt, every prompt different: each is a new family
        client.messages.create(
            model="claude-sonnet-5",
            max_tokens=5,
            messages=[{"role": "user", "content": f"Summarise {w}. " + LONG}],
        )
        clock.advance(30)
    writes = [c.cache_write_tokens > 0 for c in emu.calls]
    assert writes[:4] == [True] * 4 and not any(writes[4:])


def test_usage_reported_by_the_provider_recalibrates_estimates(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    from promptcache._plan import DefaultPlanner

    pc = pc_for(tmp_path, clock)
    client = claude(emu, pc)
    client.messages.create(
        model="claude-sonnet-5",
        max_tokens=5,
        system=LONG,
        messages=[{"role": "user", "content": "q"}],
    )
    planner = pc.planner
    assert isinstance(planner, DefaultPlanner)
    ratio, calibrated = planner._state.calibration.ratio("claude-sonnet-5")
    assert calibrated and 3.5 < ratio < 5.0  # the emulator bills 4 bytes a token
    pc.close()


def test_responses_conversation_with_tool_output_reads_prior_turns(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    cases: list[tuple[Mode, str]] = [("safe", ""), ("auto", "Today is 2026-11-2{turn}.\n")]
    for mode, dated in cases:
        emu.reset()
        client = gpt(emu, pc_for(tmp_path / mode, clock, mode))
        items: list[Any] = [{"role": "user", "content": "Find the report. " * 50}]
        for turn in range(3):
            client.responses.create(
                model="gpt-6.1-sol", instructions=dated.format(turn=turn) + LONG, input=items
            )
            call = {"type": "function_call", "call_id": f"c{turn}", "name": "search"}
            items.append({**call, "arguments": '{"q": "report", "k": 3}'})
            out = {"type": "function_call_output", "call_id": f"c{turn}"}
            items.append({**out, "output": f"result {turn} " * 80})
            clock.advance(15)
        calls = emu.calls
        assert [c.status for c in calls] == [200, 200, 200]
        assert calls[1].cache_read_tokens > 0
        body = calls[-1].request_body
        assert body is not None
        if mode == "safe":
            assert body["instructions"] == LONG
        else:  # gpt-5.6+ in auto: the instructions travel as a cacheable developer message
            assert "instructions" not in body
            assert body["input"][0]["content"][0]["text"] == LONG
        if mode == "safe":  # each turn reads what the previous one wrote
            assert calls[2].cache_read_tokens > calls[1].cache_read_tokens
        else:  # the date moved after everything cached
            assert body["input"][-1]["content"].startswith("Today is")
