"""``memoize``: cache whole app-function results in the response store, sync or async.

Arguments are keyed by their JSON (sorted keys), under the function's module and qualified
name; results are stored as versioned JSON. What can be keyed: ``str``, ``int``, ``float``,
``bool``, ``None``, lists, tuples, dicts with ``str`` keys, and pydantic models (SDK objects
included) by their JSON. What can be stored: the same plain values, tuples (returned as
tuples), and SDK response objects — pydantic models of ``openai.types`` / ``anthropic.types`` —
which come back as their own types. Anything else raises a ``TypeError`` naming the type.

Stored data never names code to run: a model is re-created only if its dotted path lies under
an allow-listed SDK package, so a tampered cache entry cannot import arbitrary modules.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import sys
from collections.abc import Callable
from typing import Any, Final, Generic, ParamSpec, Protocol, TypeVar, cast, overload

import orjson

from promptcache._keys import KEY_VERSION, digest_key
from promptcache._store import SafeStore

__all__ = ["MEMO_VERSION", "SDK_MODULES", "MemoHelpers", "Memoized", "cache_helpers", "memoize"]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: Version of the stored JSON envelope ``{"v", "k", "r"}``; other versions are misses.
MEMO_VERSION: Final = 1

#: Packages whose pydantic models may be re-created from cache content.
SDK_MODULES: Final = ("openai.types", "anthropic.types")

# Dataclasses and datetimes would serialise natively in orjson; routing them to `default`
# rejects them, so that only the documented types are ever keyed.
_KEY_OPTS: Final = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
)
_TAG: Final = "$t"
# Response ids the SDKs set on a top-level response object (public, despite the underscore).
_RESPONSE_IDS: Final = ("_request_id", "_workspace_id")


class MemoHelpers(Protocol):
    """The helpers every memoized function carries."""

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """Return the store key a call with these arguments reads and writes."""
        ...

    def invalidate(self, *args: Any, **kwargs: Any) -> None:
        """Forget the cached result of a call with these arguments."""
        ...

    def cache_clear(self) -> int:
        """Forget every cached result of this function; return how many were removed."""
        ...


class Memoized(Protocol[P, R_co]):
    """What :func:`memoize` returns: the function, same signature, plus cache helpers.

    On a method, type checkers see the bound method as ``Callable[..., R]``; the helpers take
    the instance explicitly (``Cls.method.cache_key(obj, ...)``).
    """

    @property
    def __wrapped__(self) -> Callable[P, R_co]:
        """The undecorated function."""
        ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Return the cached result, or call the function and cache what it returns."""
        ...

    @property
    def __name__(self) -> str:
        """The function's name."""
        ...

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Memoized[P, R_co]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> Callable[..., R_co]: ...

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        """Bind like a function when used as a method."""
        ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Return the store key a call with these arguments reads and writes."""
        ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Forget the cached result of a call with these arguments."""
        ...

    def cache_clear(self) -> int:
        """Forget every cached result of this function; return how many were removed."""
        ...


def cache_helpers(fn: Callable[..., Any]) -> MemoHelpers:
    """Return the typed helpers of a function decorated by :func:`memoize`.

    Useful where the static type of ``fn`` is not :class:`Memoized` (a method looked up on
    its class, a function passed around as a plain ``Callable``).
    """
    if not all(callable(getattr(fn, n, None)) for n in ("cache_key", "invalidate", "cache_clear")):
        raise TypeError(f"{getattr(fn, '__qualname__', fn)!r} is not a promptcache.cached function")
    return cast(MemoHelpers, fn)


def _type_name(obj: object) -> str:
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _pydantic_model(obj: object) -> Any:
    # Only look if pydantic is already loaded: an object cannot be a model otherwise, and
    # importing pydantic here would cost every caller its import time.
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(obj, pydantic.BaseModel):
        return obj
    return None


def _key_default(obj: object) -> Any:
    model = _pydantic_model(obj)
    if model is not None:
        t = type(model)
        return {"$model": f"{t.__module__}:{t.__qualname__}", "v": model.model_dump(mode="json")}
    raise TypeError(_type_name(obj))


def _key_bytes(name: str, value: object) -> bytes:
    try:
        return orjson.dumps(value, default=_key_default, option=_KEY_OPTS)
    except TypeError as exc:
        raise TypeError(
            f"promptcache.cached cannot key argument {name!r}: it holds a value of type "
            f"{exc} (use str, int, float, bool, None, list, tuple, dict with str keys or a "
            "pydantic model, or pass key=... to the decorator)"
        ) from None


# --- results ---------------------------------------------------------------------------------


