"""Attribution of spend: tags and the app function a call was made from.

Both live in :mod:`contextvars`, so they follow asyncio tasks automatically (a task copies the
context it was created in; ``asyncio.to_thread`` and ``loop.run_in_executor`` … see below). The
transport reads :func:`current_attribution` once, when a request starts, and stores it with
the call.

Threads: a new ``threading.Thread`` or a ``concurrent.futures`` pool worker starts with an
*empty* context — that is Python's rule, and we do not monkeypatch threading. To carry the
attribution into a worker, bind the function where you submit it::

    with promptcache.tag("batch"):
        pool.submit(promptcache.current_attribution().bind(work), item)

``bind`` captures the tags and function at the time it is called, so a worker's calls are billed
where they were submitted from. ``asyncio.to_thread`` already copies the context.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast, overload

__all__ = ["Attribution", "bind", "current_attribution", "tag", "track"]

_TAGS: ContextVar[tuple[str, ...]] = ContextVar("promptcache_tags", default=())
_FUNCTION: ContextVar[str | None] = ContextVar("promptcache_function", default=None)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who a call is billed to: the active tags (outermost first) and the app function."""

    tags: tuple[str, ...] = ()
    function: str | None = None

    @contextmanager
    def apply(self) -> Iterator[None]:
        """Make this attribution current inside the block (e.g. in a worker thread).

        Tags already active in the block's context are kept; this one's are added after them.
        """
        t_tags = _TAGS.set(_merge(_TAGS.get(), self.tags))
        t_fn = _FUNCTION.set(self.function) if self.function is not None else None
        try:
            yield
        finally:
            if t_fn is not None:
                _FUNCTION.reset(t_fn)
            _TAGS.reset(t_tags)

    def bind(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Return ``fn`` wrapped to run under this attribution, wherever it is called.

        For ``ThreadPoolExecutor.submit``, ``threading.Thread(target=...)`` and callbacks.
        """

        @functools.wraps(fn)
        def bound(*args: P.args, **kwargs: P.kwargs) -> R:
            with self.apply():
                return fn(*args, **kwargs)

        return bound


_EMPTY = Attribution()


def _merge(old: tuple[str, ...], new: tuple[str, ...]) -> tuple[str, ...]:
    return old + tuple(n for n in dict.fromkeys(new) if n not in old)


def current_attribution() -> Attribution:
    """Return the attribution in force in the current context."""
    tags = _TAGS.get()
    function = _FUNCTION.get()
    if not tags and function is None:
        return _EMPTY
    return Attribution(tags, function)


def bind(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to the attribution current *now* (shorthand for ``current_attribution().bind``).

    >>> import promptcache
    >>> from promptcache._accounting._attribution import bind
    >>> with promptcache.tag("etl"):
    ...     job = bind(lambda: promptcache.current_attribution().tags)
    >>> job()
    ('etl',)
    """
    return current_attribution().bind(fn)


@contextmanager
def tag(*names: str) -> Iterator[None]:
    """Attribute every call made inside the block to ``names`` (nested tags accumulate).

    >>> import promptcache
    >>> with promptcache.tag("search"):
    ...     promptcache.current_attribution().tags
    ('search',)
    """
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"tag names must be non-empty strings, got {name!r}")
    token = _TAGS.set(_merge(_TAGS.get(), names))
    try:
        yield
    finally:
        _TAGS.reset(token)


def _function_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
    return f"{module}.{qualname}"


def _enter_tags(own: tuple[str, ...] | None) -> tuple[str, ...]:
    # A generator body runs in its caller's context, so a ``with tag(...)`` left open across a
    # yield would bill the caller's next calls to the generator's tag. Each step therefore
    # starts from the tags the body had in force at its last yield (if it changed them) and
    # hands the caller's own back when it yields.
    caller = _TAGS.get()
    if own is not None:
        _TAGS.set(own)
    return caller


def _leave_tags(caller: tuple[str, ...], own: tuple[str, ...] | None) -> tuple[str, ...] | None:
    after = _TAGS.get()
    expected = caller if own is None else own
    if after is not expected:
        own = None if after == caller else after
    _TAGS.set(caller)
    return own


def _decorate(fn: Callable[P, R], name: str) -> Callable[P, R]:
    if inspect.isasyncgenfunction(fn):
        agen_fn = cast(Callable[..., AsyncIterator[Any]], fn)

        @functools.wraps(fn)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            agen: Any = agen_fn(*args, **kwargs)
            method, arg = agen.asend, None
            own: tuple[str, ...] | None = None
            while True:
                # Set only while the body runs: between yields the caller's attribution holds.
                token = _FUNCTION.set(name)
                caller = _enter_tags(own)
                try:
                    item = await method(arg)
                except StopAsyncIteration:
                    return
                finally:
                    own = _leave_tags(caller, own)
                    _FUNCTION.reset(token)
                try:
                    arg = yield item
                    method = agen.asend
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as exc:
                    method, arg = agen.athrow, exc

        return cast(Callable[P, R], agen_wrapper)

    if inspect.isgeneratorfunction(fn):
        gen_fn = cast(Callable[..., Iterator[Any]], fn)

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            gen: Any = gen_fn(*args, **kwargs)
            method, arg = gen.send, None
            own: tuple[str, ...] | None = None
            while True:
                token = _FUNCTION.set(name)
                caller = _enter_tags(own)
                try:
                    item = method(arg)
                except StopIteration as stop:
                    return stop.value
                finally:
                    own = _leave_tags(caller, own)
                    _FUNCTION.reset(token)
                try:
                    arg = yield item
                    method = gen.send
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as exc:
                    method, arg = gen.throw, exc

        return cast(Callable[P, R], gen_wrapper)

    if inspect.iscoroutinefunction(fn):
        coro_fn = cast(Callable[..., Awaitable[Any]], fn)

        @functools.wraps(fn)
        async def coro_wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _FUNCTION.set(name)
            try:
                return await coro_fn(*args, **kwargs)
            finally:
                _FUNCTION.reset(token)

        return cast(Callable[P, R], coro_wrapper)

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _FUNCTION.set(name)
        try:
            return fn(*args, **kwargs)
        finally:
            _FUNCTION.reset(token)

    return wrapper


@overload
def track(fn: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def track(*, name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def track(
    fn: Callable[P, R] | None = None, /, *, name: str | None = None
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Attribute every call made while an app function runs to that function.

    Works on plain functions, coroutine functions and (async) generators; the signature,
    ``__wrapped__`` and ``__name__`` are kept. The function is named ``module.qualname``
    unless ``name=`` is given; in nested tracked functions the innermost wins. Tags are not
    touched (combine with :func:`tag`).

    >>> import promptcache
    >>> @promptcache.track(name="summarise")
    ... def summarise() -> str | None:
    ...     return promptcache.current_attribution().function
    >>> summarise()
    'summarise'
    """
    if fn is None:
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"track(name=...) must be a non-empty string, got {name!r}")

        def decorator(f: Callable[P, R]) -> Callable[P, R]:
            if not callable(f):
                raise TypeError(f"track() expects a function, got {f!r}")
            return _decorate(f, name or _function_name(f))

        return decorator
    if isinstance(fn, str):
        raise TypeError(f"use @track(name={fn!r}), not @track({fn!r})")
    if not callable(fn):
        raise TypeError(f"track() expects a function, got {fn!r}")
    return _decorate(fn, name or _function_name(fn))
