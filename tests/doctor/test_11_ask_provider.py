"""DoctorOptions(ask_provider=True): the providers' own miss reasons, folded into findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import openai

import promptcache
from promptcache import DoctorOptions
from promptcache.testing import Emulator, FakeClock

from .kit import SYSTEM, claude, gpt, one, pc_for


def _dated(i: int) -> str:
    return f"Current time: 2026-12-04T10:0{i}:00Z\n{SYSTEM}"


def test_anthropic_is_asked_about_the_previous_message(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "off", doctor=DoctorOptions(ask_provider=True))
    cc: Any = {"type": "ephemeral"}
    with claude(emulator, pc) as client:
        for i in range(3):
            emulator.clock.advance(30)
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                system=[{"type": "text", "text": _dated(i), "cache_control": cc}],
                messages=[{"role": "user", "content": f"q{i}"}],
            )
    sent = [c.request_body or {} for c in emulator.calls]
    assert "diagnostics" not in sent[0]  # nothing to compare the first call with
    assert sent[1]["diagnostics"] == {"previous_message_id": emulator.calls[0].response_id}
    assert sent[2]["diagnostics"] == {"previous_message_id": emulator.calls[1].response_id}
    f = one(pc.doctor(), "prefix_changed")
    assert f.evidence.provider_reason is not None
    assert f.evidence.provider_reason.startswith("system_changed (")
    pc.close()


def test_openai_responses_compare_with_the_previous_response(
    emulator: Emulator, tmp_path: Path
) -> None:
    pc = pc_for(emulator, tmp_path, "safe", doctor=DoctorOptions(ask_provider=True))
    with gpt(emulator, pc) as client:
        for i in range(2):
            emulator.clock.advance(30)
            client.responses.create(model="gpt-6.1-sol", instructions=_dated(i), input=f"q{i}")
        # gpt-4.1 has no comparison: nothing is added there.
        client.responses.create(model="gpt-4.1", instructions=SYSTEM, input="x")
    second = emulator.calls[1].request_body or {}
    opts = second["prompt_cache_options"]
    assert opts["comparison_response_id"] == emulator.calls[0].response_id
    assert "prompt_cache_options" not in (emulator.calls[2].request_body or {})
    f = one(pc.doctor(), "prefix_changed")
    assert f.evidence.provider_reason is not None
    assert f.evidence.provider_reason.startswith("input_changed") or "instructions" in (
        f.evidence.provider_reason
    )
    pc.close()


def test_off_by_default(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "off")
    with claude(emulator, pc) as client:
        for i in range(2):
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                system=_dated(i),
                messages=[{"role": "user", "content": "q"}],
            )
    assert all("diagnostics" not in (c.request_body or {}) for c in emulator.calls)
    pc.close()


def test_an_endpoint_that_refuses_the_question_is_not_asked_again(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    def server(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body)
        if "diagnostics" in body:
            return httpx2.Response(
                400,
                json={
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "diagnostics: Extra inputs are not permitted",
                    },
                },
            )
        return httpx2.Response(
            200,
            json={
                "id": f"msg_{len(seen)}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": "ok"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 3000, "output_tokens": 1},
            },
        )

    import anthropic

    clock = FakeClock(start=1_800_000_000.0)
    pc = promptcache.PromptCache(
        tmp_path,
        response_cache=False,
        clock=clock.now,
        doctor=DoctorOptions(ask_provider=True),
    )
    raw = anthropic.Anthropic(
        base_url="https://proxy.example.com",
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(server)),
    )
    client = pc.wrap(raw)
    for i in range(3):
        msg = client.messages.create(
            model="claude-sonnet-5",
            max_tokens=5,
            system=SYSTEM,
            messages=[{"role": "user", "content": f"q{i}"}],
        )
        assert msg.content[0].type == "text"
    # Asked once (refused, retried without), never again.
    assert ["diagnostics" in b for b in seen] == [False, True, False, False]
    raw.close()
    pc.close()


def test_unexplained_misses_take_the_providers_reason(tmp_path: Path) -> None:
    # A provider that reads nothing and says why: the doctor's own analysis finds no cause.
    def server(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        tokens = len(request.content) // 4
        answer: dict[str, Any] = {
            "id": f"resp_{tokens}_{len(body.get('input', ''))}",
            "object": "response",
            "created_at": 0,
            "model": body["model"],
            "status": "completed",
            "output": [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": tokens,
                # The first call writes its prompt; the second reads none of it.
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": tokens},
                "output_tokens": 1,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": tokens + 1,
            },
        }
        if "comparison_response_id" in (body.get("prompt_cache_options") or {}):
            answer["prompt_cache_diagnostics"] = {
                "type": "cache_miss",
                "reason": "service_tier_changed",
                "cache_missed_tokens": 2000,
                "comparison_reusable_tokens": 2000,
            }
        return httpx2.Response(200, json=answer)

    clock = FakeClock(start=1_800_000_000.0)
    pc = promptcache.PromptCache(
        tmp_path,
        response_cache=False,
        clock=clock.now,
        doctor=DoctorOptions(ask_provider=True),
    )
    raw = openai.OpenAI(
        base_url="https://api.openai.com/v1",
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(server)),
    )
    client = pc.wrap(raw)
    for i in range(2):
        clock.advance(10)
        client.responses.create(model="gpt-6.1-sol", instructions=SYSTEM, input=f"q{i}")
    f = one(pc.doctor(), "scope_changed")
    assert f.evidence.fields == ("service_tier_changed",)
    assert f.summary == "the provider says: service_tier_changed (2000 tokens)"
    raw.close()
    pc.close()


def test_anthropic_streams_carry_the_answer_too(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "off", doctor=DoctorOptions(ask_provider=True))
    cc: Any = {"type": "ephemeral"}
    with claude(emulator, pc) as client:
        for i in range(2):
            emulator.clock.advance(30)
            with client.messages.stream(
                model="claude-sonnet-5",
                max_tokens=5,
                system=[{"type": "text", "text": _dated(i), "cache_control": cc}],
                messages=[{"role": "user", "content": "q"}],
            ) as stream:
                stream.get_final_message()
    sent = emulator.calls[1].request_body or {}
    assert sent["diagnostics"] == {"previous_message_id": emulator.calls[0].response_id}
    reason = one(pc.doctor(), "prefix_changed").evidence.provider_reason
    assert reason is not None and reason.startswith("system_changed (")
    pc.close()
