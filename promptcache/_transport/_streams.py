"""Response bodies as they pass through: replayed entries, pass-through and teed SSE streams."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

import httpx2

from promptcache._api import Api
from promptcache._singleflight import Flight
from promptcache._store._entry import Entry

if TYPE_CHECKING:
    pass

from promptcache._transport._engine import CACHE_HEADER

# Bytes that end a complete stream, per API. The openai SDK closes a chat stream at
# ``[DONE]`` without reading on, so "the server closed the stream" cannot be the test. Each
# marker starts with a newline: JSON escapes newlines, so model text inside a ``data:`` line
# can never fake one.
STREAM_END: Final[dict[Api, tuple[bytes, ...]]] = {
    Api.OPENAI_CHAT: (b"\ndata: [DONE]",),
    Api.OPENAI_RESPONSES: (b"\nevent: response.completed", b"\nevent: response.incomplete"),
    Api.ANTHROPIC_MESSAGES: (b"\nevent: message_stop",),
}
STREAM_ERROR: Final = (b"\nevent: error", b"\nevent: response.failed")


def replay(entry: Entry, request: httpx2.Request) -> httpx2.Response:
    headers = [*entry.headers, (CACHE_HEADER, "hit")]
    return httpx2.Response(entry.status, headers=headers, content=entry.body, request=request)


def rebuild(request: httpx2.Request, body: bytes) -> httpx2.Request:
    headers = httpx2.Headers(request.headers)
    headers["content-length"] = str(len(body))
    return httpx2.Request(
        request.method, request.url, headers=headers, content=body, extensions=request.extensions
    )


def is_sse(response: httpx2.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


class AsyncChunks:
    """Chunks of an inner response as a plain async iterator, optionally through a tee.

    Deliberately not an async generator. At loop shutdown ``shutdown_asyncgens`` closes every
    live async generator at once; one whose close awaits the close of another (httpx2 chains
    them) then finds it "already running" and the loop logs an error. httpx2's own chain does
    this now and then for an abandoned stream even without us; a generator of ours on top of
    the inner response made it the common case. A plain iterator is not tracked by the loop:
    httpx2 closes the response, which calls the stream's ``aclose``.
    """

    def __init__(self, chunks: AsyncIterator[bytes], tee: TeeStream | None = None) -> None:
        self._chunks = chunks
        self._tee = tee

    def __aiter__(self) -> AsyncChunks:
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


class ProxyStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """Raw bytes of an inner response, untouched (pass-through routes)."""

    def __init__(self, upstream: httpx2.Response) -> None:
        self._upstream = upstream

    def __iter__(self) -> Iterator[bytes]:
        yield from self._upstream.iter_raw()

    def __aiter__(self) -> AsyncIterator[bytes]:
        # A plain iterator, not an async generator: see ``AsyncChunks``.
        return AsyncChunks(self._upstream.aiter_raw())

    def close(self) -> None:
        self._upstream.close()

    async def aclose(self) -> None:
        await self._upstream.aclose()


class TeeStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
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
        complete = self._ended and not error and not any(e in framed for e in STREAM_ERROR)
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
        # A plain iterator, not an async generator (see ``AsyncChunks``). An early stop needs
        # no handler here: httpx2 closes the response, which calls ``aclose`` below.
        if self._ait is None:
            self._ait = self._upstream.aiter_bytes()
        return AsyncChunks(self._ait, self)

    def close(self) -> None:
        self._upstream.close()
        self._finish()

    async def aclose(self) -> None:
        await self._upstream.aclose()
        await self._afinish()
