"""OpenAI Chat Completions and Responses: cache key, gpt-5.6+ breakpoints, layout moves.

Rules followed (PROVIDERS.md §2): a stable ``prompt_cache_key`` per prompt family and tenant
(the user's own is never replaced); on gpt-5.6+ explicit ``prompt_cache_breakpoint`` on content
parts (≤4 written per request, no lookback limit) with ``prompt_cache_options.mode="explicit"``
so that only prefixes worth reading are written (writes cost 1.25x there); never
``prompt_cache_options``/breakpoints on older models (they reject them), never the deprecated
``prompt_cache_retention``; nothing added for endpoints that are not OpenAI or a gateway to it
(``_endpoints.py``) unless the user says so, and nothing again that an endpoint has rejected.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson
import xxhash

from promptcache._api import Api
from promptcache._hooks import Rewrite
from promptcache._plan._core import (
    Breakpoint,
    Pos,
    Strategy,
    family_key,
    place,
    pos_of,
    readable_blocks,
)
from promptcache._plan._ctx import Ctx
from promptcache._plan._endpoints import hints_allowed
from promptcache._plan._layout import has_marks, strip_marks
from promptcache._plan._models import openai_explicit, openai_min_tokens
from promptcache._plan._routing import SHARD_NOTE, shard_key
from promptcache._plan._text import TEXT_KEYS, relayout, scan, strip_deep
from promptcache._plan._volatile import diff_label

__all__ = ["plan_openai"]

MAX_BREAKPOINTS: Final = 4
_HEAD_ROLES: Final = frozenset({"system", "developer"})
_BP_PARTS: Final = frozenset({"text", "image_url", "input_audio", "file"})  # Chat
_BP_INPUT_PARTS: Final = frozenset({"input_text", "input_image", "input_file"})  # Responses


def _text_of(x: Any) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, list):
        return "".join(
            b.get("text", "") for b in x if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    return ""


def _stable_args(args: Any) -> Any:
    if not isinstance(args, str):
        return args
    try:
        parsed = json.loads(args)
    except ValueError:
        return args
    return json.dumps(parsed, sort_keys=True, ensure_ascii=False)


def _tool_name(t: Any) -> str:
    if not isinstance(t, dict):
        return ""
    for k in ("function", "custom"):
        inner = t.get(k)
        if isinstance(inner, dict) and "name" in inner:
            return str(inner["name"])
    return str(t.get("name", t.get("type", "")))


def _plain(text: str) -> bool:
    # No layout mark (O(1) for ASCII and for any text without astral-plane characters).
    return text.isascii() or not has_marks(text)


def _digest(text: str) -> str:
    # 128 bits: a collision would drop a chained turn's instructions.
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))


def has_history_of(items: list[Any]) -> bool:
    """Whether the request carries earlier turns (assistant messages or tool calls)."""
    return any(
        isinstance(m, dict) and (m.get("role") == "assistant" or m.get("type") == "function_call")
        for m in items
    )


def plan_openai(ctx: Ctx, body: dict[str, Any]) -> Rewrite:
    """Plan one Chat Completions or Responses request (``body`` is never mutated)."""
    if ctx.mode == "off":
        return ctx.finish(body, strip_deep(body), [], chars=0)
    responses = ctx.info.api is Api.OPENAI_RESPONSES
    auto = ctx.mode == "auto"
    notes: list[str] = []
    out: dict[str, Any] = dict(body)
    items_key = "input" if responses else "messages"
    # One pass for layout marks anywhere and the user's own breakpoints. No marks (the usual
    # case) lets safe mode skip splitting every message and the final strip.
    marked = False
    used = 0
    for k, v in body.items():
        v_marked, v_keys = scan(v, "prompt_cache_breakpoint", structure=k not in TEXT_KEYS)
        marked = marked or v_marked
        if k == items_key:
            used = v_keys

    tools = body.get("tools")
    if auto and isinstance(tools, list) and len(tools) > 1:
        ordered = sorted(tools, key=_tool_name)
        if ordered != tools:
            out["tools"] = ordered
            notes.append("auto: tools sorted by name")
    tool_names = ",".join(sorted(_tool_name(t) for t in tools)) if isinstance(tools, list) else ""

    raw_items = body.get(items_key)
    input_was_str = isinstance(raw_items, str)
    items: list[Any] = (
        [{"role": "user", "content": raw_items}]
        if isinstance(raw_items, str)
        else list(raw_items)
        if isinstance(raw_items, list)
        else []
    )
    instructions = body.get("instructions") if responses else None
    n_head = 0
    while (
        n_head < len(items)
        and isinstance(items[n_head], dict)
        and items[n_head].get("role") in _HEAD_ROLES
    ):
        n_head += 1
    head_text = (instructions if isinstance(instructions, str) else "") + "".join(
        _text_of(items[i].get("content")) for i in range(n_head)
    )
    coarse = family_key(ctx.info.api.value, ctx.info.model or "", ctx.info.tenant, tool_names)

    labels = ctx.state.labels(coarse)
    if auto and head_text:
        # Compare what the app did not mark dynamic: marked changes are handled already.
        stripped = relayout(head_text, volatile=False, labels=frozenset())[0]
        old = ctx.state.swap_head(coarse, stripped)
        if old is not None:
            label = diff_label(old, stripped)
            if label is not None and ctx.state.add_label(coarse, label):
                labels = labels | {label}

    opts = ctx.openai
    native = hints_allowed(ctx)  # declared, or OpenAI's host, a gateway to it, an OpenAI model
    explicit = (
        native
        and opts.explicit_breakpoints
        and openai_explicit(ctx.info.model)
        and not ctx.state.is_rejected(ctx.info.base_url, "prompt_cache_options")
    )

    tail: list[str] = []
    static_at: set[tuple[int, int]] = set()
    dyn: set[tuple[int, int]] = set()
    lead: dict[str, Any] | None = None
    chained = responses and ctx.state.chains(
        coarse, now_chained=body.get("previous_response_id") is not None
    )
    prev_id = body.get("previous_response_id") if responses else None
    # The digest of instructions we moved into the stored history this request extends (its
    # first turn's developer item): the response of this request carries it on as well.
    carried = ctx.state.moved_in(prev_id) if isinstance(prev_id, str) else None
    moved_digest = carried
    head_override: str | None = None  # the family's head text, when it is not in this body
    if isinstance(instructions, str) and (
        prev_id is not None or body.get("conversation") is not None
    ):
        # A stored conversation keeps its input items but takes fresh instructions every turn:
        # text moved into the input would stay in the history, so every later turn would see
        # each earlier copy. The marks go; the text stays where the app put it ...
        plain = strip_marks(instructions)
        kept, moved, _ = (
            relayout(instructions, volatile=auto, labels=labels) if carried else (plain, [], False)
        )
        if carried is not None and _digest(kept) == carried:
            # ... unless the history already starts with the same text as a developer item
            # (we moved it on the first turn): then the model reads the static text once, and
            # what auto would move out of the prefix (volatile lines) stays in `instructions`:
            # an input item would keep every turn's copy in the stored history.
            if moved:
                out["instructions"] = "".join(moved)
            else:
                out.pop("instructions", None)
            head_override = kept  # same family (and cache key) as the turn that moved it
            notes.append("auto: instructions lead the stored history already: not sent again")
        else:
            if plain != instructions:
                out["instructions"] = plain
            if carried is not None:
                notes.append(
                    "instructions differ from those moved into the stored history: sent as "
                    "written (the model sees the earlier ones there as a developer message)"
                )
    elif isinstance(instructions, str):
        kept, moved, _ = relayout(instructions, volatile=auto, labels=labels)
        tail.extend(moved)
        stored = body.get("store") is not False
        policy = ctx.openai.chained_responses
        if not kept:
            out.pop("instructions", None)  # all dynamic: it moved, nothing is left to send
        elif (
            auto
            and explicit
            and "prompt" not in body  # a stored prompt template brings its own messages
            # truncation="auto" drops input items from the start when the context overflows;
            # instructions are never dropped, so the text must not become an input item.
            and body.get("truncation") != "auto"
            # A stored response can be chained: its input items (the moved text with them) are
            # carried into every later turn, its instructions not. We remember which responses
            # carry moved text and do not send it again on a chained turn (above); an app seen
            # chaining in this family, or that says it chains ("always"), keeps its
            # instructions on stored responses unless it sends its history inline.
            and (
                not stored
                or policy == "never"
                or (not chained and (policy == "auto" or has_history_of(items)))
            )
            and len(kept)
            >= openai_min_tokens(ctx.info.model) * ctx.state.calibration.ratio(ctx.info.model)[0]
        ):
            # gpt-5.6+ writes only at breakpoints, and those live on input content parts: a
            # long `instructions` string can never end a cached prefix. The same text as a
            # leading developer message can (`instructions` is "a system (or developer)
            # message inserted into the model's context", openai 3.51 response_create_params).
            # Always sent as a part list, so the item's bytes do not change when a breakpoint
            # comes or goes.
            out.pop("instructions", None)
            lead = {"role": "developer", "content": [{"type": "input_text", "text": kept}]}
            if stored:
                moved_digest = _digest(kept)
        elif kept != instructions:
            out["instructions"] = kept
    part_type = "input_text" if responses else "text"
    last = len(items) - 1
    for mi, item in enumerate(items if auto or marked else ()):
        if not isinstance(item, dict):
            continue
        is_head = mi < n_head
        if auto and not responses and isinstance(item.get("tool_calls"), list):
            calls = [
                {
                    **c,
                    "function": {
                        **c["function"],
                        "arguments": _stable_args(c["function"].get("arguments")),
                    },
                }
                if isinstance(c, dict) and isinstance(c.get("function"), dict)
                else c
                for c in item["tool_calls"]
            ]
            if calls != item["tool_calls"]:
                item = items[mi] = {**item, "tool_calls": calls}
        if auto and responses and item.get("type") == "function_call":
            a = _stable_args(item.get("arguments"))
            if a != item.get("arguments"):
                item = items[mi] = {**item, "arguments": a}
        content = item.get("content")
        if isinstance(content, str):
            if not (auto and is_head) and _plain(content):
                continue  # nothing to split or move: skip the work on every history turn
            kept, moved, smark = relayout(content, volatile=auto and is_head, labels=labels)
            if is_head:
                tail.extend(moved)
                moved = []
            if smark:
                static_at.add((mi, -1 if not moved else 0))
            if moved:
                parts = [{"type": part_type, "text": t} for t in (kept, *moved) if t]
                if mi == last:
                    dyn.update((mi, j) for j in range(1 if kept else 0, len(parts)))
                items[mi] = {**item, "content": parts}
            elif kept != content:
                items[mi] = {**item, "content": kept}
        elif isinstance(content, list):
            acc: list[Any] = []
            touched = False
            for blk in content:
                if isinstance(blk, dict) and isinstance(blk.get("text"), str):
                    kept, moved, smark = relayout(
                        blk["text"], volatile=auto and is_head, labels=labels
                    )
                    if is_head:
                        tail.extend(moved)
                        moved = []
                    if moved or kept != blk["text"]:
                        touched = True
                        if kept:
                            if smark:
                                static_at.add((mi, len(acc)))
                            acc.append({**blk, "text": kept})
                        for t in moved:
                            if mi == last:
                                dyn.add((mi, len(acc)))
                            acc.append({"type": blk.get("type", part_type), "text": t})
                        continue
                    if smark:
                        static_at.add((mi, len(acc)))
                nb = strip_deep(blk)
                touched = touched or nb is not blk
                acc.append(nb)
            if touched:
                items[mi] = {**item, "content": acc}
    if tail:
        role = (
            "developer"
            if responses
            or any(
                isinstance(items[i], dict) and items[i].get("role") == "developer"
                for i in range(n_head)
            )
            else "system"
        )
        # A head message that was all dynamic is now empty: drop it (its text moved).
        empty = [
            i
            for i in range(n_head)
            if isinstance(items[i], dict) and items[i].get("content") in ("", [])
        ]
        if empty:

            def shift(k: tuple[int, int]) -> tuple[int, int]:
                return (k[0] - sum(1 for e in empty if e < k[0]), k[1])

            items = [it for i, it in enumerate(items) if i not in empty]
            dyn = {shift(k) for k in dyn}
            static_at = {shift(k) for k in static_at}
            n_head -= len(empty)
        dyn.add((len(items), -1))
        items.append({"role": role, "content": "".join(tail)})
        notes.append(
            f"moved {len(tail)} span(s) from the instructions to a trailing {role} message"
        )

    if lead is not None:
        items.insert(0, lead)
        dyn = {(a + 1, b) for a, b in dyn}
        static_at = {(a + 1, b) for a, b in static_at}
        n_head += 1
        notes.append("auto: instructions sent as a leading developer message (cacheable)")

    # The family is named by what stays in the prefix, so moved text cannot split it.
    kept_head = (out["instructions"] if isinstance(out.get("instructions"), str) else "") + "".join(
        _text_of(items[i].get("content")) for i in range(n_head) if isinstance(items[i], dict)
    )
    if head_override is not None:
        kept_head = head_override
    elif not kept_head and items and isinstance(items[0], dict):
        kept_head = _text_of(items[0].get("content"))
    fkey = family_key(coarse, kept_head)

    # --- positions: only gpt-5.6+ breakpoints use them (the cache key needs just the family).
    # Everything they feed (family history, token calibration) is read only on that path, so
    # older models and compatible endpoints skip hashing the whole request.
    chars = 0
    if explicit:
        pos: list[Pos] = []
        where: list[tuple[int, int]] = []
        if isinstance(out.get("tools"), list):
            pos.append(pos_of(out["tools"], cacheable=False, section="tools"))
            where.append((-2, -1))
        if head_override is not None:
            # The stored history starts with it: the prefix is the same as when it was sent.
            pos.append(pos_of(head_override, cacheable=False, section="system"))
            where.append((-1, -1))
        if isinstance(out.get("instructions"), str):
            pos.append(pos_of(out["instructions"], cacheable=False, section="system"))
            where.append((-1, -1))
        for mi, item in enumerate(items):
            if mi == 0 and lead is not None:
                # Hashed as the `instructions` string it carries, so that calls of the family
                # that sent the text as `instructions` (before moving it was allowed) match.
                pos.append(pos_of(lead["content"][0]["text"], cacheable=True, section="system"))
                where.append((0, 0))
                continue
            if not isinstance(item, dict):
                pos.append(pos_of(item, cacheable=False, section="messages", msg=mi))
                where.append((mi, -1))
                continue
            sec = "system" if mi < n_head else "messages"
            item_role = item.get("role")
            c = item.get("content")
            if responses and item.get("type") == "function_call_output":
                c = item.get("output")
            # Responses breakpoints go on input parts (messages, and tool outputs as input_text
            # parts), never on assistant output.
            bp_ok_role = not (responses and item_role == "assistant")
            if isinstance(c, str):
                p = pos_of(item, cacheable=bool(c) and bp_ok_role, section=sec, msg=mi)
                if dyn or static_at:
                    p.dynamic = (mi, -1) in dyn
                    p.static_mark = (mi, -1) in static_at
                pos.append(p)
                where.append((mi, -1))
            elif isinstance(c, list) and c:
                for bi, blk in enumerate(c):
                    ptype = blk.get("type") if isinstance(blk, dict) else None
                    ok = bp_ok_role and ptype in (_BP_INPUT_PARTS if responses else _BP_PARTS)
                    p = pos_of(blk, cacheable=ok, section=sec, msg=mi)
                    if dyn or static_at:
                        p.dynamic = (mi, bi) in dyn
                        p.static_mark = (mi, bi) in static_at
                    pos.append(p)
                    where.append((mi, bi))
            else:
                pos.append(pos_of(item, cacheable=False, section=sec, msg=mi))
                where.append((mi, -1))
        chars = sum(p.chars for p in pos)
        seq = tuple(p.digest for p in pos if not p.dynamic)
        useful = readable_blocks(
            pos, openai_min_tokens(ctx.info.model), ctx.state.calibration.ratio(ctx.info.model)[0]
        )
        match = ctx.state.record(fkey, seq, ctx.now, coarse, useful)
    added: set[str] = set()

    # --- prompt_cache_key ------------------------------------------------------------------------
    may_key = (native or opts.compatible_accepts_cache_key) and not ctx.state.is_rejected(
        ctx.info.base_url, "prompt_cache_key"
    )
    if may_key and "prompt_cache_key" not in body:
        key: str | None = None
        if isinstance(opts.prompt_cache_key, str):
            key = opts.prompt_cache_key
        elif callable(opts.prompt_cache_key):
            key = opts.prompt_cache_key(ctx.info, body)
        if key is None:
            key = "pc-" + xxhash.xxh3_64_hexdigest(f"{ctx.info.tenant}\x00{fkey}".encode())
        out["prompt_cache_key"] = key
        added.add("prompt_cache_key")
    if native and opts.routing_limit_per_minute is not None:
        _shard(ctx, out, body, items, n_head, fkey, notes)

    # --- gpt-5.6+: explicit breakpoints, written only where a later request reads -------------
    if explicit:
        user_opts = body.get("prompt_cache_options")
        user_mode = user_opts.get("mode") if isinstance(user_opts, dict) else None
        gaps, _, grown = ctx.state.snapshot(fkey)
        # A request chained to a stored response (previous_response_id, conversation) extends
        # it by definition, and the next turn extends this one: its end is where that turn
        # reads. The planner does not see the stored history, so growth cannot be observed.
        chained_now = responses and (
            body.get("previous_response_id") is not None or body.get("conversation") is not None
        )
        conversation = (
            chained_now
            or match.grew_from > 0
            or (not match.stale and not match.diverging and (has_history_of(items) or grown))
        )
        stable = [i for i, p in enumerate(pos) if not p.dynamic]
        # A growing conversation that ends in tool output: a breakpoint on a function_call_output
        # part is allowed by the SDK types but not confirmed, so keep the implicit breakpoint
        # too (it writes the end whatever happens; at worst a few moved tokens more).
        end_item = items[pos[stable[-1]].msg] if stable and pos[stable[-1]].msg >= 0 else None
        ends_in_tool_output = (
            isinstance(end_item, dict) and end_item.get("type") == "function_call_output"
        )
        implicit = user_mode == "implicit" or (
            user_mode is None
            and conversation
            and bool(stable)
            and (ends_in_tool_output or not pos[stable[-1]].cacheable)
        )
        budget = MAX_BREAKPOINTS - (1 if implicit else 0)
        ratio, calibrated = ctx.state.calibration.ratio(ctx.info.model)
        strategy = Strategy(
            slots=budget - used,
            min_tokens=int(openai_min_tokens(ctx.info.model) * (1.02 if calibrated else 1.1)),
            chars_per_token=ratio,
            lookback=None,
            ttl_choice=False,
        )
        # 30m minimum lifetime: a gap beyond it is a fresh write; no gaps known -> write.
        reused = not gaps or any(g <= 30 * 60 for g in gaps[-8:])
        bps = place(
            pos,
            strategy=strategy,
            common=match.common,
            new_family=match.new_family and match.speculate,
            conversation=conversation,
            head_ttl="5m" if reused else None,
            anchor_ttl="5m",
        )
        # A string item that once went out as a part list (to carry a breakpoint) stays a part
        # list: the breakpoint moves on next turn, and turning the item back into a string
        # would change the bytes of a prefix that was written with it.
        strings = [i for i, (_, bi) in enumerate(where) if bi < 0 and pos[i].cacheable]
        listed = ctx.state.listed(fkey, (pos[i].digest for i in strings))
        at: dict[int, Breakpoint | None] = {b.index: b for b in bps}
        if listed:
            at.update((i, None) for i in strings if i not in at and pos[i].digest in listed)
        new_listed: set[int] = set()
        for idx in sorted(at):
            b = at[idx]
            mi, bi = where[idx]
            item = items[mi]
            field = (
                "output" if responses and item.get("type") == "function_call_output" else "content"
            )
            c = item[field]
            if isinstance(c, str):
                part: dict[str, Any] = {"type": part_type, "text": c}
                if b is not None:
                    part["prompt_cache_breakpoint"] = {"mode": "explicit"}
                items[mi] = {**item, field: [part]}
                new_listed.add(pos[idx].digest)
            elif b is not None:
                c = list(c)
                c[bi] = {**c[bi], "prompt_cache_breakpoint": {"mode": "explicit"}}
                items[mi] = {**item, field: c}
            if b is not None:
                notes.append(
                    f"breakpoint at {items_key}[{mi}]"
                    + (f".{field}[{bi}]" if bi >= 0 else "")
                    + f" ({b.reason})"
                )
        if not new_listed <= listed:
            ctx.state.add_listed(fkey, new_listed)
        if (
            user_mode is None
            and not implicit
            and used == 0
            and (bps or not (match.new_family and match.speculate))
        ):
            # Explicit mode: no implicit write of the whole prompt; with no breakpoint at all
            # it means "write nothing" for prompts that are never read again.
            out["prompt_cache_options"] = {"mode": "explicit"}
            added.add("prompt_cache_options")

    if items != (raw_items if isinstance(raw_items, list) else None) or any(
        a is not b
        for a, b in zip(items, raw_items if isinstance(raw_items, list) else [], strict=False)
    ):
        if input_was_str and len(items) == 1 and items[0].get("content") == raw_items:
            pass
        else:
            out[items_key] = items
    if marked:
        out = strip_deep(out)
    return ctx.finish(
        body, out, notes, chars=chars, added=frozenset(added), family=fkey, moved=moved_digest
    )


def _shard(
    ctx: Ctx,
    out: dict[str, Any],
    body: dict[str, Any],
    items: list[Any],
    n_head: int,
    fkey: str,
    notes: list[str],
) -> None:
    """Above OpenAI's per-prefix-and-key rate, send this request under a derived key."""
    key = out.get("prompt_cache_key")
    opts = ctx.openai
    if not isinstance(key, str) or not key or opts.routing_limit_per_minute is None:
        return
    ours = "prompt_cache_key" not in body and opts.prompt_cache_key is None
    if not ours and (
        not opts.shard_user_keys or ctx.state.is_rejected(ctx.info.base_url, "shard_user_keys")
    ):
        return

    def conversation() -> tuple[int, bool] | None:
        # A conversation is named by its first item after the system/developer head: that
        # stays the same on every turn, and differs between conversations.
        first = items[n_head] if n_head < len(items) else None
        if first is None:
            return None
        try:
            raw = orjson.dumps(first)
        except TypeError:  # not JSON (an SDK object on the fast path): no conversation id
            return None
        return xxhash.xxh3_64_intdigest(raw), has_history_of(items)

    shard = ctx.state.shard(
        f"{fkey}\x00{key}", ctx.now, opts.routing_limit_per_minute, conversation
    )
    if shard:
        out["prompt_cache_key"] = shard_key(key, shard)
        notes.append(f"{SHARD_NOTE}{shard}: family above the routing limit")
