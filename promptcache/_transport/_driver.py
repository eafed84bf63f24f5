"""The transport drivers: sync and async I/O around the engine and the flow (``_flow``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx2

from promptcache._api import Api, route
from promptcache._keys import (
    OPT_OUT_HEADER,
)
from promptcache._policy import PolicyName, current_policy
from promptcache._singleflight import Flight
from promptcache._store._entry import Entry
from promptcache._transport._engine import (
    TICKET_HEADER,
    Call,
    Engine,
    response_headers,
)
from promptcache._transport._flow import (
    Flow,
    Lead,
    Lookup,
    Read,
    Save,
    Send,
    Step,
    admit,
    upstream,
)
from promptcache._transport._streams import ProxyStream, replay


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

    # --- sync driver -------------------------------------------------------------------------

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Serve one request (sync)."""
        inner = self.inner
        assert isinstance(inner, httpx2.Client), "a sync request reached an async transport"
        api = route(request.method, request.url.path)
        if api is None:
            return self._proxy(request, inner.send(request, stream=True))
        call = self._begin(request, api, request.read())
        flight: Flight[Entry] | None = None
        # A bypassing call takes no part in single-flight: it wants its own fresh answer.
        if call.key is not None and (call.read or call.write):
            got = self._run(admit(self.engine, call, (threading.get_ident(), None)))
            if isinstance(got, Entry):
                return replay(got, request)
            flight = got
        try:
            response: httpx2.Response = self._run(
                upstream(self.engine, request, call, flight, is_async=False)
            )
        except BaseException:
            if flight is not None:
                self.engine.flights.finish(flight, None)
            raise
        return response

    def _run(self, flow: Flow) -> Any:
        """Drive a flow to its end, performing each step it yields (sync)."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                return stop.value
            error = None
            try:
                value = self._step(step)
            except BaseException as exc:
                value, error = None, exc

    def _step(self, step: Step) -> Any:
        engine = self.engine
        if isinstance(step, Lookup):
            return engine.lookup(step.key)
        if isinstance(step, Send):
            assert isinstance(self.inner, httpx2.Client)
            return self.inner.send(step.request, stream=True)
        if isinstance(step, Read):
            try:
                return step.response.read()
            finally:
                step.response.close()
        if isinstance(step, Save):
            return engine.save(step.key, step.entry)
        if isinstance(step, Lead):
            assert engine.locks is not None
            key = step.key
            return engine.locks.lead(key.key, lambda: engine.lookup(key))
        return step.flight.wait_progress(engine.flight_timeout, engine.stream_stall)

    def close(self) -> None:
        """Close the inner client if the user's client it belongs to is gone."""
        inner = self.inner
        if isinstance(inner, httpx2.Client) and self._inner_is_ours():
            inner.close()

    # --- async driver ------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Serve one request (async): store I/O runs off the event loop."""
        inner = self.inner
        assert isinstance(inner, httpx2.AsyncClient), "an async request reached a sync transport"
        api = route(request.method, request.url.path)
        if api is None:
            return self._proxy(request, await inner.send(request, stream=True))
        call = self._begin(request, api, await request.aread())
        flight: Flight[Entry] | None = None
        if call.key is not None and (call.read or call.write):
            owner = (threading.get_ident(), id(asyncio.current_task()))
            got = await self._arun(admit(self.engine, call, owner))
            if isinstance(got, Entry):
                return replay(got, request)
            flight = got
        try:
            response: httpx2.Response = await self._arun(
                upstream(self.engine, request, call, flight, is_async=True)
            )
        except BaseException:
            if flight is not None:
                self.engine.flights.finish(flight, None)
            raise
        return response

    async def _arun(self, flow: Flow) -> Any:
        """Drive a flow to its end, awaiting each step it yields (async)."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                return stop.value
            error = None
            try:
                value = await self._astep(step)
            except BaseException as exc:
                value, error = None, exc

    async def _astep(self, step: Step) -> Any:
        engine = self.engine
        if isinstance(step, Lookup):
            if engine.blocking:
                return await asyncio.to_thread(engine.lookup, step.key)
            return engine.lookup(step.key)
        if isinstance(step, Send):
            assert isinstance(self.inner, httpx2.AsyncClient)
            return await self.inner.send(step.request, stream=True)
        if isinstance(step, Read):
            try:
                return await step.response.aread()
            finally:
                await step.response.aclose()
        if isinstance(step, Save):
            if engine.blocking and not engine.writes_behind:
                return await asyncio.to_thread(engine.save, step.key, step.entry)
            return engine.save(step.key, step.entry)
        if isinstance(step, Lead):
            assert engine.locks is not None
            key = step.key
            return await asyncio.to_thread(engine.locks.lead, key.key, lambda: engine.lookup(key))
        return await engine.flights.wait_progress_async(
            step.flight, engine.flight_timeout, engine.stream_stall
        )

    async def aclose(self) -> None:
        """Close the inner client if the user's client it belongs to is gone."""
        inner = self.inner
        if isinstance(inner, httpx2.AsyncClient) and self._inner_is_ours():
            await inner.aclose()
