"""Issue 9, item 3: ``@pc.cached`` knows which function it is.

Before, a memo was keyed on ``module:qualname`` alone, so every test below got another
function's result back. Now the identity holds the code, defaults and captured values; what
cannot be keyed is refused when decorating, unless ``namespace=`` or ``key=`` vouches for it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import promptcache
from promptcache import ConfigError, PromptCache, PromptCacheWarning
from promptcache._memo import Memoized


@pytest.fixture(params=["disk", "memory"])
def pc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PromptCache]:
    store = None if request.param == "disk" else "memory://"
    with PromptCache(directory=tmp_path / "pc", store=store) as cache:
        yield cache


def test_lambdas_are_told_apart(pc: PromptCache) -> None:
    double = pc.cached(lambda x: 2 * x)
    triple = pc.cached(lambda x: 3 * x)
    assert double(5) == 10
    assert triple(5) == 15  # was 10: both were "<lambda>" in this test
    assert double(5) == 10


def test_closures_from_one_factory_with_different_captured_values(pc: PromptCache) -> None:
    def make_greeter(greeting: str, punctuation: str = "!") -> Callable[[str], str]:
        def greet(name: str, suffix: str = punctuation) -> str:
            return f"{greeting}, {name}{suffix}"

        return pc.cached(greet)

    assert make_greeter("Hello")("Ada") == "Hello, Ada!"
    assert make_greeter("Bonjour")("Ada") == "Bonjour, Ada!"  # was "Hello, Ada!"
    assert make_greeter("Hello", "?")("Ada") == "Hello, Ada?"  # a default from the factory
    # The same closure made again is the same function: its entries are shared.
    calls = []

    def make_counter(step: int) -> Callable[[int], int]:
        def add(x: int) -> int:
            calls.append(x)
            return x + step

        return add

    first, again = pc.cached(make_counter(1)), pc.cached(make_counter(1))
    assert first(1) == again(1) == 2
    assert calls == [1]
    # Under functools.cache, the function inside is what counts.
    assert pc.cached(functools.cache(make_counter(3)))(1) == 4
    assert pc.cached(functools.cache(make_counter(4)))(1) == 5  # was 4
    # functools.partial objects are told apart by what they bind.
    assert pc.cached(functools.partial(make_counter(10), 1))() == 11
    assert pc.cached(functools.partial(make_counter(20), 1))() == 21  # was 11


def test_defaults_are_part_of_the_identity(pc: PromptCache) -> None:
    def make_formatter(transform: Callable[[str], str]) -> Memoized[[str], str]:
        def fmt(text: str, how: Callable[[str], str] = transform) -> str:
            return how(text)

        return pc.cached(fmt)

    assert make_formatter(str.upper)("MiXed") == "MIXED"  # was a TypeError: not JSON
    assert make_formatter(str.lower)("MiXed") == "mixed"
    assert make_formatter(str.upper).cache_key("x") == make_formatter(str.upper).cache_key("x")

    # A mutable default is keyed as it is at call time.
    @pc.cached
    def total(x: int, extra: list[int] = [1]) -> int:  # noqa: B006
        return x + sum(extra)

    assert total(1) == 2
    total.__wrapped__.__defaults__[0].append(10)  # type: ignore[index]
    assert total(1) == 12


def test_same_named_functions_in_different_scopes(pc: PromptCache) -> None:
    transforms = []
    for mode in ("upper", "lower"):
        if mode == "upper":

            def transform(text: str) -> str:
                return text.upper()

        else:

            def transform(text: str) -> str:
                return text.lower()

        transforms.append(pc.cached(transform))
    upper, lower = transforms
    assert upper("MiXed") == "MIXED"
    assert lower("MiXed") == "mixed"  # was "MIXED": same module, same qualified name

    # An edited function (same module and name, new code) starts afresh.
    scope: dict[str, Any] = {"__name__": __name__}
    exec("def version(x):\n    return ('old', x)\n", scope)
    old = pc.cached(scope["version"])
    exec("def version(x):\n    return ('new', x)\n", scope)
    new = pc.cached(scope["version"])
    assert old(1) == ("old", 1)
    assert new(1) == ("new", 1)  # was ("old", 1)


def test_recursive_and_async_closures(pc: PromptCache) -> None:
    def make_countdown(landing: str) -> Callable[[int], str]:
        def countdown(n: int) -> str:
            return countdown(n - 1) if n else landing

        return pc.cached(countdown)

    assert make_countdown("moon")(3) == "moon"
    assert make_countdown("mars")(3) == "mars"  # was "moon"

    @pc.cached
    def fib(n: int) -> int:  # refers to itself through the name it is bound to
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(30) == 832040


async def test_async_closures(pc: PromptCache) -> None:
    def make(prefix: str) -> Callable[[str], Any]:
        async def tag(text: str) -> str:
            return prefix + text

        return pc.cached(tag)

    assert await make("a:")("x") == "a:x"
    assert await make("b:")("x") == "b:x"  # was "a:x"


def make_guarded(label: str) -> Callable[[int], str]:
    """A closure over a lock: a captured value that cannot be keyed."""
    lock = threading.Lock()

    def guarded(x: int) -> str:
        with lock:
            return f"{label}{x}"

    return guarded


def test_unkeyable_closure_is_refused_when_decorating(pc: PromptCache) -> None:
    with pytest.raises(ConfigError) as info:
        pc.cached(make_guarded("a"))  # was accepted, keyed on the name alone
    message = str(info.value)
    assert "make_guarded.<locals>.guarded" in message
    assert "captured variable 'lock'" in message and "lock" in message
    assert "key=" in message and "namespace=" in message

    # A default that cannot be keyed is refused the same way.
    def with_client(q: str, client: object = threading.Lock()) -> str:
        return q

    with pytest.raises(ConfigError, match=r"default of parameter 'client'.*namespace="):
        pc.cached(with_client)
    # The module-level decorator refuses too.
    with pytest.raises(ConfigError, match="namespace="):
        promptcache.cached(make_guarded("b"))


def test_namespace_and_key_are_escape_hatches(pc: PromptCache) -> None:
    # With namespace= the lock is left out, but the keyable captured value still counts.
    a = pc.cached(namespace="guarded")(make_guarded("a"))
    b = pc.cached(namespace="guarded")(make_guarded("b"))
    assert a(1) == "a1"
    assert b(1) == "b1"  # was "a1"
    assert a.cache_key(1) == pc.cached(namespace="guarded")(make_guarded("a")).cache_key(1)

    # With key= the key function identifies the call; its identity counts too.
    c = pc.cached(key=lambda x: ["c", x])(make_guarded("c"))
    d = pc.cached(key=lambda x: ["d", x])(make_guarded("d"))
    assert c(1) == "c1" and d(1) == "d1"

    # A default that cannot be keyed is left out; a call passing its own value runs uncached.
    def with_client(q: str, client: object = threading.Lock()) -> str:
        return q.upper()

    shout = pc.cached(namespace="shout")(with_client)
    assert shout("x") == "X" and shout.cache_key("x") == shout.cache_key(q="x")
    with pytest.warns(PromptCacheWarning, match="argument 'client'"):
        assert shout("y", client=threading.Lock()) == "Y"


class Greeter(BaseModel):
    greeting: str

    def greet(self, name: str) -> str:
        return f"{self.greeting}, {name}"


class Base:
    def render(self, text: str) -> str:
        return f"<{text}>"


def test_methods(pc: PromptCache) -> None:
    # Bound methods: the object they are bound to is part of the identity.
    assert pc.cached(Greeter(greeting="Hi").greet)("Ada") == "Hi, Ada"
    assert pc.cached(Greeter(greeting="Yo").greet)("Ada") == "Yo, Ada"  # was "Hi, Ada"

    # Methods decorated in a class body that a factory makes, keyed with key= (self cannot
    # be keyed); super() works (its __class__ cell is not assigned yet when decorating).
    def make_renderer(style: str) -> Any:
        class Renderer(Base):
            @pc.cached(key=lambda self, text: text)
            def render(self, text: str) -> str:
                return style + super().render(text)

        return Renderer()

    assert make_renderer("bold").render("hi") == "bold<hi>"
    assert make_renderer("thin").render("hi") == "thin<hi>"  # was "bold<hi>"

    # A method whose self cannot be keyed and no key=: calls run uncached, one warning.
    class Plain:
        def __init__(self, n: int) -> None:
            self.n = n

        @pc.cached
        def times(self, x: int) -> int:
            return self.n * x

    with pytest.warns(PromptCacheWarning, match="argument 'self'") as record:
        assert Plain(2).times(3) == 6
        assert Plain(3).times(3) == 9
    assert len(record) == 1
