"""Deterministic provider-cache workloads, described once and rendered for each API.

A workload is a list of :class:`Req` in a neutral form (system text, messages, tools, the gap
before the call). ``render(api, req, oracle=...)`` turns one into the keyword arguments of
``messages.create`` (Anthropic), ``chat.completions.create`` or ``responses.create`` (OpenAI),
either the way the app sends it (``oracle=False``: a volatile line at the top of the system
prompt, tools in the app's order, plain-string contents, the system prompt as ``instructions`` on
the Responses API) or in the ideal layout the optimum uses (``oracle=True``: the same text and
the same token count, with the volatile line moved after the prefix, tools sorted, and every
content as a list of parts so that any part can carry a breakpoint; on the Responses API the
``instructions`` travel as a leading developer message, which the emulator renders byte for
byte like ``instructions``). The oracle itself (``workloads.oracle``) decides where the
breakpoints go.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "EXTRA_WORKLOADS",
    "QUICK_WORKLOADS",
    "WORKLOADS",
    "Msg",
    "Req",
    "render",
    "render_anthropic",
    "render_openai",
    "render_responses",
]

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
    # A user message the app sends as several text parts (e.g. a document, then the question).
    parts: tuple[str, ...] = ()
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
    extends_prev: bool = False  # descriptive only: the oracle derives reuse from the prompts
    extended_next: bool = False
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


def _tool_defs(rng: random.Random, n: int) -> tuple[list[str], list[dict[str, Any]]]:
    names = [f"tool_{w}" for w in rng.sample(_WORDS, n)]
    tools = [
        {
            "name": name,
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
        for name in names
    ]
    return names, tools


def agent_turns(seed: int = 6, user_turns: int = 3, steps: int = 3) -> list[Req]:
    """An agent over several user turns: each turn calls tools ``steps`` times, then answers.

    On the Responses API the tool traffic is ``function_call`` / ``function_call_output`` items,
    so most requests end with a tool output (where no breakpoint can be written explicitly).
    """
    rng = random.Random(seed)
    names, tools = _tool_defs(rng, 8)
    system = "You are a careful operations agent. Use the tools.\n" + text(rng, 1500)
    msgs: list[Msg] = []
    reqs: list[Req] = []
    for turn in range(user_turns):
        msgs.append(Msg("user", f"Request {turn}: " + text(rng, 80)))
        for step in range(steps + 1):
            reqs.append(Req("", system, list(msgs), tools, gap=60.0 if step == 0 else 6.0))
            if step == steps:
                msgs.append(Msg("assistant", text(rng, 120)))
                break
            cid = f"call_{turn}_{step}"
            args = {"query": text(rng, 8), "limit": 5}
            msgs.append(Msg("assistant", "", calls=[(cid, rng.choice(names), args)]))
            msgs.append(Msg("tool", results=[(cid, text(rng, 300 + 150 * step))]))
    return reqs


def doc_sessions(seed: int = 7, sessions: int = 4, turns: int = 3) -> list[Req]:
    """Long-document Q&A: a 40k-token document in the system prompt (``instructions``).

    Several short sessions, one after the other: each session diverges right after the
    document, and each follow-up extends its session.
    """
    rng = random.Random(seed)
    system = (
        "Answer questions using only the document below.\n<document>\n"
        + text(rng, 40_000)
        + "\n</document>"
    )
    reqs: list[Req] = []
    for s in range(sessions):
        reqs += _conversation(system, f"Session {s}. ", turns, rng, 45.0, 150, 40)
    return reqs


def fanout(seed: int = 8, n: int = 30) -> list[Req]:
    """Fan-out: many independent questions over one 20k-token document, 5 s apart.

    The app sends the document and the question as two parts of one user message (the usual
    map step of a map-reduce over a document); 5 s apart keeps one prefix under OpenAI's ~15
    requests/minute routing limit (the overflow case is a workload of its own).
    """
    rng = random.Random(seed)
    doc = "<document>\n" + text(rng, 20_000) + "\n</document>\n"
    return [
        Req(
            "",
            "Answer in one sentence.",
            [Msg("user", parts=(doc, f"Question {i}: " + text(rng, 30)))],
            [],
            gap=5.0,
        )
        for i in range(n)
    ]


def manyshot_family(seed: int = 9, n: int = 24) -> list[Req]:
    """A many-shot family that diverges after the shared examples.

    Short instructions, 30 worked examples as user/assistant message pairs (~8k tokens), then a
    last user message made of one of three case files (~1.5k tokens each) and a question. Two
    requests share the examples; two on the same case file share the case file too.
    """
    rng = random.Random(seed)
    system = "Classify the case like the worked examples, then answer.\n" + text(rng, 150)
    examples: list[Msg] = []
    for i in range(30):
        examples.append(Msg("user", f"Example {i}: " + text(rng, 70)))
        examples.append(Msg("assistant", text(rng, 60)))
    cases = [f"<case {c}>\n" + text(rng, 1500) + "\n</case>\n" for c in range(3)]
    reqs = []
    for i in range(n):
        case = cases[rng.randrange(3)] if i >= 2 else cases[i]
        question = f"Q{i}: " + text(rng, 40)
        msgs = [*examples, Msg("user", parts=(case, question))]
        reqs.append(Req("", system, msgs, [], gap=15.0))
    return reqs


def one_prefix_60rpm(seed: int = 10, n: int = 60) -> list[Req]:
    """One 6k-token prefix called 60 times a minute (above OpenAI's ~15/min routing limit).

    Only interesting where the emulator models overflow routing; kept out of the default set.
    """
    rng = random.Random(seed)
    system = "You triage incoming tickets.\n" + text(rng, 6000)
    return [
        Req("", system, [Msg("user", f"Ticket {i}: " + text(rng, 60))], [], gap=1.0)
        for i in range(n)
    ]


WORKLOADS = {
    "rag (time at top)": rag,
    "10-turn chat": chat10,
    "agent, 15 tools": agent,
    "many-shot": manyshot,
    "book 100k": book,
    "many-shot, 12-min gaps": manyshot_slow,
    "agent, tools unordered": agent_unordered,
    "agent, tool outputs, 3 turns": agent_turns,
    "doc Q&A, doc in system": doc_sessions,
    "fan-out, 30 q over 1 doc": fanout,
    "many-shot family, diverging": manyshot_family,
}
# Workloads run only when asked for by name (``--workload``): they need emulator features the
# lead merges from other branches (overflow routing).
EXTRA_WORKLOADS = {"one prefix, 60 req/min": one_prefix_60rpm}
# A small but telling subset for ``--quick``.
QUICK_WORKLOADS = (
    "agent, tool outputs, 3 turns",
    "doc Q&A, doc in system",
    "many-shot family, diverging",
)


def _tools(req: Req, *, oracle: bool) -> list[dict[str, Any]]:
    tools = list(req.tools)
    if req.tool_order_seed is not None:
        if oracle:
            tools.sort(key=lambda t: str(t["name"]))
        else:
            random.Random(req.tool_order_seed).shuffle(tools)
    return tools


def _user_content(m: Msg, part: str, *, oracle: bool) -> str | list[dict[str, Any]]:
    pieces = list(m.parts) if m.parts else [m.text]
    if m.parts or oracle:
        return [{"type": part, "text": p} for p in pieces]
    return m.text


def render_anthropic(req: Req, *, oracle: bool) -> dict[str, Any]:
    """Keyword arguments for ``messages.create``."""
    msgs: list[dict[str, Any]] = []
    for m in req.messages:
        if m.role == "user":
            msgs.append({"role": "user", "content": _user_content(m, "text", oracle=oracle)})
        elif m.role == "assistant":
            blocks: list[dict[str, Any]] = []
            if m.text:
                blocks.append({"type": "text", "text": m.text})
            blocks += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in m.calls]
            plain = not m.calls and not oracle
            msgs.append({"role": "assistant", "content": m.text if plain else blocks})
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
    system: str | list[dict[str, Any]] = req.system if oracle else req.volatile + req.system
    if oracle:
        system = [{"type": "text", "text": req.system}]
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
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": system}] if oracle else system}
    ]
    for m in req.messages:
        if m.role == "user":
            msgs.append({"role": "user", "content": _user_content(m, "text", oracle=oracle)})
        elif m.role == "assistant":
            content: Any = m.text or None
            if oracle and m.text:
                content = [{"type": "text", "text": m.text}]
            d: dict[str, Any] = {"role": "assistant", "content": content}
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
            msgs += [
                {
                    "role": "tool",
                    "tool_call_id": i,
                    "content": [{"type": "text", "text": t}] if oracle else t,
                }
                for i, t in m.results
            ]
    if oracle and req.volatile:
        msgs.append({"role": "system", "content": [{"type": "text", "text": req.volatile}]})
    kw: dict[str, Any] = {"messages": msgs}
    if req.tools:
        kw["tools"] = [{"type": "function", "function": t} for t in _tools(req, oracle=oracle)]
    return kw


def render_responses(req: Req, *, oracle: bool) -> dict[str, Any]:
    """Keyword arguments for ``responses.create`` (the full input resent on every call).

    The app puts its system prompt in ``instructions``; the oracle layout carries the same text
    as a leading developer message (which can hold a breakpoint; no ``previous_response_id`` is
    used, so nothing else changes).
    """
    items: list[dict[str, Any]] = []
    if oracle:
        items.append({"role": "developer", "content": [{"type": "input_text", "text": req.system}]})
    for m in req.messages:
        if m.role == "user":
            items.append({"role": "user", "content": _user_content(m, "input_text", oracle=oracle)})
        elif m.role == "assistant":
            if m.text:
                items.append({"role": "assistant", "content": m.text})
            items += [
                {"type": "function_call", "call_id": i, "name": n, "arguments": json.dumps(a)}
                for i, n, a in m.calls
            ]
        else:
            items += [
                {"type": "function_call_output", "call_id": i, "output": t} for i, t in m.results
            ]
    if oracle and req.volatile:
        items.append(
            {"role": "developer", "content": [{"type": "input_text", "text": req.volatile}]}
        )
    kw: dict[str, Any] = {"input": items}
    if not oracle:
        kw["instructions"] = req.volatile + req.system
    if req.tools:
        kw["tools"] = [{"type": "function", **t} for t in _tools(req, oracle=oracle)]
    return kw


def render(api: str, req: Req, *, oracle: bool) -> dict[str, Any]:
    """Keyword arguments for ``api`` (``anthropic``, ``chat`` or ``responses``)."""
    if api == "anthropic":
        return render_anthropic(req, oracle=oracle)
    if api == "chat":
        return render_openai(req, oracle=oracle)
    if api == "responses":
        return render_responses(req, oracle=oracle)
    raise ValueError(f"unknown api {api!r}")
