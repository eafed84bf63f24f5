"""Cache keys for the local response cache: pure functions, on the hit path.

A key is the xxh3-128 digest of the *canonical* request — the API, the body with sorted keys
and the request headers — under a plain-text namespace naming the provider, the base URL, a
salted fingerprint of the credential and the user's namespace. A second digest of the same
bytes (``CacheKey.verify``) is stored in the entry and compared on every hit, so a collision of
the first digest can never serve another request's answer.

Every request header is in the key except the few that vary per attempt and never change the
answer (:data:`IGNORED_HEADERS`, :data:`IGNORED_PREFIXES`, :data:`IGNORED_SUFFIXES`; users
adjust the list with :class:`HeaderRule`). The credential that names the tenant is left to
the namespace's fingerprint; any other header whose name says it carries a secret
(:data:`SECRET_NAME_PARTS`) enters the key only as a keyed BLAKE2b digest under the
directory's salt, never as its value.

The transport keys the body the SDK serialised and the pre-SDK fast path keys the user's
keyword arguments; both go through :func:`request_key`. Its canonical form accepts only plain
JSON (:func:`promptcache._json.is_plain`), so it is injective: two different bodies never
share bytes, and dict order or how the JSON text was spelled never matters.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import xxhash

from promptcache._api import Api
from promptcache._errors import ConfigError
from promptcache._json import loads, plain_canonical

__all__ = [
    "DEFAULT_HEADER_RULE",
    "IGNORED_HEADERS",
    "IGNORED_PREFIXES",
    "IGNORED_SUFFIXES",
    "KEY_VERSION",
    "OPT_OUT_HEADER",
    "SECRET_NAME_PARTS",
    "CacheKey",
    "HeaderRule",
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

#: Request headers left out of every key: set per attempt by the HTTP client or the SDK, they
#: never change the answer (transport, user agent, tracing, per-request timestamps that
#: SigV4 signs anew). ``cookie`` too: the http client sends back what the provider's CDN set
#: (Cloudflare's rotating ``__cf_bm`` on api.openai.com), so keying it would make the first
#: repeat of every request miss; a gateway that authenticates by cookie needs
#: ``key_headers=["cookie"]`` (then keyed by a salted digest, like every secret).
IGNORED_HEADERS: Final = frozenset(
    {
        "host",
        "content-length",
        "accept-encoding",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "expect",
        "upgrade",
        "proxy-connection",
        "user-agent",
        "cookie",
        "traceparent",
        "tracestate",
        "baggage",
        "sentry-trace",
        "b3",
        "uber-trace-id",
        "x-cloud-trace-context",
        "x-ot-span-context",
        "newrelic",
        "date",
        "x-amz-date",
    }
)
#: Name prefixes left out: the SDKs' ``x-stainless-*`` (retry count, timeouts, OS, arch,
#: runtime, package version, async, helper names), promptcache's own private headers and the
#: B3/Datadog tracing families.
IGNORED_PREFIXES: Final = ("x-stainless-", "x-promptcache-", "x-b3-", "x-datadog-")
#: Name suffixes left out: idempotency keys, request/correlation/trace ids and timeouts
#: (``idempotency-key``, ``x-request-id``, ``x-client-request-id``, ``x-amzn-trace-id``,
#: ``request-timeout``, …).
IGNORED_SUFFIXES: Final = (
    "idempotency-key",
    "request-id",
    "correlation-id",
    "-trace-id",
    "-timeout",
)
#: A header whose lowercased name contains one of these carries a secret (``authorization``,
#: ``proxy-authorization``, ``x-api-key``, ``helicone-auth``, ``cf-aig-authorization``,
#: ``x-portkey-api-key``, ``cookie``, ``x-amz-security-token``, …): it is keyed by a salted
#: digest of its value, never by the value.
SECRET_NAME_PARTS: Final = (
    "auth",
    "token",
    "key",
    "secret",
    "cookie",
    "password",
    "credential",
    "signature",
)
# Comma-separated flag lists whose order and duplicates carry no meaning.
_LIST_HEADERS: Final = frozenset({"anthropic-beta", "openai-beta"})
# An HTTP token (RFC 9110 field name), optionally ending in ``*`` for a prefix.
_HEADER_NAME: Final = re.compile(r"[!#$%&'+.^_`|~0-9a-z-]+\*?")
_PRIVATE_PREFIX: Final = "x-promptcache-"
_IGNORED, _KEYED, _SECRET = 0, 1, 2


def _default_ignored(name: str) -> bool:
    return (
        name in IGNORED_HEADERS
        or name.startswith(IGNORED_PREFIXES)
        or name.endswith(IGNORED_SUFFIXES)
    )


def _header_names(names: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise ConfigError(f"{what} must be an iterable of header names, not {names!r}")
    out: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{what}: every header name must be a non-empty str, not {name!r}")
        low = name.strip().lower()
        if not _HEADER_NAME.fullmatch(low):
            raise ConfigError(f"{what}: {name!r} is not a valid HTTP header name")
        out.add(low)
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class HeaderRule:
    """Which request headers enter the key, after the user's additions and removals.

    ``ignore``: more names to leave out (a trailing ``*`` makes a prefix); ``keep``: names
    from the default ignore list to key anyway (exact names, or prefixes with ``*``).
    promptcache's own ``x-promptcache-*`` headers are never keyed.
    """

    ignore: frozenset[str] = frozenset()
    keep: frozenset[str] = frozenset()
    _kinds: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, ignore: Iterable[str] = (), keep: Iterable[str] = ()) -> HeaderRule:
        """Build a rule from user configuration; ``ConfigError`` on anything but header names."""
        ignored = _header_names(ignore, "ignore_headers")
        kept = _header_names(keep, "key_headers")
        for name in kept:
            if name.startswith(_PRIVATE_PREFIX):
                raise ConfigError(f"key_headers: {name!r} names promptcache's own headers")
        return cls(ignored, kept)

    def kind(self, name: str) -> int:
        """``0``: left out; ``1``: keyed by value; ``2``: keyed by a salted digest of the value."""
        found = self._kinds.get(name)
        if found is None:
            found = self._classify(name)
            if len(self._kinds) > 1024:  # names come from code, not data; stay bounded anyway
                self._kinds.clear()
            self._kinds[name] = found
        return found

    def _classify(self, name: str) -> int:
        if name.startswith(_PRIVATE_PREFIX) or _matches(name, self.ignore):
            return _IGNORED
        if _default_ignored(name) and not _matches(name, self.keep):
            return _IGNORED
        return _SECRET if any(part in name for part in SECRET_NAME_PARTS) else _KEYED


def _matches(name: str, patterns: frozenset[str]) -> bool:
    if not patterns:
        return False
    if name in patterns:
        return True
    return any(p.endswith("*") and name.startswith(p[:-1]) for p in patterns)


#: The rule when the user changed nothing.
DEFAULT_HEADER_RULE: Final = HeaderRule()


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
    return _keyed_digest(credential, salt, 8)


def _keyed_digest(value: str, salt: bytes, size: int) -> str:
    return hashlib.blake2b(value.encode(), key=salt[:64], digest_size=size).hexdigest()


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


def answer_headers(
    headers: Mapping[str, str],
    salt: bytes,
    *,
    rule: HeaderRule = DEFAULT_HEADER_RULE,
    credential: str | None = None,
) -> dict[str, str]:
    """Return the request headers that enter the key: lowercased names, canonical values.

    Left out: the per-attempt headers of ``rule`` and the header named ``credential`` (the
    tenant's credential, already in the namespace as a fingerprint). Repeated names are joined
    in order; beta flag lists are sorted and de-duplicated. A header carrying a secret
    (:data:`SECRET_NAME_PARTS`) is replaced by a keyed BLAKE2b digest under ``salt``, so no
    credential is ever part of the canonical bytes. ``headers`` may be an ``httpx2.Headers``
    (its repeated fields are all seen) or a mapping.
    """
    multi = getattr(headers, "multi_items", None)
    items: Iterable[tuple[str, str]] = multi() if multi is not None else headers.items()
    kinds: dict[str, int] = {}
    values: dict[str, list[str]] = {}
    for name, value in items:
        low = name.lower()
        if low == credential:
            continue
        kind = kinds.get(low)
        if kind is None:
            kind = kinds[low] = rule.kind(low)
        if kind:
            values.setdefault(low, []).append(value.strip())
    out: dict[str, str] = {}
    for low, parts in values.items():
        value = parts[0] if len(parts) == 1 else ", ".join(parts)
        if low in _LIST_HEADERS:
            value = ",".join(sorted({v.strip() for v in value.split(",") if v.strip()}))
        if kinds[low] == _SECRET:
            value = "blake2b:" + _keyed_digest(value, salt, 16)
        out[low] = value
    return out


def digest_key(ns: str, blob: bytes) -> CacheKey:
    """Return the :class:`CacheKey` of already-canonical bytes under namespace ``ns``."""
    return CacheKey(
        key=f"{ns}:{xxhash.xxh3_128_hexdigest(blob)}",
        verify=xxhash.xxh3_128_hexdigest(blob, seed=_VERIFY_SEED),
    )


def request_key(ns: str, api: Api, body: Mapping[str, Any], headers: Mapping[str, str]) -> CacheKey:
    """Return the cache key of a request: everything in the body, plus the keyed headers.

    ``headers`` must already be :func:`answer_headers` output. Raises ``TypeError`` when the
    body is not plain JSON (:func:`promptcache._json.is_plain`; tuples count as the arrays
    the SDKs send): the caller should then not cache.
    """
    return digest_key(
        ns, plain_canonical({"api": api.value, "body": body, "headers": headers}, tuples=True)
    )


def request_key_from_bytes(
    ns: str, api: Api, body: bytes, headers: Mapping[str, str]
) -> tuple[CacheKey, dict[str, Any]]:
    """Parse a serialised JSON body once and return its key and the parsed body.

    Raises ``promptcache._json.JSONDecodeError`` (a ``ValueError``) on invalid JSON (NaN,
    ±inf and numbers that overflow a double included) and ``TypeError`` when the body is not a
    JSON object or holds a number it cannot tell apart from another (beyond 64 bits).
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
