"""One normalised usage record for every wire shape we serve, and pure decoders for them.

Every provider reports cached tokens differently; this module turns each shape into one
:class:`Usage` with *inclusive* input (uncached + cache read + cache write), so that nothing is
counted twice downstream. The decoders take bytes (a JSON body, or the raw SSE bytes of a
stream) and do no I/O.

Shapes and where their fields come from (see ``PROVIDERS.md`` §2.2, §3.2, §6, §7):

* OpenAI Chat Completions: ``prompt_tokens`` is already inclusive; ``cached_tokens`` and
  ``cache_write_tokens`` sit in ``prompt_tokens_details``. Chat has no per-TTL split, so writes
  are attributed to ``"30m"`` (the only request-level TTL Chat accepts). Streams carry usage
  only on the final ``include_usage`` chunk; a stream without it decodes to usage ``None``.
* OpenAI Responses: ``input_tokens`` inclusive; ``input_tokens_details.cache_write_tokens`` with
  ``cache_write_tokens_details.ttl_30m_tokens``/``ttl_12h_tokens``; streams report on
  ``response.completed`` (or ``response.incomplete``/``response.failed``).
* Anthropic Messages: ``input_tokens`` counts only tokens *after* the last breakpoint, so the
  inclusive input is ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``;
  the TTL split is ``cache_creation.ephemeral_5m/1h_input_tokens``. Streams: ``message_start``
  then cumulative ``message_delta`` values (non-null fields overwrite). ``usage.iterations[]``
  entries of type ``compaction`` are *not* part of the top-level numbers (anthropic SDK
  ``BetaUsage.iterations`` docstring), so they are added.
* OpenAI-compatible providers through the openai SDK: DeepSeek's
  ``prompt_cache_hit_tokens``/``prompt_cache_miss_tokens``; xAI and Gemini's compatibility
  endpoint, whose ``completion_tokens`` may exclude reasoning tokens (detected from
  ``total_tokens``, see :func:`_chat_usage`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from promptcache._api import Api
from promptcache._json import JSONDecodeError, loads

__all__ = ["TTLS", "Decoded", "Usage", "decode", "decode_json", "decode_sse"]

#: Cache-write TTLs we know of: Anthropic 5m/1h, OpenAI (GPT-5.6+) 30m/12h.
TTLS: tuple[str, ...] = ("5m", "1h", "30m", "12h")


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one call, normalised across providers.

    ``input_tokens`` is inclusive: ``uncached_input_tokens + cache_read_tokens +
    cache_write_tokens``. ``output_tokens`` includes ``reasoning_tokens`` (reasoning is billed as
    output everywhere we know of). ``cache_write_tokens_by_ttl`` maps ``"5m"``, ``"1h"``,
    ``"30m"``, ``"12h"`` to the tokens written with that lifetime (absent keys are 0).

    >>> u = Usage(input_tokens=1000, cache_read_tokens=800, cache_write_tokens_by_ttl={"5m": 100})
    >>> u.uncached_input_tokens, u.cache_write_tokens
    (100, 100)
    """

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens_by_ttl: Mapping[str, int] = field(default_factory=dict)
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        # Keep only positive TTL counts so two equal usages compare equal however built.
        clean = {k: int(v) for k, v in self.cache_write_tokens_by_ttl.items() if v}
        object.__setattr__(self, "cache_write_tokens_by_ttl", clean)

    __hash__ = None  # type: ignore[assignment]  # holds a dict

    @property
    def cache_write_tokens(self) -> int:
        """All tokens written to the provider cache, whatever their TTL."""
        return sum(self.cache_write_tokens_by_ttl.values())

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens neither read from nor written to the cache (billed at the base rate)."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        ttl = dict(self.cache_write_tokens_by_ttl)
        for k, v in other.cache_write_tokens_by_ttl.items():
            ttl[k] = ttl.get(k, 0) + v
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens_by_ttl=ttl,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-able dict (the ledger's and the cache meta's storage form)."""
        return {
            "input_tokens": self.input_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_write_tokens_by_ttl": dict(self.cache_write_tokens_by_ttl),
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Usage:
        """Inverse of :meth:`to_json`."""
        ttl = data["cache_write_tokens_by_ttl"]
        return cls(
            input_tokens=int(data["input_tokens"]),
            cache_read_tokens=int(data["cache_read_tokens"]),
            cache_write_tokens_by_ttl={str(k): int(v) for k, v in ttl.items()},
            output_tokens=int(data["output_tokens"]),
            reasoning_tokens=int(data["reasoning_tokens"]),
        )


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one response says about its billing.

    ``usage`` is ``None`` when the response did not report usage (a Chat stream without
    ``include_usage``, a stream cut before its usage event). ``model`` is the response's own
    model id (more precise than the request's). ``price_context`` holds the settings that select
    a price variant in genai-prices (``service_tier`` on OpenAI, ``speed`` on Anthropic).
    ``response_id`` is a Responses API response's ``id`` (a chained turn may name it).
    """

    usage: Usage | None
    model: str | None = None
    price_context: tuple[tuple[str, str], ...] = ()
    response_id: str | None = None


