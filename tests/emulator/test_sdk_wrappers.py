"""Raw and streaming response wrappers, beta routes and concurrency against the emulator."""

from __future__ import annotations

import threading
from typing import Any

import anthropic
import openai

from promptcache.testing import Emulator

HELLO: Any = [{"role": "user", "content": "hello"}]


def test_with_raw_response_headers_and_parse(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().usage is not None
    araw = ant.messages.with_raw_response.create(
        model="claude-sonnet-5", max_tokens=5, messages=HELLO
    )
    assert araw.headers["request-id"].startswith("req_")
    assert araw.parse().usage.output_tokens == 5


def test_with_streaming_response(oai: openai.OpenAI) -> None:
    with oai.responses.with_streaming_response.create(
        model="gpt-4.1", input="hi", stream=True
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line.startswith("event: ")]
    assert lines[0] == "event: response.created"
    assert lines[-1] == "event: response.completed"


def test_beta_messages_route(ant: anthropic.Anthropic, emulator: Emulator) -> None:
    msg = ant.beta.messages.create(model="claude-sonnet-5", max_tokens=5, messages=HELLO)
    assert msg.usage.output_tokens == 5
    assert emulator.calls[-1].api == "anthropic.messages"


def test_concurrent_clients(emulator: Emulator, oai: openai.OpenAI) -> None:
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for _ in range(5):
                oai.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": f"t{i}"}]
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(emulator.calls) == 40
    assert len({c.response_id for c in emulator.calls}) == 40
