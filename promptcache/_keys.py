"""Cache keys for the local response cache: pure functions, on the hit path.

A key is the xxh3-128 digest of the *canonical* request — the API, the body with sorted keys
and the headers that change the answer — under a plain-text namespace naming the provider, the
base URL, a salted fingerprint of the credential and the user's namespace. A second digest of
the same bytes (``CacheKey.verify``) is stored in the entry and compared on every hit, so a
collision of the first digest can never serve another request's answer.

The transport keys the body the SDK serialised and the pre-SDK fast path keys the user's
keyword arguments; both go through :func:`request_key`, and the canonical form (orjson, sorted
keys) does not depend on dict order or on how the JSON text was spelled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import xxhash

from promptcache._api import Api
from promptcache._errors import ConfigError
from promptcache._json import canonical, loads

__all__ = [
    "KEY_VERSION",
    "OPT_OUT_HEADER",
    "CacheKey",
    "answer_headers",
    "digest_key",
    "namespace",
    "request_key",
    "request_key_from_bytes",
    "tenant_fingerprint",
    "uncacheable_reason",
]

#: Bumped whenever the canonical form changes, so old entries are simply never found again.
KEY_VERSION: Final = "v1"

#: A request carrying this header (any value but ``"0"``/``"false"``) is never cached. The
#: transport strips it before the request leaves; set it with the SDKs' typed ``extra_headers``.
OPT_OUT_HEADER: Final = "x-promptcache-no-cache"

# The verify digest is xxh3-128 under a different seed: an independent function of the same
# bytes for accidental collisions, at ~1/60 the cost of a cryptographic hash on a 200k-token
# body (12 µs vs 440 µs for sha256 at 800 KB). Tenants never share a namespace, so an adversary
# able to craft collisions could only collide with their own entries.
_VERIFY_SEED: Final = 0x70726F6D7074  # "prompt"

# Headers that change the answer. Everything else (auth, x-stainless-*, user-agent, timeouts,
# retry counters, idempotency keys, tracing) is left out so that it cannot cause misses.
_ANSWER_PREFIXES: Final = ("anthropic-", "openai-")
_ANSWER_EXACT: Final = frozenset({"api-version"})
_NEVER: Final = frozenset(
    {
        "anthropic-dangerous-direct-browser-access",
        "openai-idempotency-key",
        "authorization",
        "x-api-key",
        "api-key",
        "idempotency-key",
    }
)
# Comma-separated flag lists whose order and duplicates carry no meaning.
_LIST_HEADERS: Final = frozenset({"anthropic-beta", "openai-beta"})


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Where a request's answer is stored, and how a hit is checked.

    ``key`` is ``f"{namespace}:{xxh3_128 hex}"``; ``verify`` is an independent digest of the
    same canonical bytes, stored in the entry and compared on a hit.
    """

    key: str
    verify: str


def tenant_fingerprint(credential: str | None, salt: bytes) -> str:
    """Return a short salted fingerprint of a credential, ``""`` for ``None``.

    Keyed BLAKE2b under the directory's private salt: stable across processes that share the
    directory, different between directories, and never reversible to the credential.
    """
    if credential is None:
        return ""
    return hashlib.blake2b(credential.encode(), key=salt[:64], digest_size=8).hexdigest()


def namespace(provider: str, base_url: str, tenant: str, user_namespace: str | None = None) -> str:
    """Return the plain-text namespace that prefixes every key of one provider endpoint + tenant.

    For example ``"v1|openai|https://api.openai.com/v1|t=ab12cd34ef56ab78|ns=default"``. It is
    readable on purpose: ``promptcache cache`` commands and people can tell entries apart.
    """
    ns = "default" if user_namespace is None else user_namespace
    for part, what in ((ns, "namespace"), (provider, "provider")):
        if not part or "|" in part or any(c < " " for c in part):
            raise ConfigError(f"invalid {what} {part!r}: non-empty, without '|' or controls")
    return f"{KEY_VERSION}|{provider}|{base_url.rstrip('/')}|t={tenant}|ns={ns}"