def _encode(value: object, where: str) -> Any:
    t = type(value)
    if value is None or t is str or t is bool or t is int:
        return value
    if t is float:
        return value if math.isfinite(cast(float, value)) else {_TAG: "float", "v": repr(value)}
    if t is list:
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(cast(list[Any], value))]
    if t is tuple:
        items = cast(tuple[Any, ...], value)
        return {_TAG: "tuple", "v": [_encode(v, f"{where}[{i}]") for i, v in enumerate(items)]}
    if t is dict:
        d = cast(dict[Any, Any], value)
        out: dict[str, Any] = {}
        for k, v in d.items():
            if type(k) is not str:
                raise TypeError(
                    f"promptcache.cached cannot store {where}: dict key of type {_type_name(k)}"
                )
            out[k] = _encode(v, f"{where}[{k!r}]")
        return {_TAG: "dict", "v": out} if _TAG in out else out
    model = _pydantic_model(value)
    if model is not None and _sdk_class(f"{t.__module__}:{t.__qualname__}") is t:
        dump = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
        out = {_TAG: "model", "cls": f"{t.__module__}:{t.__qualname__}", "v": dump}
        # The SDKs' public response ids live outside the fields: keep them too.
        ids = {n: getattr(model, n) for n in _RESPONSE_IDS if isinstance(getattr(model, n, 0), str)}
        if ids:
            out["ids"] = ids
        return out
    raise TypeError(
        f"promptcache.cached cannot store {where} of type {_type_name(value)} (store JSON "
        f"values, tuples or {'/'.join(SDK_MODULES)} response objects)"
    )


def _sdk_class(path: str) -> type[Any] | None:
    """Resolve ``"module:Qual.Name"`` to a pydantic model class, only inside the SDK packages."""
    module_name, _, qualname = path.partition(":")
    if not any(module_name == m or module_name.startswith(m + ".") for m in SDK_MODULES):
        return None
    if not qualname or not all(part.isidentifier() for part in qualname.split(".")):
        return None
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not (isinstance(obj, type) and issubclass(obj, pydantic.BaseModel)):
        return None
    return obj


def _set_ids(obj: Any, ids: dict[str, Any]) -> None:
    """Set response ids the way the SDK that owns ``obj`` does (they are not fields)."""
    models = importlib.import_module(type(obj).__module__.split(".", 1)[0] + "._models")
    request_id = ids.get("_request_id")
    if hasattr(models, "add_response_ids"):  # anthropic
        models.add_response_ids(obj, request_id=request_id, workspace_id=ids.get("_workspace_id"))
    elif hasattr(models, "add_request_id"):  # openai
        models.add_request_id(obj, request_id)


class _BadEntry(ValueError):
    """Stored memo data that does not decode (corrupt, tampered or from an older SDK)."""


