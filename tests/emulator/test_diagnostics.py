"""Cache-miss diagnostics: Anthropic `diagnostics`, OpenAI `comparison_response_id`."""

from __future__ import annotations

from typing import Any

import anthropic
import openai

SYSTEM = "Stable instructions for the assistant. " * 150
TOOL: Any = {"name": "lookup", "input_schema": {"type": "object"}}


def _ask(client: anthropic.Anthropic, **kw: Any) -> Any:
    kw.setdefault("model", "claude-sonnet-5")
    kw.setdefault("max_tokens", 20)
    kw.setdefault("system", SYSTEM)
    kw.setdefault("tools", [TOOL])
    kw.setdefault("messages", [{"role": "user", "content": "first"}])
    return client.messages.create(**kw)


def test_anthropic_cache_miss_reasons(ant: anthropic.Anthropic) -> None:
    first = _ask(ant, diagnostics={"previous_message_id": None})
    assert first.diagnostics is not None and first.diagnostics.cache_miss_reason is None
    prev = {"previous_message_id": first.id}

    grown = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    appended = _ask(ant, messages=grown, diagnostics=prev)
    assert appended.diagnostics is not None and appended.diagnostics.cache_miss_reason is None

    edited = _ask(ant, messages=[{"role": "user", "content": "FIRST"}], diagnostics=prev)
    reason: Any = edited.diagnostics.cache_miss_reason if edited.diagnostics else None
    assert reason.type == "messages_changed"
    assert 0 < reason.cache_missed_input_tokens < 10

    system = _ask(ant, system=SYSTEM + "!", diagnostics=prev)
    reason = system.diagnostics.cache_miss_reason if system.diagnostics else None
    assert reason.type == "system_changed"
    assert reason.cache_missed_input_tokens > 1400

    tools = _ask(ant, tools=[dict(TOOL, name="other")], diagnostics=prev)
    reason = tools.diagnostics.cache_miss_reason if tools.diagnostics else None
    assert reason.type == "tools_changed"

    model = _ask(ant, model="claude-opus-5", diagnostics=prev)
    reason = model.diagnostics.cache_miss_reason if model.diagnostics else None
    assert reason.type == "model_changed"

    choice = _ask(ant, tool_choice={"type": "none"}, diagnostics=prev)
    reason = choice.diagnostics.cache_miss_reason if choice.diagnostics else None
    assert reason.type == "unavailable"

    missing = _ask(ant, diagnostics={"previous_message_id": "msg_unknown"})
    reason = missing.diagnostics.cache_miss_reason if missing.diagnostics else None
    assert reason.type == "previous_message_not_found"
    # Without the parameter there is no diagnostics field at all.
    assert _ask(ant).diagnostics is None


def test_openai_comparison_response_id(oai: openai.OpenAI) -> None:
    first = oai.responses.create(model="gpt-5.6-sol", instructions=SYSTEM, input="one")

    def compare(**kw: Any) -> Any:
        kw.setdefault("model", "gpt-5.6-sol")
        kw.setdefault("instructions", SYSTEM)
        kw.setdefault("input", "one")
        opts: Any = {"comparison_response_id": first.id}
        resp = oai.responses.create(prompt_cache_options=opts, **kw)
        return resp.prompt_cache_diagnostics

    assert compare().type == "cache_hit"
    assert (
        compare(input=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]).type
        == "cache_hit"
    )
    changed = compare(input="uno")
    assert changed.type == "cache_miss" and changed.reason == "input_changed"
    assert changed.comparison_reusable_tokens == first.usage.input_tokens - 4  # type: ignore[union-attr]
    assert compare(prompt_cache_key="k").reason == "prompt_cache_key_changed"
    assert compare(reasoning={"effort": "high"}).reason == "reasoning_effort_changed"
    assert compare(model="gpt-6-luna").reason == "model_changed"
    assert compare(instructions="other").cache_missed_tokens > 1000
    opts: Any = {"comparison_response_id": "resp_missing"}
    nf = oai.responses.create(model="gpt-5.6-sol", input="x", prompt_cache_options=opts)
    assert nf.prompt_cache_diagnostics is not None
    assert nf.prompt_cache_diagnostics.type == "comparison_response_not_found"
