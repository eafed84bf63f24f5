"""What the transport does for a generating request, written once, with the I/O left out.

Each flow is a generator (the sans-I/O style of h11): it yields the I/O step it needs next —
:class:`Lookup`, :class:`Lead`, :class:`Follow`, :class:`Send`, :class:`Read`, :class:`Save` —
and is sent the step's result, or has its exception thrown back in. The sync driver performs a
step by calling, the async driver by awaiting (store reads in a worker thread when the store
blocks); see ``_driver``. So single-flight, the planner's one retry, recording a cut body and
storing an answer are one piece of code for both.

- :func:`admit` — a keyed call: serve it from the store or from another caller's flight, or
  decide who goes upstream (the flight this call leads, if any).
- :func:`upstream` — send (the planner's body), retry once on a 4xx the planner caused, then
  hand back the live answer: JSON recorded and stored at once, SSE teed through and recorded
  when it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Hashable
from dataclasses import dataclass
from typing import Any

import httpx2

from promptcache._hooks import Rewrite
from promptcache._json import dumps
from promptcache._keys import CacheKey
from promptcache._singleflight import Flight
from promptcache._store._entry import Entry
from promptcache._transport._engine import CACHE_HEADER, Call, Engine, response_headers
from promptcache._transport._streams import STREAM_END, TeeStream, is_sse, rebuild

__all__ = ["Follow", "Lead", "Lookup", "Read", "Save", "Send", "Step", "admit", "upstream"]


@dataclass(frozen=True, slots=True)
class Lookup:
    """Read and verify the entry for ``key`` (result: ``Entry | None``)."""

    key: CacheKey


@dataclass(frozen=True, slots=True)
class Lead:
    """Take the cross-process lock for ``key`` or wait for its holder (``Locks.lead``)."""

    key: CacheKey


@dataclass(frozen=True, slots=True)
class Follow:
    """Wait for an in-process leader's answer (result: ``Entry | None``)."""

    flight: Flight[Entry]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``request`` through the user's http client, streaming (result: the response)."""

    request: httpx2.Request


@dataclass(frozen=True, slots=True)
class Read:
    """Read ``response``'s body and close it (result: ``bytes``)."""

    response: httpx2.Response


@dataclass(frozen=True, slots=True)
class Save:
    """Store ``entry`` under ``key``."""

    key: CacheKey
    entry: Entry


Step = Lookup | Lead | Follow | Send | Read | Save
Flow = Generator[Step, Any, Any]


def _mine(leader: Hashable, owner: tuple[int, int | None]) -> bool:
    """Whether the flight's leader is the caller itself: waiting for it would deadlock.

    ``owner`` is ``(thread id, task id or None)``. A sync caller is its own leader for any
    flight led on its thread (an async leader there needs the loop this caller would block);
    an async caller for one led by its own task, or by sync code on its thread.
    """
    if leader is None:
        return False
    assert isinstance(leader, tuple)
    thread, task = owner
    if task is None:
        return bool(leader[0] == thread)
    return leader in (owner, (thread, None))


def admit(
    engine: Engine, call: Call, owner: tuple[int, int | None]
) -> Generator[Step, Any, Entry | Flight[Entry] | None]:
    """Serve a keyed call locally, or say how it goes upstream.

    Returns the entry to replay (already accounted as a hit), the flight this call leads
    (it goes upstream and must finish it), or ``None`` (upstream without a flight).
    """
    assert call.key is not None
    key = call.key
    for attempt in range(3):
        if call.read and not (attempt == 0 and call.looked_up):
            entry: Entry | None = yield Lookup(key)
            if entry is not None:
                engine.record_hit(call, entry)
                return entry
        flight, leader = engine.flights.join(key.key, owner)
        if not leader and _mine(flight.owner, owner):
            return None  # this very caller leads (an unread stream): go upstream
        if leader:
            # Look again: a leader that just finished may have stored it meanwhile (the fast
            # path looked a moment ago: not worth a second read then, unless a flight
            # finished since and may have stored it).
            if call.read and not (call.looked_up and call.epoch == engine.flights.finished):
                entry = yield Lookup(key)
                if entry is not None:
                    engine.flights.finish(flight, entry)
                    engine.record_hit(call, entry)
                    return entry
            if engine.locks is not None and call.read and call.write:
                # Other processes: lead there too, or wait for their leader's entry.
                got = yield Lead(key)
                if isinstance(got, Entry):
                    engine.flights.finish(flight, got)
                    engine.record_hit(call, got)
                    return got
                flight.lease = got
            return flight
        entry = yield Follow(flight)
        if not flight.done:
            # A stalled or lost leader (a stream nobody reads): stop queueing behind it.
            engine.flights.abandon(flight)
        if entry is not None:
            engine.record_hit(call, entry)
            return entry
    return None


