"""The versioned envelope a cached response is stored in: a small JSON header + raw body bytes.

Layout (big-endian)::

    b"PCE" | version:u8 | header_len:u32 | body_len:u32 | body_xxh3_64:u64 | header | body

The header is orjson; the body is the provider's JSON body or the raw SSE bytes of a stream
that completed. Nothing is ever pickled: reading an entry can only ever produce data, so a
writable cache directory does not mean code execution. Anything that does not parse exactly —
wrong magic, unknown version, lengths that do not add up, a body whose checksum differs —
raises :class:`CorruptEntryError`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import xxhash

from promptcache._errors import StoreError
from promptcache._json import JSONDecodeError, dumps, loads

__all__ = ["ENTRY_VERSION", "CorruptEntryError", "Entry", "decode_entry", "encode_entry"]

ENTRY_VERSION: Final = 1
_MAGIC: Final = b"PCE"
_PREFIX: Final = struct.Struct(">3sBIIQ")


class CorruptEntryError(StoreError):
    """A stored entry is malformed, truncated or of an unknown version."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached response, as replayed on a hit.

    ``verify`` is the request's :attr:`~promptcache._keys.CacheKey.verify` digest; ``body`` is
    the JSON body or the raw SSE bytes of a completed stream (``stream=True``); ``meta`` is
    JSON-able data the accountant attached (usage, cost) and ``created`` a Unix timestamp.
    """

    verify: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stream: bool
    meta: Mapping[str, Any] | None
    created: float


def encode_entry(entry: Entry) -> bytes:
    """Serialise an entry to bytes (raises ``TypeError`` if ``meta`` is not JSON-able)."""
    header = dumps(
        {
            "verify": entry.verify,
            "status": entry.status,
            "headers": entry.headers,
            "stream": entry.stream,
            "meta": entry.meta,
            "created": entry.created,
        }
    )
    body = bytes(entry.body)
    prefix = _PREFIX.pack(
        _MAGIC, ENTRY_VERSION, len(header), len(body), xxhash.xxh3_64_intdigest(body)
    )
    return b"".join((prefix, header, body))


def decode_entry(data: bytes) -> Entry:
    """Parse bytes written by :func:`encode_entry`; raise :class:`CorruptEntryError` otherwise."""
    if len(data) < _PREFIX.size:
        raise CorruptEntryError(f"entry too short ({len(data)} bytes)")
    magic, version, header_len, body_len, checksum = _PREFIX.unpack_from(data)
    if magic != _MAGIC:
        raise CorruptEntryError("not a promptcache entry (bad magic)")
    if version != ENTRY_VERSION:
        raise CorruptEntryError(f"unknown entry version {version}")
    start = _PREFIX.size + header_len
    if start + body_len != len(data):
        raise CorruptEntryError("entry length does not match its header (truncated?)")
    body = data[start:]
    if xxhash.xxh3_64_intdigest(body) != checksum:
        raise CorruptEntryError("entry body checksum mismatch")
    try:
        h = loads(memoryview(data)[_PREFIX.size : start])
        headers = tuple((str(k), str(v)) for k, v in h["headers"])
        meta = h["meta"]
        entry = Entry(
            verify=h["verify"],
            status=h["status"],
            headers=headers,
            body=body,
            stream=h["stream"],
            meta=meta,
            created=h["created"],
        )
    except (JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CorruptEntryError(f"malformed entry header: {exc}") from exc
    if not (
        isinstance(entry.verify, str)
        and type(entry.status) is int
        and type(entry.stream) is bool
        and (meta is None or isinstance(meta, dict))
        and isinstance(entry.created, int | float)
    ):
        raise CorruptEntryError("malformed entry header: wrong field types")
    return entry
