"""Provider-neutral planning: block positions, families, TTL choice, breakpoint placement.

A request is seen as a sequence of *positions* (tool definitions, system blocks, message
content blocks) in the order the provider hashes them. Each position knows its estimated size,
a content hash, and whether it may carry a breakpoint. The provider adapters (``_anthropic``,
``_openai``) build positions from the wire JSON and apply the chosen breakpoints back.

Cost model (PROVIDERS.md §3.1): a request reads the longest cached prefix (A) and writes from
A to its last breakpoint (C), 1h-priced up to the last 1h breakpoint (B). Breakpoints between A
and C are therefore free; only C decides what is written. So C goes where a later request
will read, and extra slots are spent on read positions (the previous write, the head, and
stepping stones inside the lookback window).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson
import xxhash

__all__ = [
    "Breakpoint",
    "Pos",
    "Strategy",
    "choose_ttl",
    "family_key",
    "place",
    "pos_of",
    "readable_blocks",
]

Ttl = Literal["5m", "1h"]

# Planning estimate of the read price as a fraction of input. It only steers the 5m/1h/none
# choice, where any value between 0.025 and 0.1 gives the same answer; accounting never uses it.
PLANNING_READ_MULTIPLIER: Final = 0.1
_WRITE_5M: Final = 1.25
_WRITE_1H: Final = 2.0
# TTLs run from the start of the writing request; leave room for latency and clock skew.
_TTL_5M_S: Final = 5 * 60 * 0.95
_TTL_1H_S: Final = 60 * 60 * 0.98

_dumps: Final = orjson.dumps  # the same bytes as promptcache._json.dumps, one call fewer
_xxh: Final = xxhash.xxh3_64_intdigest

_SKELETON: Final = re.compile(r"[0-9a-fA-F]{8,}|\d+|[\U000f1e00-\U000f1e03]")


@dataclass(slots=True)
class Pos:
    """One position of the provider's prefix."""

    chars: int
    digest: int
    cacheable: bool
    section: str  # "tools", "system", "messages"
    msg: int = -1  # message index for "messages"
    dynamic: bool = False  # moved or marked-dynamic content at the end of the request
    static_mark: bool = False  # carries text the app marked static
    user_ttl: str | None = None  # ttl of a breakpoint the user set here ("" = default)


@dataclass(slots=True)
class Breakpoint:
    """A breakpoint the planner adds: position index, ttl and why."""

    index: int
    ttl: Ttl
    reason: str


@dataclass(slots=True)
class Strategy:
    """Provider rules the placement follows."""

    slots: int  # free breakpoint slots after the user's own
    min_tokens: int
    chars_per_token: float
    lookback: int | None  # blocks a breakpoint looks back (Anthropic 20), None = unlimited
    ttl_choice: bool = True  # Anthropic: 5m/1h; OpenAI: provider default only
    user_auto_ttl: str | None = None  # top-level automatic cache_control (Anthropic)
    notes: list[str] = field(default_factory=list)


def pos_of(block: Any, *, cacheable: bool, section: str, msg: int = -1) -> Pos:
    """Measure and hash one block, ignoring any breakpoint markup on it."""
    if isinstance(block, dict) and ("cache_control" in block or "prompt_cache_breakpoint" in block):
        user_bp = block.get("cache_control") or block.get("prompt_cache_breakpoint")
        ttl = str(user_bp.get("ttl") or "") if isinstance(user_bp, dict) else ""
        block = {
            k: v for k, v in block.items() if k not in ("cache_control", "prompt_cache_breakpoint")
        }
        raw = _dumps(block)
        return Pos(len(raw), _xxh(raw), cacheable, section, msg, user_ttl=ttl)
    # orjson and xxh3 run at tens of GB/s: hashing the serialised block is the cheap part.
    raw = _dumps(block)
    p = Pos(len(raw), _xxh(raw), cacheable, section, msg)
    inner = block.get("content") if isinstance(block, dict) else None
    if isinstance(inner, list):
        # A breakpoint the app set inside this block (text in a tool_result) ends the same
        # prefix for the TTL-order rule: ours must bend to it as to one on the block itself.
        for sub in inner:
            if isinstance(sub, dict) and isinstance(sub.get("cache_control"), dict):
                p.user_ttl = str(sub["cache_control"].get("ttl") or "")
                if p.user_ttl != "1h":
                    break  # a 5m one is the constraint on everything after it
    return p


