"""Issue 9, item 4 (memoized arguments): the canonical form of a call is injective.

Two calls share a cache entry exactly when their arguments have the same types and the same
content; dict and set order, and passing by keyword or by position, do not matter. A test-side
model of "same value" (``norm``) is checked against the real keys with hypothesis, and the
cached function is called for real so that a collision would show as a wrong answer.
"""

from __future__ import annotations

import datetime as dt
import enum
import struct
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from promptcache import PromptCache, PromptCacheWarning
from promptcache._memo import Memoized

UTC = dt.UTC
PLUS1 = dt.timezone(dt.timedelta(hours=1))
TZS = [None, UTC, PLUS1, dt.timezone(dt.timedelta(hours=1), "CET"), ZoneInfo("Europe/Paris")]


class Colour(enum.Enum):
    RED = 1
    CRIMSON = 1  # an alias: the same member


class Level(enum.IntEnum):
    ONE = 1


class Mode(enum.StrEnum):
    ONE = "1"


class Pair(NamedTuple):
    a: Any
    b: Any


class Query(BaseModel):
    text: str
    tags: Any = None


class Name(str):
    """A state-less str subclass (a NewType-like class)."""


# --- a test-side model of "the same value" ---------------------------------------------------


def _tz(tz: dt.tzinfo | None) -> Any:
    if isinstance(tz, ZoneInfo):
        return ("zone", tz.key)
    return None if tz is None else ("fixed", tz.utcoffset(None), tz.tzname(None))


def norm(v: Any) -> Any:
    """A hashable, type-strict model of a value: equal exactly when the values are the same."""
    t = type(v)
    if t is float:
        return ("float", struct.pack("<d", v))  # -0.0 is not 0.0; NaN is itself
    if t is complex:
        return ("complex", struct.pack("<dd", v.real, v.imag))
    if t is list or t is tuple:
        return (t.__name__, tuple(norm(x) for x in v))
    if t is Pair:
        return ("Pair", tuple(norm(x) for x in v))
    if t is dict:
        return ("dict", frozenset((norm(k), norm(x)) for k, x in v.items()))
    if t is set or t is frozenset:
        return (t.__name__, frozenset(norm(x) for x in v))
    if t is Decimal:
        return ("Decimal", v.as_tuple())  # Decimal("1.0") is not Decimal("1")
    if t is dt.datetime:
        naive = v.replace(tzinfo=None, fold=0)
        return ("datetime", naive, v.fold, _tz(v.tzinfo))
    if t is dt.time:
        return ("time", v.replace(tzinfo=None, fold=0), v.fold, _tz(v.tzinfo))
    if t is Query:
        return ("Query", norm(v.text), norm(v.tags), frozenset(v.model_fields_set))
    if t is bytearray:
        return ("bytearray", bytes(v))
    if isinstance(v, enum.Enum):
        return (t.__name__, v.name)
    if t is Name:
        return ("Name", str.__str__(v))
    return (t.__name__, v)  # None, bool, int, str, bytes, UUID, date, timedelta, paths


def show(n: Any) -> str:
    """A deterministic text of a ``norm`` (frozensets sorted): what the cached function returns."""
    if isinstance(n, frozenset):
        return "{" + ",".join(sorted(show(x) for x in n)) + "}"
    if isinstance(n, tuple):
        return "(" + ",".join(show(x) for x in n) + ")"
    return repr(n)


def fingerprint(value: Any, other: Any = "default", *rest: Any, **extra: Any) -> str:
    return show(norm((value, other, rest, extra)))


# --- values ----------------------------------------------------------------------------------

