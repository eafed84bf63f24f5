"""The pre-SDK fast path: serve a local hit before the SDK builds the request.

Building a request costs the SDKs about 1.8 ms at 2k tokens and 7.5 ms at 200k (the body is
walked by ``maybe_transform`` and serialised); a hit should cost a fraction of that. So for
the hot methods — ``chat.completions.create``, ``responses.create`` and ``messages.create``,
streaming or not — a wrapped client looks the request up first, keyed by the *same*
:func:`promptcache._keys.request_key` the transport uses, on the user's keyword arguments.

How, without mutating anything of the user's or changing static types: the wrapped client is
our own object (``client.with_options(http_client=…)``), and we give it a per-class dynamic
subclass whose ``chat`` / ``responses`` / ``messages`` resources are subclasses with a fast
``create``. ``isinstance(w, OpenAI)`` holds, and ``with_options()`` keeps the subclass (the SDK
copies with ``self.__class__``). Headers and URL come from the SDK's own ``_build_request`` run
on a one-field body, so namespace and keyed headers are those the transport would see.

That request is a template, reused while what it was built from is unchanged: every attribute
of the client (``organization``, ``project``, ``api_key``, ``base_url``, default headers …,
compared by value each call) and the default headers, query and cookies of the http client
underneath. Change any of them and the next call builds a new one, so the key always follows
what the SDK would send now.

The fast path steps aside (calling the SDK's method unchanged) whenever it cannot be sure to
match the SDK: positional arguments, ``extra_*`` arguments, header-valued parameters, values
that are not plain JSON (NaN, ``UUID``, ``datetime``, enums … — the SDK then serialises them,
or raises as it would bare, and the transport keys the bytes it sent), custom auth flows,
workload identity, Anthropic middleware, or a client whose http client is not ours. On a
miss it asks the planner for the body to send (on the user's dict, before the SDK serialises
it), parks the keyed and planned call with the engine and calls the SDK's method with a
private header naming it, so the transport neither parses nor keys the body again. When every
key of the planned body is a parameter of the SDK's ``create``, the SDK is called with the
planned body itself, so it is serialised once (by the SDK, as bare) and sent as built;
otherwise the transport swaps the planned body in. With
``PROMPTCACHE_CHECK_KEYS=1`` the transport re-keys the bytes the SDK sent and raises if the
two keys differ (the tests run that way).

All this leans on SDK internals no release promises to keep: the ``chat`` / ``responses`` /
``messages`` attributes and resource classes (``_client``, ``create`` taking ``stream`` and
``extra_headers``), ``FinalRequestOptions.construct``, ``_prepare_options``,
``_build_request``, ``_prepare_request``, ``_custom_auth``, ``workload_identity``,
``_api_key_provider``, ``_azure_ad_token_provider`` (OpenAI), the ``_custom_auth`` and
``_middleware`` attributes (Anthropic), ``_custom_headers``, ``_custom_query``,
``_strict_response_validation``, ``_process_response``, ``_process_response_data``, the
response models' ``model_validate_json``, ``add_request_id`` / ``add_response_ids`` and the
``Stream`` / ``AsyncStream`` classes. So :func:`fast_class` first runs the probes of
:mod:`promptcache._fastprobe` on a throw-away client of the class (canned input, no network,
about a millisecond, once per class per process). A class that fails any probe
gets no fast class and one :class:`~promptcache.PromptCacheWarning` naming the SDK, its
version and the piece; its calls still work through the transport, still cached. Should an
internal still raise ``AttributeError``, ``TypeError`` or ``LookupError`` inside a fast
``create`` (a change the canned probe could not show), that call is handed to the SDK's own
method — whose own errors reach the caller exactly as bare — and, if the SDK answered, the
class takes the SDK's method from then on, with one warning.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

import httpx2

from promptcache._api import Api
from promptcache._errors import PromptCacheWarning
from promptcache._json import loads
from promptcache._policy import current_policy
from promptcache._store._entry import Entry
from promptcache._transport import (
    CACHE_HEADER,
    TICKET_HEADER,
    Call,
    Engine,
    Keyer,
    PromptCacheTransport,
)

__all__ = ["Route", "fast_class"]

# Keyword arguments of ``create`` that never reach the body.
_NOT_BODY: Final = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
# Keyword arguments the fast path leaves to the SDK (they become headers or query, or change
# what is returned).
_STEP_ASIDE: Final = frozenset({"extra_query", "extra_body", "user_profile_id", "workspace_id"})
_CONTAINERS: Final = (dict, list, tuple)
# Headers that make the SDK return something else than the parsed model (raw responses).
_RAW_HEADERS: Final = ("x-stainless-raw-response", "x-stainless-override-cast-to")


@dataclass(frozen=True, slots=True)
class _Spec:
    api: Api
    path: str
    cast_to: Any
    stream_cls: Any
    security: Mapping[str, bool] | None
    sdk: str  # "openai" | "anthropic"
    # Sets the response ids on a parsed object exactly as the SDK's ``APIResponse.parse`` does.
    set_ids: Callable[[Any, Mapping[str, str]], None]


@dataclass(frozen=True, slots=True)
class _Template:
    """The SDK's own request for a call, reused while the client's state is what it was."""

    options: Any
    request: httpx2.Request
    keyer: Keyer
    #: What the request was built from (see :func:`_template`), compared on every call.
    attrs: dict[str, Any]
    custom: tuple[dict[str, Any], dict[str, Any]]
    http: tuple[Any, ...]


def _step_aside(kwargs: Mapping[str, Any]) -> bool:
    if not _STEP_ASIDE.isdisjoint(kwargs):
        return True
    extra = kwargs.get("extra_headers")
    if extra:
        if not isinstance(extra, Mapping):
            return True
        for name, value in extra.items():
            if not isinstance(name, str) or not isinstance(value, str):
                return True
            if name.lower() in _RAW_HEADERS:
                return True
    return False


def _custom_auth(client: Any, spec: _Spec) -> bool:
    """Whether the SDK does something at send time that a fast hit would skip.

    An auth flow adds the credential at send time (invisible to us here); workload identity
    swaps a placeholder for a fresh token; Anthropic middleware may change the request or
    answer it itself.
    """
    # Read strictly, not with ``getattr(…, None)``: an SDK release that renamed one of these
    # must not look like "no custom auth" (the probe and the call-time guard catch the error).
    if spec.sdk == "openai":
        if client.workload_identity is not None:
            return True
        return client._custom_auth(spec.security or {}) is not None
    return client._custom_auth is not None or bool(client._middleware)


def _refreshes(client: Any, spec: _Spec) -> bool:
    """Whether the credential is fetched anew per request (no template can be reused)."""
    if spec.sdk != "openai":
        return False
    # Only Azure clients have a token provider; every OpenAI client has a key provider slot.
    azure = getattr(client, "_azure_ad_token_provider", None)
    return client._api_key_provider is not None or azure is not None


def _http_state(client: Any, cookies: bool) -> tuple[Any, ...]:
    """Return the http client's defaults that ``build_request`` merges into every request.

    Cookies only when they are keyed (``key_headers=["cookie"]``): by default they are not,
    and reading the jar takes a lock.
    """
    http = client._client
    inner = getattr(http, "_promptcache_inner", http)
    if not cookies:
        return (inner.headers.raw, inner.params)
    jar = inner.cookies.jar
    return (
        inner.headers.raw,
        inner.params,
        tuple((c.domain, c.path, c.name, c.value) for c in jar),
    )


def _custom_state(client: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    # The SDKs keep default headers and query in dicts an attribute points to: compare their
    # contents too, in case one was changed in place.
    return dict(client._custom_headers), dict(client._custom_query)


def _still_valid(template: _Template, client: Any) -> bool:
    try:
        # Identity short-cuts make this cheap: only a replaced attribute is compared by value.
        return (
            template.attrs == client.__dict__
            and template.custom[0] == client._custom_headers
            and template.custom[1] == client._custom_query
            and template.http == _http_state(client, template.keyer.cookies)
        )
    except Exception:  # an attribute whose ``==`` does not answer: rebuild to be safe
        return False


def _transport_of(client: Any) -> PromptCacheTransport | None:
    transport = getattr(client._client, "_transport", None)
    return transport if isinstance(transport, PromptCacheTransport) else None


def _options(spec: _Spec, kwargs: Mapping[str, Any]) -> Any:
    models = sys.modules[f"{spec.sdk}._models"]
    extra: dict[str, Any] = {}
    if kwargs.get("extra_headers"):
        extra["headers"] = kwargs["extra_headers"]
    if spec.security is not None:
        extra["security"] = spec.security
    model = kwargs.get("model")
    # A one-field body: Azure picks its deployment URL from the model; nothing else is read.
    json_data = {"model": model} if isinstance(model, str) else None
    return models.FinalRequestOptions.construct(
        method="post", url=spec.path, json_data=json_data, **extra
    )


def _template_key(kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    extra = kwargs.get("extra_headers")
    return (kwargs.get("model"), tuple(extra.items()) if extra else ())


def _body(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in _NOT_BODY}


def _hit_response(entry: Entry, request: httpx2.Request) -> httpx2.Response:
    headers = [*entry.headers, (CACHE_HEADER, "hit")]
    return httpx2.Response(entry.status, headers=headers, content=entry.body, request=request)


def _has_tuple(body: dict[str, Any]) -> bool:
    """Whether a tuple sits anywhere in the arguments (JSON has none; the SDK sends a list).

    The planner reads JSON: it must get the transport's parsed body rather than a tuple.
    """
    stack: list[Any] = [body]
    while stack:
        obj = stack.pop()
        kind = type(obj)
        if kind is tuple:
            return True
        for value in obj.values() if kind is dict else obj:
            if type(value) in _CONTAINERS:
                stack.append(value)
    return False


def _with_ticket(kwargs: dict[str, Any], ticket: str) -> dict[str, Any]:
    headers = dict(kwargs.get("extra_headers") or {})
    headers[TICKET_HEADER] = ticket
    return {**kwargs, "extra_headers": headers}


def _park(
    engine: Engine, call: Call, kwargs: dict[str, Any], params: frozenset[str]
) -> tuple[str, dict[str, Any]]:
    """Plan the miss here, on the user's dict, so the transport need not parse the body.

    Returns the ticket and the arguments to call the SDK with: the planned body itself when
    every key of it is a parameter of the SDK's ``create`` (so the SDK serialises what is sent
    once, and the transport sends its request as built), else the user's arguments (the
    transport then replaces the body with the planned one).
    """
    call.sent = sent = engine.plan(call)
    call.planned = True
    if sent is not None and sent.changed and params.issuperset(sent.body):
        call.delivered = True
        kwargs = {**{k: v for k, v in kwargs.items() if k in _NOT_BODY}, **sent.body}
    ticket = engine.register(call)
    return ticket, _with_ticket(kwargs, ticket)


def _parameters(original: Callable[..., Any]) -> frozenset[str]:
    """Return the keyword parameters of the SDK's ``create`` (what a planned body may hold)."""
    try:
        return frozenset(inspect.signature(original).parameters)
    except (TypeError, ValueError):
        return frozenset()  # unknown: the transport sends the planned body instead


