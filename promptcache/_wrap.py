"""``PromptCache`` and ``wrap()``: one line to put promptcache under an SDK client.

``pc.wrap(client)`` returns ``client.with_options(http_client=…)`` — a real client of the same
class whose http client routes generating requests through :class:`PromptCacheTransport` and
sends upstream through the user's own http client. The user's client is never modified. The
common hot methods get the pre-SDK fast path (:mod:`promptcache._fastpath`).

The module-level :func:`wrap` and :func:`cached` use one lazily created default
``PromptCache`` (``$PROMPTCACHE_DIR``, defaults everywhere).
"""

from __future__ import annotations

import math
import os
import secrets
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar, overload

import httpx2

from promptcache._errors import ConfigError, PromptCacheWarning, StoreError, StoreWarning
from promptcache._policy import PolicyName, check_policy

if TYPE_CHECKING:
    from promptcache._accounting import FleetView, Ledger, ModelPrice
    from promptcache._doctor import DoctorOptions, Finding
    from promptcache._hooks import Accountant, Planner
    from promptcache._memo import Memoized
    from promptcache._plan import AnthropicOptions, OpenAIOptions
    from promptcache._store import SafeStore, Store, StoreStats
    from promptcache._transport import Engine

__all__ = ["PromptCache", "cached", "wrap"]

C = TypeVar("C")
P = ParamSpec("P")
R = TypeVar("R")

_RESTRUCTURE: Final = ("off", "safe", "auto")
# Clients whose generating calls do not use the providers' public routes (Bedrock
# InvokeModel, Vertex rawPredict): their requests pass through untouched.
_PASS_THROUGH: Final = frozenset(
    {
        "AnthropicBedrock",
        "AsyncAnthropicBedrock",
        "AnthropicVertex",
        "AsyncAnthropicVertex",
        "AnthropicGoogleCloud",
        "AsyncAnthropicGoogleCloud",
    }
)
# Clients that sign each request (AWS SigV4): cached and accounted, never rewritten.
_SIGNED: Final = frozenset(
    {
        "BedrockOpenAI",
        "AsyncBedrockOpenAI",
        "AnthropicAWS",
        "AsyncAnthropicAWS",
        "AnthropicBedrockMantle",
        "AsyncAnthropicBedrockMantle",
    }
)
_warned: set[str] = set()


def _warn_once(name: str, message: str) -> None:
    if name not in _warned:
        _warned.add(name)
        warnings.warn(message, PromptCacheWarning, stacklevel=4)


class _OuterClient(httpx2.Client):
    """The http client handed to the SDK: builds requests like the user's, sends through ours."""

    def __init__(self, inner: httpx2.Client, transport: httpx2.BaseTransport) -> None:
        super().__init__(transport=transport, timeout=inner.timeout)
        self._promptcache_inner = inner

    def build_request(self, *args: Any, **kwargs: Any) -> httpx2.Request:
        # The user's client may carry default headers, params or cookies: let it build.
        return self._promptcache_inner.build_request(*args, **kwargs)


class _OuterAsyncClient(httpx2.AsyncClient):
    """Async twin of :class:`_OuterClient`."""

    def __init__(self, inner: httpx2.AsyncClient, transport: httpx2.AsyncBaseTransport) -> None:
        super().__init__(transport=transport, timeout=inner.timeout)
        self._promptcache_inner = inner

    def build_request(self, *args: Any, **kwargs: Any) -> httpx2.Request:
        return self._promptcache_inner.build_request(*args, **kwargs)


class _NoStore:
    """Stands in for a store that could not be opened: every lookup misses, nothing is kept."""

    blocking = False

    def get(self, key: str) -> bytes | None:
        return None

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        return None

    def delete(self, key: str) -> None:
        return None

    def clear(self) -> int:
        return 0

    def stats(self) -> StoreStats:
        from promptcache._store import StoreStats

        return StoreStats(0, 0, 0, 0, "unavailable", "none")

    def close(self) -> None:
        return None


