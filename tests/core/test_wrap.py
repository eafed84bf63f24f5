"""wrap(): every client class and call style, against the emulator over loopback.

For each: a miss reaches the emulator once, the hit reaches it zero times, and the hit is the
same typed object the SDK returned live (type, fields, request id).
"""

from __future__ import annotations

import inspect
from typing import Any

import anthropic
import openai
import pydantic
import pytest

import promptcache
from promptcache._errors import ConfigError
from promptcache._wrap import PromptCache
from promptcache.testing import Emulator
from tests.core.test_wrap_kit import (
    ALL_KINDS,
    ANTHROPIC_MODEL,
    OPENAI_MODEL,
    RecordingAccountant,
    RecordingPlanner,
    accountant,
    create_kwargs,
    create_method,
    emu,
    is_anthropic,
    make_client,
    pc,
    planner,
    same,
    served,
)

__all__ = ["accountant", "emu", "pc", "planner"]  # fixtures used by name


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_create_miss_then_hit(kind: str, emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client(kind, emu))
    kwargs = create_kwargs(kind)

    async def go() -> tuple[Any, Any]:
        first = await _maybe(create_method(client, kind)(**kwargs))
        second = await _maybe(create_method(client, kind)(**kwargs))
        return first, second

    first, second = await go()
    assert served(emu) == 1
    same(first, second)
    assert pc.engine.fast_hits == 1


@pytest.mark.parametrize("kind", ["OpenAI", "AsyncOpenAI", "AzureOpenAI", "AsyncAzureOpenAI"])
async def test_responses_create(kind: str, emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client(kind, emu))

    async def go() -> tuple[Any, Any]:
        a = await _maybe(client.responses.create(model=OPENAI_MODEL, input="Say hi"))
        b = await _maybe(client.responses.create(model=OPENAI_MODEL, input="Say hi"))
        return a, b

    a, b = await go()
    assert served(emu, "openai.responses") == 1
    same(a, b)
    assert isinstance(b, openai.types.responses.Response)


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_with_raw_response(kind: str, emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client(kind, emu))
    kwargs = create_kwargs(kind, "raw please")
    resource = client.messages if is_anthropic(kind) else client.chat.completions

    async def go() -> tuple[Any, Any, Any, Any]:
        r1 = await _maybe(resource.with_raw_response.create(**kwargs))
        r2 = await _maybe(resource.with_raw_response.create(**kwargs))
        return r1, r2, await _maybe(r1.parse()), await _maybe(r2.parse())

    r1, r2, p1, p2 = await go()
    assert served(emu) == 1
    assert r1.headers["x-promptcache"] == "miss"
    assert r2.headers["x-promptcache"] == "hit"
    assert r1.status_code == r2.status_code == 200
    same(p1, p2)


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_with_streaming_response(kind: str, emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client(kind, emu))
    kwargs = create_kwargs(kind, "streaming response wrapper")
    resource = client.messages if is_anthropic(kind) else client.chat.completions

    def sync() -> list[Any]:
        out = []
        for _ in range(2):
            with resource.with_streaming_response.create(**kwargs) as r:
                out.append((r.headers["x-promptcache"], r.parse()))
        return out

    async def asyn() -> list[Any]:
        out = []
        for _ in range(2):
            async with resource.with_streaming_response.create(**kwargs) as r:
                out.append((r.headers["x-promptcache"], await r.parse()))
        return out

    results = await asyn() if kind.startswith("Async") else sync()
    assert served(emu) == 1
    assert [h for h, _ in results] == ["miss", "hit"]
    same(results[0][1], results[1][1])


class Answer(pydantic.BaseModel):
    city: str
    population: int


@pytest.mark.parametrize("kind", ["OpenAI", "AsyncOpenAI", "AzureOpenAI", "AsyncAzureOpenAI"])
async def test_chat_parse_with_pydantic_model(kind: str, emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client(kind, emu))
    kwargs = create_kwargs(kind, "Largest city?", response_format=Answer)

    async def go() -> tuple[Any, Any]:
        a = await _maybe(client.chat.completions.parse(**kwargs))
        b = await _maybe(client.chat.completions.parse(**kwargs))
        return a, b

    a, b = await go()
    assert served(emu) == 1
    same(a, b)
    assert isinstance(b.choices[0].message.parsed, Answer)
    assert b.choices[0].message.parsed == a.choices[0].message.parsed


@pytest.mark.parametrize("kind", ["Anthropic", "AsyncAnthropic"])
async def test_anthropic_beta_and_parse(kind: str, emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client(kind, emu))
    kwargs = create_kwargs(kind, "beta route")

    async def go() -> list[Any]:
        out = []
        for _ in range(2):
            out.append(await _maybe(client.beta.messages.create(**kwargs)))
        for _ in range(2):
            out.append(await _maybe(client.messages.parse(**kwargs, output_format=Answer)))
        return out

    b1, b2, p1, p2 = await go()
    assert served(emu) == 2  # one per distinct request
    same(b1, b2)
    same(p1, p2)
    assert isinstance(p2.parsed_output, Answer)


