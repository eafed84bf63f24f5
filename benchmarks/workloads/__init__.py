"""Deterministic provider-cache workloads, described once and rendered for each provider.

A workload is a list of :class:`Req` in a neutral form (system segments, messages, tools,
the gap before the call) plus hints an oracle uses to place the best breakpoints the provider
rules allow (it knows the future: whether the next request extends this one).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["WORKLOADS", "Msg", "Req", "render_anthropic", "render_openai"]

_WORDS = [
    "cache",
    "prefix",
    "token",
    "model",
    "answer",
    "question",
    "context",
    "policy",
    "system",
    "window",
    "budget",
    "write",
    "read",
    "latency",
    "request",
    "reply",
    "document",
    "chapter",
    "section",
    "river",
    "mountain",
    "garden",
    "engine",
    "signal",
    "matrix",
    "vector",
    "planet",
    "harbor",
    "lantern",
    "meadow",
    "orbit",
    "canyon",
    "summit",
    "archive",
    "ledger",
    "theory",
    "method",
    "result",
    "figure",
    "sample",
    "measure",
    "pattern",
    "detail",
    "feature",
    "market",
    "person",
]


def text(rng: random.Random, tokens: int) -> str:
    """About ``tokens`` tokens (4 bytes each in the emulator) of seeded prose."""
    out: list[str] = []
    n = 0
    target = tokens * 4
    while n < target:
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14)))
        s = sentence.capitalize() + ". "
        out.append(s)
        n += len(s)
    return "".join(out)[:target]


@dataclass
class Msg:
    """A neutral message: user text, assistant text/tool calls, or tool results."""

    role: Literal["user", "assistant", "tool"]
    text: str = ""
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    results: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Req:
    """One call: what the app sends, and what an oracle may know about the future."""

    volatile: str  # a line the app puts at the top of its system prompt ("" if none)
    system: str  # the static system text
    messages: list[Msg]
    tools: list[dict[str, Any]]
    gap: float  # seconds since the previous call
    extends_prev: bool  # this request's prefix contains the previous request in full
    extended_next: bool  # the next request extends this one
    system_reused: bool = True
    tool_order_seed: int | None = None  # the app lists its tools in a varying order


def _iso(t: int) -> str:
    h, m, s = 9 + t // 3600, (t // 60) % 60, t % 60
    return f"2026-11-28T{h:02d}:{m:02d}:{s:02d}Z"


def rag(seed: int = 1) -> list[Req]:
    """A RAG app: current time at the top of the system prompt, varying documents."""
    rng = random.Random(seed)
    system = "You are a support assistant for the Acme knowledge base.\n" + text(rng, 2500)
    pool = [text(rng, 400) for _ in range(30)]
    reqs = []
    t = 0
    for i in range(20):
        gap = 45.0
        t += int(gap)
        docs = "\n\n".join(rng.sample(pool, 3))
        q = f"Question {i}: " + text(rng, 40)
        reqs.append(
            Req(
                volatile=f"Current time: {_iso(t)}\n",
                system=system,
                messages=[Msg("user", f"Documents:\n{docs}\n\n{q}")],
                tools=[],
                gap=gap,
                extends_prev=False,
                extended_next=False,
            )
        )
    return reqs


def _conversation(
    system: str,
    first_user: str,
    turns: int,
    rng: random.Random,
    gap: float,
    answer_tokens: int,
    question_tokens: int,
) -> list[Req]:
    msgs: list[Msg] = []
    reqs = []
    for k in range(turns):
        user = first_user if k == 0 else ""
        msgs.append(Msg("user", user + f"Turn {k}: " + text(rng, question_tokens)))
        reqs.append(
            Req(
                volatile="",
                system=system,
                messages=list(msgs),
                tools=[],
                gap=gap,
                extends_prev=k > 0,
                extended_next=k < turns - 1,
            )
        )
        msgs.append(Msg("assistant", text(rng, answer_tokens)))
    return reqs


def chat10(seed: int = 2) -> list[Req]:
    """A 10-turn conversation with a long (4k-token) system prompt."""
    rng = random.Random(seed)
    system = "You are a patient tutor.\n" + text(rng, 4000)
    return _conversation(system, "", 10, rng, 40.0, 250, 60)


def book(seed: int = 3) -> list[Req]:
    """Chat over a 100k-token book given in the first user turn."""
    rng = random.Random(seed)
    the_book = "<book>\n" + text(rng, 100_000) + "\n</book>\n\n"
    return _conversation("You answer questions about the book.", the_book, 10, rng, 60.0, 200, 40)


def manyshot(seed: int = 4, n: int = 25) -> list[Req]:
    """A 10k-token many-shot prompt (examples in the system prompt), varying questions."""
    rng = random.Random(seed)
    examples = "".join(
        f"Example {i}:\nQ: {text(rng, 60)}\nA: {text(rng, 140)}\n\n" for i in range(50)
    )
    system = "Classify and answer like the examples.\n" + examples
    return [
        Req(
            volatile="",
            system=system,
            messages=[Msg("user", f"Q: {text(rng, 50)}")],
            tools=[],
            gap=20.0,
            extends_prev=False,
            extended_next=False,
        )
        for _ in range(n)
    ]


def manyshot_slow(seed: int = 4) -> list[Req]:
    """The many-shot prompt called every 12 minutes for 6 hours: past a 5m TTL, inside 1h."""
    reqs = manyshot(seed, n=30)
    for r in reqs:
        r.gap = 12 * 60.0
    return reqs


def agent_unordered(seed: int = 5) -> list[Req]:
    """The agent loop, with tools listed in a different order on every call (from a set)."""
    reqs = agent(seed)
    for i, r in enumerate(reqs):
        r.tool_order_seed = 1000 + i
    return reqs


def agent(seed: int = 5) -> list[Req]:
    """An agent loop: 15 tools, growing tool results, 14 steps."""
    rng = random.Random(seed)
    names = [f"tool_{w}" for w in rng.sample(_WORDS, 15)]
    tools = [
        {
            "name": n,
            "description": text(rng, 90),
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": text(rng, 12)},
                    "limit": {"type": "integer"},
                },
                "required": ["query"],
            },
        }
        for n in names
    ]
    system = "You are an autonomous research agent.\n" + text(rng, 800)
    msgs: list[Msg] = [Msg("user", "Task: " + text(rng, 100))]
    reqs = []
    steps = 14
    for k in range(steps):
        reqs.append(
            Req(
                volatile="",
                system=system,
                messages=list(msgs),
                tools=tools,
                gap=8.0,
                extends_prev=k > 0,
                extended_next=k < steps - 1,
            )
        )
        cid = f"call_{k:03d}"
        name = rng.choice(names)
        args = {"query": text(rng, 8), "limit": 5}
        msgs.append(Msg("assistant", text(rng, 30), calls=[(cid, name, args)]))
        msgs.append(Msg("tool", results=[(cid, text(rng, 200 + 120 * k))]))
    return reqs


WORKLOADS = {
    "rag (time at top)": rag,
    "10-turn chat": chat10,
    "agent, 15 tools": agent,
    "many-shot": manyshot,
    "book 100k": book,
    "many-shot, 12-min gaps": manyshot_slow,
    "agent, tools unordered": agent_unordered,
}


def _tools(req: Req, *, oracle: bool) -> list[dict[str, Any]]:
    tools = list(req.tools)
    if req.tool_order_seed is not None:
        if oracle:
            tools.sort(key=lambda t: str(t["name"]))
        else:
            random.Random(req.tool_order_seed).shuffle(tools)
    return tools


def render_anthropic(req: Req, *, oracle: bool) -> dict[str, Any]:
    """Keyword arguments for ``messages.create`` (the oracle layout moves the volatile line)."""
    msgs: list[dict[str, Any]] = []
    for m in req.messages:
        if m.role == "user":
            msgs.append({"role": "user", "content": m.text})
        elif m.role == "assistant":
            blocks: list[dict[str, Any]] = []
            if m.text:
                blocks.append({"type": "text", "text": m.text})
            blocks += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in m.calls]
            msgs.append({"role": "assistant", "content": blocks if m.calls else m.text})
        else:
            msgs.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": i, "content": t}
                        for i, t in m.results
                    ],
                }
            )
    system = req.system if oracle else req.volatile + req.system
    if oracle and req.volatile:
        last = msgs[-1]
        c = last["content"]
        lst = [{"type": "text", "text": c}] if isinstance(c, str) else list(c)
        last["content"] = [*lst, {"type": "text", "text": req.volatile}]
    kw: dict[str, Any] = {"system": system, "messages": msgs, "max_tokens": 64}
    if req.tools:
        kw["tools"] = [
            {"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
            for t in _tools(req, oracle=oracle)
        ]
    return kw


def render_openai(req: Req, *, oracle: bool) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create``."""
    system = req.system if oracle else req.volatile + req.system
    msgs: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for m in req.messages:
        if m.role == "user":
            msgs.append({"role": "user", "content": m.text})
        elif m.role == "assistant":
            d: dict[str, Any] = {"role": "assistant", "content": m.text or None}
            if m.calls:
                d["tool_calls"] = [
                    {
                        "id": i,
                        "type": "function",
                        "function": {"name": n, "arguments": json.dumps(a)},
                    }
                    for i, n, a in m.calls
                ]
            msgs.append(d)
        else:
            msgs += [{"role": "tool", "tool_call_id": i, "content": t} for i, t in m.results]
    if oracle and req.volatile:
        msgs.append({"role": "system", "content": req.volatile})
    kw: dict[str, Any] = {"messages": msgs}
    if req.tools:
        kw["tools"] = [{"type": "function", "function": t} for t in _tools(req, oracle=oracle)]
    return kw
