"""Quick start: wrap an OpenAI client in one line; a repeated question is answered locally.

Shows that the wrapped client is still an ``openai.OpenAI``, that asking the same question
twice makes one upstream call (the emulator's own call log is the ground truth), that the
replay is the same typed ``ChatCompletion``, and how ``x-promptcache`` marks hits.

    python examples/quickstart_openai.py

Runs offline against the built-in emulator: no API key, no network. With the real API you
would leave out ``base_url`` and keep your ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import tempfile

import openai

import promptcache
from promptcache.testing import Emulator


def main() -> None:
    with Emulator() as emu:  # an offline OpenAI/Anthropic look-alike on loopback
        pc = promptcache.PromptCache(directory=tempfile.mkdtemp())
        bare = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-offline")
        client = pc.wrap(bare)  # the one line; promptcache.wrap(bare) uses the default cache
        print("still an openai.OpenAI:", isinstance(client, openai.OpenAI))

        ask = {
            "model": "gpt-5.5",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
        }
        first = client.chat.completions.create(**ask)
        print(f"1st call: upstream calls so far = {len(emu.calls)}")
        second = client.chat.completions.create(**ask)
        print(f"2nd call: upstream calls so far = {len(emu.calls)}  (served locally)")

        print("same type:", type(second).__name__, type(second) is type(first))
        print("same object, field by field:", second == first)
        print("answer:", second.choices[0].message.content)

        # Raw responses show where an answer came from.
        raw = client.chat.completions.with_raw_response.create(**ask)
        print("x-promptcache header on the third call:", raw.headers["x-promptcache"])
        other = client.chat.completions.with_raw_response.create(
            model="gpt-5.5", messages=[{"role": "user", "content": "And of Italy?"}]
        )
        print("x-promptcache header on a new question:", other.headers["x-promptcache"])

        s = pc.ledger.summary()
        print(f"ledger: {s.requests} requests, {s.local_hits} served locally, paid ${s.cost:.5f}")
        print(f"        avoided by local hits: ${s.avoided_by_local_hits:.5f}")
        assert len(emu.calls) == 2 and s.local_hits == 2
        bare.close()
        pc.close()


if __name__ == "__main__":
    main()