def readable_blocks(pos: Sequence[Pos], min_tokens: float, chars_per_token: float) -> int:
    """Return how many leading non-dynamic positions reach ``min_tokens`` (1 if none do).

    A prefix shared with an earlier request can be read from the provider cache only if it is
    at least this long; below the minimum, sharing is a coincidence worth nothing.
    """
    need = min_tokens * chars_per_token
    total = 0
    k = 0
    for p in pos:
        if p.dynamic:
            continue
        k += 1
        total += p.chars
        if total >= need:
            return k
    return 1


_FAMILY_MEMO: dict[tuple[str, ...], str] = {}
_FAMILY_MEMO_MAX: Final = 4096


def family_key(*parts: str) -> str:
    """Return a stable family id: digits, hex ids and layout marks removed, then hashed."""
    # Memoised on the (at most 2,000-char) inputs: the regex pass costs ~10 µs per call and the
    # same heads recur on every call of a family. Bounded; a clear is only a re-computation.
    cut = tuple(p[:2000] for p in parts)
    hit = _FAMILY_MEMO.get(cut)
    if hit is not None:
        return hit
    joined = "\x00".join(_SKELETON.sub("", p) for p in cut)
    key = xxhash.xxh3_64_hexdigest(joined.encode("utf-8", "surrogatepass"))
    if len(_FAMILY_MEMO) >= _FAMILY_MEMO_MAX:
        _FAMILY_MEMO.clear()
    _FAMILY_MEMO[cut] = key
    return key


def choose_ttl(gaps: Sequence[float], read: float = PLANNING_READ_MULTIPLIER) -> Ttl | None:
    """Pick the TTL with the lowest expected input cost per call, or ``None`` not to write.

    With no history the answer is 5m (a prompt is usually sent again soon). Otherwise each
    observed gap is a read if it fits the TTL and a fresh write if not: 5m costs
    ``p5·read + (1-p5)·1.25``, 1h ``p60·read + (1-p60)·2``, not caching 1. So 1h wins only when
    gaps exceed 5m but fit an hour often enough to pay the 2x write.
    """
    if not gaps:
        return "5m"
    recent = list(gaps)[-8:]
    n = len(recent)
    p5 = sum(1 for g in recent if g <= _TTL_5M_S) / n
    p60 = sum(1 for g in recent if g <= _TTL_1H_S) / n
    c5 = p5 * read + (1 - p5) * _WRITE_5M
    c60 = p60 * read + (1 - p60) * _WRITE_1H
    if min(c5, c60) >= 1.0:
        return None
    return "5m" if c5 <= c60 else "1h"


