"""The core of the transport: what is decided about a request, with no I/O of its own.

:class:`Engine` is what every wrapped client of one ``PromptCache`` shares (store, planner,
accountant, single-flight, salt); :class:`Keyer` and :class:`Call` are what it decides about
one request. Both transport drivers (``_driver``) use it unchanged.
"""

from __future__ import annotations

import itertools
import os
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import httpx2

from promptcache._accounting import current_attribution
from promptcache._api import Api, RequestInfo
from promptcache._errors import PromptCacheWarning, RewriteWarning, StoreError, StoreWarning
from promptcache._hooks import Rewrite, UsageMeta
from promptcache._json import dumps, is_plain, loads
from promptcache._keys import (
    DEFAULT_HEADER_RULE,
    OPT_OUT_HEADER,
    CacheKey,
    HeaderRule,
    answer_headers,
    namespace,
    request_key,
    request_key_from_bytes,
    tenant_fingerprint,
    uncacheable_reason,
)
from promptcache._policy import PolicyName, may_read, may_write
from promptcache._singleflight import SingleFlight
from promptcache._store._entry import Entry

if TYPE_CHECKING:
    from promptcache._hooks import Accountant, Planner
    from promptcache._store import SafeStore
    from promptcache._store._flight import Locks


#: Response header telling whether an answer was replayed (``hit``) or fetched (``miss``).
CACHE_HEADER: Final = "x-promptcache"
#: Private request header naming a call the pre-SDK fast path already keyed and planned
#: (:meth:`Engine.register`); always stripped before a request leaves.
TICKET_HEADER: Final = "x-promptcache-ticket"

# Response headers never stored or replayed: hop-by-hop, encoding (bodies are stored decoded)
# and anything that carries credentials or session state.
_DROP_RESPONSE: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-encoding",
        "content-length",
        "set-cookie",
        "www-authenticate",
        "proxy-authenticate",
        "authorization",
        "x-api-key",
        "api-key",
        CACHE_HEADER,
    }
)
_FLIGHT_TIMEOUT: Final = 300.0


def _credential(headers: httpx2.Headers) -> tuple[str | None, str | None]:
    """Return the header that names the tenant and the stable part of its value.

    The fingerprint of that value is the namespace's tenant; the header itself is then left out
    of the keyed headers (every other secret-bearing header is keyed by a salted digest).
    """
    auth = headers.get("authorization")
    if auth is not None:
        if auth.startswith("AWS4-"):
            # SigV4 signs every request anew; only the access key id inside is stable.
            for part in auth.split(","):
                part = part.strip()
                if "Credential=" in part:
                    access_key = part.split("Credential=", 1)[1].split("/", 1)[0]
                    return "authorization", "aws:" + access_key
        return "authorization", auth
    for name in ("x-api-key", "api-key"):
        value = headers.get(name)
        if value is not None:
            return name, value
    return None, None


def _is_signed(headers: httpx2.Headers) -> bool:
    auth = headers.get("authorization", "")
    return auth.startswith("AWS4-") or "x-amz-date" in headers


def base_url_of(url: httpx2.URL, api: Api) -> str:
    """Return the URL up to the API path, with its query (Azure's ``api-version``)."""
    path = url.path.rstrip("/")
    if api is Api.OPENAI_CHAT:
        suffix = "/chat/completions"
    elif api is Api.ANTHROPIC_MESSAGES and path.endswith("/v1/messages"):
        # The Anthropic SDKs' base URL stops before the version; keep the two in step.
        suffix = "/v1/messages"
    else:
        suffix = path[path.rfind("/") :]
    base = f"{url.scheme}://{url.netloc.decode('ascii')}{path[: len(path) - len(suffix)]}"
    query = url.query.decode("ascii")
    return f"{base}?{query}" if query else base


@dataclass(frozen=True, slots=True)
class Keyer:
    """What keying takes from a request's URL and headers.

    It is the same for every body one client sends to one route, so the fast path computes it
    once and reuses it.
    """

    api: Api
    namespace: str
    tenant: str
    base_url: str
    answer_headers: dict[str, str]
    signed: bool
    opt_out: str | None
    #: Whether the ``cookie`` header is keyed (the user asked for it).
    cookies: bool = False


@dataclass(slots=True)
class Call:
    """Everything decided about one generating request before any I/O."""

    info: RequestInfo
    key: CacheKey | None  # None: never cached (reason says why)
    body: dict[str, Any] | None  # None: not JSON, sent as is
    reason: str | None
    read: bool
    write: bool
    looked_up: bool = False  # the fast path already looked it up and missed
    epoch: int = -1  # ``flights.finished`` when the fast path looked it up
    planned: bool = False  # ``sent`` is the planner's answer already (fast path)
    sent: Rewrite | None = None
    #: The SDK was called with ``sent``'s body: its request carries it already (fast path).
    delivered: bool = False


def response_headers(headers: httpx2.Headers) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.multi_items() if k.lower() not in _DROP_RESPONSE]