def _cached_template(
    resource: Any, spec: _Spec, kwargs: Mapping[str, Any]
) -> tuple[tuple[Any, ...], Any]:
    """Return the cached template for this call, if still valid, and the key to store one under."""
    client = resource._client
    if _refreshes(client, spec):
        return (), None
    key = _template_key(kwargs)
    templates: dict[tuple[Any, ...], _Template] = resource.__dict__.setdefault(
        "_promptcache_templates", {}
    )
    found = templates.get(key)
    if found is not None and _still_valid(found, client):
        return key, found
    return key, None


def _template(client: Any, options: Any, request: httpx2.Request, keyer: Keyer) -> _Template:
    # Taken after the SDK built the request: attributes it sets lazily are in the snapshot.
    attrs = dict(client.__dict__)
    http = _http_state(client, keyer.cookies)
    return _Template(options, request, keyer, attrs, _custom_state(client), http)


def _remember(resource: Any, key: tuple[Any, ...], template: _Template) -> None:
    if key:
        templates = resource.__dict__["_promptcache_templates"]
        if len(templates) > 64:  # many models or header sets: start again rather than grow
            templates.clear()
        templates[key] = template


def _hit_object(client: Any, spec: _Spec, template: _Template, entry: Entry, stream: bool) -> Any:
    """Build what the SDK's ``create`` returns, from stored bytes, the way the SDK does."""
    if stream or entry.status != 200 or client._strict_response_validation:
        return client._process_response(
            cast_to=spec.cast_to,
            options=template.options,
            response=_hit_response(entry, template.request),
            stream=stream,
            stream_cls=spec.stream_cls if stream else None,
        )
    # Non-streaming JSON: the SDK's response model, validated from the stored bytes by
    # pydantic-core (6x faster than the SDK's lenient ``construct_type``, and equal for any body
    # the model describes). A body it does not describe (a field value newer than the installed
    # SDK) takes the SDK's own lenient construction, exactly as the live call did.
    try:
        parsed = spec.cast_to.model_validate_json(entry.body)
    except ValueError:  # pydantic.ValidationError
        parsed = client._process_response_data(
            data=loads(entry.body), cast_to=spec.cast_to, response=None
        )
    spec.set_ids(parsed, dict(entry.headers))
    return parsed


