"""``memoize``: cache whole app-function results in the response store, sync or async.

**Which function.** An entry is keyed under the function's identity, computed once when it is
decorated: its module and qualified name, its code (bytecode, constants including nested
functions' code, names, flags — not line numbers, the file name or comments), its defaults
and the values its closure captured (a captured function counts by its own identity, a class
or module by its name), plus the Python version (``sys.implementation.cache_tag``) and the
``key=`` function, if any. So lambdas, closures that one factory made with different values
and same-named functions share nothing, and editing a function's body (or upgrading Python)
starts it afresh. Module globals, class attributes and anything read at run time (files, the
network, the clock) are *not* part of it. When part of the identity cannot be keyed (a closure
that captured a lock, a client, an arbitrary object) decoration raises
:class:`~promptcache.ConfigError`, unless the user vouches for the identity by passing
``namespace=`` or ``key=``: then such values are left out and everything else still counts.

**Which call.** The bound arguments (defaults applied, so ``f(1)`` and ``f(x=1)`` are one
call) are keyed in the typed canonical form of :mod:`promptcache._canon`: injective and
typed, so ``1``, ``1.0``, ``True`` and ``"1"``, a tuple and a list, ``{1: x}`` and
``{"1": x}`` are all different calls. A call whose arguments cannot be keyed runs uncached
(one :class:`~promptcache._errors.MemoKeyWarning` per function).

**Results** are stored as versioned JSON. What can be stored: JSON values, tuples (returned as
tuples), and SDK response objects — pydantic models of ``openai.types`` / ``anthropic.types``
— which come back as their own types. Anything else raises a ``TypeError`` naming the type.
Stored data never names code to run: a model is re-created only if its dotted path lies under
an allow-listed SDK package, so a tampered cache entry cannot import arbitrary modules.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import sys
import types
import warnings
import weakref
from collections.abc import Callable
from typing import Any, Final, Generic, ParamSpec, Protocol, TypeVar, cast, overload

import orjson
import xxhash

from promptcache._canon import Unkeyable, class_path, encode_into, type_name, typed_canonical
from promptcache._errors import ConfigError, MemoKeyWarning
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


# --- function identity -----------------------------------------------------------------------

# Identities of the memoized wrappers we made, so that a memoized function captured by (or
# decorated again into) another one is keyed by what it caches, not by our wrapper's closure.
_IDENTITIES: weakref.WeakKeyDictionary[Callable[..., Any], bytes] = weakref.WeakKeyDictionary()


class _Unidentifiable(Exception):
    """Part of a function's identity cannot be keyed and nobody vouched for it."""

    def __init__(self, where: str, exc: Unkeyable) -> None:
        super().__init__(where)
        self.where = where
        self.exc = exc


def _text(s: str | None) -> bytes:
    return typed_canonical(s)


