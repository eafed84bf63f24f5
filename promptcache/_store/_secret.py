"""The key secret: what salts credential fingerprints, and what names a shared keyspace.

On one machine the secret is the directory's random ``salt`` file
(:func:`promptcache._store.load_salt`), unchanged. A fleet needs one secret for all its
machines, or two machines never compute the same key for the same caller. It comes from,
in order:

1. configuration: ``PromptCache(secret=...)``, else ``$PROMPTCACHE_SECRET`` — any string of
   at least 16 characters, stretched to 32 bytes here (the same string gives the same keys
   on every machine; a new string starts a fresh keyspace);
2. the shared store itself: a store with a ``key_secret()`` method (Redis) creates a random
   32-byte secret once, atomically (``SET NX``), under :data:`SECRET_KEY`, and every machine
   reads the same one;
3. otherwise the directory's salt.

Credential fingerprints are keyed BLAKE2b under the secret, so different API keys never share
entries whatever the secret. A shared store also puts :func:`keyspace_id` of the secret in
every key it writes, so a new secret leaves every old entry behind — responses and
``@cached`` results alike — without reading or deleting them.
"""

from __future__ import annotations

import hashlib
import os
from typing import Final

from promptcache._errors import ConfigError

__all__ = ["SECRET_ENV", "SECRET_KEY", "SECRET_LEN", "configured_salt", "keyspace_id", "stretch"]

#: The environment variable a fleet sets to one value on every machine.
SECRET_ENV: Final = "PROMPTCACHE_SECRET"
#: Where a shared store keeps the secret it created. Outside the ``promptcache:`` prefix on
#: purpose: ``clear()`` removes entries, never the secret every machine keys with.
SECRET_KEY: Final = "promptcache-secret:v1"
SECRET_LEN: Final = 32
_MIN_CHARS: Final = 16


def stretch(secret: str, *, purpose: bytes) -> bytes:
    """Turn a configured secret string into 32 key bytes for one ``purpose`` (≤ 16 bytes).

    BLAKE2b with a personalisation per purpose, so the key secret and the encryption key are
    independent even when a user sets both to the same string. Refuses short secrets.
    """
    if not isinstance(secret, str) or len(secret) < _MIN_CHARS:
        raise ConfigError(
            f"a promptcache secret must be a string of at least {_MIN_CHARS} characters "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return hashlib.blake2b(secret.encode(), digest_size=SECRET_LEN, person=purpose).digest()


def configured_salt(option: str | None) -> bytes | None:
    """Return the key salt the configuration names (``option``, else the env), or ``None``."""
    secret = option if option is not None else os.environ.get(SECRET_ENV) or None
    if secret is None:
        return None
    return stretch(secret, purpose=b"promptcache-key")


def keyspace_id(salt: bytes) -> str:
    """Return a short public name of the keyspace a secret defines (not reversible to it)."""
    return hashlib.blake2b(salt, digest_size=6, person=b"promptcache-ks").hexdigest()
