"""Issue 9, item 1: every request header that can change the answer or the caller is in the key.

Real SDKs against the emulator, on the fast path (``create``) and the SDK path
(``with_raw_response``): two clients or calls that differ only in a header get separate
entries; calls that differ only in per-attempt headers (retry count, ``x-stainless-*``,
request ids) still share one; a secret-bearing header never reaches the store in clear;
``ignore_headers``/``key_headers`` adjust the list. ``PROMPTCACHE_CHECK_KEYS=1`` makes the
transport re-key every fast-path call and fail on any difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from promptcache import ConfigError
from promptcache._keys import answer_headers
from promptcache._wrap import PromptCache
from promptcache.testing import Emulator, Fault
from tests.trust.keys_kit import (
    KINDS,
    PATHS,
    call,
    checked_pc,
    close,
    emu,
    files_containing,
    is_anthropic,
    make_client,
    request,
    served,
)

__all__ = ["checked_pc", "emu"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_default_header_separates_clients(
    kind: str, path: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    a = make_client(kind, emu, default_headers={"x-tenant-id": "tenant-a"})
    b = make_client(kind, emu, default_headers={"x-tenant-id": "tenant-b"})
    wa, wb = checked_pc.wrap(a), checked_pc.wrap(b)
    kwargs = request(kind, "who am I?")
    first = await call(wa, kind, path, **kwargs)
    other = await call(wb, kind, path, **kwargs)
    assert served(emu) == 2, "tenant b was served tenant a's answer"
    assert first.id != other.id
    # Each tenant's own repeat is still a local hit.
    assert (await call(wa, kind, path, **kwargs)).id == first.id
    assert (await call(wb, kind, path, **kwargs)).id == other.id
    assert served(emu) == 2
    await close(a, b)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_per_request_header_separates_calls(
    kind: str, path: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    client = make_client(kind, emu)
    wrapped = checked_pc.wrap(client)
    kwargs = request(kind, "per request")
    plain = await call(wrapped, kind, path, **kwargs)
    one = await call(wrapped, kind, path, **kwargs, extra_headers={"X-Tenant-Id": "one"})
    two = await call(wrapped, kind, path, **kwargs, extra_headers={"x-tenant-id": "two"})
    assert served(emu) == 3
    assert len({plain.id, one.id, two.id}) == 3
    # Header names are case-insensitive: the same header in another case is the same call.
    again = await call(wrapped, kind, path, **kwargs, extra_headers={"x-TENANT-id": "one"})
    assert again.id == one.id and served(emu) == 3
    await close(client)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_gateway_auth_header_separates_and_is_never_stored(
    kind: str, emu: Emulator, pc_dir: Path, checked_pc: PromptCache
) -> None:
    secrets = ["Bearer sk-helicone-AAAAAAAAAAAAAAAA", "Bearer sk-helicone-BBBBBBBBBBBBBBBB"]
    clients = [make_client(kind, emu, default_headers={"Helicone-Auth": s}) for s in secrets]
    wrapped = [checked_pc.wrap(c) for c in clients]
    kwargs = request(kind, "through a gateway")
    for w in wrapped:
        await call(w, kind, "fast", **kwargs)
        await call(w, kind, "raw", **kwargs)
    assert served(emu) == 2
    checked_pc.close()  # flush the ledger: every file the cache wrote is on disk now
    for secret in secrets:
        assert files_containing(pc_dir, secret.encode()) == []
        assert files_containing(pc_dir, secret.split()[-1].encode()) == []
    await close(*clients)


def test_secret_headers_enter_the_key_only_as_salted_digests() -> None:
    headers = {
        "Helicone-Auth": "Bearer sk-helicone-1",
        "x-portkey-api-key": "pk-1",
        "cf-aig-authorization": "Bearer cf-1",
        "Proxy-Authorization": "Basic dXNlcjpwYXNz",
        "x-api-key": "sk-ant-1",
    }
    salt = b"s" * 32
    keyed = answer_headers(headers, salt, credential="authorization")
    assert set(keyed) == {name.lower() for name in headers}
    for name, value in headers.items():
        assert value not in keyed[name.lower()]
        assert keyed[name.lower()].startswith("blake2b:")
    # Salted: another directory's salt gives other digests; the same salt the same ones.
    assert answer_headers(headers, b"t" * 32) != keyed
    assert answer_headers(headers, salt, credential="authorization") == keyed
    # The credential that names the tenant is left to the namespace's fingerprint.
    assert "authorization" not in answer_headers(
        {"Authorization": "Bearer sk"}, salt, credential="authorization"
    )


@pytest.mark.parametrize("path", PATHS)
async def test_openai_organization_and_project_as_headers(
    path: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    kind = "OpenAI"
    clients = [
        make_client(kind, emu),
        make_client(kind, emu, default_headers={"OpenAI-Organization": "org-a"}),
        make_client(kind, emu, default_headers={"OpenAI-Organization": "org-b"}),
        make_client(kind, emu, default_headers={"OpenAI-Project": "proj-a"}),
        make_client(kind, emu, default_headers={"OpenAI-Project": "proj-b"}),
    ]
    kwargs = request(kind, "which org?")
    ids = [(await call(checked_pc.wrap(c), kind, path, **kwargs)).id for c in clients]
    assert len(set(ids)) == 5 and served(emu) == 5
    await close(*clients)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", KINDS)
async def test_identical_calls_hit_across_a_retry(
    kind: str, path: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    client = make_client(kind, emu, max_retries=2)
    wrapped = checked_pc.wrap(client)
    kwargs = request(kind, "retried")
    # The first attempt gets a 429; the SDK retries with x-stainless-retry-count: 1 (and, on
    # the fast path, the transport re-keys that retry and checks it against the parked key).
    emu.inject(Fault.rate_limit(retry_after=0.001), times=1)
    first = await call(wrapped, kind, path, **kwargs)
    assert [c.status for c in emu.calls] == [429, 200]
    # The next identical call (retry count 0, new stainless timeout) is a local hit.
    again = await call(wrapped, kind, path, **kwargs, timeout=30.0)
    assert again.id == first.id and served(emu) == 1
    await close(client)


def _sent_headers(kind: str) -> list[httpx2.Headers]:
    """Every request the real SDK sends for one call that is retried twice (MockTransport)."""
    seen: list[httpx2.Headers] = []

    def handler(req: httpx2.Request) -> httpx2.Response:
        seen.append(req.headers)
        if len(seen) < 3:
            return httpx2.Response(
                500, json={"error": {"message": "x"}}, headers={"retry-after-ms": "1"}
            )
        if is_anthropic(kind):
            body: dict[str, Any] = {
                "id": "m",
                "type": "message",
                "role": "assistant",
                "model": "c",
                "content": [],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
        else:
            body = {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "g",
                "choices": [],
            }
        return httpx2.Response(200, json=body)

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    options: dict[str, Any] = {"api_key": "sk", "http_client": http, "max_retries": 2}
    if is_anthropic(kind):
        anthropic.Anthropic(base_url="http://x.test", **options).messages.create(**request(kind))
    else:
        openai.OpenAI(base_url="http://x.test/v1", **options).chat.completions.create(
            **request(kind), timeout=12.5
        )
    http.close()
    return seen


@pytest.mark.parametrize("kind", ["OpenAI", "Anthropic"])
def test_the_sdks_per_attempt_headers_are_left_out(kind: str) -> None:
    attempts = _sent_headers(kind)
    assert [h["x-stainless-retry-count"] for h in attempts] == ["0", "1", "2"]
    keyed = [answer_headers(h, b"s" * 32, credential="authorization") for h in attempts]
    assert keyed[0] == keyed[1] == keyed[2]
    # What stays: the headers that describe the request, never the per-attempt ones.
    assert not any(name.startswith("x-stainless-") for name in keyed[0])
    assert {"user-agent", "host", "content-length", "authorization"}.isdisjoint(keyed[0])
    assert keyed[0]["content-type"] == "application/json"


async def test_ignore_headers_and_key_headers(emu: Emulator, pc_dir: Path) -> None:
    kind = "OpenAI"
    kwargs = request(kind, "configured")
    tenants = [make_client(kind, emu, default_headers={"x-tenant-id": t}) for t in "ab"]
    with PromptCache(pc_dir / "ignore", ignore_headers=["X-Tenant-Id"]) as pc:
        ids = {(await call(pc.wrap(c), kind, "fast", **kwargs)).id for c in tenants}
        assert len(ids) == 1 and served(emu) == 1
    with PromptCache(pc_dir / "prefix", ignore_headers=["x-tenant-*"]) as pc:
        ids = {(await call(pc.wrap(c), kind, "raw", **kwargs)).id for c in tenants}
        assert len(ids) == 1 and served(emu) == 2
    # By default a request id never splits entries; with key_headers it does.
    for directory, expected in (("default", 1), ("keyed", 2)):
        key_headers = ["x-request-id"] if directory == "keyed" else []
        with PromptCache(pc_dir / directory, key_headers=key_headers) as pc:
            wrapped = pc.wrap(tenants[0])
            before = served(emu)
            for rid in ("req-1", "req-2"):
                await call(wrapped, kind, "fast", **kwargs, extra_headers={"x-request-id": rid})
            assert served(emu) - before == expected
    await close(*tenants)


@pytest.mark.parametrize(
    "options",
    [
        {"ignore_headers": "x-tenant-id"},
        {"ignore_headers": [1]},
        {"ignore_headers": [""]},
        {"key_headers": ["bad header"]},
        {"key_headers": ["x-promptcache-ticket"]},
        {"key_headers": None},
    ],
)
def test_header_options_are_validated(options: dict[str, Any], pc_dir: Path) -> None:
    with pytest.raises(ConfigError):
        PromptCache(pc_dir, **options)


def test_repeated_headers_and_case() -> None:
    salt = b"s" * 32
    both = answer_headers(httpx2.Headers([("X-Tag", "a"), ("x-tag", "b")]), salt)
    assert both == {"x-tag": "a, b"}
    assert answer_headers(httpx2.Headers([("x-tag", "b"), ("X-TAG", "a")]), salt) != both
    # Beta flags are a set: order and repeats do not matter, across repeated fields too.
    betas = httpx2.Headers([("anthropic-beta", "b,a"), ("Anthropic-Beta", "a")])
    assert answer_headers(betas, salt) == {"anthropic-beta": "a,b"}


def test_sigv4_signs_each_request_anew_yet_repeats_key_alike() -> None:
    salt = b"s" * 32

    def signed(date: str, signature: str) -> dict[str, str]:
        return {
            "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/"
            f"bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}",
            "x-amz-date": date,
            "x-amz-security-token": "session-token-1",
            "content-type": "application/json",
        }

    first = answer_headers(signed("20261128T000000Z", "aaaa"), salt, credential="authorization")
    later = answer_headers(signed("20261128T000501Z", "bbbb"), salt, credential="authorization")
    assert first == later
    assert "session-token-1" not in str(first) and "x-amz-security-token" in first
