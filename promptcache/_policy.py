"""Local-cache policy for a block of code or a derived client, without touching SDK signatures.

Four policies decide what the local response cache may do for a request:

* ``"default"`` — look up, and store what comes back;
* ``"bypass"`` — neither look up nor store (the provider is always called);
* ``"refresh"`` — do not look up, but store the fresh answer (overwrites a stale entry);
* ``"read_only"`` — look up, never store.

A policy is set for a block with the context managers :func:`bypass`, :func:`refresh` and
:func:`read_only` (they live in :mod:`contextvars`, so they follow threads' own contexts and
asyncio tasks), or for every call of a derived client with ``pc.wrap(client, policy="bypass")``.
The innermost block wins over the client's policy. Accounting and provider-cache restructuring
are not affected by any policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Final, Literal, get_args

from promptcache._errors import ConfigError

__all__ = ["POLICIES", "PolicyName", "bypass", "current_policy", "read_only", "refresh"]

PolicyName = Literal["default", "bypass", "refresh", "read_only"]
POLICIES: Final[tuple[str, ...]] = get_args(PolicyName)

_POLICY: ContextVar[PolicyName | None] = ContextVar("promptcache_policy", default=None)


def check_policy(policy: str) -> PolicyName:
    """Return ``policy`` if it is a known policy name, else raise :class:`ConfigError`."""
    if policy not in POLICIES:
        raise ConfigError(f"policy must be one of {', '.join(map(repr, POLICIES))}, not {policy!r}")
    return policy  # type: ignore[return-value]


def current_policy(client_policy: PolicyName = "default") -> PolicyName:
    """Return the policy in force: the innermost block's, else ``client_policy``."""
    scoped = _POLICY.get()
    return client_policy if scoped is None else scoped


def may_read(policy: PolicyName) -> bool:
    """Whether a request under ``policy`` may be answered from the local cache."""
    return policy == "default" or policy == "read_only"


def may_write(policy: PolicyName) -> bool:
    """Whether an answer fetched under ``policy`` may be stored."""
    return policy == "default" or policy == "refresh"


@contextmanager
def _scoped(policy: PolicyName) -> Iterator[None]:
    token = _POLICY.set(policy)
    try:
        yield
    finally:
        _POLICY.reset(token)


def bypass() -> AbstractContextManager[None]:
    """Skip the local cache (no lookup, no store) for calls made inside the block.

    >>> import promptcache
    >>> with promptcache.bypass():
    ...     pass  # calls here always reach the provider
    """
    return _scoped("bypass")


def refresh() -> AbstractContextManager[None]:
    """Fetch fresh answers inside the block and store them over any cached ones."""
    return _scoped("refresh")


def read_only() -> AbstractContextManager[None]:
    """Serve hits from the local cache inside the block but store nothing new."""
    return _scoped("read_only")
