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

import functools
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson
import xxhash

from promptcache._api import Api, RequestInfo
from promptcache._plan._core import family_key
from promptcache._plan._models import anthropic_min_tokens, openai_explicit

__all__ = ["Print", "as_shard", "fingerprint", "text_of_block"]

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
    where: list[tuple[int, int]]  # (message or _TOOLS/_SYSTEM/_INSTRUCTIONS, part or -1)
    raws: list[str | bytes] | None  # each block's text or bytes; the family's latest only
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
    sharded: bool = False  # sent under a key the planner derived above the routing limit

    @property
    def total(self) -> int:
        """Size of the whole request in chars."""
        return self.ends[-1] if self.ends else 0

    def label(self, i: int) -> str:
        """Where block ``i`` is, for people: ``"system"``, ``"message 2 part 1"``."""
        mi, pi = self.where[i]
        if mi < 0:
            return _SECTIONS[mi]
        return f"message {mi}" if pi < 0 else f"message {mi} part {pi}"


_TOOLS: Final = -1
_SYSTEM: Final = -2
_INSTRUCTIONS: Final = -3
_SECTIONS: Final = {_TOOLS: "tools", _SYSTEM: "system", _INSTRUCTIONS: "instructions"}
# role -> hash of {"role": role}; few roles exist, so this never grows past a handful.
_ROLE_SEEDS: dict[str, int] = {}


class _TextDigests:
    """Digests of large texts, remembered so that a prompt text sent again is not rehashed.

    Apps send the same system prompt, document or history strings call after call. On the
    pre-SDK fast path the body holds the app's own objects, so identity finds them in O(1).
    A body parsed from the SDK's bytes has new string objects every call: those are found by
    content — a candidate with the same length and ends, then a full ``==`` (a memcmp, about
    half the cost of encoding and hashing, and never wrong: the digest is reused only for an
    equal string). A text found by content is not remembered again, so the app's fresh copies
    are freed with its body instead of piling up here.

    Entries hold their string (so its id cannot be reused while cached). Bounded by count and
    total size: when full it starts again (a clear costs one rehash per live prompt). Dict
    operations are atomic, so no lock: a race can only lose an entry.
    """

    MIN_CHARS: Final = 4096
    MAX_ENTRIES: Final = 4096
    MAX_CHARS: Final = 32 * 1024 * 1024
    ENDS: Final = 32  # characters of each end in the content key

    def __init__(self) -> None:
        self._map: dict[int, tuple[str, int]] = {}
        self._by_content: dict[tuple[int, str, str], tuple[str, int]] = {}
        self._chars = 0

    def digest(self, text: str) -> int:
        """Return xxh3 of ``text`` as UTF-8 (remembered for large texts)."""
        return self.lookup(text)[0]

    def lookup(self, text: str) -> tuple[int, str]:
        """Return the digest of ``text`` and the remembered string equal to it (else ``text``).

        A fingerprint keeps the remembered string rather than the app's fresh copy, so the
        copy is freed with the app's body, not later on the doctor's hot path.
        """
        hit = self._map.get(id(text))
        if hit is not None and hit[0] is text:
            return hit[1], text
        n = len(text)
        if n < self.MIN_CHARS:
            return _xxh(text.encode("utf-8", "surrogatepass")), text
        e = self.ENDS
        key = (n, text[:e], text[-e:])
        same = self._by_content.get(key)
        if same is not None and same[0] == text:
            return same[1], same[0]
        d = _xxh(text.encode("utf-8", "surrogatepass"))
        if self._chars + n > self.MAX_CHARS or len(self._map) >= self.MAX_ENTRIES:
            self._map = {}
            self._by_content = {}
            self._chars = 0
        self._map[id(text)] = self._by_content[key] = (text, d)
        self._chars += n
        return d, text


_texts: Final = _TextDigests()