@pytest.mark.parametrize("kind", ["OpenAI", "AsyncOpenAI"])
async def test_openai_beta_responses(kind: str, emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client(kind, emu))

    async def go() -> tuple[Any, Any]:
        a = await _maybe(client.beta.responses.create(model=OPENAI_MODEL, input="beta hi"))
        b = await _maybe(client.beta.responses.create(model=OPENAI_MODEL, input="beta hi"))
        return a, b

    a, b = await go()
    assert served(emu) == 1
    same(a, b)


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_with_options_keeps_cache_and_type(kind: str, emu: Emulator, pc: PromptCache) -> None:
    base = make_client(kind, emu)
    client = pc.wrap(base)
    derived = client.with_options(timeout=30, max_retries=0)
    assert isinstance(derived, type(base))
    kwargs = create_kwargs(kind, "derived")

    async def go() -> tuple[Any, Any]:
        a = await _maybe(create_method(client, kind)(**kwargs))
        b = await _maybe(create_method(derived, kind)(**kwargs))
        return a, b

    a, b = await go()
    assert served(emu) == 1
    same(a, b)


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_user_client_untouched(kind: str, emu: Emulator, pc: PromptCache) -> None:
    base = make_client(kind, emu)
    http, cls, attrs = base._client, type(base), dict(vars(base))
    wrapped = pc.wrap(base)
    assert wrapped is not base
    assert isinstance(wrapped, cls)
    assert base._client is http
    assert type(base) is cls
    assert set(vars(base)) == set(attrs)
    assert all(vars(base)[k] is v for k, v in attrs.items())

    async def go() -> None:
        await _maybe(create_method(base, kind)(**create_kwargs(kind, "bare")))
        await _maybe(create_method(base, kind)(**create_kwargs(kind, "bare")))

    await go()
    assert served(emu) == 2  # the user's own client is not cached


def test_rewrap_does_not_stack(emu: Emulator, pc: PromptCache) -> None:
    once = pc.wrap(make_client("OpenAI", emu))
    twice = pc.wrap(once)
    assert twice._client._transport.inner is once._client._transport.inner


def test_non_generating_routes_pass_through(emu: Emulator, pc: PromptCache) -> None:
    bare = make_client("Anthropic", emu)
    client = pc.wrap(bare)
    kwargs = create_kwargs("Anthropic", "count me")
    kwargs.pop("max_tokens")
    a = client.messages.count_tokens(**kwargs)
    b = client.messages.count_tokens(**kwargs)
    assert a == b == bare.messages.count_tokens(**kwargs)
    assert served(emu, "anthropic.count_tokens") == 3
    with pytest.raises(openai.NotFoundError) as wrapped_err:
        pc.wrap(make_client("OpenAI", emu)).models.list()
    with pytest.raises(openai.NotFoundError) as bare_err:
        make_client("OpenAI", emu).models.list()
    assert wrapped_err.value.body == bare_err.value.body


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_errors_are_sdk_types_and_never_cached(
    kind: str, emu: Emulator, pc: PromptCache
) -> None:
    client = pc.wrap(make_client(kind, emu))
    kwargs = create_kwargs(kind, "rate limited")
    emu.inject("rate_limit", times=1)
    error = anthropic.RateLimitError if is_anthropic(kind) else openai.RateLimitError

    async def go() -> Any:
        with pytest.raises(error):
            await _maybe(create_method(client, kind)(**kwargs))
        return await _maybe(create_method(client, kind)(**kwargs))

    ok = await go()
    assert served(emu) == 2
    assert ok.model_dump()


def test_uncacheable_requests_always_go_upstream(emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client("OpenAI", emu))
    first = client.responses.create(model=OPENAI_MODEL, input="start", store=True)
    for _ in range(2):
        client.responses.create(model=OPENAI_MODEL, input="next", previous_response_id=first.id)
    assert served(emu, "openai.responses") == 3
    opted_out = {"x-promptcache-no-cache": "1"}
    for _ in range(2):
        client.chat.completions.create(**create_kwargs("OpenAI"), extra_headers=opted_out)
    assert served(emu, "openai.chat") == 2


def test_response_cache_off(emu: Emulator, pc_dir: Any) -> None:
    planner, accountant = RecordingPlanner(), RecordingAccountant()
    pc = PromptCache(pc_dir, response_cache=False, planner=planner, accountant=accountant)
    client = pc.wrap(make_client("OpenAI", emu))
    for _ in range(2):
        client.chat.completions.create(**create_kwargs("OpenAI"))
    assert served(emu) == 2
    assert len(accountant.upstream) == 2 and not accountant.hits
    assert len(planner.rewrites) == 2


def test_instances_on_one_directory_share_entries(emu: Emulator, pc_dir: Any) -> None:
    one = PromptCache(pc_dir, planner=RecordingPlanner(), accountant=RecordingAccountant())
    two = PromptCache(pc_dir, planner=RecordingPlanner(), accountant=RecordingAccountant())
    a = one.wrap(make_client("OpenAI", emu)).chat.completions.create(**create_kwargs("OpenAI"))
    b = two.wrap(make_client("OpenAI", emu)).chat.completions.create(**create_kwargs("OpenAI"))
    assert served(emu) == 1
    same(a, b)
    one.close()
    two.close()