def _write_behind_setting() -> bool | None:
    """``$PROMPTCACHE_WRITE_BEHIND``: ``1`` writes entries behind, ``0`` never; unset: per store."""
    value = os.environ.get("PROMPTCACHE_WRITE_BEHIND", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def _check_ttl(ttl: float | None) -> float | None:
    """Validate a ``ttl`` in seconds: ``None`` and ``inf`` mean no expiry (``None``)."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        # `not ttl > 0` also refuses NaN, which compares false with everything.
        raise ConfigError(
            f"ttl must be a positive number of seconds, or None/math.inf for no expiry, not {ttl!r}"
        )
    return None if math.isinf(ttl) else float(ttl)


def _sdk_of(client: Any) -> str:
    for klass in type(client).__mro__:
        root = klass.__module__.split(".", 1)[0]
        if root in ("openai", "anthropic"):
            return root
    raise TypeError(
        "promptcache.wrap() takes an openai or anthropic client "
        f"(OpenAI, AsyncOpenAI, Anthropic, …), not {type(client).__name__}"
    )


class PromptCache:
    """Provider prompt caching, a local response cache and a ledger, for SDK clients.

    Args:
        directory: where the cache, salt and ledger live; default ``$PROMPTCACHE_DIR``, else
            the user cache directory. A directory named here or in ``$PROMPTCACHE_DIR`` that
            cannot be used (not writable, a file, a path too long, a salt owned by another
            user, ``""``) raises :class:`~promptcache.ConfigError`; an unusable default
            directory gives one :class:`~promptcache.StoreWarning` and calls go on without
            the local cache. Files created there are 0600, directories 0700.
        store: ``None`` (diskcache in ``directory``, or ``$PROMPTCACHE_STORE``), a URL
            (``"memory://"``, ``"redis://host:port/db"``) or a store object.
        response_cache: serve identical requests from the local cache.
        restructure: ``"off"``, ``"safe"`` or ``"auto"`` — how requests are reshaped for the
            provider cache (see the restructuring docs).
        ttl: seconds a cached response lives; ``None`` or ``math.inf``: no expiry (kept until
            evicted), in every store; NaN is a :class:`~promptcache.ConfigError`.
        size_limit: maximum size in bytes of the default disk store.
        namespace: separates entries of different apps or tenants sharing a store.
        ignore_headers: more request header names to leave out of the cache key (a trailing
            ``*`` makes a prefix). Every header is keyed except per-attempt ones (retry
            counts, ``x-stainless-*``, idempotency keys, user agent, request/trace ids,
            timeouts, transport headers).
        key_headers: names from that default ignore list to key anyway.
        strict: raise :class:`~promptcache.StoreError` when the store fails instead of warning
            and treating the call as a miss.
        secret: the key secret of a fleet (default ``$PROMPTCACHE_SECRET``; at least 16
            characters): machines with the same secret and store share entries for the same
            caller. Unset, a shared store (Redis) keeps one it creates; other stores use the
            directory's salt. A new secret starts a fresh keyspace.
        encryption_key: encrypt stored values with AES-GCM under a key derived from this
            string (default ``$PROMPTCACHE_ENCRYPTION_KEY``; needs the ``encrypt`` extra).
        openai, anthropic: provider-specific options (``OpenAIOptions``, ``AnthropicOptions``).
        prices: price overrides for the ledger.
        doctor: how the cache doctor explains provider cache misses (``DoctorOptions``;
            on by default, see :meth:`doctor`).
        planner, accountant: replace the default planner/accountant (mostly for tests).
        clock: time source (seconds since the epoch).

    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        store: str | Store | None = None,
        response_cache: bool = True,
        restructure: Literal["off", "safe", "auto"] = "safe",
        *,
        ttl: float | None = None,
        size_limit: int | None = None,
        namespace: str | None = None,
        ignore_headers: Iterable[str] = (),
        key_headers: Iterable[str] = (),
        strict: bool = False,
        secret: str | None = None,
        encryption_key: str | None = None,
        openai: OpenAIOptions | None = None,
        anthropic: AnthropicOptions | None = None,
        prices: Mapping[str, ModelPrice] | None = None,
        doctor: DoctorOptions | None = None,
        planner: Planner | None = None,
        accountant: Accountant | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if restructure not in _RESTRUCTURE:
            raise ConfigError(
                f"restructure must be one of 'off', 'safe', 'auto', not {restructure!r}"
            )
        if not isinstance(response_cache, bool):
            raise ConfigError(f"response_cache must be True or False, not {response_cache!r}")
        ttl = _check_ttl(ttl)
        if size_limit is not None and (not isinstance(size_limit, int) or size_limit <= 0):
            raise ConfigError(f"size_limit must be a positive number of bytes, not {size_limit!r}")
        if namespace is not None and (
            not isinstance(namespace, str) or not namespace or "|" in namespace
        ):
            raise ConfigError(
                f"namespace must be a non-empty string without '|', not {namespace!r}"
            )
        if store is not None and not isinstance(store, str) and not hasattr(store, "get"):
            raise ConfigError(f"store must be a URL string or a Store, not {type(store).__name__}")
        from promptcache._keys import HeaderRule
        from promptcache._store import locate_directory, prepare_directory
        from promptcache._store._crypto import configured_encryption_key
        from promptcache._store._secret import configured_salt

        self._header_rule = HeaderRule.of(ignore_headers, key_headers)
        self._configured_salt = configured_salt(secret)
        self._encryption_key = configured_encryption_key(encryption_key)

        path, named = locate_directory(directory)
        self._directory_usable = True
        try:
            salt = prepare_directory(path)
        except ConfigError as exc:
            if named:
                raise
            # Nobody chose this directory: tell once, and go on without what needs it (the
            # local cache; the salt is then this process's own).
            warnings.warn(
                f"promptcache: the default directory cannot be used: {exc}. Calls go on "
                "without the local response cache until PROMPTCACHE_DIR names a usable one",
                StoreWarning,
                stacklevel=2,
            )
            salt = secrets.token_bytes(32)
            self._directory_usable = False
        self.directory: Path = path
        self._salt = salt
        self.response_cache = response_cache
        self.restructure: Literal["off", "safe", "auto"] = restructure
        self.ttl = ttl
        self.namespace = namespace
        self.strict = strict
        self._store_spec = store
        self._size_limit = size_limit
        self._openai_options = openai
        self._anthropic_options = anthropic
        self._prices = prices
        self._doctor_options = doctor
        self._doctor: Any = None
        self._planner = planner
        self._accountant = accountant
        self._clock = clock
        self._lock = threading.Lock()
        _live.add(self)
        self._store: SafeStore | None = None
        self._engine: Engine | None = None
        self._closed = False

    # --- lazily built parts -------------------------------------------------------------------

    @property
    def store(self) -> SafeStore:
        """The store shared by the response cache and :meth:`cached` (opened on first use)."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from promptcache._store import SafeStore, open_store, uses_directory

                    try:
                        if not self._directory_usable and uses_directory(self._store_spec):
                            inner: Store = _NoStore()  # already warned about the directory
                        else:
                            inner = open_store(
                                self._store_spec,
                                self.directory,
                                size_limit=self._size_limit,
                                secret=self._configured_salt,
                                encryption_key=self._encryption_key,
                            )
                    except ConfigError:
                        raise
                    except Exception as exc:
                        if self.strict:
                            raise StoreError(f"could not open the cache store: {exc!r}") from exc
                        warnings.warn(
                            f"promptcache: could not open the cache store ({exc!r}); "
                            "continuing without a local cache",
                            StoreWarning,
                            stacklevel=3,
                        )
                        inner = _NoStore()
                    self._store = SafeStore(
                        inner, strict=self.strict, write_behind=_write_behind_setting()
                    )
        return self._store

    @property
    def planner(self) -> Planner:
        """The planner that restructures requests (the default one unless injected)."""
        if self._planner is None:
            from promptcache._plan import DefaultPlanner

            self._planner = DefaultPlanner(
                self.restructure,
                openai=self._openai_options,
                anthropic=self._anthropic_options,
                clock=self._clock,
            )
        return self._planner

    @property
    def accountant(self) -> Accountant:
        """The accountant that records usage and cost (the default ledger unless injected)."""
        if self._accountant is None:
            from promptcache._accounting import LedgerAccountant

            self._accountant = LedgerAccountant(
                self.directory, prices=self._prices, clock=self._clock
            )
        return self._accountant

    @property
    def ledger(self) -> Ledger:
        """The ledger of every call made through this cache's wrapped clients."""
        ledger = getattr(self.accountant, "ledger", None)
        if ledger is None:
            raise AttributeError("the injected accountant keeps no ledger")
        return ledger  # type: ignore[no-any-return]

    @property
    def engine(self) -> Engine:
        """The state every wrapped client of this cache shares (internal)."""
        if self._engine is None:
            store = self.store if self.response_cache else None
            # Fingerprints reach the ledger too: a fleet keys them alike even without the cache.
            shared = store if store is not None or self._configured_salt else self._shared_store()
            salt = self._key_salt(shared)
            with self._lock:
                if self._engine is None:
                    from promptcache._store._flight import open_locks
                    from promptcache._transport import Engine

                    # Under the lock: two threads racing here must not build two doctors.
                    _attach_fleet_ledger(self.accountant, shared)
                    planner, accountant = self._with_doctor(self.planner, self.accountant)

                    self._engine = Engine(
                        store=store,
                        planner=planner,
                        accountant=accountant,
                        salt=salt,
                        user_namespace=self.namespace,
                        header_rule=self._header_rule,
                        ttl=self.ttl,
                        strict=self.strict,
                        clock=self._clock,
                        check_keys=os.environ.get("PROMPTCACHE_CHECK_KEYS", "") == "1",
                        locks=open_locks(store),
                    )
        return self._engine

    @property
    def fleet_ledger(self) -> FleetView:
        """Every machine's ledger, summed per minute in the Redis store.

        ``summary()`` and ``group_by()`` as on :attr:`ledger`; this process's latest calls
        are sent first. Raises :class:`ConfigError` without a Redis store.
        """
        from promptcache._accounting import FleetView, fleet_store

        redis_store = fleet_store(self._shared_store())
        if redis_store is None:
            raise ConfigError("the fleet ledger needs a Redis store (store='redis://…')")
        self.engine  # noqa: B018  (attaches this process's sending side)
        fleet = getattr(self.accountant, "fleet", None)
        if fleet is not None:
            fleet.send()  # this process's latest calls included
        return FleetView(redis_store)

    def _shared_store(self) -> SafeStore | None:
        from promptcache._store import uses_directory

        spec = self._store_spec
        if spec is None:
            spec = os.environ.get("PROMPTCACHE_STORE") or None
        if uses_directory(spec) or (isinstance(spec, str) and spec.lower() == "memory://"):
            return None
        return self.store

    def _key_salt(self, store: SafeStore | None) -> bytes:
        """Return the key salt: configured, else the shared store's, else the directory's."""
        if self._configured_salt is not None:
            return self._configured_salt
        if store is not None and store.shares_keys:
            shared = store.key_secret()  # None: unavailable, already warned
            if shared is not None:
                return shared
        return self._salt

    # --- the cache doctor ---------------------------------------------------------------------

    def _with_doctor(self, planner: Planner, accountant: Accountant) -> tuple[Planner, Accountant]:
        from promptcache._doctor import Doctor, DoctorOptions, make_pricer

        options = self._doctor_options or DoctorOptions()
        if not options.enabled:
            return planner, accountant
        self._doctor = doctor = Doctor(
            planner,
            options,
            directory=self.directory if self._directory_usable else None,
            pricer=make_pricer(self._prices),
            clock=self._clock,
        )
        return doctor, doctor.listening(accountant)

    def doctor(self, *, since: float | None = None) -> list[Finding]:
        """Why the provider cache missed, as typed findings (costliest first).

        Covers the calls this ``PromptCache`` made in this process (``since``: seconds since
        the epoch). ``promptcache doctor`` reads the persisted history of every process.
        """
        self.engine  # noqa: B018  # the doctor is built with the engine
        if self._doctor is None:
            return []
        found: list[Finding] = self._doctor.findings(since)
        return found

    # --- wrapping ---------------------------------------------------------------------------

    def wrap(self, client: C, *, policy: PolicyName = "default") -> C:
        """Return a client of the same class as ``client`` that goes through this cache.

        ``client`` is not modified. ``policy`` sets the local-cache policy of every call made
        through the returned client: ``"default"``, ``"bypass"``, ``"refresh"`` or
        ``"read_only"`` (a :func:`promptcache.bypass`-style block still wins). Wrapping a
        wrapped client re-wraps the original, so entries are never cached twice.
        """
        if self._closed:
            raise ConfigError("this PromptCache is closed")
        policy = check_policy(policy)
        sdk = _sdk_of(client)
        name = type(client).__name__
        inner: Any = client._client  # type: ignore[attr-defined]
        from promptcache._transport import PromptCacheTransport

        existing = getattr(inner, "_transport", None)
        owner: Callable[[], object] | None = weakref.ref(client)
        if isinstance(existing, PromptCacheTransport):
            inner, owner = existing.inner, existing.owner
        if any(k.__name__ in _PASS_THROUGH for k in type(client).__mro__):
            _warn_once(
                name,
                f"promptcache: {name} calls the cloud's own invoke routes, not the {sdk} API "
                "routes; its requests pass through untouched (no local cache, accounting or "
                "restructuring). Use the provider's first-party client for those.",
            )
        signed = any(k.__name__ in _SIGNED for k in type(client).__mro__)
        if signed:
            _warn_once(
                name,
                f"promptcache: {name} signs each request (SigV4); requests are cached and "
                "accounted but never restructured.",
            )
        transport = PromptCacheTransport(
            self.engine, inner, policy=policy, signed=signed, owner=owner
        )
        outer: httpx2.Client | httpx2.AsyncClient
        if isinstance(inner, httpx2.AsyncClient):
            outer = _OuterAsyncClient(inner, transport)
        elif isinstance(inner, httpx2.Client):
            outer = _OuterClient(inner, transport)
        else:
            raise TypeError(
                f"promptcache needs an httpx2-based client; {name} uses {type(inner).__name__}"
            )
        wrapped = client.with_options(http_client=outer)  # type: ignore[attr-defined]
        from promptcache._fastpath import fast_class

        # Signing clients never get the fast path: not even probed (no spurious warning).
        fast = None if signed else fast_class(type(wrapped))
        if fast is not None:
            # Our own new object (never the user's): give it the fast-path subclass.
            wrapped.__class__ = fast
        return wrapped  # type: ignore[no-any-return]

    # --- memoization ------------------------------------------------------------------------

    @overload
    def cached(self, func: Callable[P, R], /) -> Memoized[P, R]: ...

    @overload
    def cached(
        self,
        func: None = None,
        /,
        *,
        ttl: float | None = None,
        key: Callable[..., Any] | None = None,
        typed: bool = False,
        namespace: str | None = None,
    ) -> Callable[[Callable[P, R]], Memoized[P, R]]: ...

    def cached(
        self,
        func: Callable[P, R] | None = None,
        /,
        *,
        ttl: float | None = None,
        key: Callable[..., Any] | None = None,
        typed: bool = False,
        namespace: str | None = None,
    ) -> Memoized[P, R] | Callable[[Callable[P, R]], Memoized[P, R]]:
        """Memoize an app function's result in this cache's store.

        Use bare (``@pc.cached``) or with options (``@pc.cached(ttl=3600)``); works on
        coroutine functions too. Signatures are kept; ``__wrapped__`` is the original and
        ``cache_key``/``invalidate``/``cache_clear`` manage entries (see ``memoize``).
        ``ttl`` is in seconds; ``None`` or ``math.inf`` means no expiry, NaN is a
        :class:`~promptcache.ConfigError`.

        Entries are keyed on the function's identity (code, defaults, captured values) and its
        typed arguments. A function whose captured values or defaults cannot be keyed raises
        :class:`ConfigError` here; ``namespace=`` or ``key=`` vouch for its identity instead
        (those values are then left out of it). ``typed`` is kept for compatibility: arguments
        are always keyed with their types.
        """
        from promptcache._memo import memoize

        ttl = _check_ttl(ttl)
        ns = namespace if namespace is not None else (self.namespace or "default")
        decorator: Callable[[Callable[P, R]], Memoized[P, R]] = memoize(
            self.store, namespace=ns, ttl=ttl, key=key, typed=typed, vouched=namespace is not None
        )
        if func is None:
            return decorator
        return decorator(func)

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the ledger and close the store. Wrapped clients must not be used afterwards.

        Releases what this cache opened: the store's connections in every thread that used
        it (``asyncio.to_thread`` workers included) and its write-behind thread. Closing
        twice is harmless.
        """
        self._closed = True
        if self._doctor is not None:
            self._doctor.flush()
        if self._engine is not None and self._engine.locks is not None:
            self._engine.locks.close()
        closer = getattr(self._accountant, "close", None)
        if callable(closer):
            closer()
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> PromptCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"PromptCache(directory={str(self.directory)!r}, "
            f"response_cache={self.response_cache}, restructure={self.restructure!r})"
        )


_default: PromptCache | None = None
_default_lock = threading.Lock()
_live: weakref.WeakSet[PromptCache] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child: a parent thread may have been opening a store or the engine, holding a
    # lock no thread will release here. What it was building is built again on first use.
    global _default_lock
    _default_lock = threading.Lock()
    for pc in list(_live):
        pc._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _default_cache() -> PromptCache:
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = PromptCache()
    return _default


def wrap(client: C, *, policy: PolicyName = "default") -> C:
    """Wrap an SDK client with the default :class:`PromptCache` (see :meth:`PromptCache.wrap`).

    The default cache lives in ``$PROMPTCACHE_DIR`` (else the user cache directory) and is
    created on first use; ``client = promptcache.wrap(openai.OpenAI())`` is all it takes.
    """
    return _default_cache().wrap(client, policy=policy)


@overload
def cached(func: Callable[P, R], /) -> Memoized[P, R]: ...


@overload
def cached(
    func: None = None,
    /,
    *,
    ttl: float | None = None,
    key: Callable[..., Any] | None = None,
    typed: bool = False,
    namespace: str | None = None,
) -> Callable[[Callable[P, R]], Memoized[P, R]]: ...


def cached(
    func: Callable[P, R] | None = None,
    /,
    *,
    ttl: float | None = None,
    key: Callable[..., Any] | None = None,
    typed: bool = False,
    namespace: str | None = None,
) -> Memoized[P, R] | Callable[[Callable[P, R]], Memoized[P, R]]:
    """Memoize with the default :class:`PromptCache` (see :meth:`PromptCache.cached`)."""
    if func is not None:
        return _default_cache().cached(func)
    return _default_cache().cached(ttl=ttl, key=key, typed=typed, namespace=namespace)


def _attach_fleet_ledger(accountant: Accountant, store: SafeStore | None) -> None:
    """With a Redis store, the default accountant also sums its records into Redis."""
    if store is None or getattr(accountant, "fleet", False) is not None:
        return
    from promptcache._accounting import FleetLedger, fleet_store

    redis_store = fleet_store(store)
    if redis_store is not None:
        accountant.fleet = FleetLedger(redis_store)  # type: ignore[attr-defined]