def _decode(data: Any) -> Any:
    if isinstance(data, list):
        return [_decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    tag = data.get(_TAG)
    if tag is None:
        return {k: _decode(v) for k, v in data.items()}
    if tag == "tuple":
        return tuple(_decode(v) for v in data["v"])
    if tag == "dict":
        return {k: _decode(v) for k, v in data["v"].items()}
    if tag == "float":
        return float(data["v"])
    if tag == "model":
        cls = _sdk_class(str(data["cls"]))
        if cls is None:
            raise _BadEntry(f"refusing to re-create {data['cls']!r}: not an SDK model")
        obj = cls.model_validate(data["v"])
        ids = data.get("ids")
        if isinstance(ids, dict) and ids:
            _set_ids(obj, ids)
        return obj
    raise _BadEntry(f"unknown tag {tag!r}")


def _load(raw: bytes, verify: str) -> tuple[bool, Any]:
    """Return ``(found, result)`` from stored bytes; raise ``_BadEntry`` if unusable."""
    try:
        env = orjson.loads(raw)
        if not isinstance(env, dict) or env.get("v") != MEMO_VERSION:
            raise _BadEntry("unknown memo entry version")
        if env.get("k") != verify:
            return False, None  # another call's result under a colliding digest: a miss
        return True, _decode(env["r"])
    except _BadEntry:
        raise
    except Exception as exc:  # orjson errors, KeyError, pydantic ValidationError, …
        raise _BadEntry(f"unreadable memo entry: {exc!r}") from exc


# --- the decorator ---------------------------------------------------------------------------


class _Memo(Generic[P, R]):
    """The shared core of a memoized function (sync and async drivers call into it)."""

    def __init__(
        self,
        fn: Callable[P, Any],
        store: SafeStore,
        namespace: str,
        ttl: float | None,
        key: Callable[..., Any] | None,
        typed: bool,
    ) -> None:
        self.fn = fn
        self.store = store
        self.ttl = ttl
        self.key_fn = key
        self.typed = typed
        self.signature = inspect.signature(fn)
        qualname = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
        module = getattr(fn, "__module__", "?")
        self.prefix = f"{KEY_VERSION}|memo|ns={namespace}|fn={module}:{qualname}"

    def key(self, *args: Any, **kwargs: Any) -> tuple[str, str]:
        if self.key_fn is not None:
            parts = [b"k", _key_bytes("key(...)", self.key_fn(*args, **kwargs))]
        else:
            bound = self.signature.bind(*args, **kwargs)
            bound.apply_defaults()
            parts = []
            for name, value in bound.arguments.items():
                parts.append(orjson.dumps(name))
                parts.append(_key_bytes(name, value))
                if self.typed:
                    parts.append(orjson.dumps(_type_name(value)))
        ck = digest_key(self.prefix, b"\x00".join(parts))
        return ck.key, ck.verify

    def lookup(self, k: str, verify: str) -> tuple[bool, Any]:
        raw = self.store.get(k)
        if raw is None:
            return False, None
        try:
            return _load(raw, verify)
        except _BadEntry as exc:
            self.store.discard(k, exc)
            return False, None

    def encode(self, result: Any, verify: str) -> bytes:
        return orjson.dumps({"v": MEMO_VERSION, "k": verify, "r": _encode(result, "result")})

    def save(self, k: str, data: bytes) -> None:
        self.store.set(k, data, ttl=self.ttl)


def memoize(
    store: SafeStore,
    *,
    namespace: str,
    ttl: float | None = None,
    key: Callable[..., Any] | None = None,
    typed: bool = False,
) -> Callable[[Callable[P, R]], Memoized[P, R]]:
    """Return a decorator that caches a function's results in ``store``.

    Works on plain and ``async`` functions and keeps their signature. A cached ``None`` is a
    hit. ``ttl`` is in seconds (``None``: until evicted). ``key``, if given, is called with the
    call's arguments and its (JSON-able) return value is keyed instead of the arguments — use it
    for ``self`` or other values that cannot be keyed. ``typed=True`` also keys each argument's
    type (``1`` and ``1.0`` are already distinct; this tells a tuple from a list). The
    decorated function (a :class:`Memoized`) keeps the original's signature for type checkers
    and gains ``cache_key(*args, **kwargs)``, ``invalidate(*args, **kwargs)`` and
    ``cache_clear()``.

    A store failure is a :class:`~promptcache.StoreWarning` and the function simply runs; an
    argument or result that cannot be keyed or stored raises ``TypeError``.
    """

    def decorate(fn: Callable[P, R]) -> Memoized[P, R]:
        if not callable(fn):
            raise TypeError(f"cached() decorates functions, not {_type_name(fn)}")
        memo: _Memo[..., Any] = _Memo(fn, store, namespace, ttl, key, typed)
        wrapper: Any
        if inspect.iscoroutinefunction(fn):
            # Only async apps pay for importing asyncio (~30 ms), and they already have.
            import asyncio

            afn = cast(Callable[..., Any], fn)

            async def run_async(*args: Any, **kwargs: Any) -> Any:
                k, verify = memo.key(*args, **kwargs)
                # Disk and Redis stores block: keep them off the event loop.
                off_loop = store.blocking
                if off_loop:
                    found, value = await asyncio.to_thread(memo.lookup, k, verify)
                else:
                    found, value = memo.lookup(k, verify)
                if found:
                    return value
                result = await afn(*args, **kwargs)
                data = memo.encode(result, verify)
                if off_loop:
                    await asyncio.to_thread(memo.save, k, data)
                else:
                    memo.save(k, data)
                return result

            wrapper = functools.wraps(fn)(run_async)
        else:

            def run(*args: Any, **kwargs: Any) -> Any:
                k, verify = memo.key(*args, **kwargs)
                found, value = memo.lookup(k, verify)
                if found:
                    return value
                result = fn(*args, **kwargs)
                memo.save(k, memo.encode(result, verify))
                return result

            wrapper = functools.wraps(fn)(run)

        def cache_key(*args: Any, **kwargs: Any) -> str:
            return memo.key(*args, **kwargs)[0]

        def invalidate(*args: Any, **kwargs: Any) -> None:
            store.delete(memo.key(*args, **kwargs)[0])

        def cache_clear() -> int:
            return store.delete_prefix(memo.prefix + ":")

        wrapper.cache_key = cache_key
        wrapper.invalidate = invalidate
        wrapper.cache_clear = cache_clear
        return cast(Memoized[P, R], wrapper)

    return decorate
