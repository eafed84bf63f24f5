"""The transport drivers: sync and async I/O around the engine and the flow (``_flow``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx2

from promptcache._api import Api, route
from promptcache._hooks import Rewrite
from promptcache._json import dumps
from promptcache._keys import (
    OPT_OUT_HEADER,
    CacheKey,
)
from promptcache._policy import PolicyName, current_policy
from promptcache._singleflight import Flight
from promptcache._store._entry import Entry

if TYPE_CHECKING:
    pass

from promptcache._transport._engine import (
    CACHE_HEADER,
    TICKET_HEADER,
    Call,
    Engine,
    response_headers,
)
from promptcache._transport._streams import (
    STREAM_END,
    ProxyStream,
    TeeStream,
    is_sse,
    rebuild,
    replay,
)


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
        return rebuild(request, dumps(sent.body))

    def _live(
        self,
        request: httpx2.Request,
        upstream: httpx2.Response,
        headers: list[tuple[str, str]],
    ) -> httpx2.Response:
        # The upstream response is ours and already read (its content is decoded): hand it on
        # with our headers rather than building another one. ``headers`` are the ones kept for
        # the entry (``response_headers``), computed once.
        upstream.headers = httpx2.Headers([*headers, (CACHE_HEADER, "miss")])
        upstream.request = request
        return upstream

    def _live_stream(
        self, request: httpx2.Request, upstream: httpx2.Response, stream: TeeStream
    ) -> httpx2.Response:
        headers = [*response_headers(upstream.headers), (CACHE_HEADER, "miss")]
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
                headers=response_headers(upstream.headers),
                content=upstream.content,
                request=request,
                extensions=upstream.extensions,
            )
        return httpx2.Response(
            upstream.status_code,
            headers=upstream.headers.raw,
            stream=ProxyStream(upstream),
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
                        return replay(entry, request)
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
                            return replay(entry, request)
                    if engine.locks is not None and call.read and call.write:
                        # Other processes: lead there too, or wait for their leader's entry.
                        got = engine.locks.lead(key.key, lambda: engine.lookup(key))
                        if isinstance(got, Entry):
                            engine.flights.finish(flight, got)
                            engine.record_hit(call, got)
                            return replay(got, request)
                        flight.lease = got
                    break
                entry = flight.wait_progress(engine.flight_timeout, engine.stream_stall)
                if not flight.done:
                    # A stalled or lost leader (a stream nobody reads): stop queueing behind it.
                    engine.flights.abandon(flight)
                flight = None
                if entry is not None:
                    engine.record_hit(call, entry)
                    return replay(entry, request)
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
        if is_sse(upstream) and upstream.status_code == 200:
            headers = response_headers(upstream.headers)
            done = self._stream_done(call, sent, upstream.status_code, headers, flight)
            tee = TeeStream(upstream, STREAM_END[call.info.api], done, flight=flight)
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
                response_headers(upstream.headers),
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
        headers = response_headers(upstream.headers)
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
                        return replay(entry, request)
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
                            return replay(entry, request)
                    if engine.locks is not None and call.read and call.write:
                        got = await asyncio.to_thread(
                            engine.locks.lead, key.key, lambda: engine.lookup(key)
                        )
                        if isinstance(got, Entry):
                            engine.flights.finish(flight, got)
                            engine.record_hit(call, got)
                            return replay(got, request)
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
                    return replay(entry, request)
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
        if is_sse(upstream) and upstream.status_code == 200:
            headers = response_headers(upstream.headers)
            sync_done = self._stream_done(call, sent, upstream.status_code, headers, flight)

            async def adone(body: bytes, complete: bool) -> None:
                if engine.blocking and not (call.write and engine.writes_behind):
                    await asyncio.to_thread(sync_done, body, complete)
                else:
                    sync_done(body, complete)

            tee = TeeStream(upstream, STREAM_END[call.info.api], sync_done, adone, flight)
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
        headers = response_headers(upstream.headers)
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
