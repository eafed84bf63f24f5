"""Fast JSON helpers (orjson) used by every layer.

``canonical`` is the one serialisation used for cache keys: sorted keys, no whitespace, so two
requests that differ only in dict order produce the same bytes. ``plain_canonical`` is its
strict form for request keys: it accepts only values whose JSON form is unambiguous
(:func:`is_plain`), so two different requests can never serialise to the same bytes.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

__all__ = ["JSONDecodeError", "canonical", "dumps", "is_plain", "loads", "plain_canonical"]

JSONDecodeError = orjson.JSONDecodeError

_CANON = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
# Scalars whose JSON form is their value: exact types only, so ``bool`` stays apart from
# ``int`` and a ``str``/``int`` subclass (an ``Enum``, say) is not taken for its base type.
_SCALARS: Final = frozenset({str, int, bool, type(None)})
# orjson reads integer literals outside [-2**63, 2**64) as floats: a float this large may have
# been a different integer on the wire, so it is not keyed.
_FLOAT_LIMIT: Final = 2.0**63


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON."""
    return orjson.loads(data)


def dumps(obj: Any) -> bytes:
    """Serialise to compact JSON bytes, keeping key order."""
    return orjson.dumps(obj)


def canonical(obj: Any) -> bytes:
    """Serialise with sorted keys: the byte form cache keys are computed on."""
    return orjson.dumps(obj, option=_CANON)


def _plain_values(obj: Any, tuples: bool) -> bool:
    """Whether every value in ``obj`` has an exact plain type (see :func:`is_plain`).

    Only called once orjson wrote ``obj``: keys are then ``str`` (orjson refuses any other key
    type, ``str`` subclasses included), and the value is acyclic and at most 254 deep, so the
    walk needs neither a key check nor a depth count. It visits values, never characters.
    """
    scalars = _SCALARS
    kind = type(obj)
    if kind in scalars:
        return True
    if kind is float:
        return bool(obj - obj == 0.0 and -_FLOAT_LIMIT < obj < _FLOAT_LIMIT)
    if not (kind is dict or kind is list or (tuples and kind is tuple)):
        return False
    stack = [obj]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        for value in node.values() if type(node) is dict else node:
            vkind = type(value)
            # Most frequent first: strings, then containers.
            if vkind is str:
                continue
            if vkind is dict or vkind is list or (tuples and vkind is tuple):
                push(value)
            elif vkind is float:
                # ``v - v`` is 0.0 for every finite float and NaN for NaN and ±inf.
                if not (value - value == 0.0 and -_FLOAT_LIMIT < value < _FLOAT_LIMIT):
                    return False
            elif vkind not in scalars:
                return False
    return True


def is_plain(obj: Any, *, tuples: bool = False) -> bool:
    """Whether ``obj`` is plain JSON, whose serialisation nobody can spell two ways.

    Plain: ``dict`` with ``str`` keys, ``list``, ``str``, ``int`` within 64 bits, ``bool``,
    ``None`` and finite ``float`` below 2**63 in magnitude — exact types, no subclasses.
    Not plain: NaN and ±inf (JSON has none; orjson writes ``null``), ``UUID``, ``datetime``,
    ``Decimal``, ``bytes``, sets, enums, dataclasses, non-``str`` keys, cycles and nesting
    deeper than 254. ``tuples=True`` accepts tuples as arrays (the SDKs send them as lists).
    """
    try:
        orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError
        return False
    return _plain_values(obj, tuples)


def plain_canonical(obj: Any, *, tuples: bool = False) -> bytes:
    """Serialise a plain JSON value with sorted keys; ``TypeError`` if it is not plain.

    Injective on plain values (:func:`is_plain`): ``1``, ``1.0``, ``True`` and ``"1"`` stay
    four different spellings, and dict order never matters. The cost is orjson's plus one
    walk over the values (not over the characters of strings).
    """
    blob = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    if not _plain_values(obj, tuples):
        raise TypeError("not plain JSON (NaN/inf, or a value of a non-JSON type)")
    return blob
