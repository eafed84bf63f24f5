"""The typed canonical form of memoized arguments: injective bytes, pure and dependency-free.

JSON cannot be the key of a Python call: it writes ``1`` and ``True`` apart but ``(1, 2)`` and
``[1, 2]`` alike, NaN and ±inf as ``null``, and with non-string keys ``{1: x}`` as
``{"1": x}``. :func:`typed_canonical` instead writes every value as a type tag followed by a
self-delimiting payload (a fixed width, a length prefix or a terminator), so that

* two values get the same bytes only if they have the same type and the same content
  (``1``, ``1.0``, ``True`` and ``"1"`` all differ; ``0.0`` and ``-0.0`` differ; so do
  ``Decimal("1")`` and ``Decimal("1.0")``, a naive and an aware datetime, a ``timezone``
  and a ``ZoneInfo`` with the same offset, ``b"a"`` and ``"a"``, a tuple and a list, a set
  and a frozenset, an ``IntEnum`` member and its int);
* equal values of the same type get the same bytes: dicts and sets are written in an order
  that depends only on their content, never in insertion order.

Keyable: ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``,
``bytearray``, ``list``, ``tuple``, ``dict`` (any keyable keys), ``set``, ``frozenset``,
``Decimal``, ``UUID``, ``datetime``/``date``/``time``/``timedelta`` (tz: ``None``,
``datetime.timezone`` or a named ``ZoneInfo``), ``pathlib`` paths, enum members, classes,
named tuples, pydantic models (class, field values, extras, which fields were set, private
attributes) and state-less subclasses of ``str``/``int``/``float``/``bytes`` (a
``class UserId(str)``), each with its class. Classes are named by ``module:qualname``;
one defined inside a function has no stable name and cannot be keyed. Everything else raises
:class:`Unkeyable`, unless the caller's ``fallback`` encodes it.
"""

from __future__ import annotations

import enum
import struct
import sys
from collections.abc import Callable
from typing import Any, Final

__all__ = ["Unkeyable", "class_path", "encode_into", "type_name", "typed_canonical"]

#: Deeper nesting (or a cycle) is refused rather than recursed into.
MAX_DEPTH: Final = 200

_f64: Final = struct.Struct("<d").pack
_c128: Final = struct.Struct("<dd").pack

Fallback = Callable[[object], bytes]


class Unkeyable(TypeError):
    """A value that the canonical form cannot represent.

    ``type_name`` names the offending value's type; ``path`` lists the subscripts that lead
    to it from the encoded value (``["[0]", "['k']"]``), filled in as the error unwinds.
    """

    def __init__(self, type_name: str, reason: str = "") -> None:
        super().__init__(type_name)
        self.type_name = type_name
        self.reason = reason
        self.path: list[str] = []

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """Return ``"[0]['k']: value of type X"`` (or the reason, if one was given)."""
        where = "".join(self.path)
        what = self.reason or f"a value of type {self.type_name}"
        return f"{where}: {what}" if where else what


def type_name(t: type) -> str:
    """Return a type's readable name: ``int``, ``uuid.UUID``, ``app.models.Query``."""
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def class_path(t: type) -> str:
    """Return ``"module:qualname"`` of a class, refusing classes defined inside a function.

    Two classes made by one factory share their qualified name but not their behaviour, and
    nothing stable tells them apart: keep them apart by not keying them at all.
    """
    qualname = t.__qualname__
    if "<locals>" in qualname:
        raise Unkeyable(
            type_name(t), f"class {type_name(t)}, defined inside a function (no stable name)"
        )
    return f"{t.__module__}:{qualname}"


def typed_canonical(obj: object, fallback: Fallback | None = None) -> bytes:
    """Return the typed canonical bytes of ``obj`` (see the module docstring).

    ``fallback``, if given, is called with any value the form does not know and returns its
    bytes (or raises :class:`Unkeyable`); they are embedded length-prefixed under their own tag.
    """
    out: list[bytes] = []
    encode_into(obj, out, fallback)
    return b"".join(out)


def _text(s: str, out: list[bytes]) -> None:
    # surrogatepass keeps a lone surrogate encodable; its 3 bytes are never valid UTF-8, so
    # they cannot collide with the encoding of any other string.
    b = s.encode("utf-8", "surrogatepass")
    n = len(b)
    out.append(_STR_HEADS[n] if n < 256 else b"s%d:" % n)
    out.append(b)


# The headers of short strings, ready-made: formatting them is half the cost of a key.
_STR_HEADS: Final = [b"s%d:" % n for n in range(256)]


