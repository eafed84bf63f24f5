"""Anthropic Messages: layout moves, breakpoint planning within the 4-slot budget.

Rules followed (PROVIDERS.md §3.1): at most 4 breakpoints counting the user's own and the
top-level automatic ``cache_control``; a 1h breakpoint never after a 5m one; nothing below the
model's minimum; each breakpoint looks back at most 20 blocks; ``thinking`` and
``redacted_thinking`` blocks and empty text blocks cannot carry ``cache_control``.
"""

from __future__ import annotations

from typing import Any, Final

from promptcache._hooks import Rewrite
from promptcache._json import dumps
from promptcache._plan._core import (
    Pos,
    Strategy,
    choose_ttl,
    family_key,
    place,
    pos_of,
    readable_blocks,
)
from promptcache._plan._ctx import Ctx
from promptcache._plan._layout import has_marks
from promptcache._plan._models import anthropic_min_tokens
from promptcache._plan._text import TEXT_KEYS, relayout, scan, strip_deep
from promptcache._plan._volatile import diff_label

__all__ = ["plan_anthropic"]

MAX_BREAKPOINTS: Final = 4
LOOKBACK: Final = 20
_NO_CACHE_CONTROL: Final = frozenset({"thinking", "redacted_thinking"})


def _cacheable(block: Any) -> bool:
    if isinstance(block, str):
        return bool(block)
    if not isinstance(block, dict):
        return False
    t = block.get("type")
    if t in _NO_CACHE_CONTROL:
        return False
    return not (t == "text" and not block.get("text"))