CONFUSABLE: list[Any] = [
    None, 0, 1, -1, 2**64, -(2**64), 2**200, 0.0, -0.0, 1.0, 2.0**64, True, False,
    "", "0", "1", "1.0", "true", "null", "None", "nan", "inf", "RED", "ONE",
    b"", b"1", bytearray(b"1"), float("nan"), float("inf"), float("-inf"), complex(1, 0),
    Decimal("1"), Decimal("1.0"), Decimal("1.00"), Decimal("0"), Decimal("-0"),
    Decimal("1E+1"), Decimal("10"), Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"),
    UUID(int=1), str(UUID(int=1)), UUID(int=1).bytes,
    dt.date(2026, 1, 1), "2026-01-01", dt.datetime(2026, 1, 1),
    dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 1, 1, tzinfo=PLUS1),
    dt.datetime(2026, 1, 1, 1, tzinfo=ZoneInfo("Europe/Paris")),
    dt.datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Paris"), fold=1),
    dt.datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Paris")),
    dt.time(0), dt.time(0, tzinfo=UTC), dt.timedelta(0), dt.timedelta(days=1),
    Colour.RED, Level.ONE, Mode.ONE, Name("1"), Path("a"), PurePosixPath("a"), "a",
    (), [], {}, set(), frozenset(), (1, 2), [1, 2], Pair(1, 2), {1, 2}, frozenset({1, 2}),
    {"1": 1}, {1: 1}, {True: 1}, {1.0: 1}, {(1,): 1}, {"a": (1,)}, {"a": [1]},
    Query(text="1"), Query(text="1", tags=None), Query(text="1", tags=(1,)),
    Query(text="1", tags=[1]),
]  # fmt: skip


def _set_member(v: Any) -> bool:
    # NaNs are left out of sets and dict keys: two NaN objects are two distinct members there.
    return type(v).__hash__ is not None and v == v


TZ = st.sampled_from(TZS)
HASHABLE_LEAVES = st.one_of(
    st.sampled_from([v for v in CONFUSABLE if _set_member(v)]),
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**130), max_value=2**130),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.dates(),
    st.datetimes(timezones=TZ),
    st.times(timezones=TZ),
    st.timedeltas(),
    st.sampled_from([Colour.RED, Level.ONE, Mode.ONE]),
)
LEAVES = st.one_of(
    HASHABLE_LEAVES,
    st.sampled_from(CONFUSABLE),
    st.floats(),
    st.decimals(),
    st.complex_numbers(),
    st.binary(max_size=4).map(bytearray),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(HASHABLE_LEAVES, inner, max_size=3),
        st.sets(HASHABLE_LEAVES, max_size=3),
        st.frozensets(HASHABLE_LEAVES, max_size=3),
        st.builds(Pair, inner, inner),
        st.builds(Query, text=st.text(max_size=3), tags=inner),
    ),
    max_leaves=8,
)


def rebuilt(v: Any, data: st.DataObject) -> Any:
    """An equal value made of fresh objects, with dict and set insertion order shuffled."""
    t = type(v)
    if t is list:
        return [rebuilt(x, data) for x in v]
    if t is tuple:
        return tuple(rebuilt(x, data) for x in v)
    if t is Pair:
        return Pair(rebuilt(v.a, data), rebuilt(v.b, data))
    if t is dict:
        items = data.draw(st.permutations(list(v.items())))
        return {rebuilt(k, data): rebuilt(x, data) for k, x in items}
    if t is set or t is frozenset:
        return t(rebuilt(x, data) for x in data.draw(st.permutations(list(v))))
    if t is Query:
        if "tags" in v.model_fields_set:
            return Query(text=v.text, tags=rebuilt(v.tags, data))
        return Query(text=v.text)
    if t is bytearray:
        return bytearray(v)
    return v


