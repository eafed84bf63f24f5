"""Issue-10 workloads for the planner: Responses API on gpt-5.6+ and Anthropic many-shot.

Each workload is a list of calls sent through the real SDK to the emulator on a FakeClock;
:func:`run` returns the emulator's ground truth (inclusive input, reads, writes) and the
*reachable* read: for every call, the longest prefix it shares at a content boundary with an
earlier call (at or above the model minimum, within the provider TTL), as the emulator renders
the request that was sent. That is what an oracle placing breakpoints with knowledge of the
future could read with the same request bodies; a wasted write is a written token no later
call reads.

Used by ``test_10_*.py``; also a script for the figures in the report::

    python -m tests.plan._workloads10            # every workload, safe and auto
    python -m tests.plan._workloads10 few-shot   # the workloads whose name contains it
"""

from __future__ import annotations

import random
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai

import promptcache
from promptcache._plan import OpenAIOptions
from promptcache.testing import Emulator, FakeClock, anthropic_minimum

__all__ = ["WORKLOADS", "Figures", "run"]

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
]

OPENAI_MODEL = "gpt-6.1-sol"


def text(rng: random.Random, tokens: int) -> str:
    """About ``tokens`` emulator tokens (4 bytes each) of seeded prose."""
    out: list[str] = []
    n = 0
    while n < tokens * 4:
        s = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14))).capitalize() + ". "
        out.append(s)
        n += len(s)
    return "".join(out)[: tokens * 4]


Call = dict[str, Any]  # keyword arguments for responses.create / messages.create, plus "_gap"


def doc_in_instructions(seed: int = 1) -> list[Call]:
    """Q&A over a 20k-token document given as ``instructions``; one question per call."""
    rng = random.Random(seed)
    doc = "Answer from this document only.\n<doc>\n" + text(rng, 20_000) + "\n</doc>"
    return [
        {"instructions": doc, "input": f"Question {i}: {text(rng, 40)}", "_gap": 30.0}
        for i in range(12)
    ]


def doc_in_instructions_unstored(seed: int = 1) -> list[Call]:
    """The same with ``store=False``: no response can be chained."""
    return [{**c, "store": False} for c in doc_in_instructions(seed)]


def few_shot_items(seed: int = 2) -> list[Call]:
    """Few-shot examples as user/assistant input items, then a different question each call."""
    rng = random.Random(seed)
    shots: list[dict[str, Any]] = []
    for i in range(30):
        shots.append({"role": "user", "content": f"Example {i}: {text(rng, 60)}"})
        shots.append({"role": "assistant", "content": text(rng, 120)})
    head = "Classify the request like the examples. " + text(rng, 200)
    return [
        {
            "instructions": head,
            "input": [*shots, {"role": "user", "content": f"Q{i}: {text(rng, 50)}"}],
            "_gap": 20.0,
        }
        for i in range(15)
    ]


def fan_out_parts(seed: int = 3) -> list[Call]:
    """Many questions over one document: one user item, the document part then the question."""
    rng = random.Random(seed)
    doc = "<document>\n" + text(rng, 12_000) + "\n</document>"
    return [
        {
            "instructions": "You answer questions about the user's document.",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": doc},
                        {"type": "input_text", "text": f"Question {i}: {text(rng, 40)}"},
                    ],
                }
            ],
            "_gap": 15.0,
        }
        for i in range(12)
    ]


def agent_tool_outputs(seed: int = 4) -> list[Call]:
    """An agent loop with history inline: function calls and string tool outputs."""
    rng = random.Random(seed)
    names = [f"tool_{w}" for w in rng.sample(_WORDS, 6)]
    tools = [
        {
            "type": "function",
            "name": n,
            "description": text(rng, 80),
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        }
        for n in names
    ]
    instructions = "You are a research agent. " + text(rng, 1500)
    items: list[dict[str, Any]] = [{"role": "user", "content": "Task: " + text(rng, 100)}]
    calls: list[Call] = []
    for k in range(10):
        calls.append(
            {"instructions": instructions, "tools": tools, "input": list(items), "_gap": 8.0}
        )
        cid = f"call_{k:03d}"
        items.append(
            {
                "type": "function_call",
                "call_id": cid,
                "name": rng.choice(names),
                "arguments": '{"query": "' + text(rng, 8) + '"}',
            }
        )
        items.append(
            {"type": "function_call_output", "call_id": cid, "output": text(rng, 300 + 100 * k)}
        )
    return calls


