"""The emulator's strict mode: unknown request fields refused the way compatible servers do."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from promptcache.testing import Emulator, StrictServer, StrictStyle
from promptcache.testing._strict import CHAT_FIELDS

MSG: list[Any] = [{"role": "user", "content": "hello"}]
PROXY = "https://llm-proxy.corp.example/v1"


def _client(emu: Emulator, base_url: str = PROXY) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="k",
        base_url=base_url,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(transport=emu.transport()),
    )


# style -> (status, exception, a fragment of the error body naming the field)
STYLES: dict[StrictStyle, tuple[int, type[openai.APIStatusError], str]] = {
    "openai": (400, openai.BadRequestError, "Unrecognized request argument supplied: trace_tag"),
    "pydantic": (422, openai.UnprocessableEntityError, "'loc': ['body', 'trace_tag']"),
    "vllm": (400, openai.BadRequestError, "'loc': ('body', 'trace_tag')"),
    "litellm": (400, openai.BadRequestError, "does not support parameters: ['trace_tag']"),
    "tgi": (422, openai.UnprocessableEntityError, "unknown field `trace_tag`, expected one of"),
}


@pytest.mark.parametrize("style", list(STYLES))
def test_each_style_refuses_an_unknown_field_in_its_servers_words(style: StrictStyle) -> None:
    status, exc_type, fragment = STYLES[style]
    with Emulator(strict=style) as emu, _client(emu) as client:
        with pytest.raises(exc_type) as info:
            client.chat.completions.create(
                model="gpt-5.5", messages=MSG, extra_body={"trace_tag": "x"}
            )
        assert info.value.status_code == status
        assert fragment in str(info.value.body) or fragment in info.value.message
        # A request with only known fields (the SDK's usual ones) is served.
        ok = client.chat.completions.create(
            model="gpt-5.5",
            messages=MSG,
            temperature=0.2,
            max_completion_tokens=20,
            stream=False,
            response_format={"type": "text"},
        )
        assert ok.choices[0].message.content
    refused, served = emu.calls
    assert (refused.status, refused.input_tokens, served.status) == (status, 0, 200)


def test_a_nested_breakpoint_is_refused_with_its_path() -> None:
    content: list[Any] = [
        {"type": "text", "text": "rules", "prompt_cache_breakpoint": {"mode": "explicit"}}
    ]
    with Emulator(strict="openai") as emu, _client(emu) as client:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model="gpt-6.1-sol", messages=[{"role": "system", "content": content}, *MSG]
            )
        assert info.value.body == {
            "message": "Unknown parameter: 'messages[0].content[0].prompt_cache_breakpoint'.",
            "type": "invalid_request_error",
            "param": "messages[0].content[0].prompt_cache_breakpoint",
            "code": "unknown_parameter",
        }
        # A server that knows the field takes it.
        emu.strict = StrictServer("openai", known=CHAT_FIELDS | {"prompt_cache_breakpoint"})
        client.chat.completions.create(
            model="gpt-6.1-sol", messages=[{"role": "system", "content": content}, *MSG]
        )
    assert [c.status for c in emu.calls] == [400, 200]


def test_pydantic_style_names_every_unknown_field_and_responses_have_their_own_list() -> None:
    with Emulator(strict="pydantic") as emu, _client(emu) as client:
        with pytest.raises(openai.UnprocessableEntityError) as info:
            client.responses.create(
                model="gpt-6.1-sol",
                input=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "input_text",
                                "text": "hi",
                                "prompt_cache_breakpoint": {"mode": "explicit"},
                            }
                        ],
                    }
                ],
                instructions="be brief",
                prompt_cache_key="k",
            )
        body: Any = info.value.body
        assert [e["loc"] for e in body["detail"]] == [
            ["body", "prompt_cache_key"],
            ["body", "input", 0, "content", 0, "prompt_cache_breakpoint"],
        ]
        assert client.responses.create(model="gpt-6.1-sol", input="hi", instructions="x").id


def test_hosts_limit_strictness_and_anthropic_is_untouched() -> None:
    strict = StrictServer("openai", hosts=frozenset({"llm-proxy.corp.example"}))
    with Emulator(strict=strict) as emu:
        with _client(emu) as proxy, pytest.raises(openai.BadRequestError):
            proxy.chat.completions.create(model="gpt-5.5", messages=MSG, prompt_cache_key="k")
        with openai.OpenAI(
            api_key="k", http_client=openai.DefaultHttpxClient(transport=emu.transport())
        ) as native:
            native.chat.completions.create(model="gpt-5.5", messages=MSG, prompt_cache_key="k")
        emu.strict = StrictServer("pydantic")
        with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k") as claude:
            claude.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                messages=MSG,
                extra_body={"anything": 1},
            )
    assert [(c.host, c.status) for c in emu.calls][:2] == [
        ("llm-proxy.corp.example", 400),
        ("api.openai.com", 200),
    ]
    assert emu.calls[-1].status == 200


def test_litellm_passes_an_upstream_refusal_of_a_nested_field() -> None:
    content: list[Any] = [
        {"type": "text", "text": "rules", "prompt_cache_breakpoint": {"mode": "explicit"}}
    ]
    with (
        Emulator(strict=StrictServer("litellm")) as emu,
        _client(emu) as client,
        pytest.raises(openai.BadRequestError) as info,
    ):
        client.chat.completions.create(
            model="gpt-6.1-sol", messages=[{"role": "system", "content": content}, *MSG]
        )
    assert "Hosted_vllmException" in info.value.message
    assert "'prompt_cache_breakpoint')" in info.value.message
    assert emu.calls[0].error_type == "None"


def test_openrouter_style_model_names_follow_openais_rules() -> None:
    # Gateways name OpenAI's models "openai/..." and forward them without the prefix.
    with Emulator() as emu, _client(emu, "https://openrouter.ai/api/v1") as client:
        long: list[Any] = [{"role": "system", "content": "Shared rules for every answer. " * 200}]
        for q in ("a", "b"):
            client.chat.completions.create(
                model="openai/gpt-6.1-sol",
                messages=[*long, {"role": "user", "content": q}],
                extra_body={"prompt_cache_options": {"mode": "implicit"}},
            )
    assert all(c.status == 200 for c in emu.calls)
    assert emu.calls[0].cache_write_tokens > 0  # gpt-5.6+ rules: writes are billed


def test_strict_can_be_switched_on_and_off_by_style_name(emulator: Emulator) -> None:
    with _client(emulator) as client:
        client.chat.completions.create(model="gpt-5.5", messages=MSG, prompt_cache_key="k")
        emulator.strict = "tgi"
        with pytest.raises(openai.UnprocessableEntityError):
            client.chat.completions.create(model="gpt-5.5", messages=MSG, prompt_cache_key="k")
        emulator.strict = None
        client.chat.completions.create(model="gpt-5.5", messages=MSG, prompt_cache_key="k")
    assert [c.status for c in emulator.calls] == [200, 422, 200]
