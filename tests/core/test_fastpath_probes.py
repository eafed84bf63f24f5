"""An SDK release that changes an internal the fast path uses must not break a call.

Each "release" is a subclass of the real client class defined here (the real SDK is never
patched) that changes exactly one internal the way a new SDK version could, while the SDK's
own code path still works: the wrapped client then gets no fast class, one warning naming the
SDK version and the piece, and its calls still work and are cached through the transport.

Pieces probed by behaviour only, with no subclass here (a subclass changing them would also
break the bare SDK, whose own request loop reads them the same way the fast path does):
``_prepare_options`` (same call shape in the SDK's loop), ``_client``, ``_strict_response_
validation``, ``workload_identity`` / ``_api_key_provider`` (OpenAI) and ``_middleware``
(Anthropic), ``_custom_headers`` / ``_custom_query`` (read by the SDK's header building and
``copy``). Module-level pieces (``FinalRequestOptions.construct``, ``add_request_id`` /
``add_response_ids``, the stream classes) cannot be changed by a client subclass: the probe
is given broken ones directly in :func:`test_module_level_pieces_are_probed`.
"""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import cached_property
from typing import Any

import anthropic
import httpx2
import openai
import pydantic
import pytest
from anthropic.resources.messages import AsyncMessages, Messages
from openai.resources.chat import AsyncChat, Chat

from promptcache._errors import PromptCacheWarning
from promptcache._fastpath import _members, fast_class
from promptcache._fastprobe import probe
from promptcache._wrap import PromptCache
from promptcache.testing import Emulator
from tests.core.test_wrap_kit import (
    accountant,
    create_kwargs,
    create_method,
    emu,
    is_anthropic,
    pc,
    planner,
    same,
    served,
    track,
)

__all__ = ["accountant", "emu", "pc", "planner"]

BASES: dict[str, type[Any]] = {
    "OpenAI": openai.OpenAI,
    "AsyncOpenAI": openai.AsyncOpenAI,
    "Anthropic": anthropic.Anthropic,
    "AsyncAnthropic": anthropic.AsyncAnthropic,
}
KINDS = list(BASES)
Namespace = dict[str, Any]


def _is_async(kind: str) -> bool:
    return kind.startswith("Async")


# --- the "releases": each returns the changed members and the piece the warning must name ---


def _moved_resource(kind: str, base: type[Any]) -> tuple[Namespace, str]:
    # A release that serves the resource from a new class (the fast class would hide it).
    resource: type[Any]
    if is_anthropic(kind):
        attr, resource = "messages", AsyncMessages if _is_async(kind) else Messages
    else:
        attr, resource = "chat", AsyncChat if _is_async(kind) else Chat
    moved = type(resource.__name__, (resource,), {})

    def get(self: Any) -> Any:
        return moved(self)

    get.__name__ = attr
    return {attr: cached_property(get)}, f".{attr}"


def _custom_auth(kind: str, base: type[Any]) -> tuple[Namespace, str]:
    if not is_anthropic(kind):
        # A release whose ``_custom_auth`` hands every client a (no-op) auth flow.
        def flow(self: Any, security: Mapping[str, bool]) -> httpx2.Auth:
            return httpx2.Auth()

        return {"_custom_auth": flow}, "_custom_auth(security)"

    # A release that renamed the ``_custom_auth`` attribute behind ``custom_auth``.
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, *args, **kwargs)
        self._auth_flow = self.__dict__.pop("_custom_auth")

    return {"__init__": init, "custom_auth": property(lambda self: self._auth_flow)}, "_custom_auth"


def _build_request(kind: str, base: type[Any]) -> tuple[Namespace, str]:
    # A release that reads the prompt while building the request (the fast path's template is
    # built from a one-field body).
    def build(self: Any, options: Any, *, retries_taken: int = 0) -> httpx2.Request:
        if "messages" not in options.json_data:
            raise KeyError("messages")
        request: httpx2.Request = base._build_request(self, options, retries_taken=retries_taken)
        return request

    return {"_build_request": build}, "._build_request"


