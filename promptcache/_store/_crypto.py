"""Optional encryption of stored values: AES-256-GCM, authenticated with the entry's key.

A shared Redis is often shared infrastructure: whoever can read it can read every cached
prompt and answer. With an encryption key configured (``PromptCache(encryption_key=...)`` or
``$PROMPTCACHE_ENCRYPTION_KEY``, a string of at least 16 characters, the same on every
machine), :class:`EncryptedStore` stores ``MAGIC + nonce + AES-GCM(value)`` with the entry's
store key as associated data, so an entry copied under another key fails authentication
instead of answering the wrong request. Keys (names) stay readable: they hold digests and
fingerprints only, never prompt text.

A value that does not decrypt (another key, a plaintext entry, tampering) is a miss and one
:class:`~promptcache.StoreWarning` for the life of the store, never an exception. Needs the
``cryptography`` package (``pip install 'promptcache[encrypt]'``).
"""

from __future__ import annotations

import os
import secrets
import threading
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from promptcache._errors import MissingDependencyError, StoreWarning
from promptcache._store._secret import stretch

if TYPE_CHECKING:
    from promptcache._store._base import Store, StoreStats

__all__ = ["ENCRYPTION_ENV", "MAGIC", "EncryptedStore", "configured_encryption_key"]

#: Marks an encrypted value (version 1: AES-256-GCM, 12-byte nonce, 16-byte tag).
MAGIC: Final = b"PCG\x01"
ENCRYPTION_ENV: Final = "PROMPTCACHE_ENCRYPTION_KEY"
_NONCE: Final = 12
_TAG: Final = 16


def configured_encryption_key(option: str | None) -> bytes | None:
    """Return the 32-byte key the configuration names (``option``, else the env), or ``None``."""
    secret = option if option is not None else os.environ.get(ENCRYPTION_ENV) or None
    if secret is None:
        return None
    return stretch(secret, purpose=b"promptcache-enc")


class EncryptedStore:
    """Wrap a store so that every value is encrypted at rest (see the module docstring)."""

    encrypted = True

    def __init__(self, inner: Store, key: bytes) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:
            raise MissingDependencyError(
                "encrypting the cache store needs cryptography: pip install 'promptcache[encrypt]'"
            ) from exc
        self.inner = inner
        self._aead = AESGCM(key)
        self._warned = False
        self._lock = threading.Lock()

    # Capabilities of the inner store, as SafeStore and the write-behind thread look them up.
    @property
    def blocking(self) -> bool:
        """Whether the inner store does I/O."""
        return bool(getattr(self.inner, "blocking", True))

    @property
    def write_behind(self) -> bool:
        """Whether the inner store asks to be written behind."""
        return getattr(self.inner, "write_behind", False) is True

    def __getattr__(self, name: str) -> Any:
        # key_secret, delete_prefix, release_thread, breaker…: whatever the inner store has.
        if name in ("key_secret", "delete_prefix", "release_thread", "breaker", "location"):
            return getattr(self.inner, name)
        raise AttributeError(name)

    def seal(self, key: str, value: bytes) -> bytes:
        """Return the stored form of ``value`` under ``key``."""
        nonce = secrets.token_bytes(_NONCE)
        return MAGIC + nonce + self._aead.encrypt(nonce, value, key.encode())

    def open(self, key: str, data: bytes) -> bytes | None:
        """Return the plaintext, or ``None`` (and warn once) if ``data`` does not decrypt."""
        from cryptography.exceptions import InvalidTag

        if data[: len(MAGIC)] == MAGIC and len(data) >= len(MAGIC) + _NONCE + _TAG:
            nonce = data[len(MAGIC) : len(MAGIC) + _NONCE]
            try:
                return self._aead.decrypt(nonce, data[len(MAGIC) + _NONCE :], key.encode())
            except InvalidTag:
                why = "was encrypted with another key, or altered"
        else:
            why = "is not encrypted"
        with self._lock:
            warn, self._warned = not self._warned, True
        if warn:
            warnings.warn(
                f"promptcache: an entry in the cache store {why}; treating it as a miss (check "
                "that every machine has the same PROMPTCACHE_ENCRYPTION_KEY)",
                StoreWarning,
                stacklevel=4,
            )
        return None

    def get(self, key: str) -> bytes | None:
        """Return the decrypted bytes under ``key``, or ``None``."""
        data = self.inner.get(key)
        return None if data is None else self.open(key, data)

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        """Encrypt and store ``value``."""
        self.inner.set(key, self.seal(key, value), ttl=ttl)

    def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> None:
        """Encrypt and store several entries (one round trip when the inner store can)."""
        sealed = [(k, self.seal(k, v), ttl) for k, v, ttl in items]
        set_many = getattr(self.inner, "set_many", None)
        if set_many is not None:
            set_many(sealed)
        else:
            for k, v, ttl in sealed:
                self.inner.set(k, v, ttl=ttl)

    def delete(self, key: str) -> None:
        """Remove ``key``."""
        self.inner.delete(key)

    def clear(self) -> int:
        """Remove every entry."""
        return self.inner.clear()

    def stats(self) -> StoreStats:
        """Return the inner store's statistics."""
        return self.inner.stats()

    def close(self) -> None:
        """Close the inner store."""
        self.inner.close()

    def __repr__(self) -> str:
        return f"EncryptedStore({self.inner!r})"
