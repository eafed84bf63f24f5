"""OpenAI prompt-caching rules, driven through the real openai SDK (PROVIDERS.md §2.1)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from promptcache.testing import Emulator

# 6,000 bytes -> 1,500 tokens; with its 16-byte header the system message ends at 6,016 bytes.
SYSTEM = "All answers must be short. " * 222 + "abcdef"
assert len(SYSTEM) == 6000
QUESTION: Any = {"type": "text", "text": "?"}


def _chat(client: openai.OpenAI, question: str, model: str = "gpt-4o", **kw: Any) -> Any:
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        **kw,
    )


def _messages(system: Any, user: Any) -> Any:
    msgs = [] if system is None else [{"role": "system", "content": system}]
    return [*msgs, {"role": "user", "content": user}]


def _cached(resp: Any) -> int:
    return int(resp.usage.prompt_tokens_details.cached_tokens)


# --------------------------------------------------------------------------- before gpt-5.6


def test_legacy_write_then_read_in_128_increments(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    first = _chat(client, "What is two plus two?")
    assert _cached(first) == 0
    second = _chat(client, "Name a colour.")
    # Shared bytes: system (6,016) + the user header (16) = 6,032 -> 11 chunks of 512 bytes.
    assert _cached(second) == 11 * 128 == 1408
    assert second.usage.prompt_tokens_details.cache_write_tokens is None
    call = emulator.calls[-1]
    assert (call.cache_read_tokens, call.cache_write_tokens) == (1408, 0)
    assert call.input_tokens == second.usage.prompt_tokens  # inclusive
    assert call.uncached_input_tokens == call.input_tokens - 1408
    # The identical request reads the longest 128-multiple of its own prompt.
    third = _chat(client, "Name a colour.")
    assert _cached(third) % 128 == 0
    assert _cached(third) == (third.usage.prompt_tokens - 4) // 128 * 128


def test_legacy_increments_grow_with_the_shared_prefix(
    emulator: Emulator, oai: openai.OpenAI
) -> None:
    client = oai
    base = [{"role": "system", "content": SYSTEM}]
    turns: list[dict[str, str]] = []
    cached = []
    for i in range(4):
        turns += [{"role": "user", "content": f"question {i} " + "x" * 700}]
        msgs: Any = base + turns
        resp = client.chat.completions.create(model="gpt-4.1", messages=msgs)
        cached.append(_cached(resp))
        turns.append({"role": "assistant", "content": resp.choices[0].message.content or ""})
    assert cached[0] == 0
    assert all(c % 128 == 0 for c in cached)
    assert cached[1] < cached[2] < cached[3]


def test_legacy_below_minimum_not_cached(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    short = "Be short. " * 300  # 3,000 bytes -> 750 tokens
    for _ in range(2):
        resp = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "system", "content": short}]
        )
        assert _cached(resp) == 0
        assert resp.usage is not None and resp.usage.prompt_tokens < 1024


def test_legacy_prompt_cache_key_scopes_entries(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    _chat(client, "q1", prompt_cache_key="tenant-a")
    assert _cached(_chat(client, "q2", prompt_cache_key="tenant-b")) == 0
    assert _cached(_chat(client, "q3", prompt_cache_key="tenant-a")) == 1408
    assert emulator.calls[-1].prompt_cache_key == "tenant-a"
    # Different models never share a cache.
    assert _cached(_chat(client, "q4", model="gpt-4.1", prompt_cache_key="tenant-a")) == 0


def test_legacy_in_memory_retention_expires_on_clock(
    emulator: Emulator, oai: openai.OpenAI
) -> None:
    client = oai
    # in_memory is asked for: since issue 10 the default before gpt-5.5 is 24h (non-ZDR orgs).
    mem: Any = {"prompt_cache_retention": "in_memory"}
    _chat(client, "q1", **mem)
    emulator.clock.advance(599)
    assert _cached(_chat(client, "q2", **mem)) == 1408  # a hit refreshes the lifetime
    emulator.clock.advance(599)
    assert _cached(_chat(client, "q3", **mem)) == 1408
    emulator.clock.advance(601)
    assert _cached(_chat(client, "q4", **mem)) == 0


def test_legacy_24h_retention(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    _chat(client, "q1", prompt_cache_retention="24h")
    emulator.clock.advance(3 * 3600)
    assert _cached(_chat(client, "q2", prompt_cache_retention="24h")) == 1408
    # gpt-5.5 defaults to 24h retention.
    _chat(client, "q1", model="gpt-5.5")
    emulator.clock.advance(3 * 3600)
    assert _cached(_chat(client, "q2", model="gpt-5.5")) == 1408


def test_legacy_rejects_gpt56_parameters(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    with pytest.raises(openai.BadRequestError) as info:
        _chat(client, "q", prompt_cache_options={"mode": "explicit"})
    assert info.value.status_code == 400
    assert info.value.code == "unsupported_parameter"
    assert info.value.param == "prompt_cache_options"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "hi",
                            "prompt_cache_breakpoint": {"mode": "explicit"},
                        }
                    ],
                }
            ],
        )
    assert info.value.param == "messages[0].content[0].prompt_cache_breakpoint"
    assert emulator.calls[-1].status == 400
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4.1", input="hi", prompt_cache_options={"ttl": "12h"})
    assert info.value.param == "prompt_cache_options"
    marked: Any = [{"role": "user", "content": [_marked("hi")]}]
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4o", input=marked)
    assert info.value.param == "input[0].content[0].prompt_cache_breakpoint"


# --------------------------------------------------------------------------- gpt-5.6 and later


def test_gpt56_implicit_write_is_billed_then_read(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    first = _chat(client, "hello", model="gpt-5.6-sol")
    details = first.usage.prompt_tokens_details
    total = first.usage.prompt_tokens
    # The implicit breakpoint sits at the end of the last message: all but the reply primer.
    assert details.cache_write_tokens == total - 4
    assert details.cached_tokens == 0
    call = emulator.calls[-1]
    assert call.cache_write_by_ttl == {"30m": total - 4}
    assert call.uncached_input_tokens == 4
    second = _chat(client, "hello", model="gpt-5.6-sol")
    assert second.usage.prompt_tokens_details.cached_tokens == total - 4  # not rounded to 128
    assert second.usage.prompt_tokens_details.cache_write_tokens == 0


def test_gpt56_growing_conversation_reads_previous_turn(
    emulator: Emulator, oai: openai.OpenAI
) -> None:
    client = oai
    msgs: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "a"}]
    first = client.chat.completions.create(model="gpt-6-luna", messages=msgs)
    msgs += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "b"},
    ]
    second = client.chat.completions.create(model="gpt-6-luna", messages=msgs)
    assert first.usage is not None and second.usage is not None
    d = second.usage.prompt_tokens_details
    assert d is not None
    assert d.cached_tokens == first.usage.prompt_tokens - 4
    assert d.cache_write_tokens == second.usage.prompt_tokens - 4 - d.cached_tokens


def test_gpt56_no_fallback_to_unmarked_prefix(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    _chat(client, "first question", model="gpt-5.6-sol")
    # Same system, different question: the only written boundary (end of the old question) is
    # not a prefix of this prompt, and there is no fallback to the longest unmarked prefix.
    resp = _chat(client, "second question", model="gpt-5.6-sol")
    assert _cached(resp) == 0


def _marked(text: str, ttl: str | None = None) -> dict[str, Any]:
    bp: dict[str, Any] = {"mode": "explicit"}
    if ttl:
        bp["ttl"] = ttl
    return {"type": "text", "text": text, "prompt_cache_breakpoint": bp}


def test_gpt56_explicit_breakpoint_caches_the_system_prompt(
    emulator: Emulator, oai: openai.OpenAI
) -> None:
    client = oai
    opts: Any = {"mode": "explicit"}
    for i, question in enumerate(["one", "two"]):
        resp = client.chat.completions.create(
            model="gpt-5.6-sol",
            messages=_messages([_marked(SYSTEM)], question),
            prompt_cache_options=opts,
        )
        assert resp.usage is not None and resp.usage.prompt_tokens_details is not None
        if i == 0:
            assert resp.usage.prompt_tokens_details.cache_write_tokens == 1504
        else:
            assert resp.usage.prompt_tokens_details.cached_tokens == 1504
            assert resp.usage.prompt_tokens_details.cache_write_tokens == 0


def test_gpt56_explicit_mode_without_breakpoints_does_not_cache(
    emulator: Emulator, oai: openai.OpenAI
) -> None:
    client = oai
    for _ in range(2):
        resp = _chat(client, "q", model="gpt-5.6-sol", prompt_cache_options={"mode": "explicit"})
        assert _cached(resp) == 0
        assert resp.usage.prompt_tokens_details.cache_write_tokens == 0


def test_gpt56_at_most_four_writes_latest_explicit_win(
    emulator: Emulator, oai: openai.OpenAI
) -> None:
    client = oai
    parts = [_marked(f"part {i} " + "y" * 4400) for i in range(5)]
    resp = client.chat.completions.create(
        model="gpt-5.6-sol",
        messages=_messages(None, parts),
        prompt_cache_options={"mode": "explicit"},
    )
    assert resp.usage is not None and resp.usage.prompt_tokens_details is not None
    written = resp.usage.prompt_tokens_details.cache_write_tokens
    assert written is not None and written == resp.usage.prompt_tokens - 4  # up to the 5th part
    # The first part's breakpoint was not among the latest four: nothing was written there.
    probe = client.chat.completions.create(
        model="gpt-5.6-sol",
        messages=_messages(None, [parts[0], QUESTION]),
        prompt_cache_options={"mode": "explicit"},
    )
    assert _cached(probe) == 0
    # The second part's breakpoint was written: a prompt sharing two parts reads it.
    probe2 = client.chat.completions.create(
        model="gpt-5.6-sol",
        messages=_messages(None, [*parts[:2], QUESTION]),
        prompt_cache_options={"mode": "explicit"},
    )
    # user header (16 bytes) + two parts of 4,407 bytes = 8,830 bytes -> 2,208 tokens.
    assert _cached(probe2) == 2208


def test_gpt56_30m_ttl_expires_and_refreshes(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    _chat(client, "q", model="gpt-5.6-sol")
    emulator.clock.advance(1700)
    assert _cached(_chat(client, "q", model="gpt-5.6-sol")) > 0  # refreshed here
    emulator.clock.advance(1700)
    assert _cached(_chat(client, "q", model="gpt-5.6-sol")) > 0
    emulator.clock.advance(1801)
    resp = _chat(client, "q", model="gpt-5.6-sol")
    assert _cached(resp) == 0
    assert resp.usage.prompt_tokens_details.cache_write_tokens > 0


def test_gpt56_chat_rejects_12h_request_ttl(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        _chat(oai, "q", model="gpt-5.6-sol", prompt_cache_options={"ttl": "12h"})
    assert info.value.param == "prompt_cache_options.ttl"


def test_responses_12h_and_30m_write_split(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    inputs: Any = [
        {
            "role": "developer",
            "content": [
                {
                    "type": "input_text",
                    "text": SYSTEM,
                    "prompt_cache_breakpoint": {"mode": "explicit", "ttl": "12h"},
                }
            ],
        },
        {"role": "user", "content": "question " + "z" * 2000},
    ]
    resp = client.responses.create(model="gpt-5.6-sol", input=inputs)
    assert resp.usage is not None
    d = resp.usage.input_tokens_details
    assert d.cache_write_tokens_details is not None
    assert d.cache_write_tokens_details.ttl_12h_tokens == 1504
    assert d.cache_write_tokens_details.ttl_30m_tokens == resp.usage.input_tokens - 4 - 1504
    assert d.cache_write_tokens == resp.usage.input_tokens - 4
    assert resp.prompt_cache_options is not None and resp.prompt_cache_options.ttl == "30m"
    assert emulator.calls[-1].cache_write_by_ttl == {
        "12h": 1504,
        "30m": resp.usage.input_tokens - 4 - 1504,
    }
    # After 31 minutes only the 12h entry is alive.
    emulator.clock.advance(31 * 60)
    later = client.responses.create(model="gpt-5.6-sol", input=inputs)
    assert later.usage is not None
    assert later.usage.input_tokens_details.cached_tokens == 1504
    # Request-level 12h applies to the implicit breakpoint as well.
    again = client.responses.create(
        model="gpt-5.6-sol", input="fresh " * 1000, prompt_cache_options={"ttl": "12h"}
    )
    assert again.usage is not None
    details = again.usage.input_tokens_details.cache_write_tokens_details
    assert details is not None and details.ttl_12h_tokens == again.usage.input_tokens - 4


def test_responses_prewarm_writes_without_output(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    warm = client.responses.create(
        model="gpt-6-luna", input=SYSTEM, prompt_cache_options={"prewarm": True}
    )
    assert warm.output == []
    assert warm.usage is not None and warm.usage.output_tokens == 0
    assert warm.usage.input_tokens_details.cache_write_tokens == warm.usage.input_tokens - 4
    real = client.responses.create(model="gpt-6-luna", input=SYSTEM)
    assert real.usage is not None
    assert real.usage.input_tokens_details.cached_tokens == warm.usage.input_tokens - 4


def test_responses_previous_response_id_chains_history(
    emulator: Emulator, oai: openai.OpenAI
) -> None:
    client = oai
    first = client.responses.create(model="gpt-5.6-sol", input=SYSTEM)
    second = client.responses.create(
        model="gpt-5.6-sol", input="and then?", previous_response_id=first.id
    )
    assert first.usage is not None and second.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens
    assert second.usage.input_tokens_details.cached_tokens == first.usage.input_tokens - 4
    assert second.previous_response_id == first.id
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-5.6-sol", input="x", previous_response_id="resp_nope")
    assert info.value.code == "previous_response_not_found"


def test_responses_legacy_model_usage_shape(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    client.responses.create(model="gpt-4.1", input=SYSTEM + " one")
    resp = client.responses.create(model="gpt-4.1", input=SYSTEM + " two")
    assert resp.usage is not None
    d = resp.usage.input_tokens_details
    assert d.cached_tokens == 1408
    assert d.cache_write_tokens == 0 and d.cache_write_tokens_details is None
