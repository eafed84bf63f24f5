from __future__ import annotations

import dataclasses
import datetime
import enum
import inspect
import json
from pathlib import Path
from typing import Any, assert_type

import orjson
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion
from pydantic import BaseModel

from promptcache._errors import MemoKeyWarning, StoreError, StoreWarning
from promptcache._memo import cache_helpers, memoize
from promptcache._store import DiskStore, MemoryStore, SafeStore, StoreStats

FIXTURES = Path(__file__).parent / "fixtures"
NS = "test"


@pytest.fixture()
def store() -> SafeStore:
    return SafeStore(MemoryStore())


def chat_completion() -> ChatCompletion:
    return ChatCompletion.model_validate(
        json.loads((FIXTURES / "chat_completion.json").read_text())
    )


def anthropic_message() -> Message:
    return Message.model_validate(json.loads((FIXTURES / "anthropic_message.json").read_text()))


def test_sync_hit_miss_and_argument_binding(store: SafeStore) -> None:
    calls: list[tuple[int, int]] = []

    @memoize(store, namespace=NS)
    def add(a: int, b: int = 2) -> int:
        calls.append((a, b))
        return a + b

    assert add(1) == 3
    assert add(1) == 3
    assert add(1, 2) == 3  # the default, spelled out: same call
    assert add(a=1, b=2) == 3
    assert calls == [(1, 2)]
    assert add(2) == 4
    assert calls == [(1, 2), (2, 2)]
    assert_type(add(5), int)


def test_cached_none_is_a_hit(store: SafeStore) -> None:
    calls = 0

    @memoize(store, namespace=NS)
    def nothing(x: str) -> None:
        nonlocal calls
        calls += 1

    assert nothing("a") is None
    assert nothing("a") is None
    assert calls == 1


@pytest.mark.parametrize("blocking", [False, True])
async def test_async(tmp_path: Path, blocking: bool) -> None:
    inner = DiskStore(tmp_path / "r") if blocking else MemoryStore()
    store = SafeStore(inner)
    calls = 0

    @memoize(store, namespace=NS)
    async def fetch(q: str, *, limit: int = 3) -> list[str]:
        nonlocal calls
        calls += 1
        return [q] * limit

    assert inspect.iscoroutinefunction(fetch)
    assert await fetch("x") == ["x", "x", "x"]
    assert await fetch("x", limit=3) == ["x", "x", "x"]
    assert await fetch("x", limit=1) == ["x"]
    assert calls == 2
    assert_type(await fetch("y"), list[str])
    inner.close()


def test_signature_and_metadata_preserved(store: SafeStore) -> None:
    def greet(name: str, *, punctuation: str = "!") -> str:
        """Say hello."""
        return f"hello {name}{punctuation}"

    wrapped = memoize(store, namespace=NS)(greet)
    assert inspect.signature(wrapped) == inspect.signature(greet)
    assert inspect.unwrap(wrapped) is greet
    assert wrapped.__wrapped__ is greet
    assert wrapped.__name__ == "greet" and wrapped.__doc__ == "Say hello."


def test_key_helper_invalidate_and_clear(store: SafeStore) -> None:
    calls = 0

    @memoize(store, namespace=NS)
    def square(x: int) -> int:
        nonlocal calls
        calls += 1
        return x * x

    h = square
    k = h.cache_key(3)
    assert k.startswith(f"v1|memo|ns={NS}|fn={__name__}:")
    assert "square" in k
    assert h.cache_key(x=3) == k
    assert h.cache_key(4) != k
    square(3)
    square(4)
    h.invalidate(3)
    square(3)
    assert calls == 3
    assert h.cache_clear() == 2
    square(4)
    assert calls == 4


def test_function_identity_is_in_the_key(store: SafeStore) -> None:
    @memoize(store, namespace=NS)
    def double(x: int) -> int:
        return 2 * x

    @memoize(store, namespace=NS)
    def triple(x: int) -> int:
        return 3 * x

    assert double(2) == 4 and triple(2) == 6
    assert double.cache_key(2) != triple.cache_key(2)
    with pytest.raises(TypeError, match=r"not a promptcache\.cached function"):
        cache_helpers(print)


