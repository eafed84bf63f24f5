"""Exceptions and warnings raised by promptcache.

The tree is small on purpose::

    PromptCacheError                  base of everything promptcache raises itself
    ├── ConfigError (also ValueError) bad configuration or arguments, raised at once
    ├── StoreError                    the local store failed and ``strict=True`` was set
    └── MissingDependencyError        (also ImportError) an optional SDK/extra is not installed

    PromptCacheWarning (UserWarning)  base of our warnings
    ├── StoreWarning                  the store failed; the call went on as a cache miss
    ├── PriceWarning                  no price known for a model; cost is ``None``
    ├── MemoKeyWarning                a memoized call's arguments cannot be keyed; it ran uncached
    └── RewriteWarning                a request could not be restructured; sent as written
        └── HintRejectedWarning       an endpoint refused a field promptcache added; retried

Errors from the provider SDKs (``openai.BadRequestError``, ``anthropic.RateLimitError``, …) are
never wrapped: they reach the caller exactly as the bare SDK raises them.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "HintRejectedWarning",
    "MemoKeyWarning",
    "MissingDependencyError",
    "PriceWarning",
    "PromptCacheError",
    "PromptCacheWarning",
    "RewriteWarning",
    "StoreError",
    "StoreWarning",
]


class PromptCacheError(Exception):
    """Base class of the exceptions promptcache raises itself."""


class ConfigError(PromptCacheError, ValueError):
    """Invalid configuration or argument."""


class StoreError(PromptCacheError):
    """The local store failed while ``strict=True``."""


class MissingDependencyError(PromptCacheError, ImportError):
    """An optional dependency (an SDK or an extra) is not installed."""


class PromptCacheWarning(UserWarning):
    """Base class of the warnings promptcache emits."""


class StoreWarning(PromptCacheWarning):
    """The local store failed; the call continued as a cache miss."""


class PriceWarning(PromptCacheWarning):
    """No price is known for a model; its cost is recorded as ``None``."""


class MemoKeyWarning(PromptCacheWarning):
    """A memoized function got an argument that cannot be keyed; the call ran uncached.

    Warned once per function, not per call.
    """


class RewriteWarning(PromptCacheWarning):
    """A request could not be restructured and was sent as the user wrote it."""


class HintRejectedWarning(RewriteWarning):
    """An endpoint refused a caching field promptcache added; the call was retried without it.

    Given once per endpoint (base URL); the endpoint gets none of OpenAI's caching fields again
    from that ``PromptCache``.
    """