class _Identity:
    """Builds the bytes that tell one function apart from every other one.

    A Python function is its module and qualified name, its code (bytecode, constants with
    nested code objects, names, argument counts, flags, exception table — not line numbers or
    the file name), its defaults and keyword-only defaults, and the values its closure captured,
    read once, now. A captured function is keyed the same way, recursively (a cycle becomes a
    back-reference); a captured memoized function by its own identity; a class by its name, a
    module by its name. A value that cannot be keyed is refused (:class:`_Unidentifiable`) or,
    when the user ``vouched`` (gave ``namespace=`` or ``key=``), left out.
    """

    def __init__(self, vouched: bool) -> None:
        self.vouched = vouched
        self._seen: dict[int, int] = {}
        self._alive: list[object] = []  # keeps ids unique while we walk

    def value(self, value: object, where: str) -> bytes:
        """Key a captured value, a default or a bound object; leave it out or refuse it."""
        try:
            return b"v" + typed_canonical(value, lambda obj: self.callable(obj, where))
        except Unkeyable as exc:
            if self.vouched:
                return b"?"
            raise _Unidentifiable(where, exc) from None

    def callable(self, obj: object, via: str) -> bytes:
        """Key code-like values (the fallback of the canonical form); raise ``Unkeyable``."""
        fb = lambda o: self.callable(o, via)  # noqa: E731
        if isinstance(obj, types.FunctionType):
            memoized = _IDENTITIES.get(obj)
            return b"M" + memoized if memoized is not None else self.function(obj, via)
        if isinstance(obj, functools.partial):
            return (
                b"P" + self.callable(obj.func, via) + typed_canonical((obj.args, obj.keywords), fb)
            )
        if isinstance(obj, types.MethodType):
            return b"B" + self.callable(obj.__func__, via) + typed_canonical(obj.__self__, fb)
        if isinstance(obj, staticmethod | classmethod):
            tag = b"S" if isinstance(obj, staticmethod) else b"K"
            return tag + self.callable(obj.__func__, via)
        if isinstance(obj, types.BuiltinFunctionType):
            owner = obj.__self__
            if owner is None or isinstance(owner, types.ModuleType):
                module = owner.__name__ if owner is not None else obj.__module__
                return b"b" + _text(module) + _text(obj.__qualname__)
            return b"B" + _text(obj.__qualname__) + typed_canonical(owner, fb)
        if isinstance(obj, types.MethodWrapperType):
            return b"B" + _text(obj.__name__) + typed_canonical(obj.__self__, fb)
        if isinstance(
            obj,
            types.MethodDescriptorType
            | types.WrapperDescriptorType
            | types.ClassMethodDescriptorType,
        ):
            return b"d" + _text(class_path(obj.__objclass__)) + _text(obj.__name__)
        if isinstance(obj, types.ModuleType):
            return b"o" + _text(obj.__name__)
        raise Unkeyable(type_name(type(obj)))

    def function(self, fn: types.FunctionType, via: str = "") -> bytes:
        """Key a Python function: its name, code, defaults and captured values."""
        if id(fn) in self._seen:  # recursion through the closure: point back
            return b"^%d;" % self._seen[id(fn)]
        self._seen[id(fn)] = len(self._seen)
        self._alive.append(fn)
        co = fn.__code__

        def where(what: str) -> str:
            return f"{what} of {fn.__qualname__} (reached through {via})" if via else what

        parts = [b"F", _text(fn.__module__), _text(fn.__qualname__), self.code(co)]
        positional = co.co_varnames[: co.co_argcount]
        defaults = fn.__defaults__ or ()
        for name, default in zip(
            positional[len(positional) - len(defaults) :], defaults, strict=False
        ):
            parts.append(self.value(default, where(f"the default of parameter {name!r}")))
        parts.append(b";")
        for name, default in sorted((fn.__kwdefaults__ or {}).items()):
            parts.append(_text(name))
            parts.append(self.value(default, where(f"the default of parameter {name!r}")))
        parts.append(b";")
        for name, cell in zip(co.co_freevars, fn.__closure__ or (), strict=True):
            parts.append(_text(name))
            here = where(f"captured variable {name!r}")
            try:
                captured = cell.cell_contents
            except ValueError:  # not assigned yet: decorated inside the scope that assigns it
                parts.append(self.empty_cell(name, fn, here))
                continue
            parts.append(self.value(captured, here))
        return b"".join(parts)

    def empty_cell(self, name: str, fn: types.FunctionType, where: str) -> bytes:
        # `__class__` is the class whose body is running (super() needs it): the qualified
        # name already says which. A cell named like the function is the function itself,
        # recursing through the name the decorator's result is about to be bound to.
        if name == "__class__":
            return b"@c"
        if name == fn.__name__:
            return b"@s"
        if self.vouched:
            return b"?"
        reason = "nothing yet: it is assigned after the decorator runs, so cannot be keyed now"
        raise _Unidentifiable(where, Unkeyable("unassigned", reason))

    def code(self, co: types.CodeType) -> bytes:
        """Key a code object: what it does, not where it sits in its file."""
        shape = (co.co_name, co.co_argcount, co.co_posonlyargcount, co.co_kwonlyargcount)
        names = (co.co_names, co.co_varnames, co.co_freevars, co.co_cellvars)
        return b"".join(
            (
                b"C",
                typed_canonical((shape, co.co_flags, names, co.co_code, co.co_exceptiontable)),
                typed_canonical(co.co_consts, self.constant),
            )
        )

    def constant(self, obj: object) -> bytes:
        if isinstance(obj, types.CodeType):
            return b"C" + self.code(obj)
        if isinstance(obj, slice):  # constants on newer Pythons
            return b"L" + typed_canonical((obj.start, obj.stop, obj.step))
        raise Unkeyable(type_name(type(obj)))

    def target(self, fn: Callable[..., Any]) -> bytes:
        """Key the decorated callable itself."""
        if isinstance(fn, types.FunctionType):
            memoized = _IDENTITIES.get(fn)
            return b"M" + memoized if memoized is not None else self.function(fn)
        if isinstance(fn, functools.partial):
            return (
                b"P"
                + self.target(fn.func)
                + self.value((fn.args, fn.keywords), "the arguments bound by functools.partial")
            )
        if isinstance(fn, types.MethodType):
            return (
                b"B"
                + self.target(fn.__func__)
                + self.value(fn.__self__, "the object the method is bound to")
            )
        wrapped = getattr(fn, "__wrapped__", None)
        if callable(wrapped) and type(fn).__module__ == "functools":
            # functools.cache / lru_cache: behaves as the function it wraps.
            return b"W" + _text(type(fn).__qualname__) + self.target(wrapped)
        call = getattr(type(fn), "__call__", None)  # noqa: B004 (the class's, not the instance's)
        if not isinstance(fn, type) and isinstance(call, types.FunctionType):
            # A callable object: its class's __call__ and its own state.
            return b"I" + self.function(call) + self.value(fn, "the callable object itself")
        return self.value(fn, "the callable itself")


