"""Structured outputs and tool calls good enough for the SDKs' parse() helpers and agent loops."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import anthropic
import openai
from pydantic import BaseModel, Field

from promptcache.testing import Emulator


class Address(BaseModel):
    city: str
    zip_code: str = Field(min_length=5)


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]
    role: Literal["admin", "user"]
    born: datetime
    address: Address
    nickname: str | None


class Weather(BaseModel):
    city: str
    unit: Literal["c", "f"]


def test_chat_parse_returns_a_model_instance(oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.parse(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Who?"}],
        response_format=Person,
    )
    person = resp.choices[0].message.parsed
    assert isinstance(person, Person)
    assert person.role == "admin"
    assert len(person.address.zip_code) >= 5


def test_chat_forced_tool_call_parses(oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.parse(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[openai.pydantic_function_tool(Weather)],
        tool_choice={"type": "function", "function": {"name": "Weather"}},
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert calls[0].function.name == "Weather"
    assert isinstance(calls[0].function.parsed_arguments, Weather)


def test_chat_tool_call_streams(oai: openai.OpenAI) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "parameters": {
                    "type": "object",
                    "properties": {"tz": {"type": "string"}},
                    "required": ["tz"],
                },
            },
        }
    ]
    with oai.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": "call get_time please"}],
        tools=tools,
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert calls[0].function.name == "get_time"
    assert calls[0].function.arguments == '{"tz":"text"}'


def test_responses_parse_and_tool_loop(oai: openai.OpenAI) -> None:
    parsed = oai.responses.parse(model="gpt-4.1", input="Who?", text_format=Person)
    assert isinstance(parsed.output_parsed, Person)
    tools: Any = [
        {
            "type": "function",
            "name": "lookup",
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
                "additionalProperties": False,
            },
        }
    ]
    first = oai.responses.create(model="gpt-4.1", input="please lookup cats", tools=tools)
    call = next(o for o in first.output if o.type == "function_call")
    assert call.name == "lookup"
    second = oai.responses.create(
        model="gpt-4.1",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "meow"}],
        tools=tools,
    )
    assert second.output_text  # after the tool result the model answers in text


def test_anthropic_parse_output_format(ant: anthropic.Anthropic) -> None:
    msg = ant.messages.parse(
        model="claude-sonnet-5",
        max_tokens=200,
        messages=[{"role": "user", "content": "Weather?"}],
        output_format=Weather,
    )
    assert isinstance(msg.parsed_output, Weather)
    assert msg.parsed_output.unit == "c"


def test_anthropic_agent_loop(ant: anthropic.Anthropic) -> None:
    tools: Any = [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": Weather.model_json_schema(),
        }
    ]
    messages: list[Any] = [{"role": "user", "content": "Use get_weather for Paris"}]
    first = ant.messages.create(
        model="claude-sonnet-5", max_tokens=100, tools=tools, messages=messages
    )
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "text", "unit": "c"}
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
        },
    ]
    second = ant.messages.create(
        model="claude-sonnet-5", max_tokens=100, tools=tools, messages=messages
    )
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"
    # tool_choice "any" forces a call even without a mention; the stream carries it too.
    with ant.messages.stream(
        model="claude-sonnet-5",
        max_tokens=100,
        tools=tools,
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "hi"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use"
    assert final.content[0].input == {"city": "text", "unit": "c"}


def test_anthropic_thinking_blocks_stream(ant: anthropic.Anthropic) -> None:
    with ant.messages.stream(
        model="claude-sonnet-5",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think"}],
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].signature  # type: ignore[union-attr]
    assert final.usage.output_tokens == 8 + 24


def test_emulator_records_what_it_billed(emulator: Emulator, oai: openai.OpenAI) -> None:
    oai.chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], response_format=Weather
    )
    call = emulator.calls[-1]
    assert call.output_tokens == 7  # '{"city":"text","unit":"c"}' = 26 bytes -> 7 tokens