def place(
    pos: Sequence[Pos],
    *,
    strategy: Strategy,
    common: int,
    new_family: bool,
    conversation: bool,
    head_ttl: Ttl | None,
    anchor_ttl: Ttl | None,
) -> list[Breakpoint]:
    """Choose breakpoints (at most ``strategy.slots``) for one request.

    ``common`` is the number of leading positions (dynamic ones excluded) shared with a recent
    request of the family; ``conversation`` says the request is likely to be extended by the
    next one (history present, or growth observed), so its end is worth writing.
    """
    if strategy.slots <= 0 or not pos:
        return []
    n = len(pos)
    cum = [0.0] * n
    total = 0.0
    cpt = strategy.chars_per_token
    # Everything after the first dynamic position differs next time too (an assistant prefill
    # after moved text, say): only what precedes it is a prefix worth writing.
    first_dyn = n
    head_end = static_end = -1
    for i, p in enumerate(pos):  # one pass: sizes, first dynamic block, head and static ends
        total += p.chars / cpt
        cum[i] = total
        if p.dynamic and first_dyn == n:
            first_dyn = i
        if p.section == "system" or p.section == "tools":
            head_end = i
        if p.static_mark:
            static_end = i

    def eligible(i: int) -> bool:
        return i < first_dyn and pos[i].cacheable and cum[i] >= strategy.min_tokens

    def last_eligible(upto: int, floor: int = 0) -> int | None:
        for i in range(min(upto, n - 1), floor - 1, -1):
            if eligible(i):
                return i
        return None

    stable = list(range(first_dyn))
    candidates: list[tuple[int, Ttl, str]] = []

    # C: the end of the stable content, when a later request will extend it.
    last_stable = stable[-1] if stable else -1
    if (conversation or new_family) and anchor_ttl is not None and last_stable >= 0:
        a = last_eligible(last_stable)
        if a is not None:
            candidates.append((a, anchor_ttl, "anchor"))
    # The prefix an earlier request of the family wrote: read it exactly.
    if common > 0 and head_ttl is not None:
        end = stable[min(common, len(stable)) - 1]
        s = last_eligible(end)
        if s is not None:
            candidates.append((s, head_ttl, "reuse"))
    # The head (tools + system) and the app's static marks, when known to be reused.
    for end, why in ((static_end, "static"), (head_end, "head")):
        if end < 0 or head_ttl is None:
            continue
        known = common > 0 and end < (stable[min(common, len(stable)) - 1] + 1)
        if new_family or known:
            s = last_eligible(end)
            if s is not None:
                candidates.append((s, head_ttl, why))
    # The first request of a family writes where later ones are likely to diverge: the end of
    # everything before the last message (shared examples, earlier turns) and, inside the last
    # message, the end of all but its last part (a document before the question). Only the
    # last breakpoint decides what is written (the ones before it cost nothing), so these are
    # free beside the anchor and turn a later request that asks something else into a read.
    if new_family and head_ttl is not None and last_stable >= 0 and pos[last_stable].msg >= 0:
        last_msg = pos[last_stable].msg
        first_of_last = last_stable
        while first_of_last > 0 and pos[first_of_last - 1].msg == last_msg:
            first_of_last -= 1
        for end, why in ((first_of_last - 1, "prelude"), (last_stable - 1, "part")):
            if end < 0 or (why == "part" and end < first_of_last):
                continue
            s = last_eligible(end, first_of_last if why == "part" else 0)
            if s is not None:
                candidates.append((s, head_ttl, why))

    chosen: dict[int, Breakpoint] = {}
    for i, ttl, why in candidates:
        if i not in chosen and pos[i].user_ttl is None and len(chosen) < strategy.slots:
            chosen[i] = Breakpoint(i, ttl, why)
    if not chosen:
        return []

    # Stepping stones: a breakpoint finds earlier entries only within the lookback window,
    # so a long stretch without one would miss what an unknown earlier request wrote.
    if strategy.lookback is not None:
        step = max(1, strategy.lookback - 2)
        while len(chosen) < strategy.slots:
            idx = sorted(chosen)
            stone: Breakpoint | None = None
            for k in range(len(idx) - 1, -1, -1):
                floor = idx[k - 1] if k > 0 else -1
                if idx[k] - floor > step:
                    s = last_eligible(idx[k] - step, floor + 1)
                    if s is not None:
                        stone = Breakpoint(s, chosen[idx[k]].ttl, "lookback")
                        break
            if stone is None:
                break
            chosen[stone.index] = stone

    bps = sorted(chosen.values(), key=lambda b: b.index)
    return _order_ttls(bps, pos, strategy)


def _order_ttls(bps: list[Breakpoint], pos: Sequence[Pos], strategy: Strategy) -> list[Breakpoint]:
    # Anthropic: a 1h breakpoint must not follow a 5m one. Ours bend to the user's: before a
    # user 1h ours become 1h; after a user 5m ours become 5m (a planned 1h is dropped);
    # squeezed between both, dropped.
    user = [(i, p.user_ttl or "5m") for i, p in enumerate(pos) if p.user_ttl is not None]
    if strategy.user_auto_ttl is not None:
        user.append((len(pos), strategy.user_auto_ttl or "5m"))
    out: list[Breakpoint] = []
    for b in bps:
        later_1h = any(i > b.index and t == "1h" for i, t in user)
        earlier_5m = any(i < b.index and t != "1h" for i, t in user)
        if later_1h and earlier_5m:
            continue
        if later_1h:
            b.ttl = "1h"
        elif earlier_5m:
            if b.ttl == "1h":
                # 1h was chosen because 5m entries expire before the next read: a 5m write
                # here would cost 1.25x and never be read, so none is better.
                continue
            b.ttl = "5m"
        out.append(b)
    # Among ours: anything before a 1h becomes 1h (costs only if it writes; keeps order legal).
    seen_1h = False
    for b in reversed(out):
        if b.ttl == "1h":
            seen_1h = True
        elif seen_1h:
            b.ttl = "1h"
    return out
