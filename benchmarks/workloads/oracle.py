"""The optimum the provider-cache benchmark compares every mode with.

The oracle sees the whole workload in advance (every request, and when it comes) and places
the cache hints the provider's rules allow so that input costs the least. It is the yardstick
``auto`` and ``safe`` are judged against, so its rules are spelled out here.

What it may change (the same prompt, the same tokens):

* the layout (``workloads.render(..., oracle=True)``): a volatile line moves after the stable
  prefix, tools are sorted, contents become lists of parts so any part can carry a breakpoint,
  and on the Responses API ``instructions`` travel as a leading developer message (the emulator
  renders both byte for byte alike; no ``previous_response_id`` is used, so this is allowed);
* the cache hints: Anthropic ``cache_control`` (``5m`` or ``1h``), OpenAI gpt-5.6+
  ``prompt_cache_breakpoint`` and ``prompt_cache_options.mode``, one ``prompt_cache_key`` for
  the whole workload, and before gpt-5.6 ``prompt_cache_retention="24h"`` (free, and the
  longest retention those models offer; gpt-5.5 has it by default).

The provider rules it plans with are the emulator's (``promptcache.testing``, which follows
``PROVIDERS.md``); it reads block boundaries, token counts and prefix digests straight from the
emulator's own renderers, so the oracle and the referee never disagree about where a prefix
ends:

* A prefix can be read only at a *block boundary* (Anthropic: the end of a tool, system block
  or content block; OpenAI gpt-5.6+: the end of a content part, message, ``instructions`` or
  input item) at least the model's minimum long (Anthropic per model, 512-4,096; OpenAI 1,024).
* It can be *written* only where a breakpoint can go: Anthropic any tool/system/content block
  except thinking and empty text; OpenAI a ``text``/``image_url``/``input_audio``/``file``
  (Chat) or ``input_text``/``input_image``/``input_file`` (Responses, not in assistant
  messages) part. OpenAI's ``implicit`` mode also writes the end of the last message or item
  (which is how a request ending in a ``function_call_output`` gets written: the emulator
  does not take breakpoints inside tool outputs) - but then that end is written whether or not
  it is ever read, so the oracle uses ``implicit`` only when the end is worth writing.
* At most 4 breakpoints per request: Anthropic counts every ``cache_control`` (a read needs one
  at the cached block or at most 19 blocks after it: the 20-block lookback); OpenAI writes at
  most 4 (``explicit`` mode: the latest 4; ``implicit``: the end + the latest 3) and reads any
  written boundary, but ``explicit`` mode with no breakpoint does not use the cache at all, so
  a request that only reads carries one breakpoint at (or below) the block it reads - free,
  nothing beyond the hit is billed.
* Billing: a read costs the model's read price (genai-prices: 0.1x, 0.05x, 0.025x ...); a write
  of the tokens between the hit and the last breakpoint costs Anthropic 1.25x (``5m``) or 2x
  (``1h``), OpenAI gpt-5.6+ 1.25x; writes are free before gpt-5.6. Lifetimes run from the start
  of the request that wrote or last read the entry (reads refresh; re-marking an entry that is
  still alive, or one inside the prefix being read, is free and refreshes it too). OpenAI's
  ``12h`` TTL is not used: its price is unverified (PROVIDERS.md section 12) and no workload
  leaves 30 minutes between two uses of a prefix.
* Routing (only where the emulator models it, ``routing_limit()``): OpenAI serves one prefix and
  key from one machine up to about 15 requests a minute and sends the rest elsewhere, cold. The
  oracle then assigns the requests round-robin to the fewest ``prompt_cache_key`` shards that
  keep every shard under the limit, and plans each shard as a workload of its own.

How it plans (clairvoyant, greedy, exact for these workloads):

1. For each request ``j`` the best possible read is the deepest boundary of ``j`` that some
   earlier request could have written (``src[j]``); requests whose best read is a boundary
   ``D`` are ``D``'s readers.
2. For each such ``D`` it picks the TTL (or none) with the least cost per token over ``D``'s
   life: one write at its first occurrence, a read per reader, a re-write whenever the gap
   between two uses exceeds the TTL (``1h`` on Anthropic pays only when it saves re-writes:
   2x once against 1.25x each time). ``D`` is dropped when caching it costs more than not
   (its readers then fall back to the next boundary).
3. It then walks the requests in order with a model of the cache (the emulator's semantics):
   a request writes every chosen boundary it contains that is not alive and whose chain of
   later uses reaches a reader within the TTL, refreshes one that would lapse before its next
   reader, adds the read-support breakpoint described above, keeps to 4 (writes first, deepest
   first), and orders Anthropic TTLs ``1h`` before ``5m`` (which bills the same: the segment
   before a ``1h`` breakpoint is billed at ``1h`` anyway).

Every written segment then has a reader, every request reads the longest prefix any earlier
request shares with it, and each segment is written once per lifetime - which is the least any
placement can pay under these rules. The benchmark checks it: a mode that beats the oracle by
more than rounding is reported as an oracle error.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from genai_prices import Usage, calc_price

from promptcache.testing import _anthropic as emu_anthropic  # the referee's own renderers
from promptcache.testing import _openai as emu_openai
from promptcache.testing import anthropic_minimum, openai_has_explicit_caching
from promptcache.testing._cache import TTL_SECONDS

__all__ = [
    "ORACLE_CACHE_KEY",
    "Block",
    "Oracle",
    "Plan",
    "multipliers",
    "routing_limit",
    "shards_needed",
]

ORACLE_CACHE_KEY = "bench-oracle"
MAX_MARKS = 4
LOOKBACK = 20
_CHAT_PARTS = ("text", "image_url", "input_audio", "file")
_RESPONSES_PARTS = ("input_text", "input_image", "input_file")


@dataclass(frozen=True)
class Block:
    """A boundary of a rendered prompt: prefix digest, tokens up to it, where a mark goes."""

    digest: bytes
    tokens: int
    path: tuple[Any, ...] | None  # None: no breakpoint can be placed here


@dataclass
class Plan:
    """The oracle's hints for one request."""

    marks: dict[tuple[Any, ...], str] = field(default_factory=dict)  # path -> ttl
    mode: str | None = None  # OpenAI gpt-5.6+: "explicit" or "implicit"
    expected_read: int | None = None  # tokens the oracle's cache model expects to be read
    notes: list[str] = field(default_factory=list)