def encode_into(
    obj: object, out: list[bytes], fallback: Fallback | None = None, depth: int = 0
) -> None:
    """Append the typed canonical bytes of ``obj`` to ``out`` (the building block of the rest)."""
    t = type(obj)
    o: Any = obj
    # The common argument types first, by exact type: a subclass takes the slow path.
    if t is str:
        _text(o, out)
    elif t is int:
        # Hex, not decimal: no digit limit (sys.int_info.str_digits_check_threshold).
        out.append(b"i%x;" % o)
    elif obj is None:
        out.append(b"n")
    elif obj is True:
        out.append(b"T")
    elif obj is False:
        out.append(b"F")
    elif t is float:
        # The IEEE bits: -0.0 is not 0.0, and NaN and ±inf are not None.
        out.append(b"f" + _f64(o))
    elif t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise Unkeyable(t.__name__, f"a {t.__name__} nested over {MAX_DEPTH} deep (or cyclic)")
        out.append(b"%s%d:" % (b"l" if t is list else b"t", len(o)))
        for i, v in enumerate(o):
            try:
                encode_into(v, out, fallback, depth + 1)
            except Unkeyable as exc:
                exc.path.insert(0, f"[{i}]")
                raise
    elif t is dict:
        _dict(o, out, fallback, depth, b"d")
    else:
        _other(obj, out, fallback, depth)


def _sub(obj: object, fallback: Fallback | None, depth: int) -> bytes:
    out: list[bytes] = []
    encode_into(obj, out, fallback, depth)
    return b"".join(out)


_ONLY_STR: Final = frozenset({str})
# The encodings of dict keys seen so far (short ones, a bounded number): the same few keys
# ("role", "content", …) recur in every call.
_KEY_HEADS: dict[str, bytes] = {}


def _dict(
    d: dict[Any, Any], out: list[bytes], fallback: Fallback | None, depth: int, tag: bytes
) -> None:
    if depth >= MAX_DEPTH:
        raise Unkeyable("dict", f"a dict nested over {MAX_DEPTH} deep (or cyclic)")
    out.append(b"%s%d:" % (tag, len(d)))
    # Insertion order is not part of a dict's value: write the items in an order that depends
    # only on the keys. Any such order keeps the form injective (each item is self-delimiting,
    # so the set of items can be read back); plain str keys are simply sorted, other keys by
    # their encodings.
    if set(map(type, d)) <= _ONLY_STR:
        for k in sorted(d):
            head = _KEY_HEADS.get(k)
            if head is None:
                head = typed_canonical(k)
                if len(_KEY_HEADS) < 4096 and len(k) <= 64:
                    _KEY_HEADS[k] = head
            out.append(head)
            v = d[k]
            tv = type(v)
            if tv is str:  # inlined: the hot path of chat-shaped arguments
                b = v.encode("utf-8", "surrogatepass")
                n = len(b)
                out.append(_STR_HEADS[n] if n < 256 else b"s%d:" % n)
                out.append(b)
            elif tv is int:
                out.append(b"i%x;" % v)
            else:
                try:
                    encode_into(v, out, fallback, depth + 1)
                except Unkeyable as exc:
                    exc.path.insert(0, f"[{k!r}]")
                    raise
        return
    pairs: list[tuple[bytes, bytes]] = []
    for k, v in d.items():
        try:
            pairs.append((_sub(k, fallback, depth + 1), _sub(v, fallback, depth + 1)))
        except Unkeyable as exc:
            exc.path.insert(0, f"[{k!r}]")
            raise
    pairs.sort()
    for kb, vb in pairs:
        out.append(kb)
        out.append(vb)


def _set(
    s: set[Any] | frozenset[Any], out: list[bytes], fallback: Fallback | None, depth: int
) -> None:
    if depth >= MAX_DEPTH:
        raise Unkeyable(type(s).__name__, f"a set nested over {MAX_DEPTH} deep")
    items = sorted(_sub(v, fallback, depth + 1) for v in s)
    out.append(b"%s%d:" % (b"S" if type(s) is set else b"Z", len(items)))
    out.extend(items)


def _tz(tz: Any, out: list[bytes]) -> None:
    if tz is None:
        out.append(b"-")
        return
    t = type(tz)
    if t.__module__ == "datetime" and t.__qualname__ == "timezone":
        # Its repr names the offset and, if any, the name: tzname() differs between them.
        out.append(b"z")
        _text(repr(tz), out)
    elif t.__module__ == "zoneinfo" and t.__qualname__ == "ZoneInfo" and tz.key is not None:
        out.append(b"q")
        _text(tz.key, out)
    else:
        # Other tzinfo classes (pytz, dateutil) carry rules we cannot name reliably.
        raise Unkeyable(type_name(t), f"a datetime with a {type_name(t)} tzinfo")