@dataclass(slots=True, weakref_slot=True, eq=False)  # tracked in a WeakSet: by identity
class Engine:
    """What every wrapped client of one ``PromptCache`` shares: store, hooks, flights, salt.

    Methods here make the decisions and call the store, planner and accountant; they never
    touch the network, so both transport drivers use them unchanged.
    """

    store: SafeStore | None
    planner: Planner
    accountant: Accountant
    salt: bytes
    user_namespace: str | None = None
    #: Which request headers enter the key (``PromptCache(ignore_headers=, key_headers=)``).
    header_rule: HeaderRule = DEFAULT_HEADER_RULE
    ttl: float | None = None
    strict: bool = False
    clock: Callable[[], float] = time.time
    flights: SingleFlight[Entry] = field(default_factory=SingleFlight)
    #: Calls keyed and planned by the fast path, by ticket, until their SDK method returns.
    pending: dict[str, Call] = field(default_factory=dict)
    _tickets: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    #: Recompute the transport key for requests keyed by the fast path and fail on mismatch.
    check_keys: bool = False
    flight_timeout: float = _FLIGHT_TIMEOUT
    #: Distributed single-flight across processes sharing the store (``_store._flight``).
    locks: Locks | None = None
    #: Followers of a streaming leader whose reader has not pulled a chunk for this long go
    #: upstream themselves (the reader may be the follower's own caller, waiting on it).
    stream_stall: float = 1.0
    #: Counters for this process (diagnostics and tests): local hits, of which served by the
    #: pre-SDK fast path, and calls that went upstream.
    hits: int = 0
    fast_hits: int = 0
    upstream: int = 0
    #: Whether the one warning about a body that cannot be keyed was given already.
    warned_unkeyable: bool = False

    def __post_init__(self) -> None:
        _engines.add(self)

    def _warn_or_raise(self, message: str, exc: BaseException) -> None:
        if self.strict:
            raise StoreError(message) from exc
        warnings.warn(f"promptcache: {message} ({exc!r})", StoreWarning, stacklevel=4)

    # --- keying ------------------------------------------------------------------------------

    def keyer(self, api: Api, request: httpx2.Request, *, signed: bool = False) -> Keyer:
        """Return what keying needs from a request's URL and headers (reusable across bodies)."""
        headers = request.headers
        credential_name, credential = _credential(headers)
        tenant = tenant_fingerprint(credential, self.salt)
        base_url = base_url_of(request.url, api)
        opt_out = uncacheable_reason(api, {}, headers) if OPT_OUT_HEADER in headers else None
        keyed = answer_headers(
            headers, self.salt, rule=self.header_rule, credential=credential_name
        )
        return Keyer(
            api=api,
            namespace=namespace(api.provider, base_url, tenant, self.user_namespace),
            tenant=tenant,
            base_url=base_url,
            answer_headers=keyed,
            signed=signed or _is_signed(headers),
            opt_out=opt_out,
            cookies=self.header_rule.kind("cookie") != 0,
        )

    def prepare(
        self,
        api: Api,
        request: httpx2.Request,
        content: bytes,
        policy: PolicyName,
        *,
        signed: bool,
    ) -> Call:
        """Key and classify one request the SDK serialised (pure apart from the clock)."""
        keyer = self.keyer(api, request, signed=signed)
        key: CacheKey | None = None
        body: dict[str, Any] | None = None
        try:
            if self.store is not None:
                key, body = request_key_from_bytes(
                    keyer.namespace, api, content, keyer.answer_headers
                )
            else:
                parsed = loads(content)
                body = parsed if isinstance(parsed, dict) else None
        except (TypeError, ValueError) as exc:
            key, body = None, None
            if self.store is not None:
                self._warn_unkeyable(api, exc)
        return self.classify(keyer, key, body, policy)

    def _warn_unkeyable(self, api: Api, exc: BaseException) -> None:
        # Once per cache, not per call: the same code sends the same kind of body every time.
        if not self.warned_unkeyable:
            self.warned_unkeyable = True
            warnings.warn(
                f"promptcache: a {api.value} request body is not JSON that can be keyed "
                f"({exc}); such requests go upstream uncached (warned once)",
                PromptCacheWarning,
                stacklevel=5,
            )

    def register(self, call: Call) -> str:
        """Park a call the fast path keyed and planned; its ticket travels in a header."""
        ticket = f"{next(self._tickets):x}"
        call.looked_up = True
        self.pending[ticket] = call
        return ticket

    def unregister(self, ticket: str) -> None:
        """Forget a parked call once the SDK method returned (retries reuse it until then)."""
        self.pending.pop(ticket, None)

    def claim(
        self, ticket: str, api: Api, request: httpx2.Request, content: bytes, policy: PolicyName
    ) -> Call | None:
        """Return the call parked under ``ticket`` (checked against the bytes if asked)."""
        call = self.pending.get(ticket)
        if call is None:
            return None
        if self.check_keys and call.delivered:
            assert call.sent is not None
            if loads(content) != loads(dumps(call.sent.body)):
                raise AssertionError("promptcache: the SDK did not send the planned body")
        elif self.check_keys:
            again = self.prepare(api, request, content, policy, signed=call.info.signed)
            if again.key != call.key:
                raise AssertionError(
                    f"promptcache: fast-path key {call.key!r} != transport key {again.key!r}"
                )
        return call

    def prepare_body(self, keyer: Keyer, body: dict[str, Any], policy: PolicyName) -> Call | None:
        """Key a call from the user's arguments (fast path); ``None`` if they are not JSON."""
        key: CacheKey | None = None
        try:
            if self.store is not None:
                key = request_key(keyer.namespace, keyer.api, body, keyer.answer_headers)
            elif not is_plain(body, tuples=True):
                # Nothing to look up: only make sure the SDK would send exactly this.
                return None
        except TypeError:
            return None
        return self.classify(keyer, key, body, policy)

    def classify(
        self,
        keyer: Keyer,
        key: CacheKey | None,
        body: dict[str, Any] | None,
        policy: PolicyName,
    ) -> Call:
        """Decide what the cache may do for a keyed request."""
        reason: str | None
        if body is None:
            reason = "the request body is not a JSON object"
        else:
            reason = keyer.opt_out or uncacheable_reason(keyer.api, body)
        model = body.get("model") if body is not None else None
        info = RequestInfo(
            api=keyer.api,
            base_url=keyer.base_url,
            model=model if isinstance(model, str) else None,
            tenant=keyer.tenant,
            stream=bool(body.get("stream")) if body is not None else False,
            signed=keyer.signed,
            attribution=current_attribution(),
            started=self.clock(),
        )
        cacheable = reason is None and key is not None and self.store is not None
        return Call(
            info=info,
            key=key if cacheable else None,
            body=body,
            reason=reason,
            read=cacheable and may_read(policy),
            write=cacheable and may_write(policy),
        )

    # --- planner -----------------------------------------------------------------------------

    def plan(self, call: Call) -> Rewrite | None:
        """Ask the planner for the body to send; ``None`` means send the bytes as they are."""
        if call.body is None:
            return None
        if call.info.signed:
            # The signature covers the body: rewriting it now would be rejected upstream.
            return Rewrite(call.body)
        try:
            return self.planner.rewrite(call.info, call.body)
        except Exception as exc:
            warnings.warn(
                f"promptcache: could not restructure the request ({exc!r}); sent as written",
                RewriteWarning,
                stacklevel=4,
            )
            return Rewrite(call.body)

    def rejected(self, call: Call, sent: Rewrite, status: int, body: bytes) -> Rewrite | None:
        """Return a body to retry once with after a 4xx the planner's rewrite may have caused."""
        try:
            retry = self.planner.rejected(call.info, sent, status, body)
        except Exception as exc:
            warnings.warn(
                f"promptcache: planner failed on a rejected request ({exc!r})",
                RewriteWarning,
                stacklevel=4,
            )
            return None
        return None if retry is None else Rewrite(retry, changed=True)

    # --- accounting and storing -------------------------------------------------------------

    def record_hit(self, call: Call, entry: Entry) -> None:
        """Account a local hit."""
        self.hits += 1
        self.accountant.record_local_hit(call.info, entry.meta)

    def finish_upstream(
        self,
        call: Call,
        sent: Rewrite | None,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        stream: bool,
        complete: bool,
    ) -> Entry | None:
        """Record a call that reached the provider; return its entry when it may be cached."""
        self.upstream += 1
        meta: UsageMeta | None = self.accountant.record_upstream(
            call.info, body, status=status, complete=complete
        )
        ok = 200 <= status < 300 and complete
        if ok and sent is not None:
            self.planner.observe(call.info, sent, meta)
        if not (ok and call.key is not None and (call.read or call.write)):
            return None
        # Built even when it will not be stored (read-only): waiting followers replay it.
        return Entry(
            verify=call.key.verify,
            status=status,
            headers=tuple(headers),
            body=body,
            stream=stream,
            meta=dict(meta) if meta is not None else None,
            created=self.clock(),
        )

    def lookup(self, key: CacheKey) -> Entry | None:
        """Read and verify an entry (store failures: warning and miss, or raise when strict)."""
        assert self.store is not None
        return self.store.get_entry(key)

    def save(self, key: CacheKey, entry: Entry) -> None:
        """Store an entry (failures: warning, or raise when strict)."""
        assert self.store is not None
        try:
            self.store.put_entry(key, entry, ttl=self.ttl)
        except TypeError as exc:  # meta the accountant returned is not JSON-able
            self._warn_or_raise("could not encode a cache entry", exc)

    @property
    def blocking(self) -> bool:
        """Whether store calls do I/O (the async driver then runs them in a worker thread)."""
        return self.store is not None and self.store.blocking

    @property
    def writes_behind(self) -> bool:
        """Whether saving usually only queues the entry (no I/O: fine on the event loop)."""
        return self.store is not None and self.store.writes_behind


_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child: the calls parked by the parent's threads will never be claimed here (the
    # flights are reset by ``_singleflight``).
    for engine in list(_engines):
        engine.pending = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
