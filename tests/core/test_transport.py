"""Transport unit tests on ``httpx2.MockTransport``: store failures, rewrites, headers, signing."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from promptcache._errors import StoreError, StoreWarning
from promptcache._store import MemoryStore, StoreStats
from promptcache._transport import PromptCacheTransport
from promptcache._wrap import PromptCache
from tests.core.test_wrap_kit import RecordingAccountant, RecordingPlanner

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}
KWARGS: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


class Upstream:
    """A MockTransport handler that records requests and answers chat completions."""

    def __init__(self, reply: Callable[[httpx2.Request], httpx2.Response] | None = None) -> None:
        self.requests: list[httpx2.Request] = []
        self.reply = reply

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if self.reply is not None:
            return self.reply(request)
        return httpx2.Response(
            200,
            json=CHAT,
            headers={"x-request-id": "req_1", "set-cookie": "session=secret"},
        )

    def client(self, **kwargs: Any) -> openai.OpenAI:
        http = httpx2.Client(transport=httpx2.MockTransport(self))
        return openai.OpenAI(
            base_url="http://upstream.test/v1",
            api_key="sk-test",
            http_client=http,
            max_retries=0,
            **kwargs,
        )


class BrokenStore:
    """A store whose every call fails like a full or read-only disk."""

    blocking = False

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def get(self, key: str) -> bytes | None:
        raise self.exc

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        raise self.exc

    def delete(self, key: str) -> None:
        raise self.exc

    def clear(self) -> int:
        raise self.exc

    def stats(self) -> StoreStats:
        raise self.exc

    def close(self) -> None:
        pass


class ThreadRecordingStore(MemoryStore):
    """A memory store that says it blocks and records which thread called it."""

    blocking = True

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def get(self, key: str) -> bytes | None:
        self.threads.add(threading.get_ident())
        return super().get(key)

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        self.threads.add(threading.get_ident())
        super().set(key, value, ttl=ttl)


class _Chunks(httpx2.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


@pytest.fixture()
def upstream() -> Iterator[Upstream]:
    yield Upstream()


def _pc(directory: Path, **kwargs: Any) -> PromptCache:
    kwargs.setdefault("planner", RecordingPlanner())
    kwargs.setdefault("accountant", RecordingAccountant())
    return PromptCache(directory, **kwargs)


def test_hit_replays_without_secrets(pc_dir: Path, upstream: Upstream) -> None:
    client = _pc(pc_dir).wrap(upstream.client())
    live = client.chat.completions.with_raw_response.create(**KWARGS)
    hit = client.chat.completions.with_raw_response.create(**KWARGS)
    assert len(upstream.requests) == 1
    assert live.headers["x-promptcache"] == "miss" and hit.headers["x-promptcache"] == "hit"
    assert "set-cookie" not in hit.headers and "set-cookie" not in live.headers
    assert hit.headers["x-request-id"] == "req_1"
    assert hit.parse() == live.parse()
    sent = upstream.requests[0]
    assert "x-promptcache-ticket" not in sent.headers
    assert sent.headers["authorization"] == "Bearer sk-test"


def test_private_headers_never_leave(pc_dir: Path, upstream: Upstream) -> None:
    client = _pc(pc_dir).wrap(upstream.client())
    client.chat.completions.create(**KWARGS, extra_headers={"x-promptcache-no-cache": "1"})
    client.chat.completions.create(**KWARGS, extra_headers={"x-promptcache-no-cache": "1"})
    assert len(upstream.requests) == 2
    for request in upstream.requests:
        assert not any(k.startswith("x-promptcache") for k in request.headers)


def test_corrupt_entry_is_a_warned_miss(pc_dir: Path, upstream: Upstream) -> None:
    pc = _pc(pc_dir, store="memory://")
    client = pc.wrap(upstream.client())
    client.chat.completions.create(**KWARGS)
    inner = pc.store.inner
    assert isinstance(inner, MemoryStore)
    keys = [k for k in inner._data]
    assert len(keys) == 1
    inner.set(keys[0], b"PCE\x01garbage", ttl=None)
    with pytest.warns(StoreWarning):
        again = client.chat.completions.create(**KWARGS)
    assert len(upstream.requests) == 2
    assert again.choices[0].message.content == "hi"
    client.chat.completions.create(**KWARGS)  # re-stored after the miss
    assert len(upstream.requests) == 2


def test_corrupt_entry_strict_raises(pc_dir: Path, upstream: Upstream) -> None:
    pc = _pc(pc_dir, store="memory://", strict=True)
    client = pc.wrap(upstream.client())
    client.chat.completions.create(**KWARGS)
    inner = pc.store.inner
    assert isinstance(inner, MemoryStore)
    for key in list(inner._data):
        inner.set(key, b"not an entry", ttl=None)
    with pytest.raises(StoreError):
        client.chat.completions.create(**KWARGS)


@pytest.mark.parametrize(
    "exc", [OSError(28, "No space left on device"), PermissionError(13, "Permission denied")]
)
def test_broken_store_degrades_to_miss(pc_dir: Path, upstream: Upstream, exc: Exception) -> None:
    client = _pc(pc_dir, store=BrokenStore(exc)).wrap(upstream.client())
    with pytest.warns(StoreWarning):
        first = client.chat.completions.create(**KWARGS)
    with pytest.warns(StoreWarning):
        second = client.chat.completions.create(**KWARGS)
    assert len(upstream.requests) == 2
    assert first == second


def test_broken_store_strict_raises(pc_dir: Path, upstream: Upstream) -> None:
    client = _pc(pc_dir, store=BrokenStore(OSError(28, "full")), strict=True).wrap(
        upstream.client()
    )
    with pytest.raises(StoreError):
        client.chat.completions.create(**KWARGS)


def test_unwritable_directory_store(tmp_path: Path, upstream: Upstream) -> None:
    # A "disk" store whose path is a file: every write fails, calls still succeed.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.warns(StoreWarning):
        pc = _pc(tmp_path / "pc", store=f"disk://{blocker}/responses")
        client = pc.wrap(upstream.client())
        client.chat.completions.create(**KWARGS)
        client.chat.completions.create(**KWARGS)
    assert len(upstream.requests) == 2


def test_rewrite_goes_upstream_but_key_is_the_users(pc_dir: Path, upstream: Upstream) -> None:
    planner = RecordingPlanner(transform=lambda body: {**body, "x_added": "yes"})
    client = _pc(pc_dir, planner=planner).wrap(upstream.client())
    client.chat.completions.create(**KWARGS)
    client.chat.completions.create(**KWARGS)
    assert len(upstream.requests) == 1
    sent = upstream.requests[0]
    body = json.loads(sent.content)
    assert body["x_added"] == "yes"
    assert int(sent.headers["content-length"]) == len(sent.content)
    assert planner.observed and planner.observed[0][1].changed


def test_rejected_rewrite_is_retried_once(pc_dir: Path) -> None:
    def reply(request: httpx2.Request) -> httpx2.Response:
        if "x_added" in json.loads(request.content):
            return httpx2.Response(400, json={"error": {"message": "Unknown parameter: x_added"}})
        return httpx2.Response(200, json=CHAT)

    upstream = Upstream(reply)
    planner = RecordingPlanner(
        transform=lambda body: {**body, "x_added": 1},
        retry=lambda body: {k: v for k, v in body.items() if k != "x_added"},
    )
    client = _pc(pc_dir, planner=planner).wrap(upstream.client())
    ok = client.chat.completions.create(**KWARGS)
    assert ok.choices[0].message.content == "hi"
    assert len(upstream.requests) == 2 and planner.rejections[0][0] == 400
    client.chat.completions.create(**KWARGS)
    assert len(upstream.requests) == 2  # the retried answer was stored


def test_rejected_without_retry_raises_sdk_error(pc_dir: Path) -> None:
    upstream = Upstream(lambda r: httpx2.Response(400, json={"error": {"message": "bad"}}))
    planner = RecordingPlanner(transform=lambda body: {**body, "x_added": 1})
    client = _pc(pc_dir, planner=planner).wrap(upstream.client())
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**KWARGS)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**KWARGS)
    assert len(upstream.requests) == 2


def test_pass_through_is_byte_for_byte(pc_dir: Path) -> None:
    payload = json.dumps({"object": "list", "data": []}).encode()
    packed = gzip.compress(payload)

    def reply(request: httpx2.Request) -> httpx2.Response:
        # A streamed body (like a real socket), so the raw gzip bytes are what passes.
        return httpx2.Response(
            200,
            stream=_Chunks([packed[:10], packed[10:]]),
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )

    upstream = Upstream(reply)
    accountant = RecordingAccountant()
    client = _pc(pc_dir, accountant=accountant).wrap(upstream.client())
    raw = client.models.with_raw_response.list()
    assert raw.http_response.headers["content-encoding"] == "gzip"
    assert raw.http_response.content == payload
    assert "x-promptcache" not in raw.headers
    assert accountant.upstream == []
    client.models.list()
    assert len(upstream.requests) == 2


def test_signed_requests_are_cached_not_rewritten(pc_dir: Path) -> None:
    upstream = Upstream()
    planner = RecordingPlanner(transform=lambda body: {**body, "x_added": 1})
    accountant = RecordingAccountant()
    pc = _pc(pc_dir, planner=planner, accountant=accountant)
    inner = httpx2.Client(transport=httpx2.MockTransport(upstream))
    outer = httpx2.Client(transport=PromptCacheTransport(pc.engine, inner))
    body = json.dumps(KWARGS).encode()
    for signature in ("aaaa", "bbbb"):
        auth = (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/bedrock/aws4_request, "
            f"SignedHeaders=host;x-amz-date, Signature={signature}"
        )
        r = outer.post(
            "http://bedrock.test/v1/chat/completions",
            content=body,
            headers={"authorization": auth, "content-type": "application/json"},
        )
        assert r.status_code == 200
    assert len(upstream.requests) == 1
    assert json.loads(upstream.requests[0].content) == KWARGS  # never rewritten
    assert planner.rewrites == []
    assert accountant.upstream[0][0].signed
    assert len(accountant.hits) == 1


async def test_async_store_io_runs_off_the_event_loop(pc_dir: Path) -> None:
    store = ThreadRecordingStore()
    upstream = Upstream()
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(upstream))
    client = _pc(pc_dir, store=store).wrap(
        openai.AsyncOpenAI(base_url="http://upstream.test/v1", api_key="k", http_client=http)
    )
    a = await client.chat.completions.create(**KWARGS)
    b = await client.chat.completions.create(**KWARGS)
    assert a == b and len(upstream.requests) == 1
    assert store.threads and threading.get_ident() not in store.threads
    await http.aclose()


def test_user_http_client_settings_still_apply(pc_dir: Path, upstream: Upstream) -> None:
    http = httpx2.Client(
        transport=httpx2.MockTransport(upstream), headers={"x-corporate-proxy": "yes"}
    )
    bare = openai.OpenAI(base_url="http://upstream.test/v1", api_key="k", http_client=http)
    client = _pc(pc_dir).wrap(bare)
    client.chat.completions.create(**KWARGS)
    client.models.with_raw_response.list()
    assert all(r.headers["x-corporate-proxy"] == "yes" for r in upstream.requests)
    assert bare._client is http