def multipliers(provider: str, model: str) -> tuple[float, dict[str, float]]:
    """(read price, {ttl: write price}) as multiples of the model's input price."""

    def price(**kw: int) -> float:
        u = Usage(input_tokens=1_000_000, **kw)
        return float(calc_price(u, model_ref=model, provider_id=provider).input_price)

    base = price()
    read = price(cache_read_tokens=1_000_000) / base
    if provider == "anthropic":
        w5 = price(cache_write_tokens=1_000_000) / base
        w1h = price(cache_write_tokens=1_000_000, cache_write_1h_tokens=1_000_000) / base
        return read, {"5m": w5, "1h": w1h}
    return read, {"30m": price(cache_write_tokens=1_000_000) / base}


def routing_limit() -> float | None:
    """OpenAI's per-prefix-and-key routing limit as the emulator models it (``None``: not modelled).

    The emulator on this branch routes every request to one machine; an emulator with
    ``OpenAISettings.routing_limit_per_minute`` (the ``routing`` branch) sends the excess to
    other machines, and then the optimum spreads a family over keys.
    """
    try:
        from promptcache.testing import OpenAISettings  # type: ignore[attr-defined]
    except ImportError:
        return None
    limit = OpenAISettings().routing_limit_per_minute
    return float(limit) if limit is not None else None


def shards_needed(times: list[float], limit: float | None, window: float = 60.0) -> int:
    """The fewest keys such that, assigned round-robin, no key exceeds ``limit`` per window.

    Mirrors the emulator's router: a request stays on its home machine while fewer than
    ``limit`` requests with the same routing key arrived in the ``window`` seconds before it.
    """
    if limit is None or not times:
        return 1
    for shards in range(1, len(times) + 1):
        seen: list[list[float]] = [[] for _ in range(shards)]
        ok = True
        for i, t in enumerate(times):
            recent = [u for u in seen[i % shards] if u > t - window]
            if len(recent) >= limit:
                ok = False
                break
            seen[i % shards] = [*recent, t]
        if ok:
            return shards
    return len(times)


