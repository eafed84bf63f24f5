"""Per-model caching rules, parsed from model names (see docs/emulator.md).

OpenAI: a name ``gpt-X[.Y]…`` (optionally ``ft:``-prefixed) is "gpt-5.6 or later" when
(X, Y) >= (5, 6), e.g. ``gpt-5.6-sol``, ``gpt-6-luna``, ``gpt-6.1-terra``; everything else
(``gpt-4o``, ``gpt-5.5``, ``o3``, …) follows the older implicit-caching rules.

Anthropic: minimum cacheable prefix per model from PROVIDERS.md §3.1; unknown models use
:data:`ANTHROPIC_DEFAULT_MINIMUM`.
"""

from __future__ import annotations

import re

__all__ = [
    "ANTHROPIC_DEFAULT_MINIMUM",
    "OPENAI_MINIMUM",
    "anthropic_minimum",
    "openai_default_retention",
    "openai_generation",
    "openai_has_explicit_caching",
]

OPENAI_MINIMUM = 1024
OPENAI_INCREMENT = 128
ANTHROPIC_DEFAULT_MINIMUM = 1024

# ``openai/`` is how gateways (OpenRouter, LiteLLM, Cloudflare's unified API) name OpenAI's
# models; they forward them to OpenAI without it.
_GPT = re.compile(r"^(?:openai/)?(?:ft:)?gpt-(\d+)(?:\.(\d+))?")

# Normalised Anthropic model (no "claude-" prefix, no date/"-latest" suffix) -> minimum tokens.
_ANTHROPIC_MINIMUMS: dict[str, int] = {
    **dict.fromkeys(["opus-5", "fable-5", "mythos-5", "opus-5-5", "fable-5-1", "mythos-5-1"], 512),
    **dict.fromkeys(
        [
            "opus-4-8",
            "sonnet-5",
            "sonnet-4-6",
            "sonnet-4-5",
            "opus-4-1",
            "opus-4",
            "opus-4-0",
            "sonnet-4",
            "sonnet-4-0",
        ],
        1024,
    ),
    **dict.fromkeys(["opus-4-7", "mythos-preview", "3-5-haiku", "haiku-3-5"], 2048),
    **dict.fromkeys(["opus-4-6", "opus-4-5", "haiku-4-5"], 4096),
}
_SUFFIX = re.compile(r"(-\d{8}|-latest|@.*|-v\d+(:\d+)?)$")


def openai_generation(model: str) -> tuple[int, int] | None:
    """``(major, minor)`` of a ``gpt-X.Y`` model name, or ``None`` for other names."""
    m = _GPT.match(model.lower())
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2) or 0)


def openai_has_explicit_caching(model: str) -> bool:
    """Whether the model follows the gpt-5.6+ rules (breakpoints, options, billed writes)."""
    gen = openai_generation(model)
    return gen is not None and gen >= (5, 6)


def openai_default_retention(model: str, zdr: bool = False) -> str:
    """Default ``prompt_cache_retention`` before gpt-5.6.

    openai 3.51.0 ``prompt_cache_retention`` docstring: gpt-5.5 and later support only ``24h``;
    older models default to ``24h`` for organisations without Zero Data Retention and to
    ``in_memory`` for organisations with it.
    """
    gen = openai_generation(model)
    return "in_memory" if zdr and (gen is None or gen < (5, 5)) else "24h"


def _normalise_anthropic(model: str) -> str:
    name = model.lower()
    # Bedrock/Vertex style ids: "anthropic.claude-…", "claude-…@2025…".
    name = name.rsplit(".", 1)[-1] if name.startswith(("anthropic.", "us.", "eu.")) else name
    name = name.removeprefix("claude-")
    prev = None
    while prev != name:
        prev, name = name, _SUFFIX.sub("", name)
    return name


def anthropic_minimum(model: str) -> int:
    """Minimum cacheable prefix (tokens) for an Anthropic model."""
    return _ANTHROPIC_MINIMUMS.get(_normalise_anthropic(model), ANTHROPIC_DEFAULT_MINIMUM)