def test_dict_order_and_typed(store: SafeStore) -> None:
    @memoize(store, namespace=NS)
    def f(d: Any) -> Any:
        return d

    fk = cache_helpers(f).cache_key
    assert fk({"a": 1, "b": [1, 2]}) == fk({"b": [1, 2], "a": 1})
    assert fk(1) != fk(1.0) != fk(True)
    # Arguments are always keyed with their types now (issue 9): a tuple is not a list.
    assert fk((1, 2)) != fk([1, 2])

    @memoize(store, namespace=NS, typed=True)
    def g(d: Any) -> Any:
        return d

    assert cache_helpers(g).cache_key((1, 2)) != cache_helpers(g).cache_key([1, 2])


def test_custom_key_function(store: SafeStore) -> None:
    class Repo:
        def __init__(self, name: str) -> None:
            self.name = name
            self.calls = 0

        @memoize(store, namespace=NS, key=lambda self, path: [self.name, path])
        def read(self, path: str) -> str:
            self.calls += 1
            return f"{self.name}/{path}"

    a, b = Repo("a"), Repo("a")
    assert_type(a.read("x"), str)
    assert a.read("x") == "a/x"
    assert b.read("x") == "a/x"  # same key: served from the cache
    assert (a.calls, b.calls) == (1, 0)
    assert Repo.read.cache_key(a, "x") == Repo.read.cache_key(b, "x")
    assert Repo("c").read("x") == "c/x"
    # Helpers live on the function: for a method, pass the instance explicitly.
    assert cache_helpers(Repo.read).cache_key(a, "x") == cache_helpers(Repo.read).cache_key(b, "x")


def test_sdk_objects_round_trip_as_their_own_types(store: SafeStore) -> None:
    @memoize(store, namespace=NS)
    def answer(kind: str) -> Any:
        return chat_completion() if kind == "openai" else (anthropic_message(), {"n": 1})

    fresh_cc = answer("openai")
    cached_cc = answer("openai")
    assert cached_cc is not fresh_cc
    assert type(cached_cc) is ChatCompletion
    assert cached_cc == fresh_cc
    assert cached_cc.to_json() == fresh_cc.to_json()  # unset fields stay unset
    assert cached_cc.choices[0].message.tool_calls is not None

    fresh = answer("anthropic")
    cached = answer("anthropic")
    assert isinstance(cached, tuple)
    assert type(cached[0]) is Message and cached == fresh
    assert type(cached[0].content[1]).__name__ == "ToolUseBlock"


def test_sdk_objects_as_arguments_key_by_content(store: SafeStore) -> None:
    @memoize(store, namespace=NS)
    def summarise(m: Message) -> str:
        return m.id

    sk = cache_helpers(summarise).cache_key
    assert sk(anthropic_message()) == sk(anthropic_message())
    other = anthropic_message().model_copy(update={"id": "msg_other"})
    assert sk(other) != sk(anthropic_message())


def test_plain_values_round_trip(store: SafeStore) -> None:
    value = {
        "list": [1, 2.5, "s", None, True],
        "tuple": (1, (2, 3)),
        "$t": "a key that looks like our tag",
        "inf": float("inf"),
        "nested": {"$t": {"deeper": (None,)}},
    }

    @memoize(store, namespace=NS)
    def get() -> dict[str, Any]:
        return value

    assert get() == value
    cached = get()
    assert cached == value
    assert isinstance(cached["tuple"], tuple) and isinstance(cached["tuple"][1], tuple)


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int


class UserModel(BaseModel):
    a: int


@pytest.mark.parametrize(
    ("arg", "type_name"),
    [
        (object(), "object"),
        (Point(1), "Point"),
        ([{"ok": 1}, {"nested": object()}], "object"),
    ],
)
def test_unkeyable_arguments_run_uncached_with_one_warning(
    store: SafeStore, arg: object, type_name: str
) -> None:
    # Issue 9: an argument that cannot be keyed no longer raises; the call runs uncached.
    calls = []

    @memoize(store, namespace=NS)
    def f(value: Any, other: int = 0) -> int:
        calls.append(1)
        return 1

    with pytest.warns(MemoKeyWarning, match=rf"argument 'value'.*{type_name}"):
        assert f(arg) == 1
    assert f(arg) == 1  # once per function, not per call
    assert len(calls) == 2
    with pytest.raises(TypeError, match=rf"argument 'value'.*{type_name}"):
        cache_helpers(f).cache_key(arg)


