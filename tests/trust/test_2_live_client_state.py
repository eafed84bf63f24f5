"""Issue 9, item 2: the key follows the client's live state, not the state at its first call.

The fast path reuses a request template per resource; whatever the SDK would send differently
now — another organisation, project, key, base URL or default header, set through
``with_options`` or by assigning the client's attributes after a call, or added by the user's
http client — must key differently (a miss and a separate entry), and the same state again
must key alike (a hit). ``PROMPTCACHE_CHECK_KEYS=1`` (the ``checked_pc`` fixture) makes the
transport re-key every fast-path miss and fail on any difference from the fast path's key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest

from promptcache._wrap import PromptCache
from promptcache.testing import Emulator
from tests.trust.keys_kit import (
    PATHS,
    call,
    checked_pc,
    close,
    emu,
    is_anthropic,
    make_client,
    request,
    served,
)

__all__ = ["checked_pc", "emu"]

OPENAI_KINDS = ["OpenAI", "AsyncOpenAI"]
ANTHROPIC_KINDS = ["Anthropic", "AsyncAnthropic"]


def _other_host(url: Any) -> str:
    # The same emulator under another host name: a different base URL to the SDK.
    return str(url).replace("127.0.0.1", "localhost")


Derive = Callable[[Any], Any]

OPENAI_DERIVED: dict[str, tuple[Derive, Derive]] = {
    # name: (a client that must miss, a client that must hit the original's entry)
    "organization": (
        lambda c: c.with_options(organization="org-b"),
        lambda c: c.with_options(organization="org-a"),
    ),
    "project": (
        lambda c: c.with_options(project="proj-b"),
        lambda c: c.with_options(project="proj-a"),
    ),
    "api_key": (
        lambda c: c.with_options(api_key="sk-other-key"),
        lambda c: c.with_options(api_key="sk-test-key"),
    ),
    "base_url": (
        lambda c: c.with_options(base_url=_other_host(c.base_url)),
        lambda c: c.with_options(base_url=str(c.base_url)),
    ),
    "default_headers": (
        lambda c: c.with_options(default_headers={"x-tenant-id": "t-2"}),
        lambda c: c.with_options(timeout=33.0),
    ),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("what", sorted(OPENAI_DERIVED))
@pytest.mark.parametrize("kind", OPENAI_KINDS)
async def test_openai_with_options(
    kind: str, what: str, path: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    bare = make_client(kind, emu, organization="org-a", project="proj-a")
    client = checked_pc.wrap(bare)
    kwargs = request(kind, f"derived {what}")
    first = await call(client, kind, path, **kwargs)
    differs, same = OPENAI_DERIVED[what]
    other = await call(differs(client), kind, path, **kwargs)
    assert served(emu) == 2, f"with_options({what}=…) was served the original client's entry"
    assert other.id != first.id
    assert (await call(same(client), kind, path, **kwargs)).id == first.id
    assert served(emu) == 2
    await close(bare)


OPENAI_ASSIGNED: dict[str, tuple[Any, Any]] = {
    # attribute: (a value that must miss, the original value, which must hit again)
    "organization": ("org-z", "org-a"),
    "project": ("proj-z", "proj-a"),
    "api_key": ("sk-other-key", "sk-test-key"),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("attribute", sorted(OPENAI_ASSIGNED))
@pytest.mark.parametrize("kind", OPENAI_KINDS)
async def test_openai_attribute_set_after_a_call(
    kind: str, attribute: str, path: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    bare = make_client(kind, emu, organization="org-a", project="proj-a")
    client = checked_pc.wrap(bare)
    kwargs = request(kind, f"assigned {attribute}")
    first = await call(client, kind, path, **kwargs)
    changed, original = OPENAI_ASSIGNED[attribute]
    setattr(client, attribute, changed)
    other = await call(client, kind, path, **kwargs)
    assert served(emu) == 2, f"client.{attribute} = … was served the previous entry"
    assert (await call(client, kind, path, **kwargs)).id == other.id
    setattr(client, attribute, original)
    assert (await call(client, kind, path, **kwargs)).id == first.id
    assert served(emu) == 2
    await close(bare)


@pytest.mark.parametrize("kind", OPENAI_KINDS + ANTHROPIC_KINDS)
async def test_base_url_set_after_a_call(kind: str, emu: Emulator, checked_pc: PromptCache) -> None:
    bare = make_client(kind, emu)
    client = checked_pc.wrap(bare)
    kwargs = request(kind, "moved")
    first = await call(client, kind, "fast", **kwargs)
    original = client.base_url
    client.base_url = _other_host(original)
    assert (await call(client, kind, "fast", **kwargs)).id != first.id
    client.base_url = original
    assert (await call(client, kind, "fast", **kwargs)).id == first.id
    assert served(emu) == 2
    await close(bare)


ANTHROPIC_DERIVED: dict[str, Derive] = {
    "api_key": lambda c: c.with_options(api_key="sk-other-key"),
    "auth_token": lambda c: c.with_options(auth_token="oauth-token"),
    "base_url": lambda c: c.with_options(base_url=_other_host(c.base_url)),
    "default_headers": lambda c: c.with_options(default_headers={"x-tenant-id": "t-2"}),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("what", sorted(ANTHROPIC_DERIVED))
@pytest.mark.parametrize("kind", ANTHROPIC_KINDS)
async def test_anthropic_with_options(
    kind: str, what: str, path: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    bare = make_client(kind, emu)
    client = checked_pc.wrap(bare)
    kwargs = request(kind, f"derived {what}")
    first = await call(client, kind, path, **kwargs)
    other = await call(ANTHROPIC_DERIVED[what](client), kind, path, **kwargs)
    assert served(emu) == 2 and other.id != first.id
    assert (await call(client.with_options(timeout=20.0), kind, path, **kwargs)).id == first.id
    await close(bare)


@pytest.mark.parametrize("kind", ANTHROPIC_KINDS)
async def test_anthropic_credential_set_after_a_call(
    kind: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    bare = make_client(kind, emu)
    client = checked_pc.wrap(bare)
    kwargs = request(kind, "rotated")
    first = await call(client, kind, "fast", **kwargs)
    client.api_key = "sk-rotated"
    other = await call(client, kind, "fast", **kwargs)
    client.api_key = "sk-test-key"
    again = await call(client, kind, "fast", **kwargs)
    assert other.id != first.id and again.id == first.id and served(emu) == 2
    await close(bare)


@pytest.mark.parametrize("kind", OPENAI_KINDS + ANTHROPIC_KINDS)
async def test_the_users_http_client_headers_count(
    kind: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    # Headers the user's own http client adds are sent too: they key like any other, even
    # when set on it after the first call.
    http: httpx2.Client | httpx2.AsyncClient = (
        httpx2.AsyncClient() if kind.startswith("Async") else httpx2.Client()
    )
    bare = make_client(kind, emu, http_client=http)
    client = checked_pc.wrap(bare)
    kwargs = request(kind, "http client headers")
    first = await call(client, kind, "fast", **kwargs)
    http.headers["x-tenant-id"] = "from-the-http-client"
    other = await call(client, kind, "fast", **kwargs)
    del http.headers["x-tenant-id"]
    again = await call(client, kind, "fast", **kwargs)
    assert other.id != first.id and again.id == first.id and served(emu) == 2
    await close(bare)


class _French(anthropic.Middleware):
    """Middleware that changes the request: the SDK sends another system prompt."""

    def handle(self, request: Any, call_next: Any) -> Any:
        return call_next(request.copy(body={**request.json, "system": "Answer in French."}))

    async def handle_async(self, request: Any, call_next: Any) -> Any:
        return await call_next(request.copy(body={**request.json, "system": "Answer in French."}))


@pytest.mark.parametrize("kind", ANTHROPIC_KINDS)
async def test_anthropic_middleware_is_not_skipped(
    kind: str, emu: Emulator, checked_pc: PromptCache
) -> None:
    assert is_anthropic(kind)
    plain = make_client(kind, emu)
    french = make_client(kind, emu, middleware=[_French()])
    kwargs = request(kind, "bonjour?")
    first = await call(checked_pc.wrap(plain), kind, "fast", **kwargs)
    translated = await call(checked_pc.wrap(french), kind, "fast", **kwargs)
    assert served(emu) == 2 and translated.id != first.id
    assert emu.calls[-1].request_body is not None
    assert emu.calls[-1].request_body["system"] == "Answer in French."
    # Its own repeat is still cached (by the transport, on what the middleware sent).
    assert (await call(checked_pc.wrap(french), kind, "fast", **kwargs)).id == translated.id
    assert served(emu) == 2
    await close(plain, french)
