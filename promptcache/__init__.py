"""promptcache: cheaper, faster LLM calls for the official openai and anthropic SDKs.

Add one line to an existing app::

    import promptcache
    client = promptcache.wrap(openai.OpenAI())   # same type, same methods, same exceptions

and get provider prompt caching that hits, a local response cache, and a ledger of every token
and cent. The README and docs/ tell the whole story.

Importing this package is cheap: it imports neither SDK and loads its own modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from promptcache._errors import (
    CacheMissWarning,
    ConfigError,
    HintRejectedWarning,
    MissingDependencyError,
    PriceWarning,
    PromptCacheError,
    PromptCacheWarning,
    RewriteWarning,
    StoreError,
    StoreWarning,
)
from promptcache._version import __version__

if TYPE_CHECKING:
    from promptcache._accounting import ModelPrice, Summary, Usage, current_attribution, tag, track
    from promptcache._doctor import DoctorOptions, Finding
    from promptcache._plan import AnthropicOptions, OpenAIOptions
    from promptcache._plan._layout import dynamic, layout, static
    from promptcache._policy import bypass, read_only, refresh
    from promptcache._wrap import PromptCache, cached, wrap

__all__ = [
    "AnthropicOptions",
    "CacheMissWarning",
    "ConfigError",
    "DoctorOptions",
    "Finding",
    "HintRejectedWarning",
    "MissingDependencyError",
    "ModelPrice",
    "OpenAIOptions",
    "PriceWarning",
    "PromptCache",
    "PromptCacheError",
    "PromptCacheWarning",
    "RewriteWarning",
    "StoreError",
    "StoreWarning",
    "Summary",
    "Usage",
    "__version__",
    "bypass",
    "cached",
    "current_attribution",
    "dynamic",
    "layout",
    "read_only",
    "refresh",
    "static",
    "tag",
    "track",
    "wrap",
]

# Public name -> private module that defines it. Loaded on first attribute access so that
# `import promptcache` stays well under its 100 ms budget and never imports an SDK.
_LAZY: dict[str, str] = {
    "AnthropicOptions": "promptcache._plan",
    "DoctorOptions": "promptcache._doctor",
    "Finding": "promptcache._doctor",
    "OpenAIOptions": "promptcache._plan",
    "ModelPrice": "promptcache._accounting",
    "PromptCache": "promptcache._wrap",
    "Summary": "promptcache._accounting",
    "Usage": "promptcache._accounting",
    "bypass": "promptcache._policy",
    "cached": "promptcache._wrap",
    "current_attribution": "promptcache._accounting",
    "dynamic": "promptcache._plan._layout",
    "layout": "promptcache._plan._layout",
    "read_only": "promptcache._policy",
    "refresh": "promptcache._policy",
    "static": "promptcache._plan._layout",
    "tag": "promptcache._accounting",
    "track": "promptcache._accounting",
    "wrap": "promptcache._wrap",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptcache' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
