"""A small fingerprint of each request sent upstream: block hashes in the provider's order.

The provider caches a prefix of the rendered request (tools, then system or instructions, then
messages), so a request is seen as a sequence of *blocks* — each tool, each system block, each
content part of each message — hashed with xxh3 over their JSON (breakpoint markup removed,
a string content hashed as the one text part it is equivalent to, so adding a breakpoint never
looks like a change). Comparing two fingerprints is a comparison of integer tuples; the blocks'
bytes are kept only for the family's latest request, so that a miss can be explained (which
block, where in it, what the text looked like) without walking the request again.

Cost: one ``orjson.dumps`` and one xxh3 per block, both C-speed (about 25 µs for a
100k-token request on this project's machines; see ``benchmarks/bench_doctor.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson
import xxhash

from promptcache._api import Api, RequestInfo
from promptcache._plan._core import family_key
from promptcache._plan._models import anthropic_min_tokens, openai_explicit

__all__ = ["Print", "fingerprint", "text_of_block"]

_dumps: Final = orjson.dumps
_xxh: Final = xxhash.xxh3_64_intdigest
_BP_KEYS: Final = ("cache_control", "prompt_cache_breakpoint")
_HEAD_ROLES: Final = frozenset({"system", "developer"})
_TEXT_TYPES: Final = frozenset({"text", "input_text", "output_text"})
# Settings outside the prompt text that decide whether an earlier cache entry can be used.
_SCOPE: Final[dict[Api, tuple[str, ...]]] = {
    Api.ANTHROPIC_MESSAGES: ("model", "tool_choice", "thinking", "output_format", "speed"),
    Api.OPENAI_CHAT: (
        "model",
        "tool_choice",
        "reasoning_effort",
        "response_format",
        "verbosity",
        "prompt_cache_key",
        "service_tier",
    ),
    Api.OPENAI_RESPONSES: (
        "model",
        "tool_choice",
        "reasoning",
        "text",
        "prompt_cache_key",
        "service_tier",
    ),
}
_TTL_S: Final = {"5m": 300.0, "1h": 3600.0, "30m": 1800.0, "12h": 43200.0, "24h": 86400.0}
_GPT: Final = re.compile(r"(?:^|[/:])gpt-(\d+)(?:\.(\d+))?")


@dataclass(slots=True)
class Print:
    """The fingerprint of one request as sent."""

    api: Api
    model: str
    base_url: str
    family: str
    digests: tuple[int, ...]
    ends: list[int]  # cumulative size in chars after each block
    labels: list[str]  # where each block is, for people: "system", "message 2 part 1"
    raws: list[bytes] | None  # each block's bytes; kept for the family's latest request only
    last_turn: int  # index of the first block of the final message
    turns: int  # messages (input items) in the request
    bps: tuple[int, ...]  # blocks that carry a breakpoint
    bp_count: int  # breakpoints in the request, the automatic one included
    ttl_s: float  # the cache lifetime this request's writes get (a lower bound)
    scope: dict[str, int]  # setting -> digest of its value (0: absent)
    tools: tuple[int, ...]  # tool digests in the order sent
    key: str | None  # prompt_cache_key as sent
    min_tokens: int | None  # the model's minimum cacheable prefix (None: not known)
    explicit: bool  # gpt-5.6+: only breakpoints are written and read

    @property
    def total(self) -> int:
        """Size of the whole request in chars."""
        return self.ends[-1] if self.ends else 0


def _text(x: Any) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, list):
        return "".join(
            b["text"] for b in x if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    return ""


def text_of_block(raw: bytes) -> str | None:
    """Return the text of a block from its fingerprint bytes (``None``: not text)."""
    try:
        v = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        return _text([v]) or None
    return None


def _part_bytes(part: Any) -> tuple[bytes, str | None]:
    """Bytes of a content part without breakpoint markup, and the ttl of a breakpoint on it."""
    if isinstance(part, str):
        return _dumps(part), None
    if not isinstance(part, dict):
        return _dumps(part), None
    bp: str | None = None
    if "cache_control" in part or "prompt_cache_breakpoint" in part:
        mark = part.get("cache_control") or part.get("prompt_cache_breakpoint")
        bp = str(mark.get("ttl") or "") if isinstance(mark, dict) else ""
        part = {k: v for k, v in part.items() if k not in _BP_KEYS}
    elif isinstance(part.get("content"), list):
        # A breakpoint inside a tool_result's content ends the prefix at this block.
        for sub in part["content"]:
            if isinstance(sub, dict) and isinstance(sub.get("cache_control"), dict):
                bp = str(sub["cache_control"].get("ttl") or "")
                part = {
                    **part,
                    "content": [
                        {k: v for k, v in s.items() if k != "cache_control"}
                        if isinstance(s, dict)
                        else s
                        for s in part["content"]
                    ],
                }
                break
    if len(part) == 2 and part.get("type") in _TEXT_TYPES and isinstance(part.get("text"), str):
        # A text part hashes as its text: "text" and "input_text" parts, and a plain string
        # content turned into a part when a breakpoint was added, all stay the same block.
        return _dumps(part["text"]), bp
    return _dumps(part), bp


def _item_bytes(item: dict[str, Any]) -> tuple[bytes, str | None]:
    """Bytes of a non-message item with breakpoint markup removed from its output parts."""
    out = item.get("output")
    bp: str | None = None
    if isinstance(out, list):
        parts = []
        for part in out:
            if isinstance(part, dict) and "prompt_cache_breakpoint" in part:
                mark = part["prompt_cache_breakpoint"]
                bp = str(mark.get("ttl") or "") if isinstance(mark, dict) else ""
                part = {k: v for k, v in part.items() if k != "prompt_cache_breakpoint"}
            parts.append(part)
        if bp is not None:
            item = {**item, "output": parts}
    return _dumps(item), bp


def _retention_s(info: RequestInfo, body: dict[str, Any], bp_ttls: list[str]) -> float:
    if info.api is Api.ANTHROPIC_MESSAGES:
        auto = body.get("cache_control")
        ttls = [*bp_ttls, str(auto.get("ttl") or "") if isinstance(auto, dict) else ""]
        return _TTL_S["1h"] if "1h" in ttls else _TTL_S["5m"]
    model = info.model or ""
    if openai_explicit(model):
        opts = body.get("prompt_cache_options")
        ttl = str(opts.get("ttl") or "30m") if isinstance(opts, dict) else "30m"
        return _TTL_S["12h"] if ttl == "12h" or "12h" in bp_ttls else _TTL_S["30m"]
    retention = body.get("prompt_cache_retention")
    if retention == "24h":
        return _TTL_S["24h"]
    if retention == "in_memory":
        return _TTL_S["5m"]  # "5-10 minutes of inactivity": the lower bound
    hit = _GPT.search(model.lower())
    if hit and (int(hit.group(1)), int(hit.group(2) or 0)) >= (5, 5):
        return _TTL_S["24h"]  # the default retention from gpt-5.5 on (non-ZDR organisations)
    return _TTL_S["5m"]


def fingerprint(info: RequestInfo, body: dict[str, Any]) -> Print:
    """Fingerprint ``body`` (the request as sent) in the provider's prefix order."""
    api = info.api
    digests: list[int] = []
    ends: list[int] = []
    labels: list[str] = []
    raws: list[bytes] = []
    bps: list[int] = []
    bp_ttls: list[str] = []
    size = 0

    def add(raw: bytes, label: str, bp: str | None, salt: bytes = b"") -> None:
        nonlocal size
        digests.append(_xxh(salt + raw) if salt else _xxh(raw))
        size += len(raw)
        ends.append(size)
        labels.append(label)
        raws.append(raw)
        if bp is not None:
            bps.append(len(digests) - 1)
            bp_ttls.append(bp)

    tools = body.get("tools")
    tool_digests: list[int] = []
    if isinstance(tools, list):
        for t in tools:
            raw, bp = _part_bytes(t)
            add(raw, "tools", bp)
            tool_digests.append(digests[-1])
    head = ""
    items_key = "input" if api is Api.OPENAI_RESPONSES else "messages"
    if api is Api.ANTHROPIC_MESSAGES:
        system = body.get("system")
        if isinstance(system, str):
            add(_dumps(system), "system", None)
        elif isinstance(system, list):
            for blk in system:
                raw, bp = _part_bytes(blk)
                add(raw, "system", bp)
        head = _text(system)
    instructions = body.get("instructions") if api is Api.OPENAI_RESPONSES else None
    if isinstance(instructions, str):
        add(_dumps(instructions), "instructions", None)
        head = instructions
    items = body.get(items_key)
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    last_turn = len(digests)
    if isinstance(items, list):
        in_head = api is not Api.ANTHROPIC_MESSAGES
        for mi, item in enumerate(items):
            last_turn = len(digests)
            if not isinstance(item, dict):
                add(_dumps(item), f"message {mi}", None)
                continue
            role = item.get("role")
            if in_head and role in _HEAD_ROLES:
                head += _text(item.get("content"))
            else:
                in_head = False
            if role is None and item.get("type") not in (None, "message"):
                # A Responses item that is not a message (a tool call, its output, reasoning)
                # is cached as the whole item: a string output and the same text as a list of
                # parts are different bytes to the provider, so they must differ here too.
                raw, bp = _item_bytes(item)
                add(raw, f"message {mi}", bp)
                continue
            content = item.get("content")
            field = "content"
            meta = _dumps({k: v for k, v in item.items() if k != field and k not in _BP_KEYS})
            if isinstance(content, list) and content:
                for pi, part in enumerate(content):
                    raw, bp = _part_bytes(part)
                    add(raw, f"message {mi} part {pi}", bp, meta if pi == 0 else b"")
            else:
                raw, bp = _part_bytes(content)
                add(raw, f"message {mi}", bp, meta)
        if not head and items and isinstance(items[0], dict):
            head = _text(items[0].get("content"))
    auto = api is Api.ANTHROPIC_MESSAGES and isinstance(body.get("cache_control"), dict)
    scope: dict[str, int] = {}
    for name in _SCOPE[api]:
        v = body.get(name)
        scope[name] = 0 if v is None else _xxh(_dumps(v, option=orjson.OPT_SORT_KEYS))
    key = body.get("prompt_cache_key")
    model = info.model or ""
    if api is Api.ANTHROPIC_MESSAGES:
        min_tokens: int | None = anthropic_min_tokens(model)
    else:
        # 1,024 is the smallest published OpenAI minimum: below it, certainly not cacheable.
        min_tokens = 1024
    return Print(
        api=api,
        model=model,
        base_url=info.base_url,
        family=family_key(api.value, info.base_url, info.tenant, head[:2000]),
        digests=tuple(digests),
        ends=ends,
        labels=labels,
        raws=raws,
        last_turn=last_turn,
        turns=len(items) if isinstance(items, list) else 0,
        bps=tuple(bps),
        bp_count=len(bps) + (1 if auto else 0),
        ttl_s=_retention_s(info, body, bp_ttls),
        scope=scope,
        tools=tuple(tool_digests),
        key=key if isinstance(key, str) else None,
        min_tokens=min_tokens,
        explicit=api is not Api.ANTHROPIC_MESSAGES and openai_explicit(model),
    )
