"""Issue 10: gateways and compatible base URLs get OpenAI's hints when the model is OpenAI's.

What is knowable decides (the base URL's host and path, the model name, the option the app
set); a server that refuses a field promptcache added gets the call again without it, once, and
never again; the app's own bad fields stay the app's. Tested through the real SDKs with the
production or gateway base URL kept (``Emulator.transport()``), against the emulator's strict
mode for servers that refuse unknown fields.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import promptcache
from promptcache._api import Api, RequestInfo
from promptcache._errors import HintRejectedWarning
from promptcache._plan import DefaultPlanner, OpenAIOptions
from promptcache._plan._endpoints import classify, refused_fields
from promptcache.testing import Emulator, FakeClock, ServedCall, StrictServer, StrictStyle
from promptcache.testing._strict import CHAT_FIELDS

SYSTEM = "You are the support assistant of Acme Corp. Follow the handbook exactly. " * 80
OURS = frozenset({"prompt_cache_key", "prompt_cache_options", "prompt_cache_breakpoint"})
STYLES: tuple[StrictStyle, ...] = ("openai", "pydantic", "vllm", "litellm", "tgi")
GATEWAY = "https://gateway.ai.cloudflare.com/v1/acct/gw/openai"
PROXY = "https://llm-proxy.corp.example/v1"  # a corporate proxy that refuses unknown fields


def _ours_in(body: Any) -> set[str]:
    """Which of promptcache's OpenAI fields appear anywhere in ``body``."""
    text = json.dumps(body)
    return {f for f in OURS if f'"{f}"' in text}


def _msgs(question: str) -> list[Any]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


# --- which endpoints get which hints (pure) ---------------------------------------------------

CASES = [
    # OpenAI itself and Azure OpenAI (deployment names are the app's own)
    ("https://api.openai.com/v1", "gpt-5.5", True),
    ("https://acme.openai.azure.com/openai/deployments/prod-chat", "prod-chat", True),
    ("https://acme.cognitiveservices.azure.com/openai/deployments/prod", "prod", True),
    # Gateways: a route that only reaches OpenAI, else the model name decides
    (GATEWAY, "my-alias", True),
    ("https://gateway.ai.cloudflare.com/v1/acct/gw/compat", "openai/gpt-5.6-sol", True),
    ("https://gateway.ai.cloudflare.com/v1/acct/gw/workers-ai", "@cf/meta/llama-3.1-8b", False),
    ("https://openrouter.ai/api/v1", "openai/gpt-6.1-sol", True),
    ("https://openrouter.ai/api/v1", "anthropic/claude-sonnet-4.5", False),
    ("https://openrouter.ai/api/v1", "meta-llama/llama-3.1-70b-instruct", False),
    ("https://api.portkey.ai/v1", "gpt-4o", True),
    ("https://api.portkey.ai/v1", "@openai-prod/gpt-4.1", True),
    ("https://oai.helicone.ai/v1", "whatever-the-app-calls-it", True),
    ("http://localhost:4000", "gpt-4.1", True),  # a LiteLLM proxy
    ("http://localhost:4000", "o3-mini", True),
    ("http://localhost:4000", "chatgpt-4o-latest", True),
    ("http://localhost:4000", "ft:gpt-4o-mini:acme::abc123", True),
    (PROXY, "gpt-5.5", True),
    # Servers that are not OpenAI
    ("http://localhost:11434/v1", "llama3.1:8b", False),  # Ollama
    ("http://localhost:11434/v1", "gpt-4o", False),  # Ollama, whatever the model is called
    ("http://localhost:11434/v1", "gpt-oss:20b", False),
    ("http://gpu-box:8000/v1", "Qwen/Qwen2.5-72B-Instruct", False),  # vLLM
    ("http://gpu-box:8000/v1", "openai/gpt-oss-120b", False),
    ("http://gpu-box:8080/v1", "EleutherAI/gpt-j-6b", False),  # TGI
    ("http://127.0.0.1:8080/v1", "mistral-large-latest", False),  # llama.cpp and the like
    ("https://api.groq.com/openai/v1", "llama-3.3-70b-versatile", False),
    ("https://generativelanguage.googleapis.com/v1beta/openai", "gemini-2.5-flash", False),
]