def _display_name(fn: Callable[..., Any]) -> tuple[str, str]:
    """Return ``(module, qualname)`` naming a callable readably in its keys (no addresses)."""
    if isinstance(fn, functools.partial):
        module, inner = _display_name(fn.func)
        return module, f"partial({inner})"
    target: Any = fn.__func__ if isinstance(fn, types.MethodType) else fn
    found: Any = getattr(target, "__qualname__", None)
    # A callable object has no name of its own: name its class, never its address.
    qualname = found if isinstance(found, str) else f"{type(target).__qualname__}()"
    module = getattr(target, "__module__", None) or type(target).__module__
    return str(module).replace("|", "_"), qualname.replace("|", "_")


def _identify(
    fn: Callable[..., Any], key: Callable[..., Any] | None, vouched: bool
) -> tuple[str, bytes]:
    """Return the readable name and the identity digest of a memoized function.

    Raises :class:`~promptcache.ConfigError` when part of it cannot be keyed, unless
    ``vouched``.
    """
    module, qualname = _display_name(fn)
    name = f"{module}:{qualname}"
    try:
        parts = [
            b"promptcache-memo-identity/1",
            # Bytecode means something only to one interpreter version.
            _text(sys.implementation.cache_tag),
            _Identity(vouched).target(fn),
            # key= decides which calls share an entry: two key functions must not mix.
            b"-" if key is None else _Identity(True).target(key),
        ]
    except _Unidentifiable as exc:
        where = exc.where + "".join(exc.exc.path)
        what = exc.exc.reason or f"a value of type {exc.exc.type_name}"
        raise ConfigError(
            f"promptcache.cached cannot tell {name} apart from other functions: "
            f"{where} holds {what}, which cannot be keyed. Pass key=... "
            "(a function of the call's arguments returning what identifies the answer) or "
            "namespace=... (a name you choose for this function's results) to the decorator; "
            "values that cannot be keyed are then left out of the function's identity."
        ) from None
    return name, xxhash.xxh3_128_digest(b"".join(parts))


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
        vouched: bool,
    ) -> None:
        self.fn = fn
        self.store = store
        self.ttl = ttl
        self.key_fn = key
        self.typed = typed  # kept for the API: every argument is keyed with its type anyway
        self.signature = inspect.signature(fn)
        self.name, self.identity = _identify(fn, key, vouched)
        self.prefix = (
            f"{KEY_VERSION}|memo|ns={namespace}|fn={self.name}|id={self.identity.hex()[:16]}"
        )
        # Defaults the canonical form cannot hold (a function, or an object a vouching user
        # left out) are part of the identity already: a call that leaves them out is keyed as
        # "the default" rather than run uncached.
        self.opaque: frozenset[str] = frozenset()
        if key is None:
            self.opaque = frozenset(
                p.name
                for p in self.signature.parameters.values()
                if p.default is not p.empty and not _keyable(p.default)
            )
        self.warned = False

    def key(self, *args: Any, **kwargs: Any) -> tuple[str, str]:
        """Return ``(key, verify)``; raise ``Unkeyable`` for a value the form cannot hold."""
        out = [self.identity]
        if self.key_fn is not None:
            out.append(b"k")
            try:
                encode_into(self.key_fn(*args, **kwargs), out)
            except Unkeyable as exc:
                exc.path.insert(0, "the value key=... returned")
                raise
        else:
            bound = self.signature.bind(*args, **kwargs)
            given = frozenset(bound.arguments) if self.opaque else frozenset()
            bound.apply_defaults()
            out.append(b"a")
            # Parameters come in signature order: position, not name, tells them apart.
            for name, value in bound.arguments.items():
                if name in self.opaque and name not in given:
                    out.append(b"?")
                    continue
                try:
                    encode_into(value, out)
                except Unkeyable as exc:
                    exc.path.insert(0, f"argument {name!r}")
                    raise
        ck = digest_key(self.prefix, b"".join(out))
        return ck.key, ck.verify

    def helper_key(self, *args: Any, **kwargs: Any) -> str:
        """Return the key, or raise the ``TypeError`` saying why there is none (for the helpers)."""
        try:
            return self.key(*args, **kwargs)[0]
        except Unkeyable as exc:
            raise TypeError(f"promptcache.cached cannot key {exc.describe()}{_KEYABLE}") from None

    def bypass(self, exc: Unkeyable) -> None:
        """Warn, once per function, that a call runs uncached."""
        if self.warned:
            return
        self.warned = True
        warnings.warn(
            MemoKeyWarning(
                f"promptcache.cached: {self.name} ran uncached: cannot key "
                f"{exc.describe()}{_KEYABLE}. Further such calls are not reported."
            ),
            stacklevel=3,  # the caller of the memoized function
        )

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