def twins(v: Any) -> list[Any]:
    """Values that look like ``v`` — equal in Python, or alike in JSON — but usually are not it."""
    t = type(v)
    out: list[Any] = []
    if t is tuple or t is Pair:
        out += [list(v), tuple(v)]
    elif t is list:
        out += [tuple(v)]
    elif t is set or t is frozenset:
        out += [frozenset(v) if t is set else set(v), sorted(v, key=repr)]
    elif t is bool:
        out += [int(v), str(v).lower()]
    elif t is int:
        out += [str(v), Decimal(v), -v]
        out += [float(v)] if abs(v) < 2**53 else []
        out += [bool(v)] if v in (0, 1) else []
    elif t is float:
        out += [-v, str(v), None]
        out += [int(v), Decimal(repr(v))] if v == v and abs(v) != float("inf") else []
    elif t is str:
        out += [v.encode("utf-8", "surrogatepass"), Name(v)]
    elif t is bytes:
        out += [bytearray(v), v.decode("latin-1")]
    elif t is Decimal:
        out += [str(v), v.copy_negate()]
        if v.is_finite():
            out += [v.normalize(), v.quantize(Decimal(1)) if abs(v) < 10**20 else v, float(v)]
    elif t is dt.datetime:
        out += [v.isoformat(), v.replace(fold=1 - v.fold), v.date()]
        out += (
            [v.replace(tzinfo=None), v.astimezone(PLUS1)] if v.tzinfo else [v.replace(tzinfo=UTC)]
        )
    elif t is dt.time:
        out += [v.isoformat(), v.replace(tzinfo=None if v.tzinfo else UTC)]
    elif t is UUID:
        out += [str(v), v.bytes, v.int]
    elif isinstance(v, enum.Enum):
        out += [v.value, v.name]
    elif t is dict:
        out += [{str(k): x for k, x in v.items()}, list(v.items())]
    elif t is Query:
        out += [v.model_dump(), Query(text=v.text, tags=v.tags)]
    return out or [None]


def look_alike(v: Any, data: st.DataObject) -> Any:
    """``v`` with one part (or the whole) replaced by one of its :func:`twins`."""
    t = type(v)
    parts: list[Any] = list(v) if t in (list, tuple, Pair) else []
    if t is dict:
        parts = list(v.items())
    descend: bool = data.draw(st.booleans())
    if parts and descend:
        i = data.draw(st.integers(0, len(parts) - 1))
        if t is dict:
            k, x = parts[i]
            parts[i] = (k, look_alike(x, data))
            return dict(parts)
        parts[i] = look_alike(parts[i], data)
        return Pair(*parts) if t is Pair else t(parts)
    return data.draw(st.sampled_from(twins(v)))


# --- the caches under test -------------------------------------------------------------------

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", params=["disk", "memory"])
def cached_fingerprint(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Memoized[..., str]]:
    store = None if request.param == "disk" else "memory://"
    with PromptCache(directory=tmp_path_factory.mktemp("pc"), store=store) as pc:
        yield pc.cached(fingerprint)


@SETTINGS
@given(a=VALUES, other=VALUES, data=st.data())
def test_distinct_values_never_share_a_key(
    cached_fingerprint: Memoized[..., str], a: Any, other: Any, data: st.DataObject
) -> None:
    # Against any other value and against look-alikes of a: near misses are where
    # collisions hide.
    key = cached_fingerprint.cache_key
    candidates = [other, look_alike(a, data), *twins(a)]
    for b in candidates:
        assert (key(a) == key(b)) == (norm(a) == norm(b)), (a, b)
    # And for real: after a's call is cached, b's call gets b's answer.
    b = data.draw(st.sampled_from(candidates))
    assert cached_fingerprint(a) == fingerprint(a)
    assert cached_fingerprint(b) == fingerprint(b)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(a=st.one_of(LEAVES, st.lists(LEAVES, max_size=2), st.lists(LEAVES, max_size=2).map(tuple)))
def test_scalar_look_alikes_never_share_a_key(
    cached_fingerprint: Memoized[..., str], a: Any
) -> None:
    key = cached_fingerprint.cache_key
    for b in twins(a) + [
        t for part in (a if type(a) in (list, tuple) else []) for t in twins(part)
    ]:
        assert (key(a) == key(b)) == (norm(a) == norm(b)), (a, b)


@SETTINGS
@given(a=VALUES, other=VALUES, extra=VALUES, data=st.data())
def test_equal_calls_always_share_a_key(
    cached_fingerprint: Memoized[..., str], a: Any, other: Any, extra: Any, data: st.DataObject
) -> None:
    key = cached_fingerprint.cache_key
    b = rebuilt(a, data)
    assert norm(b) == norm(a)
    assert key(a) == key(b)
    # The signature binds these alike: defaults applied, positional or keyword.
    assert key(a) == key(value=b) == key(b, "default") == key(b, other="default")
    assert key(a, other) == key(b, other=rebuilt(other, data))
    assert key(a, other, x=extra, y=1) == key(b, other, y=1, x=rebuilt(extra, data))