@pytest.mark.parametrize(("base_url", "model", "openai_hints"), CASES)
def test_which_endpoints_get_openai_hints(base_url: str, model: str, openai_hints: bool) -> None:
    assert classify(base_url, model).openai is openai_hints
    info = RequestInfo(Api.OPENAI_CHAT, base_url, model, "t", False)
    sent = DefaultPlanner("safe").rewrite(info, {"model": model, "messages": _msgs("q")}).body
    assert ("prompt_cache_key" in sent) is openai_hints
    # The user's word wins both ways.
    on = DefaultPlanner("safe", openai=OpenAIOptions(endpoint="openai"))
    assert "prompt_cache_key" in on.rewrite(info, {"model": model, "messages": _msgs("q")}).body
    off = DefaultPlanner("safe", openai=OpenAIOptions(endpoint="compatible"))
    assert (
        "prompt_cache_key" not in off.rewrite(info, {"model": model, "messages": _msgs("q")}).body
    )


def test_gpt56_through_an_openrouter_style_name_gets_breakpoints_too() -> None:
    info = RequestInfo(
        Api.OPENAI_CHAT, "https://openrouter.ai/api/v1", "openai/gpt-6.1-sol", "t", False
    )
    rw = DefaultPlanner("safe").rewrite(info, {"model": info.model, "messages": _msgs("q")})
    assert rw.added_params == {"prompt_cache_key", "prompt_cache_options"}
    assert rw.body["messages"][0]["content"][0]["prompt_cache_breakpoint"] == {"mode": "explicit"}


def test_withheld_hints_say_where_why_and_the_fix() -> None:
    p = DefaultPlanner("safe")
    vllm = RequestInfo(Api.OPENAI_CHAT, "http://gpu-box:8000/v1", "Qwen/Qwen2.5-72B", "t", False)
    for q in ("a", "b"):
        p.rewrite(vllm, {"model": vllm.model, "messages": _msgs(q)})
    native = RequestInfo(Api.OPENAI_CHAT, "https://api.openai.com/v1", "gpt-5.5", "t", False)
    p.rewrite(native, {"model": "gpt-5.5", "messages": _msgs("c")})
    (w,) = p.withheld()
    assert (w.host, w.model, w.reason, w.hints, w.requests) == (
        "gpu-box",
        "Qwen/Qwen2.5-72B",
        "not_openai",
        ("prompt_cache_key",),
        2,
    )
    assert 'endpoint="openai"' in w.fix and "not an OpenAI model" in w.detail

    declared = DefaultPlanner("safe", openai=OpenAIOptions(endpoint="compatible"))
    gw = RequestInfo(Api.OPENAI_RESPONSES, GATEWAY, "gpt-6.1-sol", "t", False)
    declared.rewrite(gw, {"model": "gpt-6.1-sol", "input": "hi", "instructions": SYSTEM})
    (d,) = declared.withheld()
    assert (d.reason, d.hints) == ("declared", ("prompt_cache_key", "prompt_cache_options"))
    # Off mode adds nothing anywhere, so nothing is "withheld".
    off = DefaultPlanner("off")
    off.rewrite(vllm, {"model": vllm.model, "messages": _msgs("a")})
    assert off.withheld() == []


# --- what a refusal names ---------------------------------------------------------------------


def _j(obj: Any) -> bytes:
    return json.dumps(obj).encode()