# What an SDK internal raises when a release renamed it or changed its signature or shape
# (a missing attribute or key, an unexpected argument). Only these make a call fall back to
# the SDK's own method, which then raises as bare if the error was really the SDK's; its API
# errors (status, validation, connection) are other classes and are never caught here.
_INTERNAL_ERRORS: Final = (AttributeError, TypeError, LookupError)
# Client classes whose fast path broke at call time: they take the SDK's method from then on.
_FAILED: set[type[Any]] = set()
# ``_fast_*`` results that are not the answer itself.
_ASIDE: Final = object()


@dataclass(slots=True)
class _Miss:
    call: Call


def _account(engine: Engine, call: Call, entry: Entry) -> None:
    engine.fast_hits += 1
    engine.record_hit(call, entry)


def _served(engine: Engine, call: Call, entry: Entry, build: Callable[[], Any]) -> Any:
    """Build a hit's answer, then account it: a hit that falls back is served (and counted) once.

    A stored answer the SDK turns into an error was served all the same, so it is counted.
    """
    try:
        answer = build()
    except _INTERNAL_ERRORS:
        raise
    except BaseException:
        _account(engine, call, entry)
        raise
    _account(engine, call, entry)
    return answer


def _fell_back(client: Any, spec: _Spec, exc: BaseException) -> None:
    """Warn once that the fast path broke where the SDK's method answered; step aside since."""
    cls = type(client)
    with _LOCK:  # two threads falling back at once still warn once
        if cls in _FAILED:
            return
        _FAILED.add(cls)
    from promptcache._fastprobe import sdk_version

    warnings.warn(
        f"promptcache: the pre-SDK fast path of {_class_name(cls)} broke at call time with "
        f"{spec.sdk} {sdk_version(spec.sdk)} ({type(exc).__name__}: {exc}); calls still work, "
        "through the SDK and the slower transport path (still cached)",
        PromptCacheWarning,
        stacklevel=3,  # the user's line calling ``create``
    )


