"""Probes that an SDK client class still has the internals the pre-SDK fast path relies on.

The fast path (:mod:`promptcache._fastpath`) calls SDK internals that no release promises to
keep. So before a client class gets a fast subclass, :func:`probe` builds one throw-away
client of that class (canned key, base URL, default header and query; an http client that
refuses to send, so nothing reaches the network) and runs each internal the way the fast path
does, on a canned request and canned responses, comparing with what the SDK itself returns:

- **resource layout** (every route): ``chat``/``chat.completions``, ``responses``,
  ``messages`` on the class are the SDK's own attributes (the fast class replaces them), give
  the SDK's resource classes with ``_client`` pointing back, and ``create`` takes ``stream``
  and ``extra_headers`` and is sync or async as the class;
- **auth state**: ``workload_identity``, ``_api_key_provider``, ``_custom_auth(security)``
  (OpenAI) and the ``_custom_auth`` and ``_middleware`` attributes (Anthropic) exist and say
  "plain api-key client"; ``_custom_headers``/``_custom_query`` hold the default headers and
  query (templates are checked against them); ``_strict_response_validation`` is ``False``;
- **request** (first route): ``FinalRequestOptions.construct`` on a one-field body,
  ``_prepare_options``, ``_build_request(options, retries_taken=0)``, ``_prepare_request``
  (sync or async as the class) give a POST to the base URL plus the route's path, with the
  default query, the credential, the default header and an extra header: what the transport
  will see;
- **response** (first route): ``_process_response``, called as the fast path calls it, parses
  a canned JSON body into ``cast_to``; ``cast_to.model_validate_json`` and
  ``_process_response_data(…, response=None)`` give the same object: type, fields and
  response ids (``add_request_id`` / ``add_response_ids``); with ``stream=True`` it returns the
  route's stream class, of the client's kind (sync or async).

The request and response pieces belong to the client, not the route: running them on the
first route (``chat.completions`` or ``messages``) keeps the probe to about a millisecond.
Any failure (an exception or a different answer) names the piece, and the class then gets no
fast path. A probe never raises; it runs once per class per process.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Sequence
from typing import Any, Final, get_origin

import httpx2

from promptcache._fastpath import (
    Route,
    _custom_auth,
    _custom_state,
    _options,
    _refreshes,
    _Spec,
)

__all__ = ["probe", "sdk_version"]

_HOST: Final = "promptcache-probe.invalid"  # .invalid: never resolves, were it ever sent
_KEY: Final = "promptcache-probe-key"
_MODEL: Final = "promptcache-probe-model"
_HEADERS: Final = {"x-promptcache-probe": "default"}
_QUERY: Final = {"promptcache-probe": "default"}
_EXTRA: Final = {"x-promptcache-probe-extra": "extra"}
_ID: Final = "promptcache-probe-id"
# Both SDKs' id headers: each parser takes its own.
_ANSWER_HEADERS: Final = {
    "content-type": "application/json",
    "x-request-id": "req-promptcache-probe",
    "request-id": "req-promptcache-probe",
    "anthropic-workspace-id": "wrk-promptcache-probe",
}
# Small valid bodies of the first route's response model (the one the response pieces are
# probed on; a body too small to validate strictly would take the lenient branch, as the fast
# path does).
_BODIES: Final = {
    "/chat/completions": {
        "id": _ID, "object": "chat.completion", "created": 1, "model": _MODEL, "choices": [],
    },
    "/v1/messages": {
        "id": _ID, "type": "message", "role": "assistant", "content": [], "model": _MODEL,
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    },
}  # fmt: skip


class _Changed(Exception):
    """A piece answered, but not what the fast path expects."""


def sdk_version(sdk: str) -> str:
    """Return the installed version of an SDK, for messages."""
    return str(getattr(sys.modules.get(sdk), "__version__", "(unknown version)"))


def probe(cls: type[Any], routes: Sequence[Route], is_async: bool) -> str | None:
    """Return ``None`` if ``cls`` has every internal the fast path uses, else what is wrong."""
    name = cls.__name__
    at = [f"{name} resource layout"]  # the piece being probed, named in the failure
    try:
        sdk_base = _sdk_base(cls, routes[0].spec.sdk, is_async)
        for route in routes:
            at[0] = f"{name}.{'.'.join(route.attrs)}"
            _layout(cls, sdk_base, route, is_async)
        at[0] = f"{name}.__init__ (with an api key, base URL and http client)"
        client = _client(cls, routes[0].spec.sdk, is_async)
        for route in routes:
            at[0] = f"{name}.{'.'.join(route.attrs)}"
            _resources(client, route)
        spec = routes[0].spec
        at[0] = _auth_piece(name, spec)
        if _custom_auth(client, spec) or _refreshes(client, spec):
            raise _Changed("reports a custom auth flow or key provider for a plain api-key client")
        at[0] = f"{name}._custom_headers / _custom_query"
        headers, query = _custom_state(client)
        # Azure adds its api-version to the query: ours must be there, not alone.
        held = _HEADERS.items() <= headers.items() and _QUERY.items() <= query.items()
        _expect(held, "do not hold the default headers and query")
        at[0] = f"{name}._strict_response_validation"
        _expect(client._strict_response_validation is False, "is not False by default")
        # The request and response internals are the client's, the same for every route:
        # probed once, on the first (the most used) route, to keep the probe cheap.
        _request(client, spec, is_async, name, at)
    except Exception as exc:  # every failure, whatever it is, means "no fast path"
        detail = str(exc) if isinstance(exc, _Changed) else f"raised {type(exc).__name__}: {exc}"
        return f"{at[0]} {detail}"
    return None


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise _Changed(what)


def _auth_piece(name: str, spec: _Spec) -> str:
    if spec.sdk == "openai":
        return f"{name}.workload_identity / _api_key_provider / _custom_auth(security)"
    return f"{name}._custom_auth / _middleware"


_BASES: Final = {"openai": "OpenAI", "anthropic": "Anthropic"}


def _sdk_base(cls: type[Any], sdk: str, is_async: bool) -> type[Any]:
    base: type[Any] = getattr(sys.modules[sdk], ("Async" if is_async else "") + _BASES[sdk])
    _expect(issubclass(cls, base), f"is not a subclass of {base.__name__}")
    return base


def _layout(cls: type[Any], sdk_base: type[Any], route: Route, is_async: bool) -> None:
    """Check the attribute is the SDK's own, not an override (the fast class replaces it)."""
    top = route.attrs[0]
    _expect(
        inspect.getattr_static(cls, top, None) is inspect.getattr_static(sdk_base, top, None),
        f"is not {sdk_base.__name__}'s own attribute (overridden or moved)",
    )
    create = inspect.getattr_static(route.resources[-1], "create", None)
    _expect(inspect.isfunction(create), "has no create method")
    # The SDK decorates ``create`` (``required_args``): the real function is the wrapped one.
    inner = inspect.unwrap(create)
    code = inner.__code__  # its argument names: far cheaper than inspect.signature
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    _expect({"stream", "extra_headers"} <= set(names), "create lacks stream/extra_headers")
    coroutine = inspect.iscoroutinefunction(inner)
    _expect(coroutine == is_async, "create is not (a)sync as expected")
    _expect(hasattr(route.spec.cast_to, "model_validate_json"), "has no pydantic cast_to")