REFUSALS = [
    (
        _j({"error": {"message": "Unrecognized request argument supplied: prompt_cache_key"}}),
        {"prompt_cache_key"},
    ),
    (
        _j(
            {
                "error": {
                    "message": "Unknown parameter: "
                    "'messages[0].content[0].prompt_cache_breakpoint'.",
                    "param": "messages[0].content[0].prompt_cache_breakpoint",
                    "code": "unknown_parameter",
                }
            }
        ),
        {"prompt_cache_breakpoint"},
    ),
    (  # FastAPI: every extra field, each with its location
        _j(
            {
                "detail": [
                    {
                        "type": "extra_forbidden",
                        "loc": ["body", "prompt_cache_options"],
                        "msg": "Extra inputs are not permitted",
                        "input": {"mode": "explicit"},
                    }
                ]
            }
        ),
        {"prompt_cache_options"},
    ),
    (  # a 'missing' error echoes the whole body as input: nothing of ours is blamed
        _j(
            {
                "detail": [
                    {
                        "type": "missing",
                        "loc": ["body", "messages"],
                        "msg": "Field required",
                        "input": {"model": "m", "prompt_cache_key": "pc-1"},
                    }
                ]
            }
        ),
        set(),
    ),
    (  # vLLM's repr of the same, with the echo
        _j(
            {
                "error": {
                    "message": "[{'type': 'missing', 'loc': ('body', 'messages'), 'msg': "
                    "'Field required', 'input': {'prompt_cache_key': 'pc-1'}}]",
                    "type": "BadRequestError",
                    "code": 400,
                }
            }
        ),
        set(),
    ),
    (  # serde: the list of what it expected is not what it refused
        _j(
            {
                "error": "Failed to deserialize the JSON body into the target type: unknown field "
                "`prompt_cache_options`, expected one of `model`, `messages`, `prompt_cache_key` "
                "at line 1 column 9",
                "error_type": "validation",
            }
        ),
        {"prompt_cache_options"},
    ),
    (
        _j(
            {
                "error": {
                    "message": "litellm.UnsupportedParamsError: hosted_vllm does not support "
                    "parameters: ['prompt_cache_key'], for model=llama. To drop these, set "
                    "`litellm.drop_params=True`"
                }
            }
        ),
        {"prompt_cache_key"},
    ),
    (
        _j(
            [
                {
                    "error": {
                        "message": 'Invalid JSON payload received. Unknown name "prompt_cache_key"'
                    }
                }
            ]
        ),
        {"prompt_cache_key"},
    ),
    (
        b"400 Bad Request: prompt_cache_options: Extra inputs are not permitted",
        {"prompt_cache_options"},
    ),
    (_j({"error": {"message": "Unrecognized request argument supplied: guardrail"}}), set()),
    (_j({"error": {"message": "Invalid value for 'temperature': must be <= 2."}}), set()),
]


@pytest.mark.parametrize(("body", "blamed"), REFUSALS)
def test_refused_fields_reads_only_what_is_blamed(body: bytes, blamed: set[str]) -> None:
    assert refused_fields(body) & OURS == blamed


# --- end to end: the real SDKs, production and gateway base URLs ------------------------------


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture()
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(clock=clock) as e:
        yield e


def _pc(tmp_path: Path, clock: FakeClock, **kw: Any) -> promptcache.PromptCache:
    kw.setdefault("response_cache", False)
    return promptcache.PromptCache(directory=tmp_path / "pc", clock=clock.now, **kw)


def _client(emu: Emulator, base_url: str | None = None) -> openai.OpenAI:
    kw: dict[str, Any] = {} if base_url is None else {"base_url": base_url}
    return openai.OpenAI(
        api_key="k",
        max_retries=0,
        http_client=openai.DefaultHttpxClient(transport=emu.transport()),
        **kw,
    )


def _aclient(emu: Emulator, base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="k",
        base_url=base_url,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(transport=emu.async_transport()),
    )


def _reads(calls: list[ServedCall]) -> list[int]:
    return [c.cache_read_tokens for c in calls]


