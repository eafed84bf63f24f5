"""Redis backend (not available yet)."""

from __future__ import annotations

from promptcache._errors import ConfigError
from promptcache._store._base import Store

__all__ = ["RedisStore"]


class RedisStore:
    """Placeholder: the Redis backend is not implemented yet."""

    blocking = True

    @classmethod
    def from_url(cls, url: str) -> Store:
        """Raise :class:`~promptcache.ConfigError`: Redis is not supported yet."""
        raise ConfigError("the Redis store is not available yet; use 'disk://' or 'memory://'")