def test_tenants_do_not_share(emu: Emulator, pc: PromptCache) -> None:
    a = pc.wrap(make_client("Anthropic", emu, api_key="key-a"))
    b = pc.wrap(make_client("Anthropic", emu, api_key="key-b"))
    a.messages.create(**create_kwargs("Anthropic"))
    b.messages.create(**create_kwargs("Anthropic"))
    a.messages.create(**create_kwargs("Anthropic"))
    assert served(emu) == 2


def test_hooks_are_told(
    emu: Emulator, pc: PromptCache, planner: RecordingPlanner, accountant: RecordingAccountant
) -> None:
    client = pc.wrap(make_client("Anthropic", emu))
    with promptcache.tag("search"):
        client.messages.create(**create_kwargs("Anthropic"))
        client.messages.create(**create_kwargs("Anthropic"))
    assert len(planner.rewrites) == 1 and len(planner.observed) == 1
    info, status, complete, size = accountant.upstream[0]
    assert (status, complete) == (200, True) and size > 0
    assert info.model == ANTHROPIC_MODEL and info.attribution.tags == ("search",)
    assert info.base_url == emu.anthropic_base_url and info.tenant
    hit_info, meta = accountant.hits[0]
    assert meta == {"bytes": size}
    assert hit_info.attribution.tags == ("search",)


def test_config_errors(pc_dir: Any) -> None:
    with pytest.raises(ConfigError, match="restructure"):
        PromptCache(pc_dir, restructure="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ttl"):
        PromptCache(pc_dir, ttl=-1)
    with pytest.raises(ConfigError, match="namespace"):
        PromptCache(pc_dir, namespace="a|b")
    with pytest.raises(ConfigError, match="policy"):
        PromptCache(pc_dir).wrap(openai.OpenAI(api_key="x"), policy="never")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="openai or anthropic client"):
        PromptCache(pc_dir).wrap(object())


def test_context_manager_closes(pc_dir: Any) -> None:
    with PromptCache(pc_dir, planner=RecordingPlanner(), accountant=RecordingAccountant()) as pc:
        pc.store.set("k", b"v", ttl=None)
    with pytest.raises(ConfigError, match="closed"):
        pc.wrap(openai.OpenAI(api_key="x"))


def test_module_level_wrap_uses_default_cache(
    emu: Emulator, pc_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptcache import _wrap

    default = PromptCache(pc_dir, planner=RecordingPlanner(), accountant=RecordingAccountant())
    monkeypatch.setattr(_wrap, "_default", default)
    client = promptcache.wrap(make_client("OpenAI", emu))
    client.chat.completions.create(**create_kwargs("OpenAI"))
    client.chat.completions.create(**create_kwargs("OpenAI"))
    assert served(emu) == 1
    assert isinstance(client, openai.OpenAI)
    _ = ANTHROPIC_MODEL


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (
            lambda: anthropic.AnthropicBedrock(
                aws_region="us-east-1", aws_access_key="AKID", aws_secret_key="s"
            ),
            "pass through untouched",
        ),
        (
            lambda: openai.BedrockOpenAI(
                aws_region="us-east-1", aws_access_key_id="AKID", aws_secret_access_key="s"
            ),
            "never restructured",
        ),
    ],
    ids=["AnthropicBedrock", "BedrockOpenAI"],
)
def test_cloud_clients_say_what_is_supported(
    make: Any, says: str, pc: PromptCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptcache import _wrap

    monkeypatch.setattr(_wrap, "_warned", set())
    bare = make()
    with pytest.warns(promptcache.PromptCacheWarning, match=says):
        wrapped = pc.wrap(bare)
    assert type(wrapped) is type(bare)  # no fast-path subclass for signing clients
    pc.wrap(bare)  # once per class: no second warning (warnings are errors here)
    bare.close()


@pytest.mark.parametrize("kind", ["OpenAI", "AsyncOpenAI"])
async def test_responses_parse_and_async_chat_stream(
    kind: str, emu: Emulator, pc: PromptCache
) -> None:
    client = pc.wrap(make_client(kind, emu))
    ask: dict[str, Any] = {"model": OPENAI_MODEL, "input": "A city?", "text_format": Answer}
    a = await _maybe(client.responses.parse(**ask))
    b = await _maybe(client.responses.parse(**ask))
    same(a, b)
    assert isinstance(b.output_parsed, Answer) and b.output_parsed == a.output_parsed
    finals = []
    for _ in range(2):
        manager = client.chat.completions.stream(**create_kwargs(kind, "manager"))
        if kind.startswith("Async"):
            async with manager as s:
                finals.append(await s.get_final_completion())
        else:
            with manager as s:
                finals.append(s.get_final_completion())
    same(finals[0], finals[1])
    assert served(emu) == 2
