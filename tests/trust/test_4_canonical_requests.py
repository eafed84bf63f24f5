"""Issue 9, item 4 (requests): the canonical form of a request is injective.

Two bodies that the SDK would send differently never share a key (``1``, ``1.0``, ``True`` and
``"1"`` included); two that it would send alike always do (dict order, the fast path's key on
the user's arguments vs the transport's key on the SDK's bytes). Values JSON cannot spell
unambiguously — NaN, ±inf, ``UUID``, ``Decimal``, ``bytes``, enums … — are never keyed by the
fast path: the SDK gets the call and raises exactly as it does bare, or sends what it sends and
the transport keys those bytes. A body the transport cannot key is sent uncached, with one
warning.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from anthropic._utils._json import openapi_dumps as anthropic_dumps
from hypothesis import given, settings
from hypothesis import strategies as st
from openai._utils._json import openapi_dumps as openai_dumps
from openai.types.chat import ChatCompletion

from promptcache import PromptCacheWarning
from promptcache._api import Api
from promptcache._keys import CacheKey, namespace, request_key, request_key_from_bytes
from promptcache._wrap import PromptCache
from promptcache.testing import Emulator
from tests.trust.keys_kit import (
    KINDS,
    PATHS,
    call,
    checked_pc,
    close,
    emu,
    is_anthropic,
    make_client,
    request,
    served,
)

__all__ = ["checked_pc", "emu"]

NS = namespace("openai", "https://api.openai.com/v1", "t")


def key(body: dict[str, Any]) -> CacheKey:
    return request_key(NS, Api.OPENAI_CHAT, body, {"content-type": "application/json"})


def wire_key(wire: bytes) -> CacheKey:
    return request_key_from_bytes(NS, Api.OPENAI_CHAT, wire, {"content-type": "application/json"})[
        0
    ]


# --- property tests on the pure keying functions --------------------------------------------

_leaf: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.sampled_from([0, 1, -1, 0.0, -0.0, 1.0, -1.0, "1", "1.0", "true", "null", ""])
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e18, max_value=1e18)
    | st.text(max_size=12)
)
_json: st.SearchStrategy[Any] = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)
_bodies = st.dictionaries(st.text(max_size=6), _json, max_size=5)


def tagged(value: Any) -> Any:
    """A value's JSON identity: its type as well as its value, dict order ignored."""
    if isinstance(value, dict):
        return ("object", frozenset((k, tagged(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("array", tuple(tagged(v) for v in value))
    if isinstance(value, float):
        return ("float", repr(value))  # -0.0 and 0.0 are sent differently
    return (type(value).__name__, value)


def shuffled(value: Any, draw: Callable[[list[Any]], list[Any]]) -> Any:
    if isinstance(value, dict):
        items = draw(list(value.items()))
        return {k: shuffled(v, draw) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, draw) for v in value]
    return value


@settings(max_examples=250, deadline=None)
@given(_bodies, _bodies)
def test_property_distinct_bodies_never_share_a_key(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert (key(a) == key(b)) == (tagged(a) == tagged(b))


_LOOKALIKES: list[Any] = [1, 1.0, True, "1", None, 0, 0.0, -0.0, False, "", [], {}, [1], [1.0]]


@settings(max_examples=300, deadline=None)
@given(_bodies, st.text(max_size=6), st.sampled_from(_LOOKALIKES), st.sampled_from(_LOOKALIKES))
def test_property_lookalike_values_key_apart(
    body: dict[str, Any], field: str, x: Any, y: Any
) -> None:
    a, b = {**body, field: x}, {**body, field: y}
    assert (key(a) == key(b)) == (tagged(x) == tagged(y))


@settings(max_examples=150, deadline=None)
@given(_bodies, st.randoms(use_true_random=False))
def test_property_equal_bodies_always_share_a_key(body: dict[str, Any], rnd: Any) -> None:
    def draw(items: list[Any]) -> list[Any]:
        rnd.shuffle(items)
        return items

    k = key(body)
    assert key(shuffled(body, draw)) == k
    # What the SDKs put on the wire, in any order and spelling, keys like the user's dict:
    # the transport (bytes) and the fast path (arguments) always land on the same entry.
    for wire in (
        openai_dumps(shuffled(body, draw)),
        anthropic_dumps(shuffled(body, draw)),
        json.dumps(shuffled(body, draw), ensure_ascii=True, indent=1).encode(),
    ):
        assert wire_key(wire) == k


class _Colour(enum.Enum):
    RED = "red"


class _Str(str):
    pass


_NOT_PLAIN: list[Any] = [
    float("nan"),
    float("inf"),
    float("-inf"),
    uuid.UUID(int=7),
    decimal.Decimal("0.5"),
    datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC),
    datetime.date(2026, 1, 2),
    b"bytes",
    {"a"},
    frozenset({"a"}),
    _Colour.RED,
    _Str("red"),
    2**64,
    -(2**63) - 1,
    1e19,
    {1: "int key"},
    object(),
]


@settings(max_examples=300, deadline=None)
@given(_bodies, st.sampled_from(_NOT_PLAIN), st.lists(st.sampled_from(["a", "b", 0]), max_size=3))
def test_property_values_json_cannot_spell_are_never_keyed(
    body: dict[str, Any], bad: Any, path: list[Any]
) -> None:
    # Bury the value somewhere in the body: the key refuses it wherever it is.
    value: Any = bad
    for step in reversed(path):
        value = [value] if step == 0 else {step: value}
    with pytest.raises(TypeError):
        key({**body, "x": value})


def test_wire_numbers_beyond_what_a_double_tells_apart_are_not_keyed() -> None:
    # orjson reads these integers as the same float: keying them would merge two requests.
    for wire in (b'{"seed": 123456789012345678901234567890}', b'{"seed": 1.2345678901234568e29}'):
        with pytest.raises(TypeError):
            wire_key(wire)
    for wire in (b'{"t": NaN}', b'{"t": Infinity}', b'{"t": 1e400}'):
        with pytest.raises(ValueError):
            wire_key(wire)


def test_deep_or_cyclic_bodies_are_not_keyed() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(TypeError):
        key({"cyclic": cyclic})
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    with pytest.raises(TypeError):
        key({"deep": deep})


# --- through the real SDKs and the emulator -------------------------------------------------


def _metadata(kind: str, value: Any) -> dict[str, Any]:
    return {"metadata": {"user_id" if is_anthropic(kind) else "k": value}}


async def _outcome(client: Any, kind: str, path: str, kwargs: dict[str, Any]) -> BaseException:
    try:
        await call(client, kind, path, **kwargs)
    except Exception as exc:
        return exc
    raise AssertionError(f"the call did not raise: {kwargs}")


# (the value the SDK cannot send, a plain value that pristine keying confused it with)
RAISING: dict[str, tuple[Any, Any]] = {
    "nan": (float("nan"), None),
    "inf": (float("inf"), None),
    "-inf": (float("-inf"), None),
    "uuid": (uuid.UUID(int=7), str(uuid.UUID(int=7))),
    "enum": (_Colour.RED, "red"),
    "decimal": (decimal.Decimal("0.5"), 0.5),
    "bytes": (b"red", "red"),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("what", sorted(RAISING))
@pytest.mark.parametrize("kind", KINDS)
async def test_what_the_sdk_refuses_raises_as_bare_even_after_a_lookalike_was_cached(
    kind: str, what: str, path: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    bad, lookalike = RAISING[what]
    bare = make_client(kind, emu)
    wrapped = checked_pc.wrap(bare)
    await call(wrapped, kind, path, **request(kind, "lookalike", **_metadata(kind, lookalike)))
    assert served(emu) == 1
    kwargs = request(kind, "lookalike", **_metadata(kind, bad))
    expected = await _outcome(bare, kind, path, kwargs)
    got = await _outcome(wrapped, kind, path, kwargs)
    assert type(got) is type(expected) and str(got) == str(expected)
    assert served(emu) == 1
    await close(bare)


@pytest.mark.parametrize("kind", ["OpenAI", "AsyncOpenAI"])
async def test_temperature_nan_is_not_temperature_none(
    kind: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    bare = make_client(kind, emu)
    wrapped = checked_pc.wrap(bare)
    await call(wrapped, kind, **request(kind, "sampling", temperature=None))
    with pytest.raises(ValueError, match=re.escape("Out of range float values")):
        await call(wrapped, kind, **request(kind, "sampling", temperature=float("nan")))
    assert served(emu) == 1
    await close(bare)


class _Tier(enum.StrEnum):
    GOLD = "gold"


# (a value the SDK sends as something plain, that plain value as the user could write it)
SENT: dict[str, tuple[Any, Any, list[str]]] = {
    "datetime": (
        datetime.datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=datetime.UTC),
        "2026-01-02T03:04:05.000600+00:00",
        KINDS,
    ),
    "naive-datetime": (datetime.datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05", KINDS),
    "date": (datetime.date(2026, 1, 2), "2026-01-02", ["Anthropic", "AsyncAnthropic"]),
    "tuple": (("a", "b"), ["a", "b"], KINDS),
    "set": ({"only"}, ["only"], ["Anthropic", "AsyncAnthropic"]),
    "str-enum": (_Tier.GOLD, "gold", KINDS),
    "int-key": ({1: "x"}, {"1": "x"}, KINDS),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("what", sorted(SENT))
@pytest.mark.parametrize("kind", KINDS)
async def test_what_the_sdk_sends_is_keyed_on_what_it_sends(
    kind: str, what: str, path: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    value, plain, kinds = SENT[what]
    if kind not in kinds:
        pytest.skip(f"{kind} refuses {what}")
    bare = make_client(kind, emu)
    wrapped = checked_pc.wrap(bare)
    first = await call(wrapped, kind, path, **request(kind, what, **_metadata(kind, value)))
    sent = emu.calls[-1].request_body
    assert sent is not None and sent["metadata"] == _metadata(kind, plain)["metadata"]
    # The same wire body is the same request, however the user spelled it…
    again = await call(wrapped, kind, path, **request(kind, what, **_metadata(kind, value)))
    same = await call(wrapped, kind, path, **request(kind, what, **_metadata(kind, plain)))
    assert again.id == first.id == same.id and served(emu) == 1
    # …and anything else is another.
    other = await call(wrapped, kind, path, **request(kind, what, **_metadata(kind, "other")))
    assert other.id != first.id and served(emu) == 2
    await close(bare)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", KINDS)
async def test_one_one_point_oh_true_and_the_string_key_apart(
    kind: str, path: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    bare = make_client(kind, emu)
    wrapped = checked_pc.wrap(bare)
    values: list[Any] = [1, 1.0, True, "1", None, 0, 0.0, -0.0, False, ""]
    ids = [
        (await call(wrapped, kind, path, **request(kind, "types", **_metadata(kind, v)))).id
        for v in values
    ]
    assert len(set(ids)) == len(values) == served(emu)
    again = [
        (await call(wrapped, kind, path, **request(kind, "types", **_metadata(kind, v)))).id
        for v in values
    ]
    assert again == ids and served(emu) == len(values)
    await close(bare)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_body_the_transport_cannot_key_goes_uncached_with_one_warning(
    kind: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    # The SDK sends integers beyond 64 bits exactly; a double cannot tell them apart.
    bare = make_client(kind, emu)
    wrapped = checked_pc.wrap(bare)
    kwargs = request(kind, "huge", **_metadata(kind, 2**70))
    with pytest.warns(PromptCacheWarning, match="not JSON that can be keyed"):
        first = await call(wrapped, kind, **kwargs)
    second = await call(wrapped, kind, **kwargs)  # no second warning (filterwarnings=error)
    assert first.id != second.id and served(emu) == 2
    await close(bare)


def test_raw_bytes_with_nan_go_upstream_uncached(emu: Emulator, pc_dir: Path) -> None:
    content = (
        b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}'
    )
    bare = make_client("OpenAI", emu)
    with pytest.raises(openai.BadRequestError) as expected:
        bare.post("/chat/completions", cast_to=ChatCompletion, content=content)
    with PromptCache(pc_dir) as pc:
        wrapped = pc.wrap(bare)
        with (
            pytest.warns(PromptCacheWarning, match="not JSON that can be keyed"),
            pytest.raises(openai.BadRequestError) as got,
        ):
            wrapped.post("/chat/completions", cast_to=ChatCompletion, content=content)
        with pytest.raises(openai.BadRequestError):
            wrapped.post("/chat/completions", cast_to=ChatCompletion, content=content)
    assert got.value.status_code == expected.value.status_code == 400
    assert len(emu.calls) == 3
    bare.close()