def _anthropic_blocks(body: dict[str, Any]) -> list[Block]:
    rendered = emu_anthropic._prompt(body)
    paths: list[tuple[Any, ...] | None] = []
    for i, _ in enumerate(body.get("tools") or []):
        paths.append(("tools", i))
    system = body.get("system")
    if isinstance(system, str):
        if system:
            paths.append(None)
    elif isinstance(system, list):
        paths += [("system", j) if b.get("text") else None for j, b in enumerate(system)]
    for i, msg in enumerate(body["messages"]):
        content = msg["content"]
        if isinstance(content, str):
            paths.append(None)
            continue
        for j, b in enumerate(content):
            ok = b.get("type") not in ("thinking", "redacted_thinking") and not (
                b.get("type") == "text" and not b.get("text")
            )
            paths.append(("messages", i, "content", j) if ok else None)
    return _zip(rendered.r.blocks, paths)


def _openai_paths(
    key: str, index: int, role: str, content: Any, parts: tuple[str, ...]
) -> list[tuple[Any, ...] | None]:
    out: list[tuple[Any, ...] | None] = []
    if isinstance(content, list):
        for j, part in enumerate(content):
            # Responses assistant messages hold output_text, which takes no breakpoint.
            ok = isinstance(part, dict) and part.get("type") in parts
            ok = ok and (parts is _CHAT_PARTS or role != "assistant")
            out.append((key, index, "content", j) if ok else None)
    out.append(None)  # the message end
    return out


def _chat_blocks(body: dict[str, Any]) -> list[Block]:
    prompt = emu_openai._chat_prompt(body, True)
    paths: list[tuple[Any, ...] | None] = []
    for i, msg in enumerate(body["messages"]):
        paths += _openai_paths("messages", i, msg["role"], msg.get("content"), _CHAT_PARTS)
    return _zip(prompt.r.blocks, paths)


def _responses_blocks(body: dict[str, Any]) -> list[Block]:
    items = body["input"]
    prompt = emu_openai._responses_prompt(body, items, True)
    paths: list[tuple[Any, ...] | None] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        paths.append(None)
    for i, item in enumerate(items):
        if "role" in item and item.get("type", "message") == "message":
            paths += _openai_paths("input", i, item["role"], item.get("content"), _RESPONSES_PARTS)
        else:
            paths.append(None)
    return _zip(prompt.r.blocks, paths)


def _zip(bounds: list[Any], paths: list[tuple[Any, ...] | None]) -> list[Block]:
    if len(bounds) != len(paths):  # the emulator's rendering changed: fail loudly, not wrongly
        raise RuntimeError(f"oracle: {len(paths)} block paths for {len(bounds)} emulator blocks")
    return [Block(b.digest, b.tokens, p) for b, p in zip(bounds, paths, strict=True)]