def _class_name(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _fast_sync(
    resource: Any, spec: _Spec, transport: PromptCacheTransport, kwargs: dict[str, Any]
) -> Any:
    """Run the fast path up to the SDK call: a hit's answer, ``_ASIDE`` or a ``_Miss``."""
    client = resource._client
    if _custom_auth(client, spec):
        return _ASIDE
    tkey, template = _cached_template(resource, spec, kwargs)
    if template is None:
        options = client._prepare_options(_options(spec, kwargs))
        request = client._build_request(options, retries_taken=0)
        client._prepare_request(request)
        keyer = transport.engine.keyer(spec.api, request, signed=transport.signed)
        template = _template(client, options, request, keyer)
        _remember(resource, tkey, template)
    engine = transport.engine
    call = engine.prepare_body(template.keyer, _body(kwargs), current_policy(transport.policy))
    if call is None:
        return _ASIDE
    if call.read and call.key is not None:
        call.epoch = engine.flights.finished
        entry = engine.lookup(call.key)
        if entry is not None:
            stream = bool(kwargs.get("stream"))
            return _served(
                engine, call, entry, lambda: _hit_object(client, spec, template, entry, stream)
            )
    if call.body is not None and _has_tuple(call.body):
        return _ASIDE
    return _Miss(call)


async def _fast_async(
    resource: Any, spec: _Spec, transport: PromptCacheTransport, kwargs: dict[str, Any]
) -> Any:
    """Async twin of :func:`_fast_sync` (the SDK hooks and the store read are awaited)."""
    client = resource._client
    if _custom_auth(client, spec):
        return _ASIDE
    tkey, template = _cached_template(resource, spec, kwargs)
    if template is None:
        options = await client._prepare_options(_options(spec, kwargs))
        request = client._build_request(options, retries_taken=0)
        await client._prepare_request(request)
        keyer = transport.engine.keyer(spec.api, request, signed=transport.signed)
        template = _template(client, options, request, keyer)
        _remember(resource, tkey, template)
    engine = transport.engine
    call = engine.prepare_body(template.keyer, _body(kwargs), current_policy(transport.policy))
    if call is None:
        return _ASIDE
    if call.read and call.key is not None:
        call.epoch = engine.flights.finished
        if engine.blocking:
            entry = await asyncio.to_thread(engine.lookup, call.key)
        else:
            entry = engine.lookup(call.key)
        if entry is not None:
            stream = bool(kwargs.get("stream"))
            if stream or entry.status != 200 or client._strict_response_validation:
                try:
                    answer = await client._process_response(
                        cast_to=spec.cast_to,
                        options=template.options,
                        response=_hit_response(entry, template.request),
                        stream=stream,
                        stream_cls=spec.stream_cls if stream else None,
                    )
                except _INTERNAL_ERRORS:
                    raise
                except BaseException:
                    _account(engine, call, entry)
                    raise
                _account(engine, call, entry)
                return answer
            return _served(
                engine, call, entry, lambda: _hit_object(client, spec, template, entry, False)
            )
    if call.body is not None and _has_tuple(call.body):
        return _ASIDE
    return _Miss(call)


def _sync_create(spec: _Spec, original: Callable[..., Any]) -> Callable[..., Any]:
    params = _parameters(original)

    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = self._client
        transport = _transport_of(client)
        if args or transport is None or _step_aside(kwargs) or type(client) in _FAILED:
            return original(self, *args, **kwargs)
        try:
            found = _fast_sync(self, spec, transport, kwargs)
        except _INTERNAL_ERRORS as exc:
            # An SDK internal did not behave as probed: this call is the SDK's own, and so
            # is any error it raises (raised before we warn, exactly as bare).
            answer = original(self, **kwargs)
            _fell_back(client, spec, exc)
            return answer
        if found is _ASIDE:
            return original(self, **kwargs)
        if not isinstance(found, _Miss):
            return found
        ticket, planned = _park(transport.engine, found.call, kwargs, params)
        try:
            return original(self, **planned)
        finally:
            transport.engine.unregister(ticket)

    create.__doc__ = original.__doc__
    return create


def _async_create(spec: _Spec, original: Callable[..., Any]) -> Callable[..., Any]:
    params = _parameters(original)

    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = self._client
        transport = _transport_of(client)
        if args or transport is None or _step_aside(kwargs) or type(client) in _FAILED:
            return await original(self, *args, **kwargs)
        try:
            found = await _fast_async(self, spec, transport, kwargs)
        except _INTERNAL_ERRORS as exc:
            answer = await original(self, **kwargs)
            _fell_back(client, spec, exc)
            return answer
        if found is _ASIDE:
            return await original(self, **kwargs)
        if not isinstance(found, _Miss):
            return found
        ticket, planned = _park(transport.engine, found.call, kwargs, params)
        try:
            return await original(self, **planned)
        finally:
            transport.engine.unregister(ticket)

    create.__doc__ = original.__doc__
    return create


def _resource(base: type[Any], spec: _Spec, is_async: bool) -> type[Any]:
    original = base.create
    make = _async_create if is_async else _sync_create
    return type(base.__name__, (base,), {"create": make(spec, original)})


def _child(attr: str, cls: type[Any]) -> cached_property[Any]:
    def get(self: Any) -> Any:
        return cls(self._client)

    get.__name__ = attr
    return cached_property(get)


def _top(attr: str, cls: type[Any]) -> cached_property[Any]:
    def get(self: Any) -> Any:
        return cls(self)

    get.__name__ = attr
    return cached_property(get)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a fast ``create`` sits.

    The client attributes leading to it, the SDK's resource classes found there (one per
    attribute) and what the call needs (:class:`_Spec`).
    """

    attrs: tuple[str, ...]
    resources: tuple[type[Any], ...]
    spec: _Spec


def _openai_members(is_async: bool) -> tuple[dict[str, Any], tuple[Route, ...]]:
    import openai
    from openai._models import add_request_id
    from openai.resources.chat import AsyncChat, Chat
    from openai.resources.chat.completions import AsyncCompletions, Completions
    from openai.resources.responses import AsyncResponses, Responses
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.responses import Response, ResponseStreamEvent

    stream = openai.AsyncStream if is_async else openai.Stream
    bearer = {"bearer_auth": True}

    def set_ids(obj: Any, headers: Mapping[str, str]) -> None:
        add_request_id(obj, headers.get("x-request-id"))

    chat_spec = _Spec(
        Api.OPENAI_CHAT,
        "/chat/completions",
        ChatCompletion,
        stream[ChatCompletionChunk],
        bearer,
        "openai",
        set_ids,
    )
    responses_spec = _Spec(
        Api.OPENAI_RESPONSES,
        "/responses",
        Response,
        stream[ResponseStreamEvent],
        bearer,
        "openai",
        set_ids,
    )
    completions_base = AsyncCompletions if is_async else Completions
    completions = _resource(completions_base, chat_spec, is_async)
    chat_base = AsyncChat if is_async else Chat
    chat = type(
        chat_base.__name__, (chat_base,), {"completions": _child("completions", completions)}
    )
    responses_base = AsyncResponses if is_async else Responses
    responses = _resource(responses_base, responses_spec, is_async)
    routes = (
        Route(("chat", "completions"), (chat_base, completions_base), chat_spec),
        Route(("responses",), (responses_base,), responses_spec),
    )
    return {"chat": _top("chat", chat), "responses": _top("responses", responses)}, routes


def _anthropic_members(is_async: bool) -> tuple[dict[str, Any], tuple[Route, ...]]:
    import anthropic
    from anthropic._models import add_response_ids
    from anthropic.resources.messages import AsyncMessages, Messages
    from anthropic.types import Message, RawMessageStreamEvent

    stream = anthropic.AsyncStream if is_async else anthropic.Stream

    def set_ids(obj: Any, headers: Mapping[str, str]) -> None:
        add_response_ids(
            obj,
            request_id=headers.get("request-id"),
            workspace_id=headers.get("anthropic-workspace-id"),
        )

    spec = _Spec(
        Api.ANTHROPIC_MESSAGES,
        "/v1/messages",
        Message,
        stream[RawMessageStreamEvent],
        None,
        "anthropic",
        set_ids,
    )
    messages_base = AsyncMessages if is_async else Messages
    messages = _resource(messages_base, spec, is_async)
    routes = (Route(("messages",), (messages_base,), spec),)
    return {"messages": _top("messages", messages)}, routes


_CLASSES: dict[type[Any], type[Any] | None] = {}
# Serialises probing (one probe and one warning per class, even when threads wrap at once).
_LOCK = threading.Lock()


def _new_lock() -> None:
    # A forked child: a parent thread may have held the lock mid-probe; nobody releases it here.
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock)


def fast_class(cls: type[Any]) -> type[Any] | None:
    """Return the fast-path subclass of an SDK client class, or ``None`` if not supported.

    Supported: ``OpenAI``, ``AsyncOpenAI``, ``AzureOpenAI``, ``AsyncAzureOpenAI``,
    ``Anthropic``, ``AsyncAnthropic`` and user subclasses of them, once the class passed the
    probes of :mod:`promptcache._fastprobe` (run once per class per process; a failure gives
    one :class:`~promptcache.PromptCacheWarning` and ``None``). Request-signing and cloud
    clients keep the (still cached) normal path.
    """
    if cls in _CLASSES:
        return _CLASSES[cls]
    if getattr(cls, "_promptcache_fast", False):
        return cls
    with _LOCK:
        if cls in _CLASSES:  # another thread probed it meanwhile
            return _CLASSES[cls]
        return _probed_class(cls)


def _probed_class(cls: type[Any]) -> type[Any] | None:
    """Build the fast class of ``cls`` if its SDK passes the probes (under ``_LOCK``)."""
    found = _members(cls)
    if found is None:
        return None
    from promptcache._fastprobe import probe, sdk_version

    sdk, members, routes, is_async, failure = found
    if failure is None:
        failure = probe(cls, routes, is_async)
    if failure is not None:
        _CLASSES[cls] = None
        warnings.warn(
            f"promptcache: no pre-SDK fast path for {_class_name(cls)} with {sdk} "
            f"{sdk_version(sdk)}: {failure}. Calls still work, through the slower transport "
            "path (still cached and accounted)",
            PromptCacheWarning,
            stacklevel=4,  # past fast_class and wrap: the user's line
        )
        return None
    members["_promptcache_fast"] = True
    members["__module__"] = cls.__module__
    members["__qualname__"] = cls.__qualname__
    fast = type(cls.__name__, (cls,), members)
    _CLASSES[cls] = fast
    return fast


def _members(
    cls: type[Any],
) -> tuple[str, dict[str, Any], tuple[Route, ...], bool, str | None] | None:
    """Return the fast members for ``cls``, their routes and why they cannot be built, if so.

    ``None`` when ``cls`` gets no fast path at all. The SDK is found along the MRO, so user
    subclasses are served too.
    """
    sdk = next(
        (root for k in cls.__mro__ if (root := k.__module__.split(".", 1)[0]) in _SDKS), None
    )
    if sdk == "openai":
        import openai

        if not issubclass(cls, openai.OpenAI | openai.AsyncOpenAI) or _openai_provider(cls):
            return None
        is_async = issubclass(cls, openai.AsyncOpenAI)
        build = _openai_members
    elif sdk == "anthropic":
        import anthropic

        if not issubclass(cls, anthropic.Anthropic | anthropic.AsyncAnthropic):
            return None
        is_async = issubclass(cls, anthropic.AsyncAnthropic)
        build = _anthropic_members
    else:
        return None
    try:
        members, routes = build(is_async)
    except (ImportError, AttributeError, TypeError) as exc:
        # A release moved a module or a name the fast path imports.
        return sdk, {}, (), is_async, f"the pieces it uses cannot be imported ({exc!r})"
    return sdk, members, routes, is_async, None


_SDKS: Final = ("openai", "anthropic")


def _openai_provider(cls: type[Any]) -> bool:
    # Bedrock's OpenAI client signs requests; it keeps the normal (cache + accounting) path.
    return "bedrock" in cls.__module__.lower() or "bedrock" in cls.__name__.lower()
