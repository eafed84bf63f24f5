"""The transport: where a wrapped client's requests are keyed, served locally or sent upstream.

One class, :class:`PromptCacheTransport`, implements both ``httpx2.BaseTransport`` and
``httpx2.AsyncBaseTransport``. It sits inside an ``httpx2`` client that ``wrap()`` hands to
the SDK, and sends upstream *through the user's own http client*, so their proxies, limits,
event hooks and certificates still apply.

For a generating route (``route()``) the flow is:

1. key the body the SDK serialised (``_keys.request_key_from_bytes``), under a namespace of
   provider, base URL, a salted fingerprint of the credential and the user's namespace — or,
   for a call the fast path (``_fastpath.py``) already keyed and planned on the user's
   arguments, take that call as it was parked (no second parse of the body);
2. if the request is cacheable and the policy allows, look it up; a verified entry is replayed
   as bytes (status, headers, body; SSE byte for byte) and the SDK builds its own objects;
3. otherwise join the single-flight for the key; the leader asks the planner for a rewrite,
   sends upstream, retries once without the planner's additions on a 4xx it caused, records
   usage, lets the planner observe, and stores 2xx answers — JSON at once, streams only when
   read to their end (:class:`_TeeStream` passes chunks through as they arrive).

Everything else passes through byte for byte. The decisions live in :class:`Engine` (plain
code, no I/O of its own); the sync and async methods below differ only in how they do I/O.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import httpx2

from promptcache._accounting import current_attribution
from promptcache._api import Api, RequestInfo, route
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
from promptcache._policy import PolicyName, current_policy, may_read, may_write
from promptcache._singleflight import Flight, SingleFlight
from promptcache._store._entry import Entry

if TYPE_CHECKING:
    from promptcache._hooks import Accountant, Planner
    from promptcache._store import SafeStore
    from promptcache._store._flight import Locks

__all__ = ["CACHE_HEADER", "TICKET_HEADER", "Call", "Engine", "Keyer", "PromptCacheTransport"]

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
# Bytes that end a complete stream, per API. The openai SDK closes a chat stream at
# ``[DONE]`` without reading on, so "the server closed the stream" cannot be the test. Each
# marker starts with a newline: JSON escapes newlines, so model text inside a ``data:`` line
# can never fake one.
_STREAM_END: Final[dict[Api, tuple[bytes, ...]]] = {
    Api.OPENAI_CHAT: (b"\ndata: [DONE]",),
    Api.OPENAI_RESPONSES: (b"\nevent: response.completed", b"\nevent: response.incomplete"),
    Api.ANTHROPIC_MESSAGES: (b"\nevent: message_stop",),
}
_STREAM_ERROR: Final = (b"\nevent: error", b"\nevent: response.failed")
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


def _response_headers(headers: httpx2.Headers) -> list[tuple[str, str]]:
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


def _replay(entry: Entry, request: httpx2.Request) -> httpx2.Response:
    headers = [*entry.headers, (CACHE_HEADER, "hit")]
    return httpx2.Response(entry.status, headers=headers, content=entry.body, request=request)


def _rebuild(request: httpx2.Request, body: bytes) -> httpx2.Request:
    headers = httpx2.Headers(request.headers)
    headers["content-length"] = str(len(body))
    return httpx2.Request(
        request.method, request.url, headers=headers, content=body, extensions=request.extensions
    )


def _is_sse(response: httpx2.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


class _AsyncChunks:
    """Chunks of an inner response as a plain async iterator, optionally through a tee.

    Deliberately not an async generator. At loop shutdown ``shutdown_asyncgens`` closes every
    live async generator at once; one whose close awaits the close of another (httpx2 chains
    them) then finds it "already running" and the loop logs an error. httpx2's own chain does
    this now and then for an abandoned stream even without us; a generator of ours on top of
    the inner response made it the common case. A plain iterator is not tracked by the loop:
    httpx2 closes the response, which calls the stream's ``aclose``.
    """

    def __init__(self, chunks: AsyncIterator[bytes], tee: _TeeStream | None = None) -> None:
        self._chunks = chunks
        self._tee = tee

    def __aiter__(self) -> _AsyncChunks:
        return self

    async def __anext__(self) -> bytes:
        tee = self._tee
        if tee is None:
            return await self._chunks.__anext__()
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            await tee._afinish()
            raise
        except BaseException:
            await tee._upstream.aclose()
            await tee._afinish(error=True)
            raise
        tee._see(chunk)
        return chunk


class _ProxyStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """Raw bytes of an inner response, untouched (pass-through routes)."""

    def __init__(self, upstream: httpx2.Response) -> None:
        self._upstream = upstream

    def __iter__(self) -> Iterator[bytes]:
        yield from self._upstream.iter_raw()

    def __aiter__(self) -> AsyncIterator[bytes]:
        # A plain iterator, not an async generator: see ``_AsyncChunks``.
        return _AsyncChunks(self._upstream.aiter_raw())

    def close(self) -> None:
        self._upstream.close()

    async def aclose(self) -> None:
        await self._upstream.aclose()


class _TeeStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """Pass an SSE stream through chunk by chunk while recording it.

    ``done(body, complete)`` runs exactly once: when the end-of-stream event went by (the
    stream is complete even if the SDK closes it right after), when the stream is closed
    early, or when reading it failed. Only a complete stream is stored.
    """

    def __init__(
        self,
        upstream: httpx2.Response,
        ends: tuple[bytes, ...],
        done: Callable[[bytes, bool], None],
        adone: Callable[[bytes, bool], Any] | None = None,
        flight: Flight[Entry] | None = None,
    ) -> None:
        self._upstream = upstream
        self._flight = flight
        if flight is not None:
            flight.streaming = True
            flight.progress = time.monotonic()
        self._ends = ends
        self._done_cb = done
        self._adone_cb = adone
        self._chunks: list[bytes] = []
        self._tail = b"\n"  # so that a marker opening the stream matches too
        self._ended = False
        self._finished = False
        self._it: Iterator[bytes] | None = None
        self._ait: AsyncIterator[bytes] | None = None

    def _see(self, chunk: bytes) -> None:
        if self._flight is not None:
            self._flight.progress = time.monotonic()
        self._chunks.append(chunk)
        window = self._tail + chunk
        if not self._ended and any(end in window for end in self._ends):
            self._ended = True
        self._tail = window[-64:]

    def _result(self, error: bool) -> tuple[bytes, bool]:
        body = b"".join(self._chunks)
        framed = b"\n" + body
        complete = self._ended and not error and not any(e in framed for e in _STREAM_ERROR)
        return body, complete

    def _finish(self, error: bool = False) -> None:
        if not self._finished:
            self._finished = True
            self._done_cb(*self._result(error))

    async def _afinish(self, error: bool = False) -> None:
        if not self._finished:
            self._finished = True
            if self._adone_cb is not None:
                await self._adone_cb(*self._result(error))
            else:
                self._done_cb(*self._result(error))

    def __iter__(self) -> Iterator[bytes]:
        try:
            if self._it is None:
                self._it = self._upstream.iter_bytes()
            # One upstream iterator shared by every pass: the openai SDK drains the rest of a
            # stream with a second pass after ``[DONE]``.
            for chunk in self._it:
                self._see(chunk)
                yield chunk
        except GeneratorExit:
            # The reader stopped early (or the SDK stopped at the end event): not an error.
            self._upstream.close()
            self._finish()
            raise
        except BaseException:
            self._upstream.close()
            self._finish(error=True)
            raise
        self._finish()

    def __aiter__(self) -> AsyncIterator[bytes]:
        # A plain iterator, not an async generator (see ``_AsyncChunks``). An early stop needs
        # no handler here: httpx2 closes the response, which calls ``aclose`` below.
        if self._ait is None:
            self._ait = self._upstream.aiter_bytes()
        return _AsyncChunks(self._ait, self)

    def close(self) -> None:
        self._upstream.close()
        self._finish()

    async def aclose(self) -> None:
        await self._upstream.aclose()
        await self._afinish()


_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child: the calls parked by the parent's threads will never be claimed here (the
    # flights are reset by ``_singleflight``).
    for engine in list(_engines):
        engine.pending = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class PromptCacheTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Serve generating requests from the local cache or send them upstream through ``inner``.

    ``inner`` is the user's own ``httpx2.Client`` (sync) or ``httpx2.AsyncClient`` (async);
    it is used, never modified. ``policy`` is this client's local-cache policy (a block's
    policy, see :mod:`promptcache._policy`, wins); ``signed`` marks request-signing clients,
    whose bodies are never rewritten.
    """

    def __init__(
        self,
        engine: Engine,
        inner: httpx2.Client | httpx2.AsyncClient,
        *,
        policy: PolicyName = "default",
        signed: bool = False,
        owner: Callable[[], object] | None = None,
    ) -> None:
        self.engine = engine
        self.inner = inner
        self.policy: PolicyName = policy
        self.signed = signed
        # A weak reference to the user's client that owns ``inner`` (None: nobody else does).
        self.owner = owner

    def _inner_is_ours(self) -> bool:
        # Closing a wrapped client closes the user's http client only once the user's own
        # client is gone (``wrap(AsyncOpenAI())`` inline): it is then the last handle on it.
        return self.owner is None or self.owner() is None

    # --- shared steps ------------------------------------------------------------------------

    def _begin(self, request: httpx2.Request, api: Api, content: bytes) -> Call:
        ticket = request.headers.get(TICKET_HEADER)
        policy = current_policy(self.policy)
        call = None
        if ticket is not None:
            call = self.engine.claim(ticket, api, request, content, policy)
        if call is None:
            call = self.engine.prepare(api, request, content, policy, signed=self.signed)
        # Ours only: never sent upstream (neither is part of any key).
        for name in (TICKET_HEADER, OPT_OUT_HEADER):
            if name in request.headers:
                del request.headers[name]
        return call

    def _outgoing(
        self, request: httpx2.Request, call: Call, sent: Rewrite | None
    ) -> httpx2.Request:
        if sent is None or not sent.changed or (call.delivered and sent is call.sent):
            return request
        return _rebuild(request, dumps(sent.body))

    def _live(
        self,
        request: httpx2.Request,
        upstream: httpx2.Response,
        headers: list[tuple[str, str]],
    ) -> httpx2.Response:
        # The upstream response is ours and already read (its content is decoded): hand it on
        # with our headers rather than building another one. ``headers`` are the ones kept for
        # the entry (``_response_headers``), computed once.
        upstream.headers = httpx2.Headers([*headers, (CACHE_HEADER, "miss")])
        upstream.request = request
        return upstream

    def _live_stream(
        self, request: httpx2.Request, upstream: httpx2.Response, stream: _TeeStream
    ) -> httpx2.Response:
        headers = [*_response_headers(upstream.headers), (CACHE_HEADER, "miss")]
        return httpx2.Response(
            upstream.status_code,
            headers=headers,
            stream=stream,
            request=request,
            extensions=upstream.extensions,
        )

    @staticmethod
    def _proxy(request: httpx2.Request, upstream: httpx2.Response) -> httpx2.Response:
        if upstream.is_stream_consumed:
            # Already read (e.g. a transport that answers with bytes): its body is decoded.
            return httpx2.Response(
                upstream.status_code,
                headers=_response_headers(upstream.headers),
                content=upstream.content,
                request=request,
                extensions=upstream.extensions,
            )
        return httpx2.Response(
            upstream.status_code,
            headers=upstream.headers.raw,
            stream=_ProxyStream(upstream),
            request=request,
            extensions=upstream.extensions,
        )

    def _stream_done(
        self,
        call: Call,
        sent: Rewrite | None,
        status: int,
        headers: list[tuple[str, str]],
        flight: Flight[Entry] | None,
    ) -> Callable[[bytes, bool], None]:
        engine = self.engine

        def done(body: bytes, complete: bool) -> None:
            entry: Entry | None = None
            try:
                entry = engine.finish_upstream(
                    call, sent, status, headers, body, stream=True, complete=complete
                )
                if entry is not None and call.key is not None and call.write:
                    engine.save(call.key, entry)
            finally:
                if flight is not None:
                    engine.flights.finish(flight, entry)

        return done

    # --- sync driver -------------------------------------------------------------------------

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Serve one request (sync)."""
        inner = self.inner
        assert isinstance(inner, httpx2.Client), "a sync request reached an async transport"
        api = route(request.method, request.url.path)
        if api is None:
            return self._proxy(request, inner.send(request, stream=True))
        call = self._begin(request, api, request.read())
        engine = self.engine
        flight: Flight[Entry] | None = None
        # A bypassing call takes no part in single-flight: it wants its own fresh answer.
        if call.key is not None and (call.read or call.write):
            key = call.key
            for attempt in range(3):
                if call.read and not (attempt == 0 and call.looked_up):
                    entry = engine.lookup(key)
                    if entry is not None:
                        engine.record_hit(call, entry)
                        return _replay(entry, request)
                flight, leader = engine.flights.join(key.key, (threading.get_ident(), None))
                if not leader and flight.owner[0] == threading.get_ident():
                    # This very thread leads (an unread stream): waiting would deadlock.
                    flight = None
                    break
                if leader:
                    # Look again: a leader that just finished may have stored it meanwhile
                    # (the fast path looked a moment ago: not worth a second read then,
                    # unless a flight finished since and may have stored it).
                    if call.read and not (call.looked_up and call.epoch == engine.flights.finished):
                        entry = engine.lookup(key)
                        if entry is not None:
                            engine.flights.finish(flight, entry)
                            engine.record_hit(call, entry)
                            return _replay(entry, request)
                    if engine.locks is not None and call.read and call.write:
                        # Other processes: lead there too, or wait for their leader's entry.
                        got = engine.locks.lead(key.key, lambda: engine.lookup(key))
                        if isinstance(got, Entry):
                            engine.flights.finish(flight, got)
                            engine.record_hit(call, got)
                            return _replay(got, request)
                        flight.lease = got
                    break
                entry = flight.wait_progress(engine.flight_timeout, engine.stream_stall)
                if not flight.done:
                    # A stalled or lost leader (a stream nobody reads): stop queueing behind it.
                    engine.flights.abandon(flight)
                flight = None
                if entry is not None:
                    engine.record_hit(call, entry)
                    return _replay(entry, request)
        try:
            return self._upstream_sync(inner, request, call, flight)
        except BaseException:
            if flight is not None:
                engine.flights.finish(flight, None)
            raise

    def _upstream_sync(
        self,
        inner: httpx2.Client,
        request: httpx2.Request,
        call: Call,
        flight: Flight[Entry] | None,
    ) -> httpx2.Response:
        engine = self.engine
        sent = call.sent if call.planned else engine.plan(call)
        upstream = inner.send(self._outgoing(request, call, sent), stream=True)
        if sent is not None and sent.changed and 400 <= upstream.status_code < 500:
            error_body = upstream.read()
            upstream.close()
            retry = engine.rejected(call, sent, upstream.status_code, error_body)
            if retry is None:
                return self._finish_json(request, call, sent, upstream, error_body, flight)
            sent = retry
            upstream = inner.send(self._outgoing(request, call, sent), stream=True)
        if _is_sse(upstream) and upstream.status_code == 200:
            headers = _response_headers(upstream.headers)
            done = self._stream_done(call, sent, upstream.status_code, headers, flight)
            tee = _TeeStream(upstream, _STREAM_END[call.info.api], done, flight=flight)
            return self._live_stream(request, upstream, tee)
        try:
            body = upstream.read()
        except BaseException:
            # The provider answered (and billed) but the body was cut: record the call with
            # unknown usage, then let the SDK raise its own connection error as it would bare.
            self._record_cut(call, sent, upstream, flight)
            raise
        finally:
            upstream.close()
        return self._finish_json(request, call, sent, upstream, body, flight)

    def _record_cut(
        self,
        call: Call,
        sent: Rewrite | None,
        upstream: httpx2.Response,
        flight: Flight[Entry] | None,
    ) -> None:
        try:
            self.engine.finish_upstream(
                call,
                sent,
                upstream.status_code,
                _response_headers(upstream.headers),
                b"",
                stream=False,
                complete=False,
            )
        finally:
            if flight is not None:
                self.engine.flights.finish(flight, None)

    def _finish_json(
        self,
        request: httpx2.Request,
        call: Call,
        sent: Rewrite | None,
        upstream: httpx2.Response,
        body: bytes,
        flight: Flight[Entry] | None,
    ) -> httpx2.Response:
        engine = self.engine
        entry: Entry | None = None
        headers = _response_headers(upstream.headers)
        try:
            entry = engine.finish_upstream(
                call, sent, upstream.status_code, headers, body, stream=False, complete=True
            )
            if entry is not None and call.key is not None and call.write:
                engine.save(call.key, entry)
        finally:
            if flight is not None:
                engine.flights.finish(flight, entry)
        return self._live(request, upstream, headers)

    def close(self) -> None:
        """Close the inner client if the user's client it belongs to is gone."""
        inner = self.inner
        if isinstance(inner, httpx2.Client) and self._inner_is_ours():
            inner.close()

    # --- async driver ------------------------------------------------------------------------

    async def _alookup(self, key: CacheKey) -> Entry | None:
        if self.engine.blocking:
            return await asyncio.to_thread(self.engine.lookup, key)
        return self.engine.lookup(key)

    async def _asave(self, key: CacheKey, entry: Entry) -> None:
        if self.engine.blocking and not self.engine.writes_behind:
            await asyncio.to_thread(self.engine.save, key, entry)
        else:
            self.engine.save(key, entry)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Serve one request (async): store I/O runs off the event loop."""
        inner = self.inner
        assert isinstance(inner, httpx2.AsyncClient), "an async request reached a sync transport"
        api = route(request.method, request.url.path)
        if api is None:
            return self._proxy(request, await inner.send(request, stream=True))
        call = self._begin(request, api, await request.aread())
        engine = self.engine
        flight: Flight[Entry] | None = None
        # A bypassing call takes no part in single-flight: it wants its own fresh answer.
        if call.key is not None and (call.read or call.write):
            key = call.key
            for attempt in range(3):
                if call.read and not (attempt == 0 and call.looked_up):
                    entry = await self._alookup(key)
                    if entry is not None:
                        engine.record_hit(call, entry)
                        return _replay(entry, request)
                owner = (threading.get_ident(), id(asyncio.current_task()))
                flight, leader = engine.flights.join(key.key, owner)
                if not leader and flight.owner in (owner, (owner[0], None)):
                    # This very task leads (an unread stream): waiting would deadlock.
                    flight = None
                    break
                if leader:
                    if call.read and not (call.looked_up and call.epoch == engine.flights.finished):
                        entry = await self._alookup(key)
                        if entry is not None:
                            engine.flights.finish(flight, entry)
                            engine.record_hit(call, entry)
                            return _replay(entry, request)
                    if engine.locks is not None and call.read and call.write:
                        got = await asyncio.to_thread(
                            engine.locks.lead, key.key, lambda: engine.lookup(key)
                        )
                        if isinstance(got, Entry):
                            engine.flights.finish(flight, got)
                            engine.record_hit(call, got)
                            return _replay(got, request)
                        flight.lease = got
                    break
                entry = await engine.flights.wait_progress_async(
                    flight, engine.flight_timeout, engine.stream_stall
                )
                if not flight.done:
                    engine.flights.abandon(flight)
                flight = None
                if entry is not None:
                    engine.record_hit(call, entry)
                    return _replay(entry, request)
        try:
            return await self._upstream_async(inner, request, call, flight)
        except BaseException:
            if flight is not None:
                engine.flights.finish(flight, None)
            raise

    async def _upstream_async(
        self,
        inner: httpx2.AsyncClient,
        request: httpx2.Request,
        call: Call,
        flight: Flight[Entry] | None,
    ) -> httpx2.Response:
        engine = self.engine
        sent = call.sent if call.planned else engine.plan(call)
        upstream = await inner.send(self._outgoing(request, call, sent), stream=True)
        if sent is not None and sent.changed and 400 <= upstream.status_code < 500:
            error_body = await upstream.aread()
            await upstream.aclose()
            retry = engine.rejected(call, sent, upstream.status_code, error_body)
            if retry is None:
                return await self._afinish_json(request, call, sent, upstream, error_body, flight)
            sent = retry
            upstream = await inner.send(self._outgoing(request, call, sent), stream=True)
        if _is_sse(upstream) and upstream.status_code == 200:
            headers = _response_headers(upstream.headers)
            sync_done = self._stream_done(call, sent, upstream.status_code, headers, flight)

            async def adone(body: bytes, complete: bool) -> None:
                if engine.blocking and not (call.write and engine.writes_behind):
                    await asyncio.to_thread(sync_done, body, complete)
                else:
                    sync_done(body, complete)

            tee = _TeeStream(upstream, _STREAM_END[call.info.api], sync_done, adone, flight)
            return self._live_stream(request, upstream, tee)
        try:
            body = await upstream.aread()
        except BaseException:
            self._record_cut(call, sent, upstream, flight)  # in-memory only: fine on the loop
            raise
        finally:
            await upstream.aclose()
        return await self._afinish_json(request, call, sent, upstream, body, flight)

    async def _afinish_json(
        self,
        request: httpx2.Request,
        call: Call,
        sent: Rewrite | None,
        upstream: httpx2.Response,
        body: bytes,
        flight: Flight[Entry] | None,
    ) -> httpx2.Response:
        engine = self.engine
        entry: Entry | None = None
        headers = _response_headers(upstream.headers)
        try:
            entry = engine.finish_upstream(
                call, sent, upstream.status_code, headers, body, stream=False, complete=True
            )
            if entry is not None and call.key is not None and call.write:
                await self._asave(call.key, entry)
        finally:
            if flight is not None:
                engine.flights.finish(flight, entry)
        return self._live(request, upstream, headers)

    async def aclose(self) -> None:
        """Close the inner client if the user's client it belongs to is gone."""
        inner = self.inner
        if isinstance(inner, httpx2.AsyncClient) and self._inner_is_ours():
            await inner.aclose()
