"""Shared doubles, fixtures and client factories for the wrap/transport/stream tests.

Holds no tests itself. The planner and accountant doubles record what the transport told
them; clients are the real SDK classes talking to the emulator over loopback (Azure through a
loopback proxy transport that maps its deployment paths onto the emulator's routes).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from promptcache._api import RequestInfo
from promptcache._hooks import Rewrite, UsageMeta
from promptcache._wrap import PromptCache
from promptcache.testing import Emulator

SYNC_KINDS = ["OpenAI", "AzureOpenAI", "Anthropic"]
ASYNC_KINDS = ["AsyncOpenAI", "AsyncAzureOpenAI", "AsyncAnthropic"]
ALL_KINDS = SYNC_KINDS + ASYNC_KINDS
OPENAI_MODEL = "gpt-4o"
ANTHROPIC_MODEL = "claude-sonnet-5-5"


@dataclass
class RecordingPlanner:
    """A planner double: passes bodies through (or through ``transform``) and records calls."""

    transform: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    retry: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    rewrites: list[dict[str, Any]] = field(default_factory=list)
    observed: list[tuple[RequestInfo, Rewrite, UsageMeta | None]] = field(default_factory=list)
    rejections: list[tuple[int, bytes]] = field(default_factory=list)

    def rewrite(self, info: RequestInfo, body: dict[str, Any]) -> Rewrite:
        self.rewrites.append(body)
        if self.transform is not None:
            new = self.transform(body)
            if new is not None:
                return Rewrite(new, changed=True, added_params=frozenset({"x_added"}))
        return Rewrite(body)

    def observe(self, info: RequestInfo, sent: Rewrite, usage: UsageMeta | None) -> None:
        self.observed.append((info, sent, usage))

    def rejected(
        self, info: RequestInfo, sent: Rewrite, status: int, error_body: bytes
    ) -> dict[str, Any] | None:
        self.rejections.append((status, error_body))
        return None if self.retry is None else self.retry(sent.body)


@dataclass
class RecordingAccountant:
    """An accountant double: records upstream calls and local hits."""

    upstream: list[tuple[RequestInfo, int, bool, int]] = field(default_factory=list)
    hits: list[tuple[RequestInfo, UsageMeta | None]] = field(default_factory=list)

    def record_upstream(
        self, info: RequestInfo, body: bytes, *, status: int, complete: bool
    ) -> UsageMeta | None:
        self.upstream.append((info, status, complete, len(body)))
        return {"bytes": len(body)} if 200 <= status < 300 else None

    def record_local_hit(self, info: RequestInfo, meta: UsageMeta | None) -> None:
        self.hits.append((info, meta))


class AzureToEmulator(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Loopback proxy: Azure's ``/openai/deployments/<d>/…?api-version`` → emulator ``/v1/…``."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.seen: list[httpx2.Request] = []

    def _target(self, request: httpx2.Request) -> httpx2.Request:
        self.seen.append(request)
        path = request.url.path
        if "/deployments/" in path:
            path = "/v1/" + path.split("/deployments/", 1)[1].split("/", 1)[1]
        elif path.startswith("/openai/"):
            path = "/v1/" + path.removeprefix("/openai/")
        url = httpx2.URL(self.emu.base_url + path)
        return httpx2.Request(request.method, url, headers=request.headers, content=request.read())

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        client = httpx2.Client()
        r = client.send(self._target(request), stream=True)
        # Streamed through, so a reader who stops early really has not received the end.
        return httpx2.Response(r.status_code, headers=r.headers, stream=_Closing(r, client))

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        client = httpx2.AsyncClient()
        r = await client.send(self._target(request), stream=True)
        return httpx2.Response(r.status_code, headers=r.headers, stream=_Closing(r, client))


class _Closing(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    def __init__(self, response: httpx2.Response, client: httpx2.Client | httpx2.AsyncClient):
        self.response, self.client = response, client

    def __iter__(self) -> Iterator[bytes]:
        yield from self.response.iter_raw()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_raw():
            yield chunk

    def close(self) -> None:
        self.response.close()
        assert isinstance(self.client, httpx2.Client)
        self.client.close()

    async def aclose(self) -> None:
        await self.response.aclose()
        assert isinstance(self.client, httpx2.AsyncClient)
        await self.client.aclose()


_OPEN: list[Any] = []


def make_client(kind: str, emu: Emulator, **kwargs: Any) -> Any:
    """A real SDK client of class ``kind`` pointed at the emulator (closed after the test)."""
    client = _make_client(kind, emu, **kwargs)
    _OPEN.append(client)
    return client


def track(client: Any) -> Any:
    """Close ``client`` after the test, like the clients :func:`make_client` makes."""
    _OPEN.append(client)
    return client


def _make_client(kind: str, emu: Emulator, **kwargs: Any) -> Any:
    common: dict[str, Any] = {"api_key": "test-key", "max_retries": 0, **kwargs}
    if kind == "OpenAI":
        return openai.OpenAI(base_url=emu.openai_base_url, **common)
    if kind == "AsyncOpenAI":
        return openai.AsyncOpenAI(base_url=emu.openai_base_url, **common)
    if kind == "AzureOpenAI":
        return openai.AzureOpenAI(
            azure_endpoint=emu.base_url,
            api_version="2024-10-21",
            http_client=httpx2.Client(transport=AzureToEmulator(emu)),
            **common,
        )
    if kind == "AsyncAzureOpenAI":
        return openai.AsyncAzureOpenAI(
            azure_endpoint=emu.base_url,
            api_version="2024-10-21",
            http_client=httpx2.AsyncClient(transport=AzureToEmulator(emu)),
            **common,
        )
    if kind == "Anthropic":
        return anthropic.Anthropic(base_url=emu.anthropic_base_url, **common)
    if kind == "AsyncAnthropic":
        return anthropic.AsyncAnthropic(base_url=emu.anthropic_base_url, **common)
    raise AssertionError(kind)


def is_anthropic(kind: str) -> bool:
    return "Anthropic" in kind


def create_kwargs(kind: str, text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    """Keyword arguments for the kind's main ``create``."""
    if is_anthropic(kind):
        return {
            "model": ANTHROPIC_MODEL,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
            **extra,
        }
    return {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": text}], **extra}


def create_method(client: Any, kind: str) -> Any:
    return client.messages.create if is_anthropic(kind) else client.chat.completions.create


def served(emu: Emulator, api: str | None = None) -> int:
    """How many generating calls the emulator answered (optionally for one api)."""
    return sum(1 for c in emu.calls if api is None or c.api == api)


def same(a: Any, b: Any) -> None:
    """Assert two SDK objects are the same answer: same type, equal fields, same request id."""
    assert type(a) is type(b)
    assert a.model_dump(warnings=False) == b.model_dump(warnings=False)
    assert getattr(a, "_request_id", None) == getattr(b, "_request_id", None)


@pytest.fixture()
async def emu() -> AsyncIterator[Emulator]:
    with Emulator() as e:
        yield e
        await close_clients()


async def close_clients() -> None:
    """Close every client made for the test on this loop, so none is closed by the garbage
    collector on a loop that no longer exists."""
    while _OPEN:
        client = _OPEN.pop()
        closing = client.close()
        if inspect.isawaitable(closing):
            await closing


@pytest.fixture()
def planner() -> RecordingPlanner:
    return RecordingPlanner()


@pytest.fixture()
def accountant() -> RecordingAccountant:
    return RecordingAccountant()


@pytest.fixture()
def pc(
    pc_dir: Path,
    planner: RecordingPlanner,
    accountant: RecordingAccountant,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[PromptCache]:
    # Every fast-path miss also re-keys in the transport and fails loudly on a mismatch.
    monkeypatch.setenv("PROMPTCACHE_CHECK_KEYS", "1")
    cache = PromptCache(pc_dir, planner=planner, accountant=accountant)
    yield cache
    cache.close()