# --- concrete cases that collided before -----------------------------------------------------

PAIRS = [
    ((1, 2), [1, 2]),
    (float("nan"), None),
    (float("inf"), None),
    (float("-inf"), float("inf")),
    (Level.ONE, 1),
    (Mode.ONE, "1"),
    (Colour.RED, 1),
    ({1: "x"}, {"1": "x"}),
    ({True: "x"}, {1: "x"}),
    (Decimal("1.0"), Decimal("1")),
    (Decimal("1"), "1"),
    (UUID(int=1), str(UUID(int=1))),
    (b"abc", "abc"),
    ({1, 2}, frozenset({1, 2})),
    ({1, 2}, [1, 2]),
    (dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1, tzinfo=UTC)),
    (dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 1, 1, tzinfo=PLUS1)),
    (dt.datetime(2026, 1, 1, 1, tzinfo=PLUS1), dt.datetime(2026, 1, 1, 1, tzinfo=TZS[3])),
    (dt.date(2026, 1, 1), "2026-01-01"),
    (Pair(1, 2), (1, 2)),
    (Query(text="q", tags=(1,)), Query(text="q", tags=[1])),
    (Query(text="q", tags=[dt.date(2026, 1, 1)]), Query(text="q", tags=["2026-01-01"])),
    (Name("1"), "1"),
    ([2**64], [float(2**64)]),
]


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{a!r}-vs-{b!r}" for a, b in PAIRS])
@pytest.mark.parametrize("store", ["disk", "memory"])
def test_values_that_used_to_collide(tmp_path: Path, store: str, a: Any, b: Any) -> None:
    with PromptCache(directory=tmp_path, store=None if store == "disk" else "memory://") as pc:
        f = pc.cached(fingerprint)
        assert f(a) == fingerprint(a)
        assert f(b) == fingerprint(b)
        assert f(a) == fingerprint(a)
        assert f.cache_key(a) != f.cache_key(b)


GROUPS: dict[str, list[Any]] = {
    "one": [1, 1.0, True, "1", b"1", Decimal("1"), Level.ONE, Mode.ONE, Colour.RED, (1,), [1]],
    "zero": [0, 0.0, -0.0, False, None, "", "0", Decimal("0"), Decimal("-0"), (), [], {}],
    "nan": [float("nan"), float("inf"), float("-inf"), None, "nan", Decimal("NaN")],
}


@pytest.mark.parametrize("group", GROUPS)
def test_look_alikes_get_their_own_answers(tmp_path: Path, group: str) -> None:
    values = GROUPS[group]
    with PromptCache(directory=tmp_path) as pc:
        f = pc.cached(fingerprint)
        assert len({f.cache_key(v) for v in values}) == len(values)
        for v in values * 2:
            assert f(v) == fingerprint(v)


class Opaque:
    pass


@pytest.mark.parametrize("store", ["disk", "memory"])
def test_unkeyable_arguments_run_uncached_with_one_warning(tmp_path: Path, store: str) -> None:
    runs: list[object] = []

    with PromptCache(directory=tmp_path, store=None if store == "disk" else "memory://") as pc:

        @pc.cached
        def describe(value: Any) -> str:
            runs.append(value)
            return type(value).__name__

        with pytest.warns(PromptCacheWarning, match=r"argument 'value'\[0\]: .*Opaque") as rec:
            assert describe([Opaque()]) == "list"
            assert describe([Opaque()]) == "list"
            assert describe({"k": object()}) == "dict"
        assert len(rec) == 1  # once per function, not per call
        assert len(runs) == 3  # and the function ran every time
        assert describe(["fine"]) == describe(["fine"]) == "list"
        assert len(runs) == 4
        with pytest.raises(TypeError, match="Opaque"):
            describe.cache_key([Opaque()])