def _stateless(obj: object, base: type) -> bool:
    """Whether a builtin-subclass instance holds nothing but its base value."""
    if getattr(obj, "__dict__", None):
        return False
    return all(
        not getattr(c, "__slots__", ()) for c in type(obj).__mro__ if c not in (base, object)
    )


def _named(obj: object, t: type, out: list[bytes]) -> bool:
    """Encode the stdlib value types, recognised by name so their modules need not be loaded."""
    name = (t.__module__, t.__qualname__)
    o: Any = obj
    if name == ("decimal", "Decimal"):
        # str() keeps the exponent and the sign: Decimal("1.0") and Decimal("1") differ.
        out.append(b"D")
        _text(str(o), out)
    elif name == ("uuid", "UUID"):
        out.append(b"U" + o.bytes)
    elif name == ("datetime", "datetime") or name == ("datetime", "time"):
        # isoformat() holds the fields and the UTC offset; fold and the zone itself are
        # added because values equal by offset still behave differently (DST, tzname()).
        out.append(b"W" if name[1] == "datetime" else b"H")
        _text(o.isoformat(), out)
        out.append(b"1" if o.fold else b"0")
        _tz(o.tzinfo, out)
    elif name == ("datetime", "date"):
        out.append(b"Y")
        _text(o.isoformat(), out)
    elif name == ("datetime", "timedelta"):
        out.append(b"R%x;%x;%x;" % (o.days, o.seconds, o.microseconds))
    elif t.__module__ == "pathlib" and t.__qualname__ in _PATHS:
        out.append(b"p")
        _text(t.__qualname__, out)
        _text(str(o), out)
    else:
        return False
    return True


_PATHS: Final = frozenset(
    {"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"}
)


# Conversions that return the exact base value of a subclass instance, bypassing overrides.
_SCALAR_BASES: Final[dict[type, Callable[[Any], object]]] = {
    str: str.__str__,
    int: int.__index__,
    float: float.__float__,
    bytes: bytes.__bytes__,
}


def _pydantic_model(obj: object) -> bool:
    # Only look if pydantic is already loaded: an object cannot be a model otherwise.
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(obj, pydantic.BaseModel)


def _other(obj: object, out: list[bytes], fallback: Fallback | None, depth: int) -> None:
    t = type(obj)
    o: Any = obj
    if t is bytes or t is bytearray:
        out.append(b"%s%d:" % (b"b" if t is bytes else b"a", len(o)))
        out.append(bytes(o))
    elif t is set or t is frozenset:
        _set(o, out, fallback, depth)
    elif t is complex:
        out.append(b"c" + _c128(o.real, o.imag))
    elif obj is Ellipsis:
        out.append(b".")
    elif _named(obj, t, out):
        pass
    elif isinstance(obj, enum.Enum):
        # A member is its class and its name (aliases are the same member); an IntEnum or
        # StrEnum member is not its int or str.
        out.append(b"e")
        _text(class_path(t), out)
        if isinstance(o.name, str):
            _text(o.name, out)
        else:  # a pseudo-member of a Flag without a name
            encode_into(o.value, out, fallback, depth + 1)
    elif isinstance(obj, type):
        out.append(b"y")
        _text(class_path(o), out)
    elif _pydantic_model(obj):
        _model(o, out, fallback, depth)
    elif isinstance(obj, tuple) and isinstance(getattr(t, "_fields", None), tuple):
        out.append(b"N")
        _text(class_path(t), out)
        encode_into(tuple(o), out, fallback, depth + 1)
    elif base := next((b for b in _SCALAR_BASES if isinstance(obj, b)), None):
        if not _stateless(obj, base):
            raise Unkeyable(type_name(t))
        out.append(b"x")
        _text(class_path(t), out)
        # The base's own conversion: a subclass's __str__ or __float__ may say anything.
        encode_into(_SCALAR_BASES[base](o), out, fallback, depth + 1)
    elif fallback is not None:
        data = fallback(obj)
        out.append(b"X%d:" % len(data))
        out.append(data)
    else:
        raise Unkeyable(type_name(t))


def _model(m: Any, out: list[bytes], fallback: Fallback | None, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise Unkeyable(type_name(type(m)), f"a model nested over {MAX_DEPTH} deep (or cyclic)")
    out.append(b"m")
    _text(class_path(type(m)), out)
    # The field values as they are (not a JSON dump, which would fold a tuple into a list),
    # plus what else pydantic's == and model_dump(exclude_unset=True) look at.
    _dict(dict(vars(m)), out, fallback, depth + 1, b"d")
    encode_into(m.__pydantic_extra__, out, fallback, depth + 1)
    _set(frozenset(m.model_fields_set), out, fallback, depth + 1)
    encode_into(m.__pydantic_private__, out, fallback, depth + 1)