def _resources(client: Any, route: Route) -> None:
    """Each attribute gives the SDK resource class the fast class subclasses, bound to us."""
    obj = client
    for attr, expected in zip(route.attrs, route.resources, strict=True):
        obj = getattr(obj, attr)
        _expect(type(obj) is expected, f"gives {type(obj).__name__}, not {expected.__name__}")
        _expect(obj._client is client, "is not bound to its client through _client")
        _expect(isinstance(vars(obj), dict), "has no instance dict")


def _client(cls: type[Any], sdk: str, is_async: bool) -> Any:
    http = (httpx2.AsyncClient if is_async else httpx2.Client)(
        transport=httpx2.MockTransport(_refuse)
    )
    kwargs: dict[str, Any] = {
        "api_key": _KEY,
        "default_headers": _HEADERS,
        "default_query": _QUERY,
        "max_retries": 0,
        "http_client": http,
    }
    if sdk == "openai":
        from openai.lib.azure import BaseAzureClient

        if issubclass(cls, BaseAzureClient):
            kwargs.update(azure_endpoint=f"https://{_HOST}", api_version="2024-10-21")
        else:
            kwargs["base_url"] = f"https://{_HOST}/v1"
    else:
        kwargs["base_url"] = f"https://{_HOST}"
    return cls(**kwargs)


def _refuse(request: httpx2.Request) -> httpx2.Response:
    raise RuntimeError("the fast-path probe never sends")