def _prepare_request(kind: str, base: type[Any]) -> tuple[Namespace, str]:
    # A release whose request hook signs the prompt in the body.
    def check(request: httpx2.Request) -> None:
        if b'"messages"' not in request.content:
            raise ValueError("nothing to sign")

    if _is_async(kind):

        async def prepare_async(self: Any, request: httpx2.Request) -> None:
            check(request)
            await base._prepare_request(self, request)

        return {"_prepare_request": prepare_async}, "._prepare_request"

    def prepare(self: Any, request: httpx2.Request) -> None:
        check(request)
        base._prepare_request(self, request)

    return {"_prepare_request": prepare}, "._prepare_request"


def _process_response(kind: str, base: type[Any]) -> tuple[Namespace, str]:
    # A release where ``retries_taken`` became required (the SDK's own loop always passes it).
    if _is_async(kind):

        async def process_async(self: Any, *, retries_taken: int, **kwargs: Any) -> Any:
            return await base._process_response(self, retries_taken=retries_taken, **kwargs)

        return {"_process_response": process_async}, "._process_response"

    def process(self: Any, *, retries_taken: int, **kwargs: Any) -> Any:
        return base._process_response(self, retries_taken=retries_taken, **kwargs)

    return {"_process_response": process}, "._process_response"


def _process_response_data(kind: str, base: type[Any]) -> tuple[Namespace, str]:
    # A release that reads the http response while parsing (the fast path passes None).
    def process(self: Any, *, data: object, cast_to: Any, response: httpx2.Response) -> Any:
        assert response.headers is not None
        return base._process_response_data(self, data=data, cast_to=cast_to, response=response)

    return {"_process_response_data": process}, "._process_response_data"


def _response_ids(kind: str, base: type[Any]) -> tuple[Namespace, str]:
    # A release that takes the request id from a new header.
    def ids(answer: Any, response: httpx2.Response) -> Any:
        if isinstance(answer, pydantic.BaseModel):
            answer._request_id = response.headers.get("x-request-id-v2")  # type: ignore[attr-defined]
        return answer

    if _is_async(kind):

        async def process_async(self: Any, **kwargs: Any) -> Any:
            return ids(await base._process_response(self, **kwargs), kwargs["response"])

        return {"_process_response": process_async}, "_request_id"

    def process(self: Any, **kwargs: Any) -> Any:
        return ids(base._process_response(self, **kwargs), kwargs["response"])

    return {"_process_response": process}, "_request_id"


RELEASES: dict[str, Callable[[str, type[Any]], tuple[Namespace, str]]] = {
    "moved_resource": _moved_resource,
    "custom_auth": _custom_auth,
    "build_request": _build_request,
    "prepare_request": _prepare_request,
    "process_response": _process_response,
    "process_response_data": _process_response_data,
    "response_ids": _response_ids,
}


def _release(name: str, kind: str) -> tuple[type[Any], str]:
    """A distinct class per case: the probe warns once per class per process."""
    base = BASES[kind]
    members, piece = RELEASES[name](kind, base)
    cls = type(f"{kind}With_{name}", (base,), {"__module__": __name__, **members})
    return cls, piece


def _base_url(kind: str, emu: Emulator) -> str:
    return emu.anthropic_base_url if is_anthropic(kind) else emu.openai_base_url


def _sdk(kind: str) -> tuple[str, str]:
    module = anthropic if is_anthropic(kind) else openai
    return module.__name__, module.__version__


async def _call(fn: Any, **kwargs: Any) -> Any:
    result = fn(**kwargs)
    return await result if inspect.isawaitable(result) else result


async def _events(client: Any, kind: str, kwargs: dict[str, Any]) -> list[Any]:
    stream = await _call(create_method(client, kind), **kwargs)
    if hasattr(stream, "__aiter__"):
        return [e.model_dump() async for e in stream]
    return [e.model_dump() for e in stream]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("release", list(RELEASES))
