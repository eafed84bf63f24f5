"""Anthropic Messages: validation, prompt caching rules, replies and SSE events.

Caching rules implemented (PROVIDERS.md §3.1):

* prefix order tools → system → messages; a change at one level invalidates it and everything
  after (the prefix digest chains through all earlier bytes); ``tool_choice`` and ``thinking``
  settings are mixed into the digest at the start of the messages level, so changing them
  invalidates the messages level only;
* explicit ``cache_control`` on tools, system blocks and message blocks, plus the top-level
  automatic form (a breakpoint on the last block that can carry one); at most 4 → 400;
  ``cache_control`` on ``thinking``/``redacted_thinking`` or empty text blocks → 400;
* ``ttl`` ``5m`` (default) or ``1h``; a ``1h`` breakpoint after a ``5m`` one → 400;
* per-model minimum cacheable prefix; shorter prefixes are silently not cached;
* each breakpoint looks for a cached prefix at its own block and the 19 blocks before it (the
  20-block lookback); the longest hit is read, its lifetime refreshed;
* billing positions A (hit) / B (last 1h breakpoint written) / C (last breakpoint written):
  read A, 1h write B−A, 5m write C−B (or C−A without 1h); ``input_tokens`` is what remains;
* ``max_tokens=0`` pre-warms: the cache is written, no content is generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promptcache.testing._cache import Fingerprint, PrefixStore
from promptcache.testing._models import anthropic_minimum
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
from promptcache.testing._tokens import (
    Rendering,
    canonical,
    header,
    image_bytes,
    tokens_for_bytes,
)
from promptcache.testing._types import Billing

__all__ = ["count_tokens", "messages"]

MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20
_NO_CACHE_CONTROL = ("thinking", "redacted_thinking")
_IMAGE_TYPES = ("image",)


def _bad(message: str) -> ApiError:
    return ApiError(400, message, type="invalid_request_error")


class _Breakpoint:
    __slots__ = ("block", "path", "ttl")

    def __init__(self, block: int, ttl: str, path: str) -> None:
        self.block = block
        self.ttl = ttl
        self.path = path


def _cache_control(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") != "ephemeral":
        raise _bad(f"{path}.cache_control.type: Input should be 'ephemeral'")
    ttl = value.get("ttl", "5m")
    if ttl not in ("5m", "1h"):
        raise _bad(f"{path}.cache_control.ttl: Input should be '5m' or '1h'")
    return str(ttl)


def _render_block(r: Rendering, block: Any, path: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise _bad(f"{path}: Input should be a valid content block")
    kind = block["type"]
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise _bad(f"{path}.text: Field required")
        r.add_text(text)
    elif kind in ("thinking",):
        r.add_text(str(block.get("thinking", "")))
    elif kind in _IMAGE_TYPES:
        r.add(image_bytes(block))
    elif kind == "tool_result":
        r.add(b"<tool_result:" + str(block.get("tool_use_id", "")).encode() + b">")
        content = block.get("content")
        if isinstance(content, str):
            r.add_text(content)
        elif isinstance(content, list):
            for j, sub in enumerate(content):
                _render_block(r, sub, f"{path}.content.{j}")
    else:
        r.add(canonical(block))


@dataclass
class _Rendered:
    r: Rendering
    breakpoints: list[_Breakpoint]
    total: int
    fingerprint: Fingerprint


def _prompt(body: dict[str, Any]) -> _Rendered:
    """Render the request into bytes, breakpoints and a per-level fingerprint."""
    r = Rendering()
    bps: list[_Breakpoint] = []
    can_carry: list[bool] = []
    fp = Fingerprint(model=str(body.get("model", "")))

    def block_done(cc: Any, path: str, carry: bool = True) -> None:
        idx = r.mark()
        can_carry.append(carry)
        ttl = _cache_control(cc, path)
        if ttl is not None:
            bps.append(_Breakpoint(idx, ttl, path))

    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise _bad(f"tools.{i}: Input should be a valid dictionary")
            r.add(canonical(tool))
            block_done(tool.get("cache_control"), f"tools.{i}")

    fp.levels["tools"] = (r.digest(), r.tokens)
    system = body.get("system")
    if isinstance(system, str):
        if system:
            r.add(header("system"))
            r.add_text(system)
            block_done(None, "system")
    elif isinstance(system, list):
        if system:
            r.add(header("system"))
        for j, block in enumerate(system):
            path = f"system.{j}"
            if not isinstance(block, dict) or block.get("type") != "text":
                raise _bad(f"{path}.type: Input should be 'text'")
            _render_block(r, block, path)
            empty = not block.get("text")
            if empty and block.get("cache_control") is not None:
                raise _bad(f"{path}: cache_control cannot be set for empty text blocks")
            block_done(block.get("cache_control"), path, carry=not empty)
    elif system is not None:
        raise _bad("system: Input should be a valid string or list")

    fp.levels["system"] = (r.digest(), r.tokens)
    # Changing these invalidates the messages level only (PROVIDERS.md §3.1 invalidation table).
    r.context("tool_choice", body.get("tool_choice"))
    r.context("thinking", body.get("thinking"))
    fp.levels["settings"] = (r.digest(), r.tokens)

    msgs = body["messages"]
    for i, msg in enumerate(msgs):
        if not isinstance(msg, dict):
            raise _bad(f"messages.{i}: Input should be a valid dictionary")
        role = msg.get("role")
        if role not in ("user", "assistant"):
            raise _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        r.add(header(str(role)))
        content = msg.get("content")
        if isinstance(content, str):
            r.add_text(content)
            block_done(None, f"messages.{i}.content", carry=bool(content))
        elif isinstance(content, list):
            for j, block in enumerate(content):
                path = f"messages.{i}.content.{j}"
                _render_block(r, block, path)
                kind = block.get("type")
                cc = block.get("cache_control")
                carry = kind not in _NO_CACHE_CONTROL and not (kind == "text" and not block["text"])
                if cc is not None and kind in _NO_CACHE_CONTROL:
                    raise _bad(f"{path}.{kind}.cache_control: Extra inputs are not permitted")
                if cc is not None and not carry:
                    raise _bad(f"{path}: cache_control cannot be set for empty text blocks")
                block_done(cc, path, carry=carry)
        else:
            raise _bad(f"messages.{i}.content: Field required")
        fp.items.append((r.digest(), r.tokens))

    auto = body.get("cache_control")
    if auto is not None:
        ttl = _cache_control(auto, "cache_control")
        assert ttl is not None
        last = max((k for k, ok in enumerate(can_carry) if ok), default=None)
        if last is not None and not any(bp.block == last for bp in bps):
            bps.append(_Breakpoint(last, ttl, "cache_control"))
    fp.prefix_tokens = r.tokens
    total = r.finish()
    return _Rendered(r, bps, total, fp)


def _validate(body: Any, *, need_max_tokens: bool) -> None:
    if not isinstance(body, dict):
        raise _bad("Input should be a valid dictionary")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _bad("model: Field required")
    if not isinstance(body.get("messages"), list):
        raise _bad("messages: Field required")
    if not body["messages"]:
        raise _bad("messages: at least one message is required")
    if need_max_tokens:
        mt = body.get("max_tokens")
        if not isinstance(mt, int) or isinstance(mt, bool):
            raise _bad("max_tokens: Field required")
        if mt < 0:
            raise _bad("max_tokens: Input should be greater than or equal to 0")


def _check_breakpoints(bps: list[_Breakpoint]) -> None:
    if len(bps) > MAX_BREAKPOINTS:
        raise _bad(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(bps)}."
        )
    seen_5m = False
    for bp in sorted(bps, key=lambda b: b.block):
        if bp.ttl == "5m":
            seen_5m = True
        elif seen_5m:
            raise _bad(
                "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control "
                "block. Note that blocks are processed in the following order: `tools`, "
                "`system`, `messages`."
            )


def _apply_cache(
    store: PrefixStore, model: str, r: Rendering, bps: list[_Breakpoint], now: float
) -> tuple[int, int, int]:
    """Look up and write the cache; return (read, write_5m, write_1h) tokens."""
    scope = ("anthropic", model)
    minimum = anthropic_minimum(model)
    bps = sorted(bps, key=lambda b: b.block)
    blocks = r.blocks
    hit_block = -1
    hit_tokens = 0
    for bp in bps:
        for k in range(bp.block, max(-1, bp.block - LOOKBACK_BLOCKS), -1):
            if k <= hit_block or blocks[k].tokens < minimum:
                break
            entry = store.get(scope, blocks[k].digest, now)
            if entry is not None:
                store.touch(entry, now)
                hit_block, hit_tokens = k, blocks[k].tokens
                break
    b_tokens: int | None = None
    c_tokens: int | None = None
    for bp in bps:
        bound = blocks[bp.block]
        if bound.tokens < minimum:
            continue  # below the model minimum: silently not cached
        store.put(scope, bound.digest, bound.tokens, bp.ttl, now)
        if bp.block <= hit_block:
            continue  # already inside the prefix read from cache: no write billed
        c_tokens = bound.tokens
        if bp.ttl == "1h":
            b_tokens = bound.tokens
    if c_tokens is None:
        return hit_tokens, 0, 0
    write_1h = (b_tokens - hit_tokens) if b_tokens is not None else 0
    write_5m = c_tokens - (b_tokens if b_tokens is not None else hit_tokens)
    return hit_tokens, write_5m, write_1h


def count_tokens(body: Any) -> Outcome:
    """``POST /v1/messages/count_tokens``: total input tokens, no caching, nothing billed."""
    _validate(body, need_max_tokens=False)
    rendered = _prompt(body)
    _check_breakpoints(rendered.breakpoints)
    out = Outcome(api="anthropic.count_tokens", model=body["model"], stream=False)
    out.body = {"input_tokens": rendered.total}
    return out


def _last_user_text(msgs: list[Any]) -> str | None:
    last = msgs[-1]
    if last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content
    texts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return " ".join(texts) if texts else None


def _chosen_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t]
    if not tools:
        return None
    choice = body.get("tool_choice") or {"type": "auto"}
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "none":
        return None
    if kind == "any":
        return tools[0]
    if kind == "tool":
        return next((t for t in tools if t["name"] == choice.get("name")), None)
    text = _last_user_text(body["messages"])
    if text:
        return next((t for t in tools if str(t["name"]) in text), None)
    return None


def _content(body: dict[str, Any], seed: bytes) -> tuple[list[dict[str, Any]], int, str, int]:
    """Build the reply content; return (blocks, output_tokens, stop_reason, thinking_tokens)."""
    max_tokens: int = body["max_tokens"]
    if max_tokens == 0:
        return [], 0, "max_tokens", 0
    blocks: list[dict[str, Any]] = []
    used = 0
    thinking_tokens = 0
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        thought = words(seed + b"think", min(8, max_tokens))
        thinking_tokens = len(thought)
        used += thinking_tokens
        sig = "sig_" + seed.hex()[:32]
        blocks.append({"type": "thinking", "thinking": " ".join(thought), "signature": sig})
    tool = _chosen_tool(body)
    if tool is not None:
        args = minimal_instance(tool.get("input_schema") or {"type": "object"})
        args = args if isinstance(args, dict) else {}
        blocks.append(
            {"type": "tool_use", "id": fresh_id("toolu_"), "name": tool["name"], "input": args}
        )
        return blocks, used + 8 + tokens_for_bytes(len(json_text(args))), "tool_use", 0
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        text = json_text(minimal_instance(fmt.get("schema") or {}))
        blocks.append({"type": "text", "text": text})
        return blocks, used + tokens_for_bytes(len(text.encode())), "end_turn", thinking_tokens
    room = max_tokens - used
    n = min(DEFAULT_OUTPUT_TOKENS, room)
    if n > 0:
        blocks.append({"type": "text", "text": " ".join(words(seed, n))})
    stop = "max_tokens" if room < DEFAULT_OUTPUT_TOKENS else "end_turn"
    return blocks, used + max(n, 0), stop, thinking_tokens


def _diagnose(body: dict[str, Any], fp: Fingerprint, seen: dict[str, Fingerprint]) -> Any:
    """``diagnostics.cache_miss_reason`` against ``diagnostics.previous_message_id``."""
    prev_id = (body.get("diagnostics") or {}).get("previous_message_id")
    if prev_id is None:
        return {"cache_miss_reason": None}
    prev = seen.get(prev_id)
    if prev is None:
        return {"cache_miss_reason": {"type": "previous_message_not_found"}}
    kind, common = fp.divergence(prev, ("tools", "system", "settings"))
    if kind is None:
        return {"cache_miss_reason": None}
    if kind == "settings":  # tool_choice / thinking differences are reported as unavailable
        return {"cache_miss_reason": {"type": "unavailable"}}
    reason = {
        "model": "model_changed",
        "tools": "tools_changed",
        "system": "system_changed",
        "items": "messages_changed",
    }[kind]
    missed = max(0, prev.prefix_tokens - common)
    return {"cache_miss_reason": {"type": reason, "cache_missed_input_tokens": missed}}


def messages(
    body: Any, store: PrefixStore, now: float, seen: dict[str, Fingerprint] | None = None
) -> Outcome:
    """``POST /v1/messages``: apply the caching rules, build the message (or its SSE events).

    ``seen`` maps earlier message ids to their prompt fingerprints, for ``diagnostics``.
    """
    _validate(body, need_max_tokens=True)
    rendered = _prompt(body)
    r, bps, total = rendered.r, rendered.breakpoints, rendered.total
    _check_breakpoints(bps)
    model: str = body["model"]
    read, write_5m, write_1h = _apply_cache(store, model, r, bps, now)
    uncached = total - read - write_5m - write_1h
    seed = r.digest()
    content, output_tokens, stop_reason, thinking_tokens = _content(body, seed)
    by_ttl = {k: v for k, v in (("5m", write_5m), ("1h", write_1h)) if v}
    usage = {
        "input_tokens": uncached,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": write_5m,
            "ephemeral_1h_input_tokens": write_1h,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
    msg_id = fresh_id("msg_01")
    message = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if seen is not None:
        if "diagnostics" in body:
            message["diagnostics"] = _diagnose(body, rendered.fingerprint, seen)
        seen[msg_id] = rendered.fingerprint
    out = Outcome(
        api="anthropic.messages",
        model=model,
        stream=bool(body.get("stream")),
        billing=Billing(
            input_tokens=total,
            cache_read_tokens=read,
            cache_write_by_ttl=by_ttl,
            output_tokens=output_tokens,
            reasoning_tokens=thinking_tokens,
        ),
        response_id=msg_id,
    )
    if out.stream:
        _events(out, message)
    else:
        out.body = message
    return out


def _events(out: Outcome, message: dict[str, Any]) -> None:
    usage = message["usage"]
    start_usage = dict(usage, output_tokens=min(1, usage["output_tokens"]))
    start = dict(message, content=[], stop_reason=None, usage=start_usage)
    out.add_frame(sse({"type": "message_start", "message": start}, "message_start"))
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            empty: dict[str, Any] = {"type": "text", "text": ""}
            pieces = [{"type": "text_delta", "text": t} for t in _word_chunks(block["text"])]
        elif kind == "thinking":
            empty = {"type": "thinking", "thinking": "", "signature": ""}
            pieces = [
                {"type": "thinking_delta", "thinking": t} for t in _word_chunks(block["thinking"])
            ]
            pieces.append({"type": "signature_delta", "signature": block["signature"]})
        else:  # tool_use
            empty = dict(block, input={})
            pieces = [
                {"type": "input_json_delta", "partial_json": t}
                for t in chunk_text(json_text(block["input"]))
            ]
        out.add_frame(
            sse(
                {"type": "content_block_start", "index": index, "content_block": empty},
                "content_block_start",
            )
        )
        if index == 0:
            out.add_frame(sse({"type": "ping"}, "ping"))
        for piece in pieces:
            frame = {"type": "content_block_delta", "index": index, "delta": piece}
            out.add_frame(sse(frame, "content_block_delta"), delta=True)
        out.add_frame(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    delta_usage = {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "output_tokens": usage["output_tokens"],
    }
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    out.add_frame(
        sse({"type": "message_delta", "delta": delta, "usage": delta_usage}, "message_delta")
    )
    out.add_frame(sse({"type": "message_stop"}, "message_stop"))


def _word_chunks(text: str) -> list[str]:
    parts = text.split(" ")
    return [parts[0]] + [" " + p for p in parts[1:]] if text else [""]
