"""Property tests of the planner over randomised requests (hypothesis).

"Idempotent" means re-planning a planned request moves no content and keeps it within the
rules; breakpoints may still be added, since layout marks (stripped the first time) and what
the planner learnt from the first call are information the second call plans with.

"Content preserved exactly once" means: after stripping layout marks, the multiset of
characters of all text the model sees (system, message text, tool text) is unchanged, and every
marked span arrives whole, in one piece, in exactly one place.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import promptcache
from promptcache._api import Api, RequestInfo
from promptcache._plan import AnthropicOptions, DefaultPlanner, OpenAIOptions
from promptcache._plan._layout import MARK_CHARS, strip_marks
from promptcache.testing import Emulator, FakeClock

MODES = st.sampled_from(["off", "safe", "auto"])
WORD = st.text(alphabet="abcdefgh ", min_size=1, max_size=12).filter(lambda s: s.strip() != "")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def texts(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A text made of plain, static, dynamic and volatile pieces; returns (text, marked spans)."""
    parts: list[str] = []
    spans: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["plain", "static", "dynamic", "time", "long"]))
        w = draw(WORD)
        if kind == "static":
            parts.append(promptcache.static(w))
            spans.append(w)
        elif kind == "dynamic":
            parts.append(promptcache.dynamic(w + "\n"))
            spans.append(w + "\n")
        elif kind == "time":
            parts.append(f"Now: 2026-11-28T10:{draw(st.integers(0, 59)):02d}:00Z\n")
        elif kind == "long":
            parts.append((w + " ") * 40 + "\n")
        else:
            parts.append(w)
    return "".join(parts), spans


@st.composite
def anthropic_bodies(draw: st.DrawFn, thinking: bool = True) -> tuple[dict[str, Any], list[str]]:
    spans: list[str] = []
    budget = draw(st.integers(0, 4))  # user breakpoints, all legal (1h ones first)
    n_1h = draw(st.integers(0, budget))
    used = 0

    def cc() -> dict[str, Any] | None:
        nonlocal used
        if used < budget and draw(st.booleans()):
            used += 1
            return {"type": "ephemeral", **({"ttl": "1h"} if used <= n_1h else {})}
        return None

    def text_block() -> dict[str, Any]:
        t, s = draw(texts())
        spans.extend(s)
        b: dict[str, Any] = {"type": "text", "text": t}
        c = cc()
        if c:
            b["cache_control"] = c
        return b

    body: dict[str, Any] = {"model": "claude-opus-5", "max_tokens": 8}
    shape = draw(st.sampled_from(["none", "str", "list"]))
    if shape == "str":
        t, s = draw(texts())
        spans.extend(s)
        body["system"] = t
    elif shape == "list":
        body["system"] = [text_block() for _ in range(draw(st.integers(1, 3)))]
    msgs: list[dict[str, Any]] = []
    n = draw(st.integers(0, 5)) * 2 + 1
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        if draw(st.booleans()):
            t, s = draw(texts())
            spans.extend(s)
            msgs.append({"role": role, "content": t})
        else:
            blocks = [text_block() for _ in range(draw(st.integers(1, 3)))]
            if role == "assistant" and thinking and draw(st.booleans()):
                blocks.insert(0, {"type": "thinking", "thinking": "hmm", "signature": "sig"})
            msgs.append({"role": role, "content": blocks})
    body["messages"] = msgs
    if used < budget and draw(st.booleans()):
        body["cache_control"] = {"type": "ephemeral"}  # automatic: last block, 5m
    return body, spans


def all_text(body: dict[str, Any]) -> list[str]:
    out: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            if isinstance(x.get("text"), str):
                out.append(x["text"])
            for k in ("content", "system", "messages"):
                if k in x:
                    walk(x[k])
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk({k: body[k] for k in ("system", "messages") if k in body})
    return out


def flat_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = list(body.get("tools") or [])
    s = body.get("system")
    if isinstance(s, str):
        out.append({"type": "text", "text": s})
    elif isinstance(s, list):
        out += s
    for m in body["messages"]:
        c = m["content"]
        out += [{"type": "text", "text": c}] if isinstance(c, str) else c
    return out


INFO = RequestInfo(Api.ANTHROPIC_MESSAGES, "https://api.anthropic.com", "claude-opus-5", "t", False)


def planner(mode: Any) -> DefaultPlanner:
    # A tiny minimum so that breakpoints are placed often on short random texts.
    return DefaultPlanner(mode, anthropic=AnthropicOptions(min_tokens=8))