async def test_changed_internal_means_one_warning_and_working_cached_calls(
    release: str, kind: str, emu: Emulator, pc: PromptCache
) -> None:
    cls, piece = _release(release, kind)
    bare = track(cls(api_key="test-key", base_url=_base_url(kind, emu), max_retries=0))
    with pytest.warns(PromptCacheWarning) as caught:
        client = pc.wrap(bare)
    assert len(caught) == 1
    message = str(caught[0].message)
    sdk, version = _sdk(kind)
    assert f"{sdk} {version}" in message and piece in message, message
    assert "Calls still work" in message and cls.__qualname__ in message
    # No fast class: the client is exactly the user's class.
    assert type(client) is cls and isinstance(client, BASES[kind])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per class per process
        again = pc.wrap(bare)

    kwargs = create_kwargs(kind, f"release {release}")
    first = await _call(create_method(client, kind), **kwargs)
    second = await _call(create_method(again, kind), **kwargs)
    same(first, second)
    assert served(emu) == 1 and pc.engine.hits == 1 and pc.engine.fast_hits == 0

    streamed = create_kwargs(kind, f"release {release} streamed", stream=True)
    assert await _events(client, kind, streamed) == await _events(client, kind, streamed)
    assert served(emu) == 2 and pc.engine.hits == 2 and pc.engine.fast_hits == 0


def _breaks_when_flagged(kind: str, where: str) -> type[Any]:
    """A release whose change shows on some clients only (here: flagged ``_changed``), so
    the probe's own client passes and the fast path meets the change at call time.

    ``where="template"``: ``_prepare_options`` needs the prompt, so building the template
    fails before the lookup; ``where="hit"``: ``_process_response`` needs ``retries_taken``,
    so serving a hit fails after it.
    """
    base = BASES[kind]
    if where == "template":

        def check(self: Any, options: Any) -> None:
            if self.__dict__.get("_changed") and "messages" not in options.json_data:
                raise TypeError("_prepare_options() needs the prompt")

        if _is_async(kind):

            async def prepare_async(self: Any, options: Any) -> Any:
                check(self, options)
                return await base._prepare_options(self, options)

            members: Namespace = {"_prepare_options": prepare_async}
        else:

            def prepare(self: Any, options: Any) -> Any:
                check(self, options)
                return base._prepare_options(self, options)

            members = {"_prepare_options": prepare}
    else:

        def needs(self: Any, retries_taken: int | None) -> int:
            if retries_taken is None and self.__dict__.get("_changed"):
                raise TypeError("_process_response() missing keyword argument 'retries_taken'")
            return retries_taken or 0

        if _is_async(kind):

            async def process_async(self: Any, *, retries_taken: Any = None, **kw: Any) -> Any:
                taken = needs(self, retries_taken)
                return await base._process_response(self, retries_taken=taken, **kw)

            members = {"_process_response": process_async}
        else:

            def process(self: Any, *, retries_taken: Any = None, **kw: Any) -> Any:
                taken = needs(self, retries_taken)
                return base._process_response(self, retries_taken=taken, **kw)

            members = {"_process_response": process}
    return type(f"{kind}Strict_{where}", (base,), {"__module__": __name__, **members})


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["template", "hit"])
async def test_internal_breaking_at_call_time_falls_back_to_the_sdk(
    where: str, kind: str, stream: bool, emu: Emulator, pc: PromptCache
) -> None:
    cls = _breaks_when_flagged(kind, where)
    bare = track(cls(api_key="test-key", base_url=_base_url(kind, emu), max_retries=0))
    client = pc.wrap(bare)  # the probe's client is not flagged: it passes, no warning
    assert type(client) is not cls and isinstance(client, cls)
    client._changed = True
    if where == "hit":
        # A strict client parses its JSON hits with ``_process_response`` too (on the wrapped
        # client: the SDK's ``with_options`` does not carry the flag over).
        client._strict_response_validation = True
    kwargs = create_kwargs(kind, f"call time {where}", stream=stream)

    async def answer() -> Any:
        if stream:
            return await _events(client, kind, kwargs)
        return (await _call(create_method(client, kind), **kwargs)).model_dump()

    if where == "template":
        # The SDK's own errors reach the caller exactly as bare, with no warning: the fast
        # path fell back, the SDK's method raised.
        emu.inject("rate_limit")
        error = anthropic.RateLimitError if is_anthropic(kind) else openai.RateLimitError
        with pytest.raises(error) as raised:
            await answer()
        assert type(raised.value) is error and raised.value.status_code == 429
    else:
        await answer()  # the miss: the template is fine, the SDK answers live
    with pytest.warns(PromptCacheWarning, match="broke at call time") as caught:
        first = await answer()
    assert len(caught) == 1 and _sdk(kind)[1] in str(caught[0].message)
    second = await answer()  # from now on the class takes the SDK's method, no warning
    assert first == second
    assert pc.engine.fast_hits == 0
    # The fallen-back hit was served and counted once (by the transport), not twice.
    assert pc.engine.hits == (1 if where == "template" else 2)


