"""Streams: the first is passed through live, the second is replayed from the local cache.

A stream read to its end is recorded on the side; the same request again replays the recorded
events as a real ``openai.Stream`` (and through ``messages.stream(...)`` on Anthropic): the
same events, in the same order, one chunk at a time, with no upstream call.

    python examples/streaming_replay.py
"""

from __future__ import annotations

import tempfile

import anthropic
import openai

import promptcache
from promptcache.testing import Emulator


def main() -> None:
    with Emulator() as emu:
        pc = promptcache.PromptCache(directory=tempfile.mkdtemp())
        gpt = pc.wrap(openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-offline"))
        ask = {
            "model": "gpt-5.5",
            "messages": [{"role": "user", "content": "Tell me a very short story."}],
            "stream": True,
            "stream_options": {"include_usage": True},  # so the ledger sees the tokens
        }
        runs = []
        for label in ("live", "replay"):
            raw = gpt.chat.completions.with_raw_response.create(**ask)
            stream = raw.parse()
            chunks = list(stream)
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            runs.append(chunks)
            print(
                f"openai {label:<6} x-promptcache={raw.headers['x-promptcache']:<4} "
                f"type={type(stream).__name__}  chunks={len(chunks)}  "
                f"upstream calls={len(emu.calls)}"
            )
            print(f"       text: {text}")
        print("same chunks, same order:", runs[0] == runs[1])

        claude = pc.wrap(anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="sk-offline"))
        question = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "Name three colours."}],
        }
        texts = []
        for label in ("live", "replay"):
            # The stream manager works on replays too: events, text_stream, final message.
            with claude.messages.stream(**question) as stream:
                pieces = list(stream.text_stream)
                final = stream.get_final_message()
            texts.append(pieces)
            print(
                f"anthropic {label:<6} text deltas={len(pieces)}  "
                f"stop_reason={final.stop_reason}  upstream calls={len(emu.calls)}"
            )
        print("same text deltas:", texts[0] == texts[1])

        s = pc.ledger.summary()
        print(f"ledger: {s.requests} requests, {s.local_hits} replayed locally, paid ${s.cost:.5f}")
        pc.close()


if __name__ == "__main__":
    main()
