"""Typed, provider-prefixed configuration of the planner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from promptcache._api import RequestInfo
from promptcache._errors import ConfigError

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
        routing_limit_per_minute: OpenAI routes by prefix and ``prompt_cache_key``, and
            "traffic above 15 requests per minute can lead to overflow routing" to machines
            without the cache (https://developers.openai.com/docs/guides/prompt-caching). A
            prompt family sent faster than this over the last minute is spread over derived
            keys ``<key>-s1``, ``<key>-s2``, ... (the key itself stays shard 0), each below the
            limit; a conversation keeps its shard. ``None``: never shard.
        shard_user_keys: Also shard a ``prompt_cache_key`` the request carries (or that
            ``prompt_cache_key`` above supplies). Derived keys extend the app's key, so two
            tenants' keys are never merged; turn this off if the exact key must reach OpenAI.
        chained_responses: Whether the app chains Responses requests to stored responses
            (``previous_response_id``). In ``restructure="auto"`` long ``instructions`` on
            gpt-5.6+ with no ``previous_response_id``/``conversation`` travel as a leading
            developer input item so they can be cached. A stored response keeps its input items
            for a chained turn but not its instructions, so promptcache remembers (in memory,
            per ``PromptCache``) which responses carry moved instructions, and on a turn chained
            to one whose instructions are the same text it does not send them again; different
            or absent instructions go as written, and the model then also sees the earlier text
            as a developer message in the history. ``"auto"``: move on stored responses until
            a request of the prompt family is seen with ``previous_response_id``, then only
            where the response cannot be chained (``store=False``) or the history is sent
            inline. ``"never"``: the app never chains: always move. ``"always"``: the app chains
            its stored responses (perhaps from another process, where promptcache cannot know
            what it moved): never move on them, only on ``store=False`` or inline history.
            https://developers.openai.com/api/docs/guides/conversation-state

    """

    prompt_cache_key: str | KeyFunction | None = None
    endpoint: Literal["auto", "openai", "compatible"] = "auto"
    compatible_accepts_cache_key: bool = False
    explicit_breakpoints: bool = True
    chained_responses: Literal["auto", "never", "always"] = "auto"
    routing_limit_per_minute: float | None = 15.0
    shard_user_keys: bool = True

    def __post_init__(self) -> None:
        if self.chained_responses not in ("auto", "never", "always"):
            raise ConfigError(
                "OpenAIOptions.chained_responses must be 'auto', 'never' or 'always'; "
                f"got {self.chained_responses!r}"
            )
        limit = self.routing_limit_per_minute
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0
        ):
            raise ConfigError(
                "OpenAIOptions.routing_limit_per_minute must be a positive number of requests "
                f"per minute, or None not to shard; got {limit!r}"
            )