def _sort_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _sort_keys(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [_sort_keys(v) for v in obj]
    return obj


def _text_of(x: Any) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, list):
        return "".join(
            b.get("text", "") for b in x if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    return ""


def plan_anthropic(ctx: Ctx, body: dict[str, Any]) -> Rewrite:
    """Plan one Messages request (``body`` is never mutated)."""
    if ctx.mode == "off":
        return ctx.finish(body, strip_deep(body), [], chars=0)
    auto = ctx.mode == "auto"
    notes: list[str] = []
    out: dict[str, Any] = dict(body)
    # One pass for layout marks anywhere and the user's own breakpoints (they can sit on nested
    # blocks too, e.g. text inside tool_result content). No marks (the usual case) lets safe
    # mode skip splitting every message and the final strip.
    marked = False
    used = 0
    for k, v in body.items():
        v_marked, v_keys = scan(v, "cache_control", structure=k not in TEXT_KEYS)
        marked = marked or v_marked
        if k in ("tools", "system", "messages"):
            used += v_keys

    tools = body.get("tools")
    # An app breakpoint on a tool (usually the last, to cache them all) says how the app wants
    # its tools cached; sorting would move it and leave tools outside it. Keep their order.
    if (
        auto
        and isinstance(tools, list)
        and len(tools) > 1
        and not any(isinstance(t, dict) and "cache_control" in t for t in tools)
    ):
        ordered = sorted(tools, key=lambda t: str(t.get("name", "")) if isinstance(t, dict) else "")
        if ordered != tools:
            out["tools"] = ordered
            notes.append("auto: tools sorted by name")
    tool_names = (
        ",".join(sorted(str(t.get("name", "")) for t in tools if isinstance(t, dict)))
        if isinstance(tools, list)
        else ""
    )
    system = body.get("system")
    messages = body.get("messages")
    msgs: list[Any] = list(messages) if isinstance(messages, list) else []
    coarse = family_key("anthropic", ctx.info.model or "", ctx.info.tenant, tool_names)

    # Labels of lines seen to change between calls (auto mode only).
    labels = ctx.state.labels(coarse)
    if auto and system is not None:
        # Compare what the app did not mark dynamic: marked changes are handled already.
        stripped = relayout(_text_of(system), volatile=False, labels=frozenset())[0]
        old = ctx.state.swap_head(coarse, stripped)
        if old is not None:
            label = diff_label(old, stripped)
            if label is not None and ctx.state.add_label(coarse, label):
                labels = labels | {label}

    # --- system: marks and volatile lines move to the tail ------------------------------------
    tail: list[str] = []
    sys_blocks: list[Any] | None = None
    sys_static: set[int] = set()
    sys_was_str = isinstance(system, str)
    if isinstance(system, (str, list)):
        src = [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
        sys_blocks = []
        for blk in src:
            if (
                isinstance(blk, dict)
                and blk.get("type") == "text"
                and isinstance(blk.get("text"), str)
            ):
                kept, moved, smark = relayout(blk["text"], volatile=auto, labels=labels)
                tail.extend(moved)
                if kept != blk["text"]:
                    if not kept:
                        continue
                    blk = {**blk, "text": kept}
                if smark:
                    sys_static.add(len(sys_blocks))
            sys_blocks.append(strip_deep(blk))
        if tail:
            notes.append(f"moved {len(tail)} span(s) from system to the end of the request")

    # --- messages: split marked text in place; auto: stable tool_use input --------------------
    dyn: set[tuple[int, int]] = set()
    msg_static: set[tuple[int, int]] = set()
    last = len(msgs) - 1
    for mi, msg in enumerate(msgs if auto or marked else ()):
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        new_content: list[Any] | None = None
        if isinstance(content, str):
            if content.isascii() or not has_marks(content):
                continue  # nothing to split: skip the work on every history turn
            kept, moved, smark = relayout(content, volatile=False, labels=frozenset())
            if moved or kept != content:
                new_content = [{"type": "text", "text": t} for t in (kept, *moved) if t]
                if mi == last:
                    dyn.update((mi, j) for j in range(1 if kept else 0, len(new_content)))
            if smark:
                msg_static.add((mi, 0))
        elif isinstance(content, list):
            acc: list[Any] = []
            touched = False
            for blk in content:
                if (
                    isinstance(blk, dict)
                    and blk.get("type") == "text"
                    and isinstance(blk.get("text"), str)
                ):
                    kept, moved, smark = relayout(blk["text"], volatile=False, labels=frozenset())
                    if moved or kept != blk["text"]:
                        touched = True
                        if kept:
                            if smark:
                                msg_static.add((mi, len(acc)))
                            acc.append({**blk, "text": kept})
                        for t in moved:
                            if mi == last:
                                dyn.add((mi, len(acc)))
                            acc.append({"type": "text", "text": t})
                        continue
                    if smark:
                        msg_static.add((mi, len(acc)))
                elif (
                    auto
                    and isinstance(blk, dict)
                    and blk.get("type") == "tool_use"
                    and isinstance(blk.get("input"), dict)
                ):
                    inp = _sort_keys(blk["input"])
                    if dumps(inp) != dumps(blk["input"]):
                        touched = True
                        blk = {**blk, "input": inp}
                nb = strip_deep(blk)
                touched = touched or nb is not blk
                acc.append(nb)
            if touched:
                new_content = acc
        if new_content is not None:
            msgs[mi] = {**msg, "content": new_content}

    # --- tail: moved system text goes into the last user turn, after everything cached --------
    sys_tail = False
    if tail:
        lu = max(
            (i for i, m in enumerate(msgs) if isinstance(m, dict) and m.get("role") == "user"),
            default=-1,
        )
        if lu >= 0:
            m = msgs[lu]
            c = m.get("content")
            lst = [{"type": "text", "text": c}] if isinstance(c, str) else list(c or [])
            dyn.add((lu, len(lst)))
            lst.append({"type": "text", "text": "".join(tail)})
            msgs[lu] = {**m, "content": lst}
        elif sys_blocks is not None:
            sys_blocks.append({"type": "text", "text": "".join(tail)})
            sys_tail = True

    # The family is named by what stays in the prefix, so moved text cannot split it.
    head = ""
    if sys_blocks:
        head = _text_of(sys_blocks[:-1] if sys_tail else sys_blocks)
    elif msgs and isinstance(msgs[0], dict):
        c0 = msgs[0].get("content")
        head = c0 if isinstance(c0, str) else _text_of(c0[:1] if isinstance(c0, list) else c0)
    fkey = family_key(coarse, head)

    # --- positions -----------------------------------------------------------------------------
    pos: list[Pos] = []
    where: list[tuple[str, int, int]] = []
    out_tools = out.get("tools")
    if isinstance(out_tools, list):
        for ti, t in enumerate(out_tools):
            pos.append(pos_of(t, cacheable=isinstance(t, dict), section="tools"))
            where.append(("tools", ti, -1))
    if sys_blocks is not None:
        for si, blk in enumerate(sys_blocks):
            p = pos_of(blk, cacheable=_cacheable(blk), section="system")
            p.static_mark = si in sys_static
            p.dynamic = sys_tail and si == len(sys_blocks) - 1
            pos.append(p)
            where.append(("system", si, -1))
    for mi, msg in enumerate(msgs):
        if not isinstance(msg, dict):
            continue
        c = msg.get("content")
        if isinstance(c, str):
            # Hashed as the one text block it is equivalent to, so a turn sent as a string and
            # later seen as a block list (after a breakpoint was added) still matches.
            p = pos_of({"type": "text", "text": c}, cacheable=bool(c), section="messages", msg=mi)
            pos.append(p)
            where.append(("messages", mi, -1))
        elif isinstance(c, list):
            for bi, blk in enumerate(c):
                p = pos_of(blk, cacheable=_cacheable(blk), section="messages", msg=mi)
                p.dynamic = (mi, bi) in dyn
                p.static_mark = (mi, bi) in msg_static
                pos.append(p)
                where.append(("messages", mi, bi))

    chars = sum(p.chars for p in pos)
    seq = tuple(p.digest for p in pos if not p.dynamic)
    ratio, calibrated = ctx.state.calibration.ratio(ctx.info.model)
    opts = ctx.anthropic
    min_tokens = opts.min_tokens or anthropic_min_tokens(ctx.info.model)
    useful = readable_blocks(pos, min_tokens, ratio)
    match = ctx.state.record(fkey, seq, ctx.now, coarse, useful)
    gaps, growth_gaps, grown = ctx.state.snapshot(fkey)

    auto_cc = body.get("cache_control")
    auto_ttl = None
    if isinstance(auto_cc, dict):
        used += 1
        auto_ttl = str(auto_cc.get("ttl") or "5m")
    if ctx.state.is_rejected(ctx.info.base_url, "cache_control"):
        used = MAX_BREAKPOINTS
    strategy = Strategy(
        slots=MAX_BREAKPOINTS - used,
        min_tokens=int(min_tokens * (1.02 if calibrated else 1.1)),
        chars_per_token=ratio,
        lookback=LOOKBACK,
        user_auto_ttl=auto_ttl,
    )
    has_history = any(isinstance(m, dict) and m.get("role") == "assistant" for m in msgs)
    if opts.ttl == "auto":
        head_ttl = choose_ttl(gaps)
        anchor_ttl = choose_ttl(growth_gaps) if growth_gaps else "5m"
    else:
        head_ttl = anchor_ttl = opts.ttl
    bps = place(
        pos,
        strategy=strategy,
        common=match.common,
        new_family=match.new_family and match.speculate,
        conversation=match.grew_from > 0
        or (not match.stale and not match.diverging and (has_history or grown)),
        head_ttl=head_ttl,
        anchor_ttl=anchor_ttl,
    )
    if auto_cc is not None and bps:
        # The automatic breakpoint already sits on the last block: do not spend a slot there.
        bps = [b for b in bps if b.index != len(pos) - 1]

    # --- apply -------------------------------------------------------------------------------
    if bps:
        if isinstance(out_tools, list):
            out_tools = list(out_tools)
        for b in bps:
            sec, i, j = where[b.index]
            cc: dict[str, Any] = {"type": "ephemeral"}
            if b.ttl == "1h":
                cc["ttl"] = "1h"
            if sec == "tools" and isinstance(out_tools, list):
                out_tools[i] = {**out_tools[i], "cache_control": cc}
            elif sec == "system" and sys_blocks is not None:
                sys_blocks[i] = {**sys_blocks[i], "cache_control": cc}
            elif sec == "messages":
                m = msgs[i]
                c = m["content"]
                if isinstance(c, str):
                    msgs[i] = {**m, "content": [{"type": "text", "text": c, "cache_control": cc}]}
                else:
                    c = list(c)
                    c[j] = {**c[j], "cache_control": cc}
                    msgs[i] = {**m, "content": c}
            notes.append(
                f"breakpoint {b.ttl} at {sec}[{i}]"
                + (f".content[{j}]" if j >= 0 else "")
                + f" ({b.reason})"
            )
        if isinstance(out_tools, list):
            out["tools"] = out_tools
    if sys_blocks is not None:
        if sys_was_str and len(sys_blocks) == 1 and set(sys_blocks[0]) == {"type", "text"}:
            new_sys: Any = sys_blocks[0]["text"]
        else:
            new_sys = sys_blocks
        if not new_sys:
            out.pop("system", None)  # it was all dynamic: it moved, nothing is left to send
        elif new_sys != system:
            out["system"] = new_sys
    if isinstance(messages, list) and any(a is not b for a, b in zip(msgs, messages, strict=False)):
        out["messages"] = msgs
    if marked:
        out = strip_deep(out)
    return ctx.finish(body, out, notes, chars=chars)
