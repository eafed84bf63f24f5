from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptcache._api import Api
from promptcache._errors import ConfigError
from promptcache._json import dumps
from promptcache._keys import (
    OPT_OUT_HEADER,
    CacheKey,
    answer_headers,
    namespace,
    request_key,
    request_key_from_bytes,
    tenant_fingerprint,
    uncacheable_reason,
)

SALT = b"s" * 32
NS = namespace("openai", "https://api.openai.com/v1", tenant_fingerprint("sk-1", SALT))

BODY: dict[str, Any] = {
    "model": "gpt-5.6",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "hi", "extra": {"a": 1, "b": 2}}]},
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": "auto",
    "temperature": 0.2,
    "top_p": 1,
    "max_tokens": 100,
    "stream": False,
    "response_format": {"type": "json_object"},
}


def key(body: dict[str, Any], headers: dict[str, str] | None = None, ns: str = NS) -> CacheKey:
    return request_key(ns, Api.OPENAI_CHAT, body, answer_headers(headers or {}, SALT))


def reorder(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: reorder(obj[k]) for k in reversed(list(obj))}
    if isinstance(obj, list):
        return [reorder(v) for v in obj]
    return obj


def test_key_shape() -> None:
    k = key(BODY)
    ns, _, digest = k.key.rpartition(":")
    assert ns == NS
    assert len(digest) == 32 and int(digest, 16) >= 0
    assert len(k.verify) == 32 and k.verify != digest


def test_dict_order_does_not_matter_at_any_depth() -> None:
    shuffled = reorder(BODY)
    assert list(shuffled) != list(BODY)
    assert list(shuffled["messages"][1]["content"][0]["extra"]) == ["b", "a"]
    assert key(shuffled) == key(BODY)


def test_bytes_and_mapping_paths_agree() -> None:
    # The transport keys what the SDK serialised (spaces, escapes, any order); the fast path
    # keys the user's kwargs. Both must land on the same entry.
    import json

    wire = json.dumps(reorder(BODY), indent=2, ensure_ascii=True).encode()
    k, parsed = request_key_from_bytes(NS, Api.OPENAI_CHAT, wire, {})
    assert parsed == BODY
    assert k == key(BODY)
    k2, _ = request_key_from_bytes(NS, Api.OPENAI_CHAT, dumps({**BODY, "temperature": 0.2}), {})
    assert k2 == k


def test_tuples_key_like_lists() -> None:
    assert key({**BODY, "stop": ("a", "b")}) == key({**BODY, "stop": ["a", "b"]})


def test_int_and_float_are_distinct_but_stable() -> None:
    # orjson keeps 1 and 1.0 apart on both paths, as the SDK's JSON would.
    assert key({**BODY, "temperature": 1}) != key({**BODY, "temperature": 1.0})
    k, _ = request_key_from_bytes(NS, Api.OPENAI_CHAT, dumps({**BODY, "temperature": 1.0}), {})
    assert k == key({**BODY, "temperature": 1.0})


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("model",), "gpt-5.6-mini"),
        (("messages", 1, "content", 0, "text"), "hello"),
        (("messages", 0, "content"), "You are verbose."),
        (("tools", 0, "function", "name"), "g"),
        (("tool_choice",), "required"),
        (("temperature",), 0.3),
        (("top_p",), 0.9),
        (("max_tokens",), 101),
        (("stream",), True),
        (("response_format", "type"), "text"),
    ],
)
def test_every_body_field_is_in_the_key(path: tuple[Any, ...], value: Any) -> None:
    changed = copy.deepcopy(BODY)
    target: Any = changed
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    assert key(changed) != key(BODY)


def test_added_fields_change_the_key() -> None:
    for extra in ({"seed": 1}, {"stream_options": {"include_usage": True}}, {"n": 2}):
        assert key({**BODY, **extra}) != key(BODY)


def test_system_param_is_in_the_anthropic_key() -> None:
    body = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    a = request_key(NS, Api.ANTHROPIC_MESSAGES, {**body, "system": "A"}, {})
    b = request_key(NS, Api.ANTHROPIC_MESSAGES, {**body, "system": "B"}, {})
    c = request_key(NS, Api.ANTHROPIC_MESSAGES, body, {})
    assert len({a, b, c}) == 3


def test_api_is_in_the_key() -> None:
    assert request_key(NS, Api.OPENAI_CHAT, BODY, {}) != request_key(
        NS, Api.OPENAI_RESPONSES, BODY, {}
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"anthropic-version": "2026-10-21"},
        {"anthropic-beta": "files-2025"},
        {"OpenAI-Organization": "org-2"},
        {"openai-project": "proj-2"},
    ],
)
def test_answer_headers_change_the_key(headers: dict[str, str]) -> None:
    assert key(BODY, headers) != key(BODY)


def test_noise_headers_are_excluded() -> None:
    # Every header is keyed except the per-attempt ones; the tenant's credential is left to the
    # namespace and any other secret is keyed by a salted digest, never by value.
    noisy = {
        "Authorization": "Bearer sk-secret",
        "X-Stainless-Retry-Count": "2",
        "x-stainless-read-timeout": "600",
        "x-stainless-timeout": "600",
        "x-stainless-os": "Linux",
        "Idempotency-Key": "stainless-python-retry-123",
        "user-agent": "OpenAI/Python 3.57.0",
        "content-length": "57",
        "traceparent": "00-abc",
        "x-request-id": "req-1",
        "anthropic-version": "2026-10-21",
    }
    kept = answer_headers(noisy, SALT, credential="authorization")
    assert kept == {"anthropic-version": "2026-10-21"}
    retried = noisy | {"X-Stainless-Retry-Count": "3", "x-request-id": "req-2", "traceparent": "x"}
    assert answer_headers(retried, SALT, credential="authorization") == kept
    secrets = answer_headers({"x-api-key": "sk-ant", "api-key": "azure"}, SALT)
    assert set(secrets) == {"x-api-key", "api-key"}
    assert all(v.startswith("blake2b:") and "sk-ant" not in v for v in secrets.values())


