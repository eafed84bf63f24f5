"""Typed, provider-prefixed configuration of the planner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from promptcache._api import RequestInfo

__all__ = ["AnthropicOptions", "OpenAIOptions"]


@dataclass(frozen=True, slots=True)
class AnthropicOptions:
    """How the planner treats Anthropic Messages requests.

    Attributes:
        min_tokens: Override of the model's minimum cacheable prefix (tokens). ``None`` uses
            the built-in table (https://platform.claude.com/docs/en/build-with-claude/prompt-caching#cache-limitations),
            and 4,096 for models it does not know.
        ttl: ``"auto"`` chooses 5m or 1h per prefix family from the observed reuse intervals
            and the write premium (1.25x for 5m, 2x for 1h); ``"5m"`` or ``"1h"`` fixes it.

    """

    min_tokens: int | None = None
    ttl: Literal["auto", "5m", "1h"] = "auto"


KeyFunction = Callable[[RequestInfo, Mapping[str, Any]], str | None]


@dataclass(frozen=True, slots=True)
class OpenAIOptions:
    """How the planner treats OpenAI Chat Completions and Responses requests.

    Attributes:
        prompt_cache_key: A fixed ``prompt_cache_key``, or a function ``(info, body) -> key``
            (``None`` from it means "derive one"). A key the request already carries is never
            replaced. https://developers.openai.com/api/docs/guides/prompt-caching
        endpoint: ``"auto"`` treats ``api.openai.com`` and Azure OpenAI hosts as OpenAI and
            every other base URL as an OpenAI-compatible endpoint; ``"openai"`` or
            ``"compatible"`` says so explicitly (e.g. for a proxy in front of OpenAI).
        compatible_accepts_cache_key: On a compatible endpoint, add ``prompt_cache_key`` too
            (some accept it for routing). Without it nothing is added there. An endpoint that
            answers 400 naming an added parameter is remembered and not sent it again.
        explicit_breakpoints: On gpt-5.6+ place ``prompt_cache_breakpoint`` on content parts
            and send ``prompt_cache_options`` with ``mode="explicit"``, so only prefixes that
            will be read again are written (writes cost 1.25x there).
        chained_responses: Whether the app may chain Responses requests to responses it sent
            (``previous_response_id``, a ``conversation``). In ``restructure="auto"`` long
            ``instructions`` on gpt-5.6+ travel as a leading developer input item so they can
            be cached; a stored response keeps its input items for a chained follow-up but not
            its instructions, so under ``"auto"`` that is done only where the response cannot
            be chained (``store=False``, or the history is sent inline). ``"never"`` declares
            that the app never chains, so stored responses get it too.
            https://developers.openai.com/api/docs/guides/conversation-state

    """

    prompt_cache_key: str | KeyFunction | None = None
    endpoint: Literal["auto", "openai", "compatible"] = "auto"
    compatible_accepts_cache_key: bool = False
    explicit_breakpoints: bool = True
    chained_responses: Literal["auto", "never"] = "auto"