def chat_instructions(seed: int = 5) -> list[Call]:
    """A stateless chat: long instructions, history sent inline, 8 turns."""
    rng = random.Random(seed)
    instructions = "You are a patient tutor. " + text(rng, 3000)
    items: list[dict[str, Any]] = []
    calls: list[Call] = []
    for k in range(8):
        items.append({"role": "user", "content": f"Turn {k}: {text(rng, 60)}"})
        calls.append({"instructions": instructions, "input": list(items), "_gap": 40.0})
        items.append({"role": "assistant", "content": text(rng, 200)})
    return calls


def chained_chat(seed: int = 7) -> list[Call]:
    """A conversation chained with ``previous_response_id``: instructions resent every turn."""
    rng = random.Random(seed)
    instructions = "You are a patient tutor. " + text(rng, 3000)
    return [
        {"instructions": instructions, "input": f"Turn {k}: {text(rng, 60)}", "_gap": 40.0}
        | ({"_chain": True} if k else {})
        for k in range(8)
    ]


def many_shot_messages(seed: int = 6) -> list[Call]:
    """Anthropic: a short system prompt, 40 example turns as messages, a new question each call."""
    rng = random.Random(seed)
    msgs: list[dict[str, Any]] = []
    for i in range(40):
        msgs.append({"role": "user", "content": f"Example {i}: {text(rng, 60)}"})
        msgs.append({"role": "assistant", "content": text(rng, 140)})
    system = "Answer like the examples. " + text(rng, 300)
    return [
        {
            "system": system,
            "messages": [*msgs, {"role": "user", "content": f"Q{i}: {text(rng, 50)}"}],
            "max_tokens": 64,
            "_gap": 20.0,
        }
        for i in range(20)
    ]


# name -> (provider, workload)
WORKLOADS: dict[str, tuple[str, Callable[[], list[Call]]]] = {
    "doc in instructions": ("openai", doc_in_instructions),
    "doc in instructions, store=False": ("openai", doc_in_instructions_unstored),
    "few-shot items": ("openai", few_shot_items),
    "fan-out, document part": ("openai", fan_out_parts),
    "agent, tool outputs": ("openai", agent_tool_outputs),
    "chat, instructions": ("openai", chat_instructions),
    "chat, previous_response_id": ("openai", chained_chat),
    "many-shot messages (sonnet-5)": ("anthropic:claude-sonnet-5", many_shot_messages),
    "many-shot messages (opus-5)": ("anthropic:claude-opus-5", many_shot_messages),
}


@dataclass
class Figures:
    """Emulator ground truth for one run, and the reachable read for the bodies sent."""

    input_tokens: int
    read: int
    write: int
    reachable: int  # best read an oracle could get with the bodies sent
    wasted_write: int  # written tokens no later call read
    bodies: list[dict[str, Any]]
    reads: list[int]
    writes: list[int]
    provider: str = "openai"

    @property
    def read_share(self) -> float:
        """Share of input tokens read from the cache."""
        return self.read / self.input_tokens if self.input_tokens else 0.0

    @property
    def cost_ratio(self) -> float:
        """Input cost relative to no caching, at the planning multipliers.

        Reads at 0.05x (gpt-6.1-sol) or 0.1x (the Claude models here), writes at 1.25x.
        """
        read = 0.05 if self.provider == "openai" else 0.1
        plain = self.input_tokens - self.read - self.write
        paid = plain + read * self.read + 1.25 * self.write
        return paid / self.input_tokens if self.input_tokens else 1.0

    @property
    def of_optimum(self) -> float:
        """Reads relative to the reachable reads (1.0 = the optimum)."""
        if self.reachable < 0:
            return float("nan")
        return self.read / self.reachable if self.reachable else 1.0


def _boundaries(provider: str, body: dict[str, Any]) -> list[tuple[bytes, int]]:
    """(prefix digest, tokens) at every content boundary of ``body`` as the emulator sees it."""
    if provider != "openai":
        from promptcache.testing._anthropic import _prompt

        return [(b.digest, b.tokens) for b in _prompt(body).r.blocks]
    from promptcache.testing._openai import _response_items, _responses_prompt

    items = _response_items(body)
    p = _responses_prompt(body, items, True)
    # Responses breakpoints sit on input parts only: an assistant message (output_text parts)
    # cannot end a written prefix, so its boundaries are not reachable.
    ends = p.message_ends[1:] if body.get("instructions") else p.message_ends
    barred: set[int] = set()
    start = p.message_ends[0] if body.get("instructions") else -1
    for item, end in zip(items, ends, strict=True):
        if isinstance(item, dict) and item.get("role") == "assistant":
            barred.update(range(start + 1, end + 1))
        start = end
    return [(b.digest, b.tokens) for k, b in enumerate(p.r.blocks) if k not in barred]