CLASSES: list[type[Any]] = [
    openai.OpenAI,
    openai.AsyncOpenAI,
    openai.AzureOpenAI,
    openai.AsyncAzureOpenAI,
    anthropic.Anthropic,
    anthropic.AsyncAnthropic,
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_healthy_sdk_classes_pass_every_probe(cls: type[Any]) -> None:
    found = _members(cls)
    assert found is not None
    _, _, routes, is_async, failure = found
    assert failure is None
    assert probe(cls, routes, is_async) is None
    fast = fast_class(cls)  # filterwarnings=error: any warning fails here
    assert fast is not None and issubclass(fast, cls)


class MyOpenAI(openai.OpenAI):
    """A user's own subclass: found along the MRO, probed, and given the fast path."""


def test_user_subclass_gets_the_fast_path(emu: Emulator, pc: PromptCache) -> None:
    bare = track(MyOpenAI(api_key="test-key", base_url=emu.openai_base_url, max_retries=0))
    client = pc.wrap(bare)
    assert isinstance(client, MyOpenAI) and type(client) is not MyOpenAI
    kwargs = create_kwargs("OpenAI", "mine")
    same(client.chat.completions.create(**kwargs), client.chat.completions.create(**kwargs))
    assert served(emu) == 1 and pc.engine.fast_hits == 1


def test_module_level_pieces_are_probed() -> None:
    # No client subclass can change these: the probe is handed changed ones instead.
    found = _members(openai.OpenAI)
    assert found is not None
    route = found[2][0]
    spec = route.spec

    def no_ids(obj: Any, headers: Mapping[str, str]) -> None:
        return None

    failure = probe(openai.OpenAI, [replace(route, spec=replace(spec, set_ids=no_ids))], False)
    assert failure is not None and "_request_id" in failure
    sync_stream = replace(spec, stream_cls=openai.AsyncStream[Any])
    failure = probe(openai.OpenAI, [replace(route, spec=sync_stream)], False)
    assert failure is not None and "_process_response (stream=True)" in failure


def test_a_class_the_probe_cannot_build_gets_no_fast_path() -> None:
    def init(self: Any, tenant: str) -> None:
        raise AssertionError("never built")

    cls = type("NeedsTenant", (openai.OpenAI,), {"__module__": __name__, "__init__": init})
    with pytest.warns(PromptCacheWarning, match=r"NeedsTenant.__init__"):
        assert fast_class(cls) is None


def test_threads_wrapping_a_broken_class_at_once_warn_once(pc_dir: Any) -> None:
    cls, _ = _release("build_request", "OpenAI")  # a class of its own, not probed yet
    clients = [track(cls(api_key="test-key", base_url="http://127.0.0.1:9/v1")) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    with PromptCache(pc_dir) as cache:

        def wrap(client: Any) -> Any:
            barrier.wait()
            return cache.wrap(client)

        with pytest.warns(PromptCacheWarning) as caught, ThreadPoolExecutor(8) as pool:
            wrapped = list(pool.map(wrap, clients))
    assert len(caught) == 1
    assert all(type(w) is cls for w in wrapped)