def _is_map(obj: Any) -> bool:
    # Decoded JSON holds dicts: the type test first spares the (slow) ABC check on every field.
    return type(obj) is dict or isinstance(obj, Mapping)


def _int(obj: Any, key: str) -> int:
    if not _is_map(obj):
        return 0
    v = obj.get(key)
    # bool is an int subclass; a provider sending `true` is malformed, not one token.
    return v if type(v) is int else 0


def _map(obj: Any, key: str) -> Mapping[str, Any]:
    v = obj.get(key) if _is_map(obj) else None
    return v if _is_map(v) else {}  # type: ignore[return-value]


def _str(obj: Any, key: str) -> str | None:
    v = obj.get(key) if _is_map(obj) else None
    return v if isinstance(v, str) else None


# ---------------------------------------------------------------- OpenAI Chat (and compatibles)


def _chat_usage(u: Mapping[str, Any]) -> Usage:
    ptd = _map(u, "prompt_tokens_details")
    ctd = _map(u, "completion_tokens_details")
    prompt = _int(u, "prompt_tokens")
    if "prompt_cache_hit_tokens" in u or "prompt_cache_miss_tokens" in u:
        # DeepSeek: prompt_tokens = hit + miss; cached_tokens, when present, mirrors hit.
        read = _int(u, "prompt_cache_hit_tokens")
        prompt = max(prompt, read + _int(u, "prompt_cache_miss_tokens"))
    else:
        read = _int(ptd, "cached_tokens")
    write = _int(ptd, "cache_write_tokens")
    completion = _int(u, "completion_tokens")
    reasoning = _int(ctd, "reasoning_tokens")
    total = _int(u, "total_tokens")
    # OpenAI counts reasoning inside completion_tokens. Some compatible endpoints (xAI, Gemini's
    # compatibility layer) report it beside: total = prompt + completion + reasoning. Reasoning
    # is billed as output either way, so fold it in when total_tokens says it was left out.
    if reasoning and total == prompt + completion + reasoning:
        completion += reasoning
    return Usage(
        input_tokens=prompt,
        cache_read_tokens=read,
        # Chat reports no TTL split; 30m is the only request-level TTL Chat accepts.
        cache_write_tokens_by_ttl={"30m": write},
        output_tokens=completion,
        reasoning_tokens=reasoning,
    )