@pytest.mark.parametrize(
    ("base_url", "model"),
    [
        (None, "gpt-6.1-sol"),  # the SDK's default base URL
        (GATEWAY, "gpt-6.1-sol"),
        ("https://openrouter.ai/api/v1", "openai/gpt-6.1-sol"),
        ("https://api.portkey.ai/v1", "gpt-6.1-sol"),
        ("http://localhost:4000", "gpt-6.1-sol"),  # LiteLLM proxy
    ],
)
def test_gpt56_through_a_gateway_reads_the_cache(
    emu: Emulator, clock: FakeClock, tmp_path: Path, base_url: str | None, model: str
) -> None:
    with _client(emu, base_url) as bare:
        for q in ("one", "two", "three"):
            bare.chat.completions.create(model=model, messages=_msgs(q))
            clock.advance(20)
    bare_calls = emu.calls
    emu.reset()
    pc = _pc(tmp_path, clock)
    with _client(emu, base_url) as raw:
        client = pc.wrap(raw)
        for q in ("one", "two", "three"):
            client.chat.completions.create(model=model, messages=_msgs(q))
            clock.advance(20)
    pc.close()
    calls = emu.calls
    assert all(c.status == 200 for c in calls) and len(calls) == 3
    sent = calls[0].request_body
    assert sent is not None and _ours_in(sent) == OURS
    # Bare, gpt-5.6 writes the end of each prompt (billed) and never reads it back; with the
    # hints the shared system prompt is written once and read by every later call.
    assert _reads(bare_calls) == [0, 0, 0]
    assert all(r > 1000 for r in _reads(calls)[1:])
    assert sum(c.cache_write_tokens for c in calls) < sum(c.cache_write_tokens for c in bare_calls)