def _text(x: Any) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, list):
        return "".join(
            b["text"] for b in x if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    return ""


def text_of_block(raw: str | bytes) -> str | None:
    """Return the text of a block from its fingerprint bytes (``None``: not text)."""
    if isinstance(raw, str):
        return raw
    try:
        v = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        return _text([v]) or None
    return None


def _part_bytes(part: Any) -> tuple[str | bytes, str | None]:
    """Return a part as hashed (its text, or its JSON without breakpoints) and its ttl mark.

    The ttl is that of a breakpoint on the part (``""``: default), ``None`` when it has none.
    """
    if type(part) is str:
        return part, None
    if not isinstance(part, dict):
        return _dumps(part), None
    bp: str | None = None
    if "cache_control" in part or "prompt_cache_breakpoint" in part:
        mark = part.get("cache_control") or part.get("prompt_cache_breakpoint")
        bp = str(mark.get("ttl") or "") if isinstance(mark, dict) else ""
        part = {k: v for k, v in part.items() if k not in _BP_KEYS}
    elif type(part.get("content")) is list:
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
    if len(part) == 2 and part.get("type") in _TEXT_TYPES:
        text = part.get("text")
        if type(text) is str:
            # A text part hashes as its text: "text" and "input_text" parts, and a plain
            # string content turned into a part when a breakpoint was added, stay one block.
            return text, bp
    return _dumps(part), bp


def _item_bytes(item: dict[str, Any]) -> tuple[str | bytes, str | None]:
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
    return _default_retention_s(model)


@functools.lru_cache(maxsize=512)  # a handful of model names per process; a regex per call
def _default_retention_s(model: str) -> float:
    hit = _GPT.search(model.lower())
    if hit and (int(hit.group(1)), int(hit.group(2) or 0)) >= (5, 5):
        return _TTL_S["24h"]  # the default retention from gpt-5.5 on (non-ZDR organisations)
    return _TTL_S["5m"]


@functools.lru_cache(maxsize=1024)
def _meta_seed(meta: bytes) -> int:
    return _xxh(meta)


def _seed_of(item: dict[str, Any]) -> int:
    """Hash a message's fields besides its content (mixed into its first block's hash)."""
    return _meta_seed(
        _dumps({k: v for k, v in item.items() if k != "content" and k not in _BP_KEYS})
    )


def fingerprint(info: RequestInfo, body: dict[str, Any]) -> Print:
    """Fingerprint ``body`` (the request as sent) in the provider's prefix order."""
    api = info.api
    digests: list[int] = []
    ends: list[int] = []
    where: list[tuple[int, int]] = []
    raws: list[str | bytes] = []
    bps: list[int] = []
    bp_ttls: list[str] = []
    size = 0
    xxh = _xxh
    text_lookup = _texts.lookup

    def add(raw: str | bytes, at: tuple[int, int], bp: str | None, seed: int = 0) -> None:
        nonlocal size
        # Text is hashed as UTF-8 without a JSON pass (escaping a 400 kB string costs more
        # than hashing it); structure as its JSON.
        if isinstance(raw, str):
            d, raw = text_lookup(raw)  # an equal remembered string is kept instead
        else:
            d = xxh(raw)
        digests.append(d ^ seed)
        size += len(raw)
        ends.append(size)
        where.append(at)
        raws.append(raw)
        if bp is not None:
            bps.append(len(digests) - 1)
            bp_ttls.append(bp)

    tools = body.get("tools")
    tool_digests: list[int] = []
    if isinstance(tools, list):
        for t in tools:
            raw, bp = _part_bytes(t)
            add(raw, (_TOOLS, -1), bp)
            tool_digests.append(digests[-1])
    head = ""
    items_key = "input" if api is Api.OPENAI_RESPONSES else "messages"
    if api is Api.ANTHROPIC_MESSAGES:
        system = body.get("system")
        if isinstance(system, str):
            add(system, (_SYSTEM, -1), None)
        elif isinstance(system, list):
            for blk in system:
                raw, bp = _part_bytes(blk)
                add(raw, (_SYSTEM, -1), bp)
        head = _text(system)
    instructions = body.get("instructions") if api is Api.OPENAI_RESPONSES else None
    if isinstance(instructions, str):
        add(instructions, (_INSTRUCTIONS, -1), None)
        head = instructions
    items = body.get(items_key)
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    last_turn = len(digests)
    if isinstance(items, list):
        in_head = api is not Api.ANTHROPIC_MESSAGES
        push_digest, push_end, push_where, push_raw = (
            digests.append,
            ends.append,
            where.append,
            raws.append,
        )
        seeds = _ROLE_SEEDS
        for mi, item in enumerate(items):
            last_turn = len(digests)
            if type(item) is dict and len(item) == 2:
                # The common shape, {"role": ..., "content": "text"}, inline: this loop runs
                # over every message of every request.
                content = item.get("content")
                role = item.get("role")
                if type(content) is str and type(role) is str:
                    if in_head and role in _HEAD_ROLES:
                        head += content
                    else:
                        in_head = False
                    seed = seeds.get(role)
                    if seed is None:
                        seed = seeds[role] = _seed_of(item)
                    d, kept = text_lookup(content)
                    push_digest(d ^ seed)
                    size += len(content)
                    push_end(size)
                    push_where((mi, -1))
                    push_raw(kept)
                    continue
            if not isinstance(item, dict):
                add(_dumps(item), (mi, -1), None)
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
                add(raw, (mi, -1), bp)
                continue
            content = item.get("content")
            seed = _seed_of(item)
            if type(content) is list and content:
                for pi, part in enumerate(content):
                    raw, bp = _part_bytes(part)
                    add(raw, (mi, pi), bp, seed if pi == 0 else 0)
            else:
                raw, bp = _part_bytes(content)
                add(raw, (mi, -1), bp, seed)
        if not head and items and isinstance(items[0], dict):
            head = _text(items[0].get("content"))
    auto = api is Api.ANTHROPIC_MESSAGES and isinstance(body.get("cache_control"), dict)
    scope: dict[str, int] = {}
    for name in _SCOPE[api]:
        v = body.get(name)
        if v is None:
            scope[name] = 0
        elif type(v) is str:
            scope[name] = xxh(v.encode())
        else:
            scope[name] = xxh(_dumps(v, option=orjson.OPT_SORT_KEYS))
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
        where=where,
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


def as_shard(p: Print) -> None:
    """Mark ``p`` as sent under a shard of its family's key (``<key>-s<n>``, by the planner).

    The key as sent stays in ``p.key`` (the provider routes by it); the scope gets the family's
    own key, so moving between shards is not a "scope change".
    """
    if p.key is None or "-s" not in p.key:
        return
    p.sharded = True
    p.scope["prompt_cache_key"] = _xxh(p.key.rsplit("-s", 1)[0].encode())