_KEYABLE: Final = (
    " (keyable: None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset, Decimal,"
    " UUID, datetime/date/time/timedelta, pathlib paths, enum members, named tuples, classes,"
    " pydantic models; or pass key=... to the decorator)"
)


def _keyable(value: object) -> bool:
    try:
        typed_canonical(value)
    except Unkeyable:
        return False
    return True


def memoize(
    store: SafeStore,
    *,
    namespace: str,
    ttl: float | None = None,
    key: Callable[..., Any] | None = None,
    typed: bool = False,
    vouched: bool = False,
) -> Callable[[Callable[P, R]], Memoized[P, R]]:
    """Return a decorator that caches a function's results in ``store``.

    Works on plain and ``async`` functions and keeps their signature. A cached ``None`` is a
    hit. ``ttl`` is in seconds (``None``: until evicted). The decorated function (a
    :class:`Memoized`) keeps the original's signature for type checkers and gains
    ``cache_key(*args, **kwargs)``, ``invalidate(*args, **kwargs)`` and ``cache_clear()``
    (which forgets this function's entries, not those of an older version of its code).

    Entries are keyed on the function's identity (see :class:`_Identity`; computed once, here)
    and on its bound arguments in the typed canonical form of :mod:`promptcache._canon`, so
    ``f(1)``, ``f(1.0)``, ``f(True)`` and ``f("1")`` never share an entry while ``f(1)``,
    ``f(x=1)`` and ``f(1, y=<default>)`` do. ``typed`` is kept for compatibility: arguments are
    always keyed with their types now (a tuple is not a list).

    ``key``, if given, is called with the call's arguments and its (keyable) return value is
    keyed instead of the arguments — use it for ``self`` or other values that cannot be keyed.
    ``vouched`` (the caller passed an explicit ``namespace=``) or ``key`` mean the user vouches
    for the function's identity: captured values and defaults that cannot be keyed are left
    out of it instead of raising :class:`~promptcache.ConfigError` at decoration.

    A call with an argument that cannot be keyed runs uncached, with one
    :class:`~promptcache._errors.MemoKeyWarning` per function. A store failure is a
    :class:`~promptcache.StoreWarning` and the function simply runs; a result that cannot be
    stored raises ``TypeError``.
    """
    vouched = vouched or key is not None

    def decorate(fn: Callable[P, R]) -> Memoized[P, R]:
        if isinstance(fn, staticmethod | classmethod):
            raise TypeError(
                f"put @{type(fn).__name__} above @cached, not below it "
                f"(cached() decorates functions, not {type(fn).__name__} objects)"
            )
        if not callable(fn):
            raise TypeError(f"cached() decorates functions, not {_type_name(fn)}")
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"cached() cannot memoize generator function {getattr(fn, '__qualname__', fn)}: "
                "its result is an iterator, not a value (return a list instead)"
            )
        memo: _Memo[..., Any] = _Memo(fn, store, namespace, ttl, key, typed, vouched)
        wrapper: Any
        if inspect.iscoroutinefunction(fn):
            # Only async apps pay for importing asyncio (~30 ms), and they already have.
            import asyncio

            afn = cast(Callable[..., Any], fn)

            async def run_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    k, verify = memo.key(*args, **kwargs)
                except Unkeyable as exc:
                    memo.bypass(exc)
                    return await afn(*args, **kwargs)
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
                try:
                    k, verify = memo.key(*args, **kwargs)
                except Unkeyable as exc:
                    memo.bypass(exc)
                    return fn(*args, **kwargs)
                found, value = memo.lookup(k, verify)
                if found:
                    return value
                result = fn(*args, **kwargs)
                memo.save(k, memo.encode(result, verify))
                return result

            wrapper = functools.wraps(fn)(run)

        def cache_key(*args: Any, **kwargs: Any) -> str:
            return memo.helper_key(*args, **kwargs)

        def invalidate(*args: Any, **kwargs: Any) -> None:
            store.delete(memo.helper_key(*args, **kwargs))

        def cache_clear() -> int:
            return store.delete_prefix(memo.prefix + ":")

        wrapper.cache_key = cache_key
        wrapper.invalidate = invalidate
        wrapper.cache_clear = cache_clear
        _IDENTITIES[wrapper] = memo.identity
        return cast(Memoized[P, R], wrapper)

    return decorate