def test_responses_through_a_gateway_reads_the_cache(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    pc = _pc(tmp_path, clock)
    with _client(emu, GATEWAY) as raw:
        client = pc.wrap(raw)
        for q in ("one", "two", "three"):
            client.responses.create(
                model="gpt-6.1-sol",
                input=[
                    {"role": "developer", "content": SYSTEM},
                    {"role": "user", "content": q},
                ],
            )
            clock.advance(20)
    pc.close()
    calls = emu.calls
    assert [c.host for c in calls] == ["gateway.ai.cloudflare.com"] * 3
    assert all(r > 1000 for r in _reads(calls)[1:])


@pytest.mark.filterwarnings("ignore::promptcache.PriceWarning")  # no price for these models
@pytest.mark.parametrize(
    ("base_url", "model"),
    [
        ("http://localhost:11434/v1", "llama3.1:8b"),
        ("http://localhost:11434/v1", "gpt-oss:20b"),
        ("http://gpu-box:8000/v1", "Qwen/Qwen2.5-72B-Instruct"),
        ("https://openrouter.ai/api/v1", "mistralai/mistral-large"),
    ],
)
def test_a_server_that_is_not_openai_gets_nothing_unless_asked(
    emu: Emulator, clock: FakeClock, tmp_path: Path, base_url: str, model: str
) -> None:
    emu.strict = StrictServer("pydantic")  # it would refuse any of our fields
    pc = _pc(tmp_path, clock)
    with _client(emu, base_url) as raw:
        pc.wrap(raw).chat.completions.create(model=model, messages=_msgs("q"))
        raw.chat.completions.create(model=model, messages=_msgs("q"))
    wrapped, bare = emu.calls
    assert wrapped.status == bare.status == 200
    assert wrapped.request_body == bare.request_body  # byte for byte what the app wrote
    assert [(w.model, w.reason) for w in pc.planner.withheld()] == [(model, "not_openai")]  # type: ignore[attr-defined]
    pc.close()

    # The app asks for them: they are sent (this server does take them).
    emu.strict = None
    asked = _pc(tmp_path / "asked", clock, openai=OpenAIOptions(endpoint="openai"))
    with _client(emu, base_url) as raw:
        asked.wrap(raw).chat.completions.create(model=model, messages=_msgs("q"))
    assert "prompt_cache_key" in (emu.calls[-1].request_body or {})
    asked.close()


# --- a strict server refuses what promptcache added -------------------------------------------


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("model", ["gpt-6.1-sol", "gpt-5.5"])
def test_a_refusal_is_retried_once_remembered_and_warned_once(
    emu: Emulator, clock: FakeClock, tmp_path: Path, style: StrictStyle, model: str
) -> None:
    emu.strict = StrictServer(style, hosts=frozenset({"llm-proxy.corp.example"}))
    pc = _pc(tmp_path, clock)
    with _client(emu, PROXY) as raw, _client(emu) as raw_openai:
        client = pc.wrap(raw)
        with pytest.warns(HintRejectedWarning, match="llm-proxy.corp.example") as caught:
            first = client.chat.completions.create(model=model, messages=_msgs("one"))
        assert len([w for w in caught if issubclass(w.category, HintRejectedWarning)]) == 1
        assert first.choices[0].message.content
        refused, ok = emu.calls
        assert refused.status in (400, 422) and ok.status == 200
        assert _ours_in(refused.request_body) and not _ours_in(ok.request_body)
        # The ledger saw one call: the one that succeeded.
        assert pc.ledger.summary().requests == 1
        assert pc.ledger.summary().errors == 0

        # Later calls: nothing refused again, no extra attempt, no second warning.
        emu.clear_calls()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for q in ("two", "three"):
                client.chat.completions.create(model=model, messages=_msgs(q))
        assert [c.status for c in emu.calls] == [200, 200]
        assert not any(_ours_in(c.request_body) for c in emu.calls)

        # Remembered per endpoint: OpenAI itself (a host the strict proxy is not) still gets them.
        pc.wrap(raw_openai).chat.completions.create(model=model, messages=_msgs("four"))
        assert emu.calls[-1].host == "api.openai.com" and _ours_in(emu.calls[-1].request_body)
    (w,) = [w for w in pc.planner.withheld() if w.reason == "rejected"]  # type: ignore[attr-defined]
    assert w.base_url == PROXY and "prompt_cache_key" in w.hints
    if model == "gpt-6.1-sol":
        assert "prompt_cache_options" in w.hints
    pc.close()


@pytest.mark.parametrize("style", ["openai", "pydantic"])
def test_a_refused_stream_is_retried_and_streams(
    emu: Emulator, clock: FakeClock, tmp_path: Path, style: StrictStyle
) -> None:
    emu.strict = StrictServer(style)
    pc = _pc(tmp_path, clock)
    with _client(emu, PROXY) as raw:
        client = pc.wrap(raw)
        with pytest.warns(HintRejectedWarning):
            stream = client.chat.completions.create(
                model="gpt-6.1-sol",
                messages=_msgs("one"),
                stream=True,
                stream_options={"include_usage": True},
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text
        with client.responses.stream(model="gpt-6.1-sol", input="two", instructions=SYSTEM) as rs:
            final = rs.get_final_response()
        assert final.output_text
    assert [c.status for c in emu.calls][1:] == [200, 200]
    assert emu.calls[0].status in (400, 422)
    assert pc.ledger.summary().requests == 2
    pc.close()


def test_async_client_refusal_is_retried_stream_and_not(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    emu.strict = StrictServer("litellm")
    pc = _pc(tmp_path, clock)

    async def go() -> str:
        raw = _aclient(emu, PROXY)
        client = pc.wrap(raw)
        with pytest.warns(HintRejectedWarning):
            r = await client.chat.completions.create(model="gpt-5.5", messages=_msgs("one"))
        stream = await client.chat.completions.create(
            model="gpt-5.5",
            messages=_msgs("two"),
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await raw.close()
        return (r.choices[0].message.content or "") + text

    assert asyncio.run(go())
    assert [c.status for c in emu.calls] == [400, 200, 200]
    pc.close()


def test_async_stream_refused_on_first_call(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    emu.strict = StrictServer("vllm")
    pc = _pc(tmp_path, clock)

    async def go() -> str:
        raw = _aclient(emu, PROXY)
        client = pc.wrap(raw)
        with pytest.warns(HintRejectedWarning):
            stream = await client.responses.create(
                model="gpt-6.1-sol", input="hi", instructions=SYSTEM, stream=True
            )
            kinds = [e.type async for e in stream]
        await raw.close()
        return kinds[-1]

    assert asyncio.run(go()) == "response.completed"
    assert [c.status for c in emu.calls] == [400, 200]
    pc.close()


def test_the_local_cache_stores_only_the_successful_attempt(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    emu.strict = StrictServer("tgi")
    pc = _pc(tmp_path, clock, response_cache=True)
    with _client(emu, PROXY) as raw:
        client = pc.wrap(raw)
        with pytest.warns(HintRejectedWarning):
            a = client.chat.completions.create(model="gpt-4.1", messages=_msgs("same"))
        b = client.chat.completions.create(model="gpt-4.1", messages=_msgs("same"))
    assert a.choices[0].message.content == b.choices[0].message.content
    assert [c.status for c in emu.calls] == [422, 200]  # the second call was a local hit
    s = pc.ledger.summary()
    assert (s.requests, s.local_hits, s.errors) == (2, 1, 0)
    pc.close()


# --- the app's own fields are the app's -------------------------------------------------------


def _error_of(call: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        call()
    return info.value


def test_the_apps_own_unknown_field_fails_exactly_as_bare_without_a_retry(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    # A server that knows OpenAI's caching fields but not the app's own extra one.
    emu.strict = StrictServer("openai", known=CHAT_FIELDS | OURS)
    pc = _pc(tmp_path, clock)
    ask: dict[str, Any] = {
        "model": "gpt-6.1-sol",
        "messages": _msgs("q"),
        "extra_body": {"guardrail": "strict"},
    }
    with _client(emu, PROXY) as raw:
        bare = _error_of(lambda: raw.chat.completions.create(**ask))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning: nothing of ours was refused
            wrapped = _error_of(lambda: pc.wrap(raw).chat.completions.create(**ask))
        assert type(wrapped) is type(bare) is openai.BadRequestError
        assert (wrapped.status_code, wrapped.message, wrapped.body) == (
            bare.status_code,
            bare.message,
            bare.body,
        )
        assert len(emu.calls) == 2  # one attempt each: no retry
        # Nothing was blamed on the endpoint: the next call still carries the hints.
        ask.pop("extra_body")
        pc.wrap(raw).chat.completions.create(**ask)
    assert emu.calls[-1].status == 200 and _ours_in(emu.calls[-1].request_body) == OURS
    assert pc.planner.withheld() == []  # type: ignore[attr-defined]
    pc.close()


def test_a_refusal_of_both_the_apps_field_and_ours_ends_exactly_as_bare(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    emu.strict = StrictServer("pydantic")  # names every extra field at once
    pc = _pc(tmp_path, clock)
    ask: dict[str, Any] = {
        "model": "gpt-5.5",
        "messages": _msgs("q"),
        "extra_body": {"guardrail": "strict"},
    }
    with _client(emu, PROXY) as raw:
        bare = _error_of(lambda: raw.chat.completions.create(**ask))
        with pytest.warns(HintRejectedWarning):
            wrapped = _error_of(lambda: pc.wrap(raw).chat.completions.create(**ask))
    assert type(wrapped) is type(bare) is openai.UnprocessableEntityError
    assert (wrapped.status_code, wrapped.body) == (bare.status_code, bare.body)
    assert pc.ledger.summary().errors == 1
    pc.close()


def test_the_apps_own_prompt_cache_key_refused_is_not_retried(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    emu.strict = StrictServer("openai")
    pc = _pc(tmp_path, clock)
    with _client(emu, PROXY) as raw:
        err = _error_of(
            lambda: pc.wrap(raw).chat.completions.create(
                model="gpt-5.5",
                messages=_msgs("q"),
                prompt_cache_key="mine",
            )
        )
    assert err.status_code == 400 and "prompt_cache_key" in err.message
    assert len(emu.calls) == 1
    pc.close()