def test_sets_dates_bytes_and_int_keys_are_keyable(store: SafeStore) -> None:
    @memoize(store, namespace=NS)
    def f(value: Any) -> int:
        return 1

    fk = cache_helpers(f).cache_key
    for arg in ({1, 2}, datetime.date(2026, 1, 1), b"bytes", {1: "non-str key"}):
        assert fk(arg) == fk(arg)
    assert fk({1: "x"}) != fk({"1": "x"})


@pytest.mark.parametrize(
    ("result", "type_name"),
    [
        ({1, 2}, "set"),
        (object(), "object"),
        (Colour.RED, "Colour"),
        (Point(1), "Point"),
        (UserModel(a=1), "UserModel"),  # not an SDK type: never re-imported from cache data
        ({1: "x"}, "dict key of type int"),
        ([datetime.datetime(2026, 1, 1)], "datetime"),
    ],
)
def test_unstorable_results_raise_type_error(
    store: SafeStore, result: object, type_name: str
) -> None:
    # vouched: `result` is captured, and some of these cannot be keyed into f's identity.
    @memoize(store, namespace=NS, vouched=True)
    def f() -> object:
        return result

    with pytest.raises(TypeError, match=type_name):
        f()


def test_tampered_entry_cannot_import_arbitrary_code(store: SafeStore) -> None:
    calls = 0

    @memoize(store, namespace=NS)
    def f() -> str:
        nonlocal calls
        calls += 1
        return "real"

    f()
    key = cache_helpers(f).cache_key()
    env = orjson.loads(store.get(key) or b"")
    env["r"] = {"$t": "model", "cls": "os:system", "v": "echo pwned"}
    store.set(key, orjson.dumps(env), ttl=None)
    with pytest.warns(StoreWarning, match="refusing to re-create"):
        assert f() == "real"
    assert calls == 2
    assert f() == "real" and calls == 2  # the bad entry was replaced


@pytest.mark.parametrize(
    "raw",
    [b"garbage", b'{"v": 99, "k": "x", "r": 1}', b'{"v": 1, "r": {"$t": "nope"}}', b"[]"],
)
def test_corrupt_entries_are_warned_misses(raw: bytes) -> None:
    mem = MemoryStore()
    store = SafeStore(mem)
    calls = 0

    @memoize(store, namespace=NS)
    def f() -> int:
        nonlocal calls
        calls += 1
        return 7

    mem.set(cache_helpers(f).cache_key(), raw, ttl=None)
    if raw.startswith(b'{"v": 1, "r"'):  # no verify digest: an ordinary miss, no warning
        assert f() == 7
    else:
        with pytest.warns(StoreWarning):
            assert f() == 7
    assert calls == 1
    strict = memoize(SafeStore(mem, strict=True), namespace=NS)(inspect.unwrap(f))
    # f captured `calls`, now 1: its identity (so its key) differs from the first decoration's.
    mem.set(cache_helpers(strict).cache_key(), b"garbage", ttl=None)
    with pytest.raises(StoreError):
        strict()


class FullDisk:
    blocking = False

    def get(self, key: str) -> bytes | None:
        raise OSError(28, "No space left on device")

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        raise OSError(28, "No space left on device")

    def delete(self, key: str) -> None:
        raise OSError(28, "No space left on device")

    def clear(self) -> int:
        return 0

    def stats(self) -> StoreStats:
        return StoreStats(0, 0, 0, 0, "full", "test")

    def close(self) -> None:
        pass


def test_broken_store_runs_the_function() -> None:
    @memoize(SafeStore(FullDisk()), namespace=NS)
    def f(x: int) -> int:
        return x + 1

    with pytest.warns(StoreWarning, match="No space left"):
        assert f(1) == 2
    with pytest.raises(StoreError):
        memoize(SafeStore(FullDisk(), strict=True), namespace=NS)(inspect.unwrap(f))(1)


def test_ttl() -> None:
    now = [0.0]
    store = SafeStore(MemoryStore(clock=lambda: now[0]))
    calls = 0

    @memoize(store, namespace=NS, ttl=60)
    def f() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert f() == 1 and f() == 1
    now[0] = 61
    assert f() == 2


def test_decorating_a_non_callable_raises(store: SafeStore) -> None:
    with pytest.raises(TypeError, match="decorates functions"):
        memoize(store, namespace=NS)(42)  # type: ignore[arg-type]
