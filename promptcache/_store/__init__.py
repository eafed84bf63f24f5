"""Where cached responses and memoized results live: small backends behind one protocol.

``open_store`` turns configuration into a :class:`Store`: the default is a diskcache directory
(:class:`DiskStore`), ``"memory://"`` an in-process :class:`MemoryStore`, ``"redis://…"`` a
:class:`RedisStore` shared by a fleet. Callers use it through :class:`SafeStore`, which turns
store failures into warnings and misses. Stored values are bytes: versioned envelopes
(:mod:`promptcache._store._entry`) or versioned JSON — never pickle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptcache._errors import ConfigError
from promptcache._store._base import Store, StoreStats
from promptcache._store._directory import (
    SALT_FILE,
    load_salt,
    locate_directory,
    make_private_dir,
    prepare_directory,
)
from promptcache._store._disk import DiskStore
from promptcache._store._entry import (
    ENTRY_VERSION,
    CorruptEntryError,
    Entry,
    decode_entry,
    encode_entry,
)
from promptcache._store._memory import MemoryStore
from promptcache._store._safe import SafeStore

if TYPE_CHECKING:
    from promptcache._store._redis import RedisStore

__all__ = [
    "ENTRY_VERSION",
    "SALT_FILE",
    "CorruptEntryError",
    "DiskStore",
    "Entry",
    "MemoryStore",
    "RedisStore",
    "SafeStore",
    "Store",
    "StoreStats",
    "decode_entry",
    "encode_entry",
    "load_salt",
    "locate_directory",
    "make_private_dir",
    "open_store",
    "prepare_directory",
    "resolve_directory",
    "uses_directory",
]

RESPONSES_DIR = "responses"


def __getattr__(name: str) -> Any:
    # redis-py is optional and slow to import: load the Redis backend only when asked for.
    if name == "RedisStore":
        from promptcache._store._redis import RedisStore

        return RedisStore
    raise AttributeError(name)


def resolve_directory(directory: str | os.PathLike[str] | None) -> Path:
    """Return the promptcache directory, creating it (0700) if missing.

    The argument wins, then ``$PROMPTCACHE_DIR``, then the platform's user cache directory
    (``~/.cache/promptcache`` on Linux). A path that names a file is a
    :class:`~promptcache.ConfigError`; other failures to create it raise ``OSError``.
    ``PromptCache`` checks more (:func:`prepare_directory`).
    """
    path, _ = locate_directory(directory)
    if path.exists() and not path.is_dir():
        # A typo that names a file: say so plainly rather than fail later inside SQLite.
        raise ConfigError(f"the promptcache directory {str(path)!r} exists and is not a directory")
    return make_private_dir(path)


def uses_directory(spec: str | Store | None) -> bool:
    """Whether ``spec`` means the default disk store, inside the promptcache directory."""
    if spec is None:
        spec = os.environ.get("PROMPTCACHE_STORE") or "disk://"
    return isinstance(spec, str) and spec.lower() == "disk://"


def open_store(
    spec: str | Store | None,
    directory: Path,
    *,
    size_limit: int | None = None,
    secret: bytes | None = None,
    encryption_key: bytes | None = None,
) -> Store:
    """Build the store for ``spec``.

    ``None`` → ``$PROMPTCACHE_STORE`` if set, else a :class:`DiskStore` in
    ``directory / "responses"``; a :class:`Store` object is used as is; ``"disk://"`` → the
    default disk store and ``"disk:///some/path"`` one elsewhere; ``"memory://"`` → a
    :class:`MemoryStore`; ``"redis://…"``, ``"rediss://…"``, ``"unix://…"`` → a
    :class:`RedisStore` (needs the ``redis`` extra), as do ``"redis+sentinel://…"`` and
    ``"redis+cluster://…"`` (see :mod:`promptcache._store._redis`). Anything else raises
    :class:`~promptcache.ConfigError`.

    ``secret`` is the configured key salt (``PROMPTCACHE_SECRET``), which a shared store uses
    for its keyspace; ``encryption_key`` wraps the store in an :class:`EncryptedStore`
    (a store object passed in is wrapped too).
    """
    store = _open(spec, directory, size_limit=size_limit, secret=secret)
    if encryption_key is not None:
        from promptcache._store._crypto import EncryptedStore

        return EncryptedStore(store, encryption_key)
    return store


def _open(
    spec: str | Store | None, directory: Path, *, size_limit: int | None, secret: bytes | None
) -> Store:
    if spec is not None and not isinstance(spec, str):
        if not isinstance(spec, Store):
            raise ConfigError(f"store must be a URL string or a Store, not {type(spec).__name__}")
        return spec
    if spec is None:
        spec = os.environ.get("PROMPTCACHE_STORE") or "disk://"
    limit: dict[str, Any] = {} if size_limit is None else {"size_limit": size_limit}
    scheme, sep, rest = spec.partition("://")
    if not sep:
        raise ConfigError(f"store must look like 'scheme://…', got {spec!r}")
    scheme = scheme.lower()
    if scheme == "disk":
        path = Path(rest) if rest else Path(directory) / RESPONSES_DIR
        return DiskStore(path, **limit)
    if scheme == "memory":
        return MemoryStore(**limit)
    if scheme in _REDIS_SCHEMES:
        from promptcache._store._redis import RedisStore
        from promptcache._store._secret import configured_salt

        # $PROMPTCACHE_SECRET counts here too, so the CLI finds the keyspace the app uses.
        return RedisStore.from_url(spec, secret=secret or configured_salt(None))
    raise ConfigError(
        f"unknown store {spec!r}: use 'disk://', 'memory://' or 'redis://host:port/db'"
    )


_REDIS_SCHEMES = frozenset(
    {
        "redis",
        "rediss",
        "unix",
        "redis+sentinel",
        "rediss+sentinel",
        "redis+cluster",
        "rediss+cluster",
    }
)
