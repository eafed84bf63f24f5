"""OpenAI Chat Completions and Responses: validation, prompt caching, replies, SSE events.

Caching rules implemented (PROVIDERS.md §2.1):

Models before gpt-5.6 (implicit caching):
  * the whole prompt is cacheable; hits come in 128-token increments from a 1,024-token minimum
    (cached = the longest 128-multiple prefix seen before), writes are free and not reported;
  * entries are scoped by model and ``prompt_cache_key`` (and the machine that served the
    request: above 15 requests a minute per prefix and key, overflow routing, see ``_routing``);
  * retention ``in_memory`` (10 minutes since last use, at most an hour; both settings) or
    ``24h`` (``prompt_cache_retention``, deprecated but accepted; the default is ``24h``, or
    ``in_memory`` before gpt-5.5 for a Zero Data Retention organisation; gpt-5.5+ only ``24h``);
  * ``prompt_cache_options`` or a ``prompt_cache_breakpoint`` → 400 ``unsupported_parameter``.

gpt-5.6 and later (breakpoints):
  * ``prompt_cache_options.mode`` ``implicit`` (default: one implicit breakpoint at the end of
    the last message + the latest 3 explicit ones are written) or ``explicit`` (latest 4 explicit;
    none → no caching at all); ``ttl`` ``30m`` (Chat) or ``30m``/``12h`` (Responses); a
    breakpoint's own ``ttl`` overrides the request's;
  * a hit is the longest content-part/message boundary whose prefix was written before (no
    fallback to unmarked prefixes, no lookback limit, not rounded to 128), 1,024-token minimum;
  * writes beyond the hit are billed (``cache_write_tokens``); each written segment is billed at
    the longest TTL among the written breakpoints at or after it (Responses split the writes
    into ``ttl_30m_tokens``/``ttl_12h_tokens``);
  * Responses ``prompt_cache_options.prewarm`` writes the cache and generates nothing.

Usage: ``prompt_tokens``/``input_tokens`` include cached and written tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from promptcache.testing._cache import TTL_SECONDS, Fingerprint, PrefixStore
from promptcache.testing._models import (
    OPENAI_INCREMENT,
    OPENAI_MINIMUM,
    openai_default_retention,
    openai_has_explicit_caching,
)
from promptcache.testing._outcome import Outcome, sse
from promptcache.testing._reply import (
    DEFAULT_OUTPUT_TOKENS,
    ApiError,
    chunk_text,
    fresh_id,
    json_text,
    minimal_instance,
    words,
)
from promptcache.testing._routing import ROUTING_PREFIX_BYTES, Router
from promptcache.testing._tokens import (
    BYTES_PER_TOKEN,
    Rendering,
    canonical,
    header,
    image_bytes,
    tokens_for_bytes,
)
from promptcache.testing._types import Billing, OpenAISettings

__all__ = ["chat_completions", "input_tokens", "responses"]

MAX_WRITES = 4
MAX_STORED_RESPONSES = 512
SYSTEM_FINGERPRINT = "fp_emulator"
_REASONING_TOKENS = {"none": 0, "minimal": 0, "low": 8, "medium": 16, "high": 32, "xhigh": 64}
_IMAGE_PARTS = ("image_url", "input_image")
_TEXT_PARTS = ("text", "input_text", "output_text", "refusal")
_DEFAULTS = OpenAISettings()


def _bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, type="invalid_request_error", param=param, code=code)


class _Prompt:
    """A rendered OpenAI prompt: boundaries of parts/messages and explicit breakpoints."""

    def __init__(self, explicit_rules: bool) -> None:
        # Before gpt-5.6 hits come in 128-token steps: record a digest every 512 bytes.
        chunk = None if explicit_rules else OPENAI_INCREMENT * BYTES_PER_TOKEN
        self.r = Rendering(chunk_bytes=chunk, head_bytes=ROUTING_PREFIX_BYTES)
        self.fp = Fingerprint(model="")
        self.message_ends: list[int] = []
        self.breakpoints: list[tuple[int, str | None, str]] = []  # (block, ttl, param path)
        self.total = 0

    def part(self, part: Any, path: str) -> None:
        if isinstance(part, str):
            self.r.add_text(part)
            self.r.mark()
            return
        if not isinstance(part, dict):
            raise _bad(f"Invalid type for '{path}': expected an object.", path, "invalid_type")
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            value = part.get("text", part.get("refusal"))
            if not isinstance(value, str):
                raise _bad(f"Missing required parameter: '{path}.text'.", f"{path}.text")
            self.r.add_text(value)
        elif kind in _IMAGE_PARTS:
            self.r.add(image_bytes(part))
        else:
            self.r.add(canonical(part))
        block = self.r.mark()
        bp = part.get("prompt_cache_breakpoint")
        if bp is not None:
            if not isinstance(bp, dict) or bp.get("mode") != "explicit":
                raise _bad(
                    f"Invalid value for '{path}.prompt_cache_breakpoint.mode': "
                    "expected 'explicit'.",
                    f"{path}.prompt_cache_breakpoint.mode",
                    "invalid_value",
                )
            ttl = bp.get("ttl")
            if ttl is not None and ttl not in ("30m", "12h"):
                raise _bad(
                    f"Invalid value for '{path}.prompt_cache_breakpoint.ttl': "
                    "supported values are '30m' and '12h'.",
                    f"{path}.prompt_cache_breakpoint.ttl",
                    "invalid_value",
                )
            self.breakpoints.append((block, ttl, f"{path}.prompt_cache_breakpoint"))

    def message(self, role: str, content: Any, path: str, extra: Any = None) -> None:
        self.r.add(header(role))
        if isinstance(content, list):
            for j, part in enumerate(content):
                self.part(part, f"{path}.content[{j}]")
        elif isinstance(content, str):
            self.r.add_text(content)
        elif content is not None:
            self.r.add(canonical(content))
        if extra:
            self.r.add(canonical(extra))
        self.message_ends.append(self.r.mark())

    def item(self, item: Any) -> None:
        """Render a non-message Responses input item (function call, output, reasoning, …)."""
        self.r.add(header(str(item.get("type", "item"))))
        self.r.add(canonical(item))
        self.message_ends.append(self.r.mark())


def _check_model(body: Any, required: tuple[str, ...]) -> str:
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("you must provide a model parameter", "model", "missing_required_parameter")
    for name in required:
        if name not in body or body[name] is None:
            raise _bad(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
    return model


def _legacy_cache(
    p: _Prompt, store: PrefixStore, scope: tuple[str, ...], retention: str, now: float
) -> int:
    """Implicit caching before gpt-5.6; returns cached tokens (a multiple of 128)."""
    minimum_offset = OPENAI_MINIMUM * BYTES_PER_TOKEN
    chunks = [c for c in p.r.chunks if c.offset >= minimum_offset]
    cached = 0
    for c in reversed(chunks):
        entry = store.get(scope, c.digest, now)
        if entry is not None:
            cached = c.tokens
            break
    # Every 128-token prefix of this prompt is now (re)cached, free of charge.
    store.put_many(scope, [(c.digest, c.tokens) for c in chunks], retention, now)
    return cached


def _explicit_cache(
    p: _Prompt,
    store: PrefixStore,
    scope: tuple[str, ...],
    mode: str,
    default_ttl: str,
    now: float,
) -> tuple[int, dict[str, int]]:
    """gpt-5.6+ breakpoint caching; returns (cached tokens, writes by TTL)."""
    blocks = p.r.blocks
    explicit = [(b, ttl or default_ttl) for b, ttl, _ in p.breakpoints]
    if mode == "explicit":
        if not explicit:
            return 0, {}
        chosen = explicit[-MAX_WRITES:]
    else:
        chosen = explicit[-(MAX_WRITES - 1) :]
        if p.message_ends:
            chosen.append((p.message_ends[-1], default_ttl))
    writes: dict[int, str] = {}
    for b, ttl in chosen:
        old = writes.get(b)
        writes[b] = ttl if old is None or TTL_SECONDS[ttl] > TTL_SECONDS[old] else old
    hit_block, cached = -1, 0
    for k in range(len(blocks) - 1, -1, -1):
        if blocks[k].tokens < OPENAI_MINIMUM:
            break
        entry = store.get(scope, blocks[k].digest, now)
        if entry is not None:
            store.touch(entry, now)
            hit_block, cached = k, blocks[k].tokens
            break
    by_ttl: dict[str, int] = {}
    ordered = sorted(b for b in writes if blocks[b].tokens >= OPENAI_MINIMUM)
    for b in ordered:
        store.put(scope, blocks[b].digest, blocks[b].tokens, writes[b], now)
    billed = [b for b in ordered if b > hit_block]
    prev = cached
    for i, b in enumerate(billed):
        # A segment must live as long as the longest-lived breakpoint that includes it.
        ttl = max((writes[x] for x in billed[i:]), key=lambda t: TTL_SECONDS[t])
        size = blocks[b].tokens - prev
        if size > 0:
            by_ttl[ttl] = by_ttl.get(ttl, 0) + size
        prev = max(prev, blocks[b].tokens)
    return cached, by_ttl


def _cache_settings(
    body: dict[str, Any], model: str, p: _Prompt, *, responses: bool, zdr: bool = False
) -> tuple[bool, str, str]:
    """Validate caching parameters; return (explicit rules?, mode, ttl or retention)."""
    opts = body.get("prompt_cache_options")
    retention = body.get("prompt_cache_retention")
    if retention is not None and retention not in ("in_memory", "24h"):
        raise _bad(
            "Invalid value for 'prompt_cache_retention': supported values are 'in_memory' "
            "and '24h'.",
            "prompt_cache_retention",
            "invalid_value",
        )
    key = body.get("prompt_cache_key")
    if key is not None and not isinstance(key, str):
        raise _bad("Invalid type for 'prompt_cache_key': expected a string.", "prompt_cache_key")
    if not openai_has_explicit_caching(model):
        if opts is not None:
            raise _bad(
                f"Unsupported parameter: 'prompt_cache_options' is not supported with the "
                f"model '{model}'.",
                "prompt_cache_options",
                "unsupported_parameter",
            )
        if p.breakpoints:
            param = p.breakpoints[0][2]
            raise _bad(
                f"Unsupported parameter: '{param}' is not supported with the model '{model}'.",
                param,
                "unsupported_parameter",
            )
        if retention == "in_memory" and openai_default_retention(model, zdr=True) == "24h":
            retention = "24h"  # gpt-5.5 and later: "only 24h is supported"
        return False, "implicit", str(retention or openai_default_retention(model, zdr))
    opts = opts or {}
    if not isinstance(opts, dict):
        raise _bad("Invalid type for 'prompt_cache_options': expected an object.")
    mode = opts.get("mode", "implicit")
    if mode not in ("implicit", "explicit"):
        raise _bad(
            "Invalid value for 'prompt_cache_options.mode': supported values are 'implicit' "
            "and 'explicit'.",
            "prompt_cache_options.mode",
            "invalid_value",
        )
    allowed = ("30m", "12h") if responses else ("30m",)
    ttl = opts.get("ttl", "30m")
    if ttl not in allowed:
        raise _bad(
            f"Invalid value for 'prompt_cache_options.ttl': supported values are "
            f"{', '.join(repr(a) for a in allowed)}.",
            "prompt_cache_options.ttl",
            "invalid_value",
        )
    return True, str(mode), str(ttl)


def _apply_cache(
    body: dict[str, Any],
    model: str,
    p: _Prompt,
    store: PrefixStore,
    now: float,
    explicit: bool,
    mode: str,
    ttl: str,
    router: Router | None = None,
) -> tuple[int, dict[str, int], int]:
    """Apply the cache rules; return (cached tokens, writes by TTL, serving machine)."""
    key = str(body.get("prompt_cache_key") or "")
    machine = 0 if router is None else router.machine(model, key, p.r.head_digest(), now)
    # Machine 0 keeps the historical scope: each machine has a cache of its own.
    scope: tuple[str, ...] = ("openai", model, key) + ((str(machine),) if machine else ())
    if explicit:
        return (*_explicit_cache(p, store, scope, mode, ttl, now), machine)
    return _legacy_cache(p, store, scope, ttl, now), {}, machine


def _output_budget(limit: Any, effort: Any) -> tuple[int, int, bool]:
    """(visible tokens, reasoning tokens, truncated?) for a token limit and reasoning effort."""
    reasoning = _REASONING_TOKENS.get(str(effort), 0) if effort is not None else 0
    if isinstance(limit, int) and not isinstance(limit, bool):
        reasoning = min(reasoning, limit)
        room = limit - reasoning
        return min(DEFAULT_OUTPUT_TOKENS, room), reasoning, room < DEFAULT_OUTPUT_TOKENS
    return DEFAULT_OUTPUT_TOKENS, reasoning, False


def _last_user_text(entries: list[tuple[Any, Any]]) -> str | None:
    if not entries or entries[-1][0] != "user":
        return None
    content = entries[-1][1]
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(c.get("text", "")) for c in content if isinstance(c, dict) and "text" in c
        )
    return None


def _pick_tool(
    tools: list[dict[str, Any]], choice: Any, last_user: str | None, name_of: Callable[[Any], str]
) -> dict[str, Any] | None:
    if not tools or choice == "none":
        return None
    if choice == "required":
        return tools[0]
    if isinstance(choice, dict):
        wanted = choice.get("name") or (choice.get("function") or {}).get("name")
        return next((t for t in tools if name_of(t) == wanted), None)
    if last_user:
        return next((t for t in tools if name_of(t) and name_of(t) in last_user), None)
    return None


def _usage_details(cached: int, by_ttl: dict[str, int], explicit: bool) -> dict[str, Any]:
    details: dict[str, Any] = {"cached_tokens": cached, "audio_tokens": 0}
    if explicit:
        details["cache_write_tokens"] = sum(by_ttl.values())
    return details


# --------------------------------------------------------------------------- chat completions


def _chat_prompt(body: dict[str, Any], explicit: bool) -> _Prompt:
    p = _Prompt(explicit)
    p.r.context("reasoning_effort", body.get("reasoning_effort"))
    for tool in body.get("tools") or []:
        p.r.add(canonical(tool))
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") != "text":
        p.r.add(canonical(fmt))
    msgs = body["messages"]
    if not isinstance(msgs, list) or not msgs:
        raise _bad("Invalid 'messages': expected a non-empty array.", "messages", "invalid_value")
    for i, msg in enumerate(msgs):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise _bad(f"Missing required parameter: 'messages[{i}].role'.", f"messages[{i}].role")
        extra = msg.get("tool_calls") or msg.get("tool_call_id")
        p.message(msg["role"], msg.get("content"), f"messages[{i}]", extra)
    p.total = p.r.finish()
    return p


def chat_completions(
    body: Any, store: PrefixStore, now: float, router: Router | None = None
) -> Outcome:
    """``POST /v1/chat/completions``; ``router`` models overflow routing (none: off)."""
    model = _check_model(body, ("messages",))
    explicit_rules = openai_has_explicit_caching(model)
    p = _chat_prompt(body, explicit_rules)
    settings = router.settings if router is not None else _DEFAULTS
    explicit, mode, ttl = _cache_settings(body, model, p, responses=False, zdr=settings.zdr)
    stream = bool(body.get("stream"))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    cached, by_ttl, machine = _apply_cache(body, model, p, store, now, explicit, mode, ttl, router)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    visible, reasoning, truncated = _output_budget(limit, body.get("reasoning_effort"))
    seed = p.r.digest()

    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    entries = [(m.get("role"), m.get("content")) for m in body["messages"]]
    tool = _pick_tool(
        tools,
        body.get("tool_choice"),
        _last_user_text(entries),
        lambda t: str((t.get("function") or {}).get("name", "")),
    )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "annotations": [],
    }
    if tool is not None:
        fn = tool.get("function") or {}
        args = json_text(minimal_instance(fn.get("parameters") or {"type": "object"}))
        message["tool_calls"] = [
            {
                "id": fresh_id("call_"),
                "type": "function",
                "function": {"name": fn.get("name", ""), "arguments": args},
            }
        ]
        output_tokens = 8 + tokens_for_bytes(len(args.encode()))
        finish = "tool_calls"
    else:
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
            text = json_text(minimal_instance(schema))
            output_tokens, finish = tokens_for_bytes(len(text.encode())), "stop"
        elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
            text = json_text({"answer": " ".join(words(seed, max(visible, 1)))})
            output_tokens, finish = tokens_for_bytes(len(text.encode())), "stop"
        else:
            text = " ".join(words(seed, max(visible, 0)))
            output_tokens, finish = max(visible, 0), "length" if truncated else "stop"
        message["content"] = text
    output_tokens += reasoning
    written = sum(by_ttl.values())
    usage = {
        "prompt_tokens": p.total,
        "completion_tokens": output_tokens,
        "total_tokens": p.total + output_tokens,
        "prompt_tokens_details": _usage_details(cached, by_ttl, explicit),
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    cid = fresh_id("chatcmpl-", 29)
    out = Outcome(
        api="openai.chat",
        model=model,
        stream=stream,
        billing=Billing(
            input_tokens=p.total,
            cache_read_tokens=cached,
            cache_write_by_ttl=by_ttl if written else {},
            output_tokens=output_tokens,
            reasoning_tokens=reasoning,
        ),
        response_id=cid,
        prompt_cache_key=body.get("prompt_cache_key"),
        machine=machine,
    )
    base = {
        "id": cid,
        "created": int(now),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if not stream:
        out.body = dict(
            base,
            object="chat.completion",
            choices=[{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            usage=usage,
        )
        return out

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        data: dict[str, Any] = dict(
            base,
            object="chat.completion.chunk",
            choices=[
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        )
        if include_usage:
            data["usage"] = None
        return sse(data)

    out.add_frame(chunk({"role": "assistant", "content": "", "refusal": None}))
    if tool is not None:
        call = message["tool_calls"][0]
        head = {
            "index": 0,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        out.add_frame(chunk({"tool_calls": [head]}))
        for piece in chunk_text(call["function"]["arguments"]):
            out.add_frame(
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                delta=True,
            )
    else:
        for piece in _word_chunks(message["content"]):
            out.add_frame(chunk({"content": piece}), delta=True)
    out.add_frame(chunk({}, finish))
    if include_usage:
        final = dict(base, object="chat.completion.chunk", choices=[], usage=usage)
        out.add_frame(sse(final))
    out.add_frame(b"data: [DONE]\n\n")
    return out


def _word_chunks(text: str) -> list[str]:
    if " " not in text:
        return chunk_text(text)
    parts = text.split(" ")
    return [parts[0]] + [" " + p for p in parts[1:]]


# --------------------------------------------------------------------------- responses


def _response_items(body: dict[str, Any]) -> list[Any]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if isinstance(raw, list):
        return list(raw)
    raise _bad("Invalid type for 'input': expected a string or an array.", "input", "invalid_type")


def _responses_prompt(body: dict[str, Any], items: list[Any], explicit: bool) -> _Prompt:
    p = _Prompt(explicit)
    fp = p.fp
    fp.model, fp.key = str(body.get("model")), str(body.get("prompt_cache_key") or "")

    def level(name: str) -> None:
        fp.levels[name] = (p.r.digest(), p.r.tokens)

    reasoning = body.get("reasoning")
    p.r.context("reasoning", reasoning.get("effort") if isinstance(reasoning, dict) else None)
    level("reasoning")
    for tool in body.get("tools") or []:
        p.r.add(canonical(tool))
    level("tools")
    text_cfg = body.get("text")
    fmt = text_cfg.get("format") if isinstance(text_cfg, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") != "text":
        p.r.add(canonical(fmt))
    level("format")
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        p.message("developer", instructions, "instructions")
    level("instructions")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bad(f"Invalid type for 'input[{i}]': expected an object.", f"input[{i}]")
        if "role" in item and item.get("type", "message") == "message":
            p.message(str(item["role"]), item.get("content"), f"input[{i}]")
        else:
            p.item(item)
        fp.items.append((p.r.digest(), p.r.tokens))
    fp.prefix_tokens = p.r.tokens
    p.total = p.r.finish()
    return p


def input_tokens(body: Any) -> Outcome:
    """``POST /v1/responses/input_tokens``: count only."""
    model = _check_model(body, ())
    p = _responses_prompt(body, _response_items(body) if "input" in body else [], True)
    out = Outcome(api="openai.input_tokens", model=model, stream=False)
    out.body = {"object": "response.input_tokens", "input_tokens": p.total}
    return out


_MISS_REASONS = {
    "model": "model_changed",
    "key": "prompt_cache_key_changed",
    "reasoning": "reasoning_effort_changed",
    "tools": "tools_changed",
    "format": "text_format_changed",
    "instructions": "input_changed",
    "items": "input_changed",
}


def _diagnose(fp: Fingerprint, comparison_id: str, seen: dict[str, Fingerprint]) -> Any:
    prev = seen.get(comparison_id)
    if prev is None:
        return {"type": "comparison_response_not_found"}
    kind, common = fp.divergence(prev, ("reasoning", "tools", "format", "instructions"))
    if kind is None:
        return {"type": "cache_hit"}
    return {
        "type": "cache_miss",
        "reason": _MISS_REASONS[kind],
        "cache_missed_tokens": max(0, prev.prefix_tokens - common),
        "comparison_reusable_tokens": prev.prefix_tokens,
    }


def responses(
    body: Any,
    store: PrefixStore,
    now: float,
    history: dict[str, list[Any]],
    seen: dict[str, Fingerprint] | None = None,
    router: Router | None = None,
) -> Outcome:
    """``POST /v1/responses``.

    ``history`` maps stored response ids to their full item lists (``previous_response_id``);
    ``seen`` maps response ids to prompt fingerprints (``comparison_response_id`` diagnostics).
    """
    model = _check_model(body, ("input",))
    items = _response_items(body)
    prev_id = body.get("previous_response_id")
    if prev_id is not None:
        if prev_id not in history:
            raise _bad(
                f"Previous response with id '{prev_id}' not found.",
                "previous_response_id",
                "previous_response_not_found",
            )
        items = history[prev_id] + items
    explicit_rules = openai_has_explicit_caching(model)
    p = _responses_prompt(body, items, explicit_rules)
    settings = router.settings if router is not None else _DEFAULTS
    explicit, mode, ttl = _cache_settings(body, model, p, responses=True, zdr=settings.zdr)
    opts = body.get("prompt_cache_options") or {}
    prewarm = bool(opts.get("prewarm")) if explicit else False
    cached, by_ttl, machine = _apply_cache(body, model, p, store, now, explicit, mode, ttl, router)
    reasoning_cfg = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
    assert isinstance(reasoning_cfg, dict)
    effort = reasoning_cfg.get("effort")
    visible, reasoning, truncated = _output_budget(body.get("max_output_tokens"), effort)
    seed = p.r.digest()
    rid = fresh_id("resp_", 40)
    output: list[dict[str, Any]] = []
    output_tokens = 0
    if not prewarm:
        if reasoning:
            output.append({"type": "reasoning", "id": fresh_id("rs_", 40), "summary": []})
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        entries = [(i.get("role"), i.get("content")) for i in items if isinstance(i, dict)]
        tool = _pick_tool(
            tools,
            body.get("tool_choice"),
            _last_user_text(entries),
            lambda t: str(t.get("name", "")),
        )
        if tool is not None:
            args = json_text(minimal_instance(tool.get("parameters") or {"type": "object"}))
            output.append(
                {
                    "type": "function_call",
                    "id": fresh_id("fc_", 40),
                    "call_id": fresh_id("call_"),
                    "name": tool.get("name", ""),
                    "arguments": args,
                    "status": "completed",
                }
            )
            output_tokens = 8 + tokens_for_bytes(len(args.encode()))
            truncated = False
        else:
            fmt = ((body.get("text") or {}).get("format")) or {}
            if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
                text = json_text(minimal_instance(fmt.get("schema") or {}))
                output_tokens, truncated = tokens_for_bytes(len(text.encode())), False
            else:
                text = " ".join(words(seed, max(visible, 0)))
                output_tokens = max(visible, 0)
            output.append(
                {
                    "type": "message",
                    "id": fresh_id("msg_", 40),
                    "status": "incomplete" if truncated else "completed",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                    ],
                }
            )
        output_tokens += reasoning
    else:
        reasoning, truncated = 0, False
    written = sum(by_ttl.values())
    details: dict[str, Any] = {"cached_tokens": cached, "cache_write_tokens": written}
    if explicit:
        details["cache_write_tokens_details"] = {
            "ttl_30m_tokens": by_ttl.get("30m", 0),
            "ttl_12h_tokens": by_ttl.get("12h", 0),
        }
    usage = {
        "input_tokens": p.total,
        "input_tokens_details": details,
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": p.total + output_tokens,
    }
    status = "incomplete" if truncated else "completed"
    response: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": int(now),
        "completed_at": int(now),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": prev_id,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "prompt_cache_retention": body.get("prompt_cache_retention"),
        "reasoning": {"effort": effort, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
    }
    if explicit:
        response["prompt_cache_options"] = {"mode": mode, "ttl": ttl}
        comparison = opts.get("comparison_response_id")
        if comparison:
            response["prompt_cache_diagnostics"] = _diagnose(p.fp, str(comparison), seen or {})
    if seen is not None:
        seen[rid] = p.fp
    if body.get("store", True) is not False:
        history[rid] = items + output
        while len(history) > MAX_STORED_RESPONSES:  # bound memory on long benchmark runs
            del history[next(iter(history))]
    out = Outcome(
        api="openai.responses",
        model=model,
        stream=bool(body.get("stream")),
        billing=Billing(
            input_tokens=p.total,
            cache_read_tokens=cached,
            cache_write_by_ttl=by_ttl if written else {},
            output_tokens=output_tokens,
            reasoning_tokens=reasoning,
        ),
        response_id=rid,
        prompt_cache_key=body.get("prompt_cache_key"),
        machine=machine,
    )
    if out.stream:
        _response_events(out, response)
    else:
        out.body = response
    return out


def _response_events(out: Outcome, response: dict[str, Any]) -> None:
    seq = 0

    def emit(kind: str, is_delta: bool = False, **fields: Any) -> None:
        nonlocal seq
        out.add_frame(sse(dict(fields, type=kind, sequence_number=seq), kind), delta=is_delta)
        seq += 1

    pending = dict(
        response,
        status="in_progress",
        output=[],
        usage=None,
        completed_at=None,
        incomplete_details=None,
    )
    emit("response.created", response=pending)
    emit("response.in_progress", response=pending)
    for index, item in enumerate(response["output"]):
        kind = item["type"]
        if kind == "message":
            emit(
                "response.output_item.added",
                output_index=index,
                item=dict(item, status="in_progress", content=[]),
            )
            part = item["content"][0]
            emit(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=dict(part, text=""),
            )
            for piece in _word_chunks(part["text"]):
                emit(
                    "response.output_text.delta",
                    is_delta=True,
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    logprobs=[],
                    **{"delta": piece},
                )
            emit(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=part["text"],
                logprobs=[],
            )
            emit(
                "response.content_part.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            )
        elif kind == "function_call":
            emit(
                "response.output_item.added",
                output_index=index,
                item=dict(item, status="in_progress", arguments=""),
            )
            for piece in chunk_text(item["arguments"]):
                emit(
                    "response.function_call_arguments.delta",
                    is_delta=True,
                    item_id=item["id"],
                    output_index=index,
                    **{"delta": piece},
                )
            emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=item["arguments"],
                name=item["name"],
            )
        else:
            emit("response.output_item.added", output_index=index, item=item)
        emit("response.output_item.done", output_index=index, item=item)
    final = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    emit(final, response=response)