@SETTINGS
@given(case=anthropic_bodies(), mode=MODES)
def test_anthropic_rewrite_invariants(case: tuple[dict[str, Any], list[str]], mode: Any) -> None:
    body, spans = case
    before = copy.deepcopy(body)
    p = planner(mode)
    out = p.rewrite(INFO, body).body
    assert body == before  # pure
    dumped = json.dumps(out, ensure_ascii=False)
    assert not any(c in dumped for c in MARK_CHARS)
    # content preserved exactly once
    assert Counter("".join(all_text(out))) == Counter(strip_marks("".join(all_text(body))))
    texts_out = all_text(out)
    for s in spans:
        assert any(s in t for t in texts_out)
    # never more than 4 breakpoints, never a 1h after a 5m, never on thinking/empty text
    blocks = flat_blocks(out)
    ttls = [b["cache_control"].get("ttl", "5m") for b in blocks if "cache_control" in b]
    if "cache_control" in out:
        ttls.append(out["cache_control"].get("ttl", "5m"))
    assert len(ttls) <= 4
    assert "1h" not in ttls[ttls.index("5m") :] if "5m" in ttls else True
    for b in blocks:
        if "cache_control" in b:
            assert b["type"] not in ("thinking", "redacted_thinking")
            assert b["type"] != "text" or b["text"]
    # idempotent: planning the planned body moves nothing more (breakpoints may be added from
    # what the planner has learnt since, but the request stays within the rules)
    again = p.rewrite(INFO, out).body
    assert no_cc(again) == no_cc(out)
    assert sum("cache_control" in b for b in flat_blocks(again)) + ("cache_control" in again) <= 4


def no_cc(x: Any) -> Any:
    """The request without breakpoints, string content written as the one text block it is."""
    if isinstance(x, dict):
        return {
            k: no_cc(
                [{"type": "text", "text": v}]
                if k in ("content", "system") and isinstance(v, str)
                else v
            )
            for k, v in x.items()
            if k != "cache_control"
        }
    if isinstance(x, list):
        return [no_cc(v) for v in x]
    return x


@SETTINGS
@given(
    turns=st.lists(st.tuples(WORD, WORD), min_size=2, max_size=6),
    head=texts(),
    mode=MODES,
)
def test_prefix_is_byte_stable_as_a_conversation_grows(
    turns: list[tuple[str, str]], head: tuple[str, list[str]], mode: Any
) -> None:
    p = planner(mode)
    system = head[0] + ("Rules of the house. " * 20)
    msgs: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []
    for i, (u, a) in enumerate(turns):
        msgs.append({"role": "user", "content": (u + " ") * 10})
        # the clock line changes every turn, as a real app's would
        sys_now = f"Now: 2026-11-28T10:{i:02d}:00Z\n" + system if mode == "auto" else system
        sent.append(
            p.rewrite(INFO, {"max_tokens": 8, "system": sys_now, "messages": list(msgs)}).body
        )
        msgs.append({"role": "assistant", "content": (a + " ") * 10})

    def canon(b: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in b.items() if k != "cache_control"}, sort_keys=True)

    for cur, nxt in itertools.pairwise(sent):
        blocks = flat_blocks(cur)
        marked = [i for i, b in enumerate(blocks) if "cache_control" in b]
        if not marked:
            continue
        k = marked[-1] + 1
        assert [canon(b) for b in blocks[:k]] == [canon(b) for b in flat_blocks(nxt)[:k]]


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[Emulator, Any, Any]]:
    import tempfile

    clock = FakeClock()
    with Emulator(clock=clock) as emu, tempfile.TemporaryDirectory() as d:
        pcs = {
            m: promptcache.PromptCache(
                directory=Path(d) / m,
                response_cache=False,
                restructure=m,
                clock=clock.now,
                openai=OpenAIOptions(endpoint="openai"),
            )
            for m in ("off", "safe", "auto")
        }
        a = {
            m: pc.wrap(
                anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x", max_retries=0)
            )
            for m, pc in pcs.items()
        }
        o = {
            m: pc.wrap(openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0))
            for m, pc in pcs.items()
        }
        yield emu, a, o
        clients: list[Any] = [*a.values(), *o.values()]
        for client in clients:
            client.close()
        for pc in pcs.values():
            pc.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    case=anthropic_bodies(thinking=False),
    mode=MODES,
    model=st.sampled_from(["claude-opus-5", "claude-sonnet-5"]),
)
def test_no_provider_400_for_random_anthropic_requests(
    live: tuple[Emulator, Any, Any], case: tuple[dict[str, Any], list[str]], mode: str, model: str
) -> None:
    emu, a, _ = live
    body = {**case[0], "model": model}
    a[mode].messages.create(**body)  # raises on any 4xx
    assert emu.calls[-1].status == 200


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    head=texts(),
    turns=st.lists(st.tuples(texts(), WORD), min_size=1, max_size=4),
    mode=MODES,
    model=st.sampled_from(["gpt-4.1", "gpt-5.5", "gpt-6.1-sol"]),
    key=st.booleans(),
    responses=st.booleans(),
)
def test_no_provider_400_for_random_openai_requests(
    live: tuple[Emulator, Any, Any],
    head: tuple[str, list[str]],
    turns: list[tuple[tuple[str, list[str]], str]],
    mode: str,
    model: str,
    key: bool,
    responses: bool,
) -> None:
    emu, _, o = live
    msgs: list[Any] = [{"role": "system", "content": head[0] + "Rules. " * 300}]
    for (u, _), a in turns:
        msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    msgs.pop()
    extra = {"prompt_cache_key": "mine"} if key else {}
    if responses:
        o[mode].responses.create(
            model=model, instructions=msgs[0]["content"], input=msgs[1:], **extra
        )
    else:
        o[mode].chat.completions.create(model=model, messages=msgs, **extra)
    call = emu.calls[-1]
    assert call.status == 200
    assert not any(c in json.dumps(call.request_body, ensure_ascii=False) for c in MARK_CHARS)
