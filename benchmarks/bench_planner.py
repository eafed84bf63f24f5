"""Planner cost per call: ``DefaultPlanner.rewrite`` for API x size x mode (median, µs).

The body is a typical chat-agent request: five tools, a system prompt (~10% of the tokens),
a conversation of 20 messages filling the rest, and a new final user question on every call
(so each call is a new member of one prompt family, as in production; the history dicts are
shared between calls, as an SDK would build them). Nothing carries layout marks. OpenAI runs
on ``gpt-6.1-sol`` (the gpt-5.6+ path with explicit breakpoints, the costliest), Anthropic on
``claude-sonnet-4-5``.

Run: ``python benchmarks/bench_planner.py [--calls N]``; writes
``benchmarks/results/planner.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promptcache._api import Api, RequestInfo  # noqa: E402
from promptcache._plan import DefaultPlanner  # noqa: E402

SIZES = (2_000, 20_000, 200_000)
MODES = ("off", "safe", "auto")
# (API, model): gpt-6.1-sol takes the gpt-5.6+ path (positions, explicit breakpoints);
# gpt-5.5 the cache-key-only path most OpenAI traffic takes today.
CASES = (
    (Api.OPENAI_CHAT, "gpt-6.1-sol"),
    (Api.OPENAI_RESPONSES, "gpt-6.1-sol"),
    (Api.OPENAI_CHAT, "gpt-5.5"),
    (Api.ANTHROPIC_MESSAGES, "claude-sonnet-4-5"),
)
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
]


def _prose(tokens: int, seed: int) -> str:
    # ~4 chars per token; deterministic and digit-free (a real prompt's digits are rare).
    out: list[str] = []
    n, i = 0, seed
    while n < tokens * 4:
        w = _WORDS[i % len(_WORDS)]
        out.append(w)
        n += len(w) + 1
        i = (i * 7 + 3) % 1009
    return " ".join(out).capitalize() + "."


def _tools(api: Api) -> list[dict[str, Any]]:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    names = ["search", "fetch", "summarise", "translate", "calculate"]
    if api is Api.ANTHROPIC_MESSAGES:
        return [{"name": n, "description": f"{n} things", "input_schema": schema} for n in names]
    if api is Api.OPENAI_RESPONSES:
        return [{"type": "function", "name": n, "parameters": schema} for n in names]
    return [
        {"type": "function", "function": {"name": n, "description": n, "parameters": schema}}
        for n in names
    ]


def bodies(api: Api, tokens: int, calls: int, model: str = "") -> list[dict[str, Any]]:
    """``calls`` requests of one family: shared head and history, a new final question each."""
    system = _prose(tokens // 10, 1)
    turn = max(1, (tokens - tokens // 10) // 20)
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": _prose(turn, i + 2)}
        for i in range(20)
    ]
    tools = _tools(api)
    model = model or ("claude-sonnet-4-5" if api is Api.ANTHROPIC_MESSAGES else "gpt-6.1-sol")
    out: list[dict[str, Any]] = []
    for k in range(calls):
        q = {"role": "user", "content": f"Question {k}: what does the context say?"}
        if api is Api.ANTHROPIC_MESSAGES:
            b = {"model": model, "max_tokens": 100, "system": system, "tools": tools}
            b["messages"] = [*history, q]
        elif api is Api.OPENAI_RESPONSES:
            b = {"model": model, "instructions": system, "tools": tools, "input": [*history, q]}
        else:
            b = {"model": model, "tools": tools}
            b["messages"] = [{"role": "system", "content": system}, *history, q]
        out.append(b)
    return out


def info(api: Api, model: str = "") -> RequestInfo:
    """Request facts as the transport would pass them (an OpenAI or Anthropic host)."""
    if api is Api.ANTHROPIC_MESSAGES:
        return RequestInfo(
            api, "https://api.anthropic.com", model or "claude-sonnet-4-5", "t", False
        )
    return RequestInfo(api, "https://api.openai.com/v1", model or "gpt-6.1-sol", "t", False)


def measure(api: Api, model: str, tokens: int, mode: str, calls: int) -> float:
    """Median µs of ``rewrite`` over ``calls`` calls after a few warm-up calls."""
    planner = DefaultPlanner(mode)  # type: ignore[arg-type]
    inf = info(api, model)
    for b in bodies(api, tokens, 5, model):
        planner.rewrite(inf, b)
    times: list[int] = []
    for b in bodies(api, tokens, calls, model):
        t0 = time.perf_counter_ns()
        planner.rewrite(inf, b)
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000


def main() -> int:
    """Print the table and write it to benchmarks/results/planner.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--before", help="file of table rows from an earlier run, appended")
    ap.add_argument("--before-label", default="Before")
    args = ap.parse_args()
    rows = [
        "| API | model | tokens | off | safe | auto |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for api, model in CASES:
        for tokens in SIZES:
            cells = [f"{measure(api, model, tokens, m, args.calls):.1f}" for m in MODES]
            rows.append(f"| {api.value} | {model} | {tokens:,} | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
    if not args.no_write:
        text = (
            "# Planner cost per call\n\n"
            "Generated by `python benchmarks/bench_planner.py`: median µs of "
            "`DefaultPlanner.rewrite` per call over "
            f"{args.calls} calls of one prompt family (tools, system prompt, 20-message history, a "
            "new final question each call; no layout marks). gpt-6.1-sol takes the gpt-5.6+ "
            "path (every block hashed, explicit breakpoints placed); gpt-5.5 the cache-key-only "
            f"path. Python {sys.version.split()[0]}.\n\n" + "\n".join(rows) + "\n"
        )
        if args.before:
            # Rows measured by this script on an earlier version, for comparison.
            before = Path(args.before).read_text(encoding="utf-8").strip()
            text += f"\n{args.before_label}:\n\n" + "\n".join(rows[:2]) + "\n" + before + "\n"
        (ROOT / "benchmarks" / "results" / "planner.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