class Oracle:
    """Plans the cheapest cache hints for a whole workload (see the module docstring).

    Args:
        api: ``anthropic``, ``chat`` or ``responses``.
        model: The model name.
        bodies: Every request body in the oracle layout (``render(..., oracle=True)`` with
            ``model``), in order.
        times: When each request is sent (seconds, same clock as the run).
        limit: OpenAI's routing limit per minute for one prefix and key, when the emulator
            models overflow routing (:func:`routing_limit`); the oracle then spreads the
            workload round-robin over the fewest keys that keep each under it and plans each
            key's requests on their own (their caches are separate).

    """

    def __init__(
        self,
        api: str,
        model: str,
        bodies: list[dict[str, Any]],
        times: list[float],
        limit: float | None = None,
    ) -> None:
        self.api = api
        self.model = model
        self.provider = "anthropic" if api == "anthropic" else "openai"
        self.breakpoints = api == "anthropic" or openai_has_explicit_caching(model)
        self.minimum = anthropic_minimum(model) if api == "anthropic" else 1024
        self.times = times
        self.plans: list[Plan] = [Plan() for _ in bodies]
        self.shards = shards_needed(times, limit) if self.provider == "openai" else 1
        if self.shards > 1:
            for shard in range(self.shards):
                idx = list(range(shard, len(bodies), self.shards))
                sub = Oracle(api, model, [bodies[i] for i in idx], [times[i] for i in idx])
                for j, i in enumerate(idx):
                    self.plans[i] = sub.plans[j]
        elif self.breakpoints:
            self.read, self.write = multipliers(self.provider, model)
            render = {"anthropic": _anthropic_blocks, "chat": _chat_blocks}.get(
                api, _responses_blocks
            )
            self.blocks = [render({**b, "model": model}) for b in bodies]
            self._plan()

    # -- planning --------------------------------------------------------------------------

    def _writable(self, i: int) -> dict[bytes, int]:
        """Digest -> block index for the boundaries request ``i`` can write."""
        blocks = self.blocks[i]
        last = len(blocks) - 1
        out: dict[bytes, int] = {}
        for k, b in enumerate(blocks):
            if b.tokens < self.minimum:
                continue
            implicit_end = self.provider == "openai" and k == last
            if b.path is not None:
                out[b.digest] = k
            elif implicit_end:
                out.setdefault(b.digest, k)
        return out

    def _uses_after(self, d: bytes, m: int) -> list[int]:
        return [u for u in range(m + 1, len(self.blocks)) if d in self.W[u] or u in self.rset[d]]

    def _chain_ok(self, d: bytes, m: int, ttl: str) -> bool:
        """Whether writing ``d`` at ``m`` with ``ttl`` reaches a reader through live uses."""
        prev = self.times[m]
        for u in self._uses_after(d, m):
            if self.times[u] - prev >= TTL_SECONDS[ttl]:
                return False
            if u in self.rset[d]:
                return True
            prev = self.times[u]
        return False

    def _choose_ttl(self, d: bytes, readers: list[int]) -> str | None:
        first = min(m for m in range(len(self.blocks)) if d in self.W[m])
        last = readers[-1]
        rs = set(readers)
        uses = [u for u in range(first + 1, last + 1) if d in self.W[u] or u in rs]
        best: tuple[float, str] | None = None
        for ttl, w in self.write.items():
            life = TTL_SECONDS[ttl]
            cost = w - 1.0
            alive_until = self.times[first] + life
            for u in uses:
                t = self.times[u]
                if t < alive_until:
                    if u in rs:
                        cost += self.read - 1.0
                    alive_until = t + life
                elif d in self.W[u]:
                    if u in rs:
                        cost += w - 1.0  # expired: the reader writes it again
                    alive_until = t + life  # a non-reader re-creates it inside its own hit
            if best is None or cost < best[0]:
                best = (cost, ttl)
        if best is None or best[0] >= 0:
            return None
        return best[1]

    def _plan(self) -> None:
        n = len(self.blocks)
        self.W = [self._writable(i) for i in range(n)]
        rejected: set[bytes] = set()
        for _ in range(8):
            seen: set[bytes] = set()
            src: list[bytes | None] = [None] * n
            for j in range(n):
                for b in reversed(self.blocks[j]):
                    if b.tokens < self.minimum:
                        break
                    if b.digest in seen:
                        src[j] = b.digest
                        break
                seen |= {d for d in self.W[j] if d not in rejected}
            readers: dict[bytes, list[int]] = defaultdict(list)
            for j, d in enumerate(src):
                if d is not None:
                    readers[d].append(j)
            self.readers = dict(readers)
            self.rset = defaultdict(set, {d: set(rs) for d, rs in readers.items()})
            self.ttl_of: dict[bytes, str] = {}
            dropped = False
            for d, rs in readers.items():
                ttl = self._choose_ttl(d, rs)
                if ttl is None:
                    rejected.add(d)
                    dropped = True
                else:
                    self.ttl_of[d] = ttl
            if not dropped:
                break
        self._walk()

    def _walk(self) -> None:
        cache: dict[bytes, tuple[float, str]] = {}  # digest -> (expires at, ttl)
        default_ttl = "5m" if self.provider == "anthropic" else "30m"
        for m, blocks in enumerate(self.blocks):
            t = self.times[m]
            plan = self.plans[m]

            def alive(d: bytes, t: float = t) -> bool:
                return d in cache and cache[d][0] > t

            hit = -1
            for k in range(len(blocks) - 1, -1, -1):
                if blocks[k].tokens < self.minimum:
                    break
                if alive(blocks[k].digest):
                    hit = k
                    break
            writes: list[tuple[int, str]] = []
            refreshes: list[tuple[int, str]] = []
            for d, k in self.W[m].items():
                ttl = self.ttl_of.get(d)
                future = [j for j in self.readers.get(d, []) if j > m]
                if ttl is None or not future:
                    continue
                if alive(d):
                    if blocks[k].path is not None and cache[d][0] <= self.times[future[0]]:
                        refreshes.append((k, ttl))
                elif self._chain_ok(d, m, ttl):
                    writes.append((k, ttl))
            last = len(blocks) - 1
            implicit = any(k == last and blocks[k].path is None for k, _ in writes)
            if self.provider == "openai":
                plan.mode = "implicit" if implicit else "explicit"
            writes = [(k, ttl) for k, ttl in writes if blocks[k].path is not None]
            writes.sort(key=lambda kt: -blocks[kt[0]].tokens)
            cap = MAX_MARKS - (1 if implicit else 0)
            marks = writes[:cap]
            # A read needs support: Anthropic a mark within the lookback, OpenAI explicit mode a
            # mark anywhere (one at or below the hit is free).
            if hit >= 0:
                if self.provider == "anthropic":
                    covered = any(hit <= k < hit + LOOKBACK for k, _ in marks)
                    if not covered and blocks[hit].path is not None:
                        support = (hit, cache[blocks[hit].digest][1])
                        marks = [*marks[: cap - 1], support]
                elif not marks and not implicit:
                    below = [k for k in range(hit, -1, -1) if blocks[k].path is not None]
                    if below:
                        marks = [(below[0], default_ttl)]
                    else:
                        plan.mode = "implicit"  # reads, at the price of writing the end
                        plan.notes.append("no markable block at or below the hit")
            room = cap - len(marks)
            marks += refreshes[: max(room, 0)]
            if self.provider == "anthropic" and any(ttl == "1h" for _, ttl in marks):
                last_1h = max(k for k, ttl in marks if ttl == "1h")
                marks = [(k, "1h" if k <= last_1h else ttl) for k, ttl in marks]
            # Update the model the way the emulator does.
            plan.expected_read = 0
            if hit >= 0 and (self.provider == "openai" or marks):
                plan.expected_read = blocks[hit].tokens
                exp, ttl = cache[blocks[hit].digest]
                cache[blocks[hit].digest] = (max(exp, t + TTL_SECONDS[ttl]), ttl)
            puts = list(marks)
            if plan.mode == "implicit":
                puts.append((last, default_ttl))
            for k, ttl in puts:
                d = blocks[k].digest
                if blocks[k].tokens < self.minimum:
                    continue
                if alive(d):
                    exp, old = cache[d]
                    longer = ttl if TTL_SECONDS[ttl] > TTL_SECONDS[old] else old
                    cache[d] = (max(exp, t + TTL_SECONDS[ttl]), longer)
                else:
                    cache[d] = (t + TTL_SECONDS[ttl], ttl)
            for k, ttl in marks:
                path = blocks[k].path
                assert path is not None
                plan.marks[path] = ttl

    # -- applying --------------------------------------------------------------------------

    def apply(self, i: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The oracle-layout keyword arguments of request ``i`` with the planned hints."""
        out = copy.deepcopy(kwargs)
        if self.provider == "openai":
            shard = f"-{i % self.shards}" if self.shards > 1 else ""
            out["prompt_cache_key"] = ORACLE_CACHE_KEY + shard
            if not self.breakpoints:
                out["prompt_cache_retention"] = "24h"
                return out
        plan = self.plans[i]
        for path, ttl in plan.marks.items():
            node: Any = out
            for step in path:
                node = node[step]
            if self.provider == "anthropic":
                mark = {"type": "ephemeral", **({"ttl": "1h"} if ttl == "1h" else {})}
                node["cache_control"] = mark
            else:
                node["prompt_cache_breakpoint"] = {"mode": "explicit"}
        if self.provider == "openai":
            out["prompt_cache_options"] = {"mode": plan.mode or "explicit"}
        return out