def test_beta_lists_are_normalised() -> None:
    assert answer_headers({"anthropic-beta": "b, a,a"}, SALT) == {"anthropic-beta": "a,b"}


def test_tenant_and_base_url_and_user_namespace_separate_entries() -> None:
    other_tenant = namespace(
        "openai", "https://api.openai.com/v1", tenant_fingerprint("sk-2", SALT)
    )
    other_url = namespace("openai", "http://127.0.0.1:8000/v1", tenant_fingerprint("sk-1", SALT))
    other_ns = namespace(
        "openai", "https://api.openai.com/v1", tenant_fingerprint("sk-1", SALT), "staging"
    )
    keys = {key(BODY, ns=n).key for n in (NS, other_tenant, other_url, other_ns)}
    assert len(keys) == 4


def test_tenant_fingerprint_is_salted_and_hides_the_credential() -> None:
    fp = tenant_fingerprint("sk-very-secret", SALT)
    assert "secret" not in fp and len(fp) == 16
    assert fp == tenant_fingerprint("sk-very-secret", SALT)
    assert fp != tenant_fingerprint("sk-very-secret", b"t" * 32)
    assert tenant_fingerprint(None, SALT) == ""


def test_namespace_is_readable_plain_text() -> None:
    ns = namespace("anthropic", "https://api.anthropic.com/", "ab12", None)
    assert ns == "v1|anthropic|https://api.anthropic.com|t=ab12|ns=default"
    for bad in ("", "a|b", "x\ny"):
        with pytest.raises(ConfigError):
            namespace("openai", "https://x", "t", bad)


def test_non_json_body_raises_type_error() -> None:
    with pytest.raises(TypeError):
        key({**BODY, "metadata": object()})
    with pytest.raises(TypeError):
        request_key_from_bytes(NS, Api.OPENAI_CHAT, b"[1, 2]", {})


@pytest.mark.parametrize(
    ("api", "body", "needle"),
    [
        (Api.OPENAI_RESPONSES, {"previous_response_id": "resp_1"}, "previous_response_id"),
        (Api.OPENAI_RESPONSES, {"conversation": "conv_1"}, "conversation"),
        (Api.OPENAI_RESPONSES, {"conversation": {"id": "conv_1"}}, "conversation"),
        (Api.OPENAI_RESPONSES, {"background": True}, "background"),
        (Api.OPENAI_RESPONSES, {"prompt": {"id": "pmpt_1"}}, "prompt without a version"),
        (Api.OPENAI_RESPONSES, {"prompt_cache_options": {"prewarm": True}}, "prewarm"),
        (
            Api.OPENAI_RESPONSES,
            {"prompt_cache_options": {"comparison_response_id": "resp_0"}},
            "comparison_response_id",
        ),
        (Api.ANTHROPIC_MESSAGES, {"container": "cntr_1", "max_tokens": 5}, "container"),
        (
            Api.ANTHROPIC_MESSAGES,
            {"diagnostics": {"previous_message_id": "msg_1"}, "max_tokens": 5},
            "previous_message_id",
        ),
        (Api.ANTHROPIC_MESSAGES, {"max_tokens": 0}, "max_tokens=0"),
    ],
)
def test_server_state_requests_are_uncacheable(api: Api, body: dict[str, Any], needle: str) -> None:
    reason = uncacheable_reason(api, {"model": "m", "input": "x", **body})
    assert reason is not None and needle in reason


@pytest.mark.parametrize(
    ("api", "body"),
    [
        (Api.OPENAI_CHAT, BODY),
        (Api.OPENAI_CHAT, {**BODY, "n": 3}),
        (Api.OPENAI_RESPONSES, {"model": "m", "input": "x", "background": False, "store": True}),
        (Api.OPENAI_RESPONSES, {"model": "m", "previous_response_id": None}),
        (Api.OPENAI_RESPONSES, {"model": "m", "prompt": {"id": "pmpt_1", "version": "3"}}),
        (Api.ANTHROPIC_MESSAGES, {"model": "m", "max_tokens": 5, "messages": []}),
    ],
)
def test_ordinary_requests_are_cacheable(api: Api, body: dict[str, Any]) -> None:
    assert uncacheable_reason(api, body) is None


def test_opt_out_header() -> None:
    assert uncacheable_reason(Api.OPENAI_CHAT, BODY, {"X-PromptCache-No-Cache": "1"})
    assert uncacheable_reason(Api.OPENAI_CHAT, BODY, {OPT_OUT_HEADER: "false"}) is None
    assert OPT_OUT_HEADER not in answer_headers({OPT_OUT_HEADER: "1"}, SALT)


_json_leaf: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=20)
    # Floats of 2**63 and more are deliberately not keyed (an integer beyond 64 bits on the wire
    # parses to one): tests/trust/test_4_canonical_requests.py covers them.
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e18, max_value=1e18)
)
_json: st.SearchStrategy[Any] = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _json, max_size=6))
def test_property_order_and_wire_form_never_change_the_key(body: dict[str, Any]) -> None:
    import json

    k = key(body)
    assert key(reorder(body)) == k
    # The SDK's own json.dumps (any spacing, ASCII escapes) parses back to the same key.
    wire = json.dumps(reorder(body), ensure_ascii=True, separators=(", ", ": ")).encode()
    assert request_key_from_bytes(NS, Api.OPENAI_CHAT, wire, {})[0] == k