def _now(value: Any, is_async: bool, what: str) -> Any:
    """Return a hook's result, awaited by hand when async (wrap may run inside a loop).

    On canned input the SDK hooks finish without suspending; one that suspends is a change.
    """
    _expect(inspect.isawaitable(value) == is_async, f"{what} is not {'a' if is_async else ''}sync")
    if not is_async:
        return value
    steps = value.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value
    steps.close()
    raise _Changed(f"{what} suspends on a canned request")


def _request(client: Any, spec: _Spec, is_async: bool, name: str, at: list[str]) -> None:
    """Run the request and response internals on one route, naming each piece in ``at``."""
    at[0] = f"{spec.sdk}._models.FinalRequestOptions.construct"
    options = _options(spec, {"model": _MODEL, "extra_headers": _EXTRA})
    _expect(options.url == spec.path and options.method == "post", "does not keep url/method")
    at[0] = f"{name}._prepare_options"
    options = _now(client._prepare_options(options), is_async, "it")
    _expect(options.json_data == {"model": _MODEL}, "does not keep the body")
    at[0] = f"{name}._build_request"
    request = client._build_request(options, retries_taken=0)
    _check_request(request, spec)
    at[0] = f"{name}._prepare_request"
    _expect(_now(client._prepare_request(request), is_async, "it") is None, "returns a value")
    _check_request(request, spec)
    at[0] = f"{name}._process_response"
    body = json.dumps(_BODIES[spec.path]).encode()
    answer = httpx2.Response(200, headers=_ANSWER_HEADERS, content=body, request=request)
    called = client._process_response(
        cast_to=spec.cast_to, options=options, response=answer, stream=False, stream_cls=None
    )
    sdk = _now(called, is_async, "it")
    _expect(type(sdk) is spec.cast_to and sdk.id == _ID, "does not parse into cast_to")
    at[0] = f"{name}._process_response_data (with response=None)"
    data = json.loads(body)
    lenient = client._process_response_data(data=data, cast_to=spec.cast_to, response=None)
    spec.set_ids(lenient, _ANSWER_HEADERS)
    _same(sdk, lenient)
    at[0] = f"{spec.cast_to.__name__}.model_validate_json"
    try:
        strict = spec.cast_to.model_validate_json(body)
    except ValueError:  # too small a body to validate: the fast path takes the lenient one
        strict = lenient
    spec.set_ids(strict, _ANSWER_HEADERS)
    _same(sdk, strict)
    at[0] = f"{name}._process_response (stream=True)"
    sse = httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=b"", request=request
    )
    called = client._process_response(
        cast_to=spec.cast_to, options=options, response=sse, stream=True, stream_cls=spec.stream_cls
    )
    stream = _now(called, is_async, "it")
    stream_type = get_origin(spec.stream_cls) or spec.stream_cls
    _expect(isinstance(stream, stream_type), f"does not return a {stream_type.__name__}")
    # Iterated as the user's code will: ``for`` on a sync client, ``async for`` on an async one.
    _expect(hasattr(stream, "__aiter__") == is_async, "returns a stream of the other kind")


def _check_request(request: Any, spec: _Spec) -> None:
    _expect(isinstance(request, httpx2.Request), "does not return an httpx2.Request")
    url = request.url
    _expect(request.method == "POST", f"builds a {request.method}, not a POST")
    _expect(url.host == _HOST and url.path.endswith(spec.path), f"builds {url}, not {spec.path}")
    _expect(url.params.get("promptcache-probe") == "default", "drops the default query")
    headers = request.headers
    _expect(any(_KEY in value for value in headers.values()), "does not send the api key")
    for name, value in (*_HEADERS.items(), *_EXTRA.items()):
        _expect(headers.get(name) == value, f"drops the header {name}")


def _same(sdk: Any, fast: Any) -> None:
    """Check the fast path's object is the SDK's: type, fields and response ids."""
    _expect(type(fast) is type(sdk), f"gives {type(fast).__name__}, not {type(sdk).__name__}")
    _expect(fast.model_dump() == sdk.model_dump(), "gives other fields than the SDK")
    for ids in ("_request_id", "_workspace_id"):
        _expect(getattr(fast, ids, None) == getattr(sdk, ids, None), f"sets {ids} differently")
    _expect(getattr(sdk, "_request_id", None) is not None, "sets no _request_id")