def answer_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return the lowercased subset of request headers that can change the answer.

    Kept: ``anthropic-*`` (``anthropic-version``, ``anthropic-beta``) and ``openai-*``
    (``openai-organization``, ``openai-project``, ``openai-beta``) and Azure's ``api-version``.
    Beta flag lists are normalised (sorted, de-duplicated). Never kept: credentials,
    ``x-stainless-*``, idempotency keys, timeouts, retry counters, ``user-agent``.
    """
    out: dict[str, str] = {}
    for name, value in headers.items():
        low = name.lower()
        if low in _NEVER:
            continue
        if low.startswith(_ANSWER_PREFIXES) or low in _ANSWER_EXACT:
            if low in _LIST_HEADERS:
                value = ",".join(sorted({v.strip() for v in value.split(",") if v.strip()}))
            out[low] = value.strip()
    return out


def digest_key(ns: str, blob: bytes) -> CacheKey:
    """Return the :class:`CacheKey` of already-canonical bytes under namespace ``ns``."""
    return CacheKey(
        key=f"{ns}:{xxhash.xxh3_128_hexdigest(blob)}",
        verify=xxhash.xxh3_128_hexdigest(blob, seed=_VERIFY_SEED),
    )


def request_key(ns: str, api: Api, body: Mapping[str, Any], headers: Mapping[str, str]) -> CacheKey:
    """Return the cache key of a request: everything in the body, plus the answer headers.

    ``headers`` must already be :func:`answer_headers` output. Raises ``TypeError`` when the
    body holds a value that is not JSON (the caller should then not cache).
    """
    return digest_key(ns, canonical({"api": api.value, "body": body, "headers": headers}))


def request_key_from_bytes(
    ns: str, api: Api, body: bytes, headers: Mapping[str, str]
) -> tuple[CacheKey, dict[str, Any]]:
    """Parse a serialised JSON body once and return its key and the parsed body.

    Raises ``promptcache._json.JSONDecodeError`` (a ``ValueError``) on invalid JSON and
    ``TypeError`` when the body is not a JSON object.
    """
    parsed = loads(body)
    if not isinstance(parsed, dict):
        raise TypeError(f"request body must be a JSON object, not {type(parsed).__name__}")
    return request_key(ns, api, parsed, headers), parsed


def _truthy(value: Any) -> bool:
    return value is not None and value is not False and value != 0


def uncacheable_reason(
    api: Api, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> str | None:
    """Say why a request must never be served from the local cache, or return ``None``.

    Never cached: requests whose answer depends on server-side state or that are sent for a
    server-side effect — Responses ``previous_response_id``, ``conversation``,
    ``background=true``, a stored ``prompt`` without a pinned ``version``,
    ``prompt_cache_options.prewarm`` and ``comparison_response_id``;
    Anthropic ``container`` reuse, ``diagnostics.previous_message_id`` and pre-warming
    (``max_tokens=0``) — and requests carrying :data:`OPT_OUT_HEADER`. ``n > 1`` is cached:
    the stored answer holds all ``n`` choices and replays them as one response.
    """
    if headers:
        for name, value in headers.items():
            if name.lower() == OPT_OUT_HEADER and value.strip().lower() not in ("0", "false"):
                return f"opted out with the {OPT_OUT_HEADER} header"
    if api is Api.OPENAI_RESPONSES:
        for field in ("previous_response_id", "conversation"):
            if _truthy(body.get(field)):
                return f"depends on server state ({field})"
        prompt = body.get("prompt")
        if isinstance(prompt, Mapping) and prompt.get("id") and not prompt.get("version"):
            # A stored prompt without a pinned version resolves to whatever is latest.
            return "depends on server state (prompt without a version)"
        if body.get("background") is True:
            return "background responses are polled from the server (background=true)"
        options = body.get("prompt_cache_options")
        if isinstance(options, Mapping):
            if options.get("prewarm") is True:
                return "sent for its side effect (prompt_cache_options.prewarm)"
            if _truthy(options.get("comparison_response_id")):
                return "depends on server state (prompt_cache_options.comparison_response_id)"
    elif api is Api.ANTHROPIC_MESSAGES:
        if _truthy(body.get("container")):
            return "depends on server state (container)"
        diagnostics = body.get("diagnostics")
        if isinstance(diagnostics, Mapping) and _truthy(diagnostics.get("previous_message_id")):
            return "depends on server state (diagnostics.previous_message_id)"
        if body.get("max_tokens") == 0:
            return "sent for its side effect (max_tokens=0 pre-warms the prompt cache)"
    return None