def _reachable(
    provider: str, model: str, bodies: list[dict[str, Any]], times: list[float]
) -> tuple[int, list[int]]:
    minimum = 1024 if provider == "openai" else anthropic_minimum(model)
    ttl = 30 * 60 if provider == "openai" else 5 * 60
    seen: dict[bytes, float] = {}
    best_total = 0
    reads: list[int] = []
    for body, t in zip(bodies, times, strict=True):
        bs = _boundaries(provider, body)
        best = 0
        for d, tok in bs:
            if tok >= minimum and d in seen and t - seen[d] <= ttl:
                best = max(best, tok)
        reads.append(best)
        best_total += best
        for d, _ in bs:
            seen[d] = t
    return best_total, reads


def run(
    name: str, mode: str, tmp: Path | None = None, options: OpenAIOptions | None = None
) -> Figures:
    """Run one workload in ``mode`` ("bare", "off", "safe" or "auto")."""
    spec, make = WORKLOADS[name]
    provider, _, model = spec.partition(":")
    model = model or OPENAI_MODEL
    calls = make()
    clock = FakeClock()
    tmp = tmp or Path(tempfile.mkdtemp(prefix="pc-w10-"))
    with Emulator(clock=clock) as emu:
        client: Any
        if provider == "openai":
            client = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
        else:
            client = anthropic.Anthropic(
                base_url=emu.anthropic_base_url, api_key="x", max_retries=0
            )
        pc = None
        if mode != "bare":
            pc = promptcache.PromptCache(
                directory=tmp / f"{mode}-{abs(hash(name))}",
                response_cache=False,
                restructure=mode,  # type: ignore[arg-type]
                openai=options or OpenAIOptions(endpoint="openai"),
                clock=clock.now,
            )
            client = pc.wrap(client)
        times: list[float] = []
        prev: str | None = None
        try:
            for c in calls:
                kw = {k: v for k, v in c.items() if not k.startswith("_")}
                if c.get("_chain"):
                    kw["previous_response_id"] = prev
                clock.advance(c["_gap"])
                times.append(clock.now())
                if provider == "openai":
                    prev = client.responses.create(model=model, **kw).id
                else:
                    client.messages.create(model=model, **kw)
        finally:
            if pc is not None:
                pc.close()
        served = [c for c in emu.calls if c.status == 200]
        assert len(served) == len(calls), [c.status for c in emu.calls]
        bodies = [c.request_body or {} for c in served]
        # A chained request does not carry its history: the bound cannot be computed from the
        # bodies (-1). Bare calls (implicit mode writes every end) read all a chain can.
        chained = any(c.get("_chain") for c in calls)
        reachable = -1 if chained else _reachable(provider, model, bodies, times)[0]
        reads = [c.cache_read_tokens for c in served]
        writes = [c.cache_write_tokens for c in served]
        # Wasted writes: what a call wrote beyond its read, minus what later calls read of it
        # (approximated by later reads that extend past this call's read).
        wasted = 0
        for i, w in enumerate(writes):
            later = max(reads[i + 1 :], default=0)
            used = max(0, min(w, later - reads[i]))
            wasted += w - used
        return Figures(
            input_tokens=sum(c.input_tokens for c in served),
            read=sum(reads),
            write=sum(writes),
            reachable=reachable,
            wasted_write=wasted,
            bodies=bodies,
            reads=reads,
            writes=writes,
            provider=provider,
        )


def main(argv: list[str]) -> int:
    """Print a table of read share, reads relative to the reachable optimum, and writes."""
    print(
        "| workload | mode | read share | read / reachable | input cost / uncached "
        "| written | written, never read |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in WORKLOADS:
        if argv and not any(a in name for a in argv):
            continue
        for mode in ("bare", "safe", "auto"):
            f = run(name, mode)
            print(
                f"| {name} | {mode} | {f.read_share:.1%} | {f.of_optimum:.3f} | "
                f"{f.cost_ratio:.2f} | {f.write:,} | {f.wasted_write:,} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
