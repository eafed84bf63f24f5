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
        endpoint: Which base URLs get OpenAI's caching hints (``prompt_cache_key``, and on
            gpt-5.6+ the breakpoints and ``prompt_cache_options``). ``"auto"`` decides per
            request: OpenAI and Azure OpenAI hosts, and gateway routes that only reach OpenAI
            (Cloudflare AI Gateway ``.../openai``, Helicone's ``oai.helicone.ai``), get them;
            an Ollama server (port 11434) does not; any other base URL — a LiteLLM proxy,
            OpenRouter, Portkey, a corporate proxy, vLLM — gets them when the model is an
            OpenAI model (``gpt-4o``, ``gpt-5.6-sol``, ``o3``, ``chatgpt-4o-latest``, also
            ``openai/gpt-5.6-sol``; not ``gpt-oss``). ``"openai"`` sends them everywhere (a
            gateway whose model aliases hide the name); ``"compatible"`` nowhere.
        compatible_accepts_cache_key: Where the hints are withheld, add ``prompt_cache_key``
            anyway (some compatible servers use it for routing). An endpoint that answers
            400/422 naming a field promptcache added gets the call again without any of them,
            once, and none of them again from this ``PromptCache`` (``HintRejectedWarning``,
            once per endpoint).
        explicit_breakpoints: On gpt-5.6+ place ``prompt_cache_breakpoint`` on content parts
            and send ``prompt_cache_options`` with ``mode="explicit"``, so only prefixes that
            will be read again are written (writes cost 1.25x there).

    """

    prompt_cache_key: str | KeyFunction | None = None
    endpoint: Literal["auto", "openai", "compatible"] = "auto"
    compatible_accepts_cache_key: bool = False
    explicit_breakpoints: bool = True