def outgoing(request: httpx2.Request, call: Call, sent: Rewrite | None) -> httpx2.Request:
    """Return the request to send for ``sent`` (the SDK's own if it carries that body)."""
    if sent is None or not sent.changed or (call.delivered and sent is call.sent):
        return request
    return rebuild(request, dumps(sent.body))


def upstream(
    engine: Engine,
    request: httpx2.Request,
    call: Call,
    flight: Flight[Entry] | None,
    *,
    is_async: bool,
) -> Flow:
    """Send a call upstream and return the live answer (see the module docstring)."""
    sent = call.sent if call.planned else engine.plan(call)
    response = yield Send(outgoing(request, call, sent))
    if sent is not None and sent.changed and 400 <= response.status_code < 500:
        error_body = yield Read(response)
        retry = engine.rejected(call, sent, response.status_code, error_body)
        if retry is None:
            return (
                yield from _finish_json(engine, request, call, sent, response, error_body, flight)
            )
        sent = retry
        response = yield Send(outgoing(request, call, sent))
    if is_sse(response) and response.status_code == 200:
        return _live_stream(engine, request, call, sent, response, flight, is_async)
    try:
        body = yield Read(response)
    except BaseException:
        # The provider answered (and billed) but the body was cut: record the call with
        # unknown usage, then let the SDK raise its own connection error as it would bare.
        _record_cut(engine, call, sent, response, flight)
        raise
    return (yield from _finish_json(engine, request, call, sent, response, body, flight))


def _finish_json(
    engine: Engine,
    request: httpx2.Request,
    call: Call,
    sent: Rewrite | None,
    response: httpx2.Response,
    body: bytes,
    flight: Flight[Entry] | None,
) -> Flow:
    entry: Entry | None = None
    headers = response_headers(response.headers)
    try:
        entry = engine.finish_upstream(
            call, sent, response.status_code, headers, body, stream=False, complete=True
        )
        if entry is not None and call.key is not None and call.write:
            yield Save(call.key, entry)
    finally:
        if flight is not None:
            engine.flights.finish(flight, entry)
    # The response is ours and already read (its content is decoded): hand it on with our
    # headers rather than building another one; ``headers`` are the ones kept for the entry.
    response.headers = httpx2.Headers([*headers, (CACHE_HEADER, "miss")])
    response.request = request
    return response


def _record_cut(
    engine: Engine,
    call: Call,
    sent: Rewrite | None,
    response: httpx2.Response,
    flight: Flight[Entry] | None,
) -> None:
    try:
        headers = response_headers(response.headers)
        engine.finish_upstream(
            call, sent, response.status_code, headers, b"", stream=False, complete=False
        )
    finally:
        if flight is not None:
            engine.flights.finish(flight, None)


def _live_stream(
    engine: Engine,
    request: httpx2.Request,
    call: Call,
    sent: Rewrite | None,
    response: httpx2.Response,
    flight: Flight[Entry] | None,
    is_async: bool,
) -> httpx2.Response:
    headers = response_headers(response.headers)
    done = _stream_done(engine, call, sent, response.status_code, headers, flight)
    adone: Callable[[bytes, bool], Any] | None = None
    if is_async:

        async def adone(body: bytes, complete: bool) -> None:
            # Recording may write the store: off the event loop when that blocks.
            if engine.blocking and not (call.write and engine.writes_behind):
                await asyncio.to_thread(done, body, complete)
            else:
                done(body, complete)

    tee = TeeStream(response, STREAM_END[call.info.api], done, adone, flight)
    return httpx2.Response(
        response.status_code,
        headers=[*headers, (CACHE_HEADER, "miss")],
        stream=tee,
        request=request,
        extensions=response.extensions,
    )


def _stream_done(
    engine: Engine,
    call: Call,
    sent: Rewrite | None,
    status: int,
    headers: list[tuple[str, str]],
    flight: Flight[Entry] | None,
) -> Callable[[bytes, bool], None]:
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
