"""QA regression: a memoized SDK response keeps its public ``_request_id`` on a hit.

Both SDKs document ``_request_id`` (and Anthropic's ``_workspace_id``) as public; code that
logs ``reply._request_id`` worked on the live call and raised ``AttributeError`` on a hit.
"""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from promptcache._wrap import PromptCache
from promptcache.testing import Emulator


def test_memoized_responses_keep_request_ids(tmp_path: Path) -> None:
    with Emulator() as emu, PromptCache(directory=tmp_path) as pc:
        oa = openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0)
        an = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0)

        # The clients are captured and cannot be keyed: the namespace vouches for identity.
        @pc.cached(namespace="ask_openai")
        def ask_openai(q: str) -> ChatCompletion:
            return oa.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": q}]
            )

        @pc.cached(namespace="ask_anthropic")
        def ask_anthropic(q: str) -> tuple[Message, int]:
            reply = an.messages.create(
                model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": q}]
            )
            return reply, 1

        live, hit = ask_openai("hi"), ask_openai("hi")
        assert live._request_id and hit._request_id == live._request_id
        assert hit == live and hit.model_dump() == live.model_dump()
        (alive, _), (ahit, _) = ask_anthropic("hi"), ask_anthropic("hi")
        assert alive._request_id and ahit._request_id == alive._request_id
        assert ahit._workspace_id == alive._workspace_id
        assert ahit.model_dump() == alive.model_dump()
        assert len(emu.calls) == 2
        oa.close()
        an.close()
