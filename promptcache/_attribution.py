"""Attribution of spend: tags and the app function a call was made from.

Both live in :mod:`contextvars`, so they follow asyncio tasks automatically. The transport reads
:func:`current_attribution` once, when a request starts, and stores it with the call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["Attribution", "current_attribution", "tag"]

_TAGS: ContextVar[tuple[str, ...]] = ContextVar("promptcache_tags", default=())
_FUNCTION: ContextVar[str | None] = ContextVar("promptcache_function", default=None)


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who a call is billed to: the active tags (outermost first) and the app function."""

    tags: tuple[str, ...] = ()
    function: str | None = None


_EMPTY = Attribution()


def current_attribution() -> Attribution:
    """Return the attribution in force in the current context."""
    tags = _TAGS.get()
    function = _FUNCTION.get()
    if not tags and function is None:
        return _EMPTY
    return Attribution(tags, function)


@contextmanager
def tag(*names: str) -> Iterator[None]:
    """Attribute every call made inside the block to ``names`` (nested tags accumulate).

    >>> import promptcache
    >>> with promptcache.tag("search"):
    ...     promptcache.current_attribution().tags
    ('search',)
    """
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"tag names must be non-empty strings, got {name!r}")
    token = _TAGS.set(_TAGS.get() + tuple(n for n in names if n not in _TAGS.get()))
    try:
        yield
    finally:
        _TAGS.reset(token)
