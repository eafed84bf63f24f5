"""Fast JSON helpers (orjson) used by every layer.

``canonical`` is the one serialisation used for cache keys: sorted keys, no whitespace, so two
requests that differ only in dict order produce the same bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["JSONDecodeError", "canonical", "dumps", "loads"]

JSONDecodeError = orjson.JSONDecodeError

_CANON = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON."""
    return orjson.loads(data)


def dumps(obj: Any) -> bytes:
    """Serialise to compact JSON bytes, keeping key order."""
    return orjson.dumps(obj)


def canonical(obj: Any) -> bytes:
    """Serialise with sorted keys: the byte form cache keys are computed on."""
    return orjson.dumps(obj, option=_CANON)