def _openai_context(obj: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    tier = _str(obj, "service_tier")
    # "default"/"auto" are the standard price; only name tiers that change the price.
    if tier and tier not in ("default", "auto"):
        return (("service_tier", tier),)
    return ()


def _decode_chat(obj: Mapping[str, Any]) -> Decoded:
    u = obj.get("usage")
    usage = _chat_usage(u) if isinstance(u, Mapping) else None
    return Decoded(usage, _str(obj, "model"), _openai_context(obj))


def _sse_chat(events: Iterator[tuple[str | None, Any]]) -> Decoded:
    usage: Usage | None = None
    model: str | None = None
    ctx: tuple[tuple[str, str], ...] = ()
    for _, data in events:
        if not isinstance(data, Mapping):
            continue
        model = _str(data, "model") or model
        ctx = _openai_context(data) or ctx
        u = data.get("usage")
        if isinstance(u, Mapping):
            # Only the include_usage chunk carries usage; if several do, the last is final.
            usage = _chat_usage(u)
    return Decoded(usage, model, ctx)


# ---------------------------------------------------------------- OpenAI Responses


def _responses_usage(u: Mapping[str, Any]) -> Usage:
    itd = _map(u, "input_tokens_details")
    otd = _map(u, "output_tokens_details")
    write = _int(itd, "cache_write_tokens")
    details = _map(itd, "cache_write_tokens_details")
    w12 = _int(details, "ttl_12h_tokens")
    w30 = _int(details, "ttl_30m_tokens")
    # Writes not covered by the split (no details object) are 30m, the default TTL.
    w30 += max(0, write - w12 - w30)
    return Usage(
        input_tokens=_int(u, "input_tokens"),
        cache_read_tokens=_int(itd, "cached_tokens"),
        cache_write_tokens_by_ttl={"30m": w30, "12h": w12},
        output_tokens=_int(u, "output_tokens"),
        reasoning_tokens=_int(otd, "reasoning_tokens"),
    )


def _decode_responses(obj: Mapping[str, Any]) -> Decoded:
    u = obj.get("usage")
    usage = _responses_usage(u) if isinstance(u, Mapping) else None
    return Decoded(usage, _str(obj, "model"), _openai_context(obj), _str(obj, "id"))


_RESPONSES_FINAL = ("response.completed", "response.incomplete", "response.failed")


def _sse_responses(events: Iterator[tuple[str | None, Any]]) -> Decoded:
    result = Decoded(None)
    for event, data in events:
        if not isinstance(data, Mapping):
            continue
        kind = _str(data, "type") or event
        resp = data.get("response")
        if not isinstance(resp, Mapping):
            continue
        if kind in _RESPONSES_FINAL:
            result = _decode_responses(resp)
        elif result.model is None and _str(resp, "model"):
            # response.created names the model even if the stream is cut before the end.
            result = Decoded(None, _str(resp, "model"), _openai_context(resp))
    return result


# ---------------------------------------------------------------- Anthropic Messages


def _anthropic_one(u: Mapping[str, Any]) -> Usage:
    uncached = _int(u, "input_tokens")
    read = _int(u, "cache_read_input_tokens")
    write = _int(u, "cache_creation_input_tokens")
    split = _map(u, "cache_creation")
    w1h = _int(split, "ephemeral_1h_input_tokens")
    w5m = _int(split, "ephemeral_5m_input_tokens")
    # Without a split (older responses, message_delta) all writes are the default 5m TTL.
    w5m += max(0, write - w1h - w5m)
    odt = _map(u, "output_tokens_details")
    return Usage(
        input_tokens=uncached + read + w5m + w1h,
        cache_read_tokens=read,
        cache_write_tokens_by_ttl={"5m": w5m, "1h": w1h},
        output_tokens=_int(u, "output_tokens"),
        reasoning_tokens=_int(odt, "thinking_tokens"),
    )


def _anthropic_usage(u: Mapping[str, Any]) -> Usage:
    usage = _anthropic_one(u)
    iterations = u.get("iterations")
    if isinstance(iterations, list):
        for it in iterations:
            # Compaction runs are billed but not counted in the top-level fields.
            if isinstance(it, Mapping) and it.get("type") == "compaction":
                usage = usage + _anthropic_one(it)
    return usage


def _anthropic_context(u: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    ctx: list[tuple[str, str]] = []
    if _str(u, "speed") == "fast":
        ctx.append(("speed", "fast"))
    if _str(u, "service_tier") == "batch":
        ctx.append(("processing", "batch"))
    return tuple(ctx)


def _decode_anthropic(obj: Mapping[str, Any]) -> Decoded:
    u = obj.get("usage")
    if not isinstance(u, Mapping):
        return Decoded(None, _str(obj, "model"))
    return Decoded(_anthropic_usage(u), _str(obj, "model"), _anthropic_context(u))


def _sse_anthropic(events: Iterator[tuple[str | None, Any]]) -> Decoded:
    snapshot: dict[str, Any] | None = None
    model: str | None = None
    for _, data in events:
        if not isinstance(data, Mapping):
            continue
        kind = _str(data, "type")
        if kind == "message_start":
            msg = _map(data, "message")
            model = _str(msg, "model") or model
            snapshot = dict(_map(msg, "usage"))
        elif kind == "message_delta" and snapshot is not None:
            delta = _map(data, "usage")
            old_write = _int(snapshot, "cache_creation_input_tokens")
            for k, v in delta.items():
                # Delta values are cumulative and nullable: only non-null ones overwrite
                # (the SDK's own accumulator does the same).
                if v is not None:
                    snapshot[k] = v
            if _int(snapshot, "cache_creation_input_tokens") != old_write:
                # The delta has no TTL split; a changed total invalidates message_start's.
                snapshot.pop("cache_creation", None)
    if snapshot is None:
        return Decoded(None, model)
    return Decoded(_anthropic_usage(snapshot), model, _anthropic_context(snapshot))


# ---------------------------------------------------------------- entry points


def _parse_block(block: bytes) -> tuple[str | None, Any] | None:
    """Parse one SSE event block (no blank line inside); ``None`` when it carries no JSON."""
    event: str | None = None
    data_lines: list[str] = []
    for line in block.decode("utf-8", errors="replace").split("\n"):
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data_lines.append(line[5:].removeprefix(" "))
    if not data_lines:
        return None
    data = "\n".join(data_lines)
    if data == "[DONE]":
        return None
    try:
        return event, loads(data)
    except JSONDecodeError:
        # A stream cut mid-event leaves a partial last block; it reports nothing.
        return None


def _blocks(raw: bytes) -> list[bytes]:
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return raw.split(b"\n\n")


def _reversed_blocks(raw: bytes) -> Iterator[bytes]:
    """``reversed(_blocks(raw))`` without splitting the events that are never looked at."""
    end = len(raw)
    while True:
        cut = raw.rfind(b"\n\n", 0, end)
        if cut < 0:
            yield raw[:end]
            return
        yield raw[cut + 2 : end]
        end = cut


def _sse_events(raw: bytes) -> Iterator[tuple[str | None, Any]]:
    """Yield ``(event name, parsed JSON data)`` per SSE event; tolerant of cut streams."""
    for block in _blocks(raw):
        parsed = _parse_block(block)
        if parsed is not None:
            yield parsed


# The fast decoders below give exactly what the full ones above give, but parse only the
# events that can change the result. Which those are is decided by a substring test on the
# event's bytes: a JSON key or string value can only be present if its text is (providers do
# not \u-escape ASCII), so skipping events without it never changes the result. The rest of a
# stream — the text deltas — is never decoded. Unusual streams fall back to the full decoder.


def _fast_chat(raw: bytes) -> Decoded:
    usage: Usage | None = None
    model: str | None = None
    ctx: tuple[tuple[str, str], ...] = ()
    # Which fields are still undecided. Later events win, so scan from the end and stop once
    # every field is decided. A tier that does not change the price never decides the context,
    # so when every service_tier in the stream is such a tier, the context is () already.
    n_tier = raw.count(b'"service_tier"')
    need_ctx = bool(n_tier) and n_tier != raw.count(b'"service_tier":"default"')
    if need_ctx:
        plain = sum(raw.count(b'"service_tier":' + v) for v in (b'"default"', b'"auto"', b"null"))
        need_ctx = n_tier != plain
    need_usage = need_model = True
    for block in _reversed_blocks(raw):
        if not (
            (need_usage and b'"usage"' in block)
            or (need_model and b'"model"' in block)
            or (need_ctx and b'"service_tier"' in block)
        ):
            continue
        parsed = _parse_block(block)
        if parsed is None or not isinstance(parsed[1], Mapping):
            continue
        data = parsed[1]
        if need_model and (m := _str(data, "model")):
            model, need_model = m, False
        if need_ctx and (c := _openai_context(data)):
            ctx, need_ctx = c, False
        if need_usage and isinstance(u := data.get("usage"), Mapping):
            usage, need_usage = _chat_usage(u), False
        if not (need_usage or need_model or need_ctx):
            break
    return Decoded(usage, model, ctx)


_FINAL_NEEDLES = tuple(k.encode() for k in _RESPONSES_FINAL)


def _fast_responses(raw: bytes) -> Decoded:
    # The last final event decides; it names the model, so no later event can change it.
    for block in _reversed_blocks(raw):
        if not any(n in block for n in _FINAL_NEEDLES):
            continue
        parsed = _parse_block(block)
        if parsed is None or not isinstance(parsed[1], Mapping):
            continue
        event, data = parsed
        resp = data.get("response")
        if (_str(data, "type") or event) in _RESPONSES_FINAL and isinstance(resp, Mapping):
            result = _decode_responses(resp)
            if result.model is None:
                break  # later non-final events could name the model: let the full decoder say
            return result
    else:
        # No final event (a cut stream): the first event naming the model decides.
        for block in _blocks(raw):
            if b'"model"' not in block:
                continue
            parsed = _parse_block(block)
            if parsed is None or not isinstance(parsed[1], Mapping):
                continue
            resp = parsed[1].get("response")
            if isinstance(resp, Mapping) and _str(resp, "model"):
                return Decoded(None, _str(resp, "model"), _openai_context(resp))
        return Decoded(None)
    return _sse_responses(_sse_events(raw))


def _fast_anthropic(raw: bytes) -> Decoded:
    blocks = _blocks(raw)
    # message_start resets the snapshot, so only the last one and the deltas after it count.
    for i in range(len(blocks) - 1, -1, -1):
        if b"message_start" not in blocks[i]:
            continue
        start = _parse_block(blocks[i])
        if start is not None and _str(start[1], "type") == "message_start":
            break
    else:
        return Decoded(None)
    if not _str(_map(start[1], "message"), "model"):
        # An earlier message_start may name the model: let the full decoder say.
        return _sse_anthropic(_sse_events(raw))
    events = [start]
    for block in blocks[i + 1 :]:
        if b"message_delta" in block and (delta := _parse_block(block)) is not None:
            events.append(delta)
    return _sse_anthropic(iter(events))


_JSON = {
    Api.OPENAI_CHAT: _decode_chat,
    Api.OPENAI_RESPONSES: _decode_responses,
    Api.ANTHROPIC_MESSAGES: _decode_anthropic,
}
_SSE = {
    Api.OPENAI_CHAT: _sse_chat,
    Api.OPENAI_RESPONSES: _sse_responses,
    Api.ANTHROPIC_MESSAGES: _sse_anthropic,
}
_FAST_SSE = {
    Api.OPENAI_CHAT: _fast_chat,
    Api.OPENAI_RESPONSES: _fast_responses,
    Api.ANTHROPIC_MESSAGES: _fast_anthropic,
}


def decode_json(api: Api, body: bytes | Mapping[str, Any]) -> Decoded:
    """Decode the usage of a JSON (non-streaming) response body."""
    if not isinstance(body, Mapping):
        try:
            body = loads(body)
        except JSONDecodeError:
            return Decoded(None)
        if not isinstance(body, Mapping):
            return Decoded(None)
    return _JSON[api](body)


def decode_sse(api: Api, raw: bytes) -> Decoded:
    """Decode the usage of a server-sent-events stream from its raw bytes (complete or cut)."""
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return _FAST_SSE[api](raw)


def decode_sse_full(api: Api, raw: bytes) -> Decoded:
    """Decode like :func:`decode_sse`, parsing every event (the reference for the fast path)."""
    return _SSE[api](_sse_events(raw))


def decode(api: Api, body: bytes, *, stream: bool) -> Decoded:
    """Decode a response body: raw SSE bytes when ``stream``, JSON otherwise."""
    return decode_sse(api, body) if stream else decode_json(api, body)
