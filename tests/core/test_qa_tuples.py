"""QA regression: sequences passed as tuples reach the provider intact through the fast path.

The SDKs accept any iterable for ``messages`` (a tuple of history turns is common); the bare
SDK sends them as JSON arrays. The fast path handed the user's tuple to the planner, which
expects JSON (lists) and sent ``"messages": []`` instead.
"""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai
from openai.types.chat import ChatCompletionMessageParam

from promptcache._wrap import PromptCache
from promptcache.testing import Emulator


def test_openai_tuple_messages(tmp_path: Path) -> None:
    msgs: tuple[ChatCompletionMessageParam, ...] = (
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    )
    with Emulator() as emu, PromptCache(directory=tmp_path) as pc:
        base = openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0)
        first = pc.wrap(base).chat.completions.create(model="gpt-4o", messages=msgs)
        again = pc.wrap(base).chat.completions.create(model="gpt-4o", messages=list(msgs))
        base.close()
        sent = emu.calls[0].request_body
        assert sent is not None and sent["messages"] == list(msgs)
        assert again == first and len(emu.calls) == 1


def test_anthropic_tuple_content(tmp_path: Path) -> None:
    with Emulator() as emu, PromptCache(directory=tmp_path) as pc:
        base = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0)
        pc.wrap(base).messages.create(
            model="claude-sonnet-4-6",
            max_tokens=10,
            system=({"type": "text", "text": "be brief"},),
            messages=({"role": "user", "content": ({"type": "text", "text": "hi"},)},),
        )
        base.close()
        body = emu.calls[0].request_body
        assert body is not None
        assert body["messages"][0]["content"][0]["text"] == "hi"
        assert body["system"][0]["text"] == "be brief"
