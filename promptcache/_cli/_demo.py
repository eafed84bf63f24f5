"""``promptcache demo``: a small support bot, bare and wrapped, against the built-in emulator.

Everything runs offline: the emulator on loopback plays OpenAI and Anthropic, with a latency
model in which the time to first token grows with the prompt tokens the provider cache did not
serve. The demo answers the same stream of customer questions three ways and prints what each
cost, then the ledger report.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["configure", "run"]

# A long, static system prompt: the part of every request that provider caching can serve.
_HANDBOOK = "\n".join(
    f"Policy {i}: customers on the {plan} plan get {i % 7 + 1} free returns per year, "
    f"refunds within {i % 30 + 1} days, and support in {i % 5 + 1} languages. "
    "Always answer politely, cite the policy number, and never invent discounts."
    for i, plan in zip(range(160), ["basic", "plus", "pro", "team"] * 40, strict=True)
)
_SYSTEM = "You are Ada, the support assistant of Example Shop.\n\nHandbook:\n" + _HANDBOOK

# Customers ask a few questions over and over: the local cache serves the repeats.
_QUESTIONS = [
    "How many free returns do I get on the pro plan?",
    "Can I get a refund after 20 days?",
    "Which languages does support speak?",
    "How many free returns do I get on the pro plan?",
    "Do you offer student discounts?",
    "Can I get a refund after 20 days?",
    "How many free returns do I get on the pro plan?",
    "Which languages does support speak?",
]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options."""
    parser.add_argument("--dir", help="cache directory (default: a fresh temporary one)")
    parser.add_argument(
        "--no-latency", action="store_true", help="turn the emulator's latency model off"
    )


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _money(value: Decimal | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def run(args: argparse.Namespace) -> int:
    """Run the demo and print what promptcache saved."""
    try:
        import anthropic
        import openai
    except ImportError:
        print("The demo needs both SDKs: pip install 'promptcache[all]'")
        return 1

    import promptcache
    from promptcache._accounting._pricing import price_data_version
    from promptcache._cli import main as cli_main
    from promptcache.testing import Emulator, LatencyModel

    latency = None if args.no_latency else LatencyModel()
    with tempfile.TemporaryDirectory(prefix="promptcache-demo-") as tmp:
        directory = Path(args.dir) if args.dir else Path(tmp)
        with Emulator(latency=latency) as emu:
            print(f"Emulator serving OpenAI and Anthropic on {emu.anthropic_base_url}\n")
            # The emulator plays api.openai.com, so let the planner treat it as OpenAI itself
            # (by default a loopback URL counts as an OpenAI-compatible endpoint).
            pc = promptcache.PromptCache(
                directory=directory, openai=promptcache.OpenAIOptions(endpoint="openai")
            )

            bare = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="demo")
            wrapped = pc.wrap(anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="demo"))

            def ask(client: anthropic.Anthropic, question: str) -> None:
                client.messages.create(
                    model="claude-sonnet-4-6",
                    max_tokens=64,
                    system=_SYSTEM,
                    messages=[{"role": "user", "content": question}],
                )

            print("Support bot on Anthropic (claude-sonnet-4-6), 8 questions, 4 distinct:")
            print(f"{'question':<52} {'bare SDK':>9} {'wrapped':>9}")
            bare_total = wrapped_total = 0.0
            for q in _QUESTIONS:
                b = _timed(lambda q=q: ask(bare, q))  # type: ignore[misc]
                w = _timed(lambda q=q: ask(wrapped, q))  # type: ignore[misc]
                bare_total += b
                wrapped_total += w
                print(f"{q:<52} {b * 1000:>7.1f}ms {w * 1000:>7.1f}ms")
            print(f"{'total':<52} {bare_total * 1000:>7.1f}ms {wrapped_total * 1000:>7.1f}ms\n")

            oa = pc.wrap(openai.OpenAI(base_url=emu.openai_base_url, api_key="demo"))
            for q in _QUESTIONS:
                oa.chat.completions.create(
                    model="gpt-5.5",
                    messages=[
                        {"role": "system", "content": _SYSTEM},
                        {"role": "user", "content": q},
                    ],
                )

            s = pc.ledger.summary()
            print("What the ledger recorded for the wrapped clients (both providers):")
            print(f"  requests            {s.requests} ({s.local_hits} served by the local cache)")
            print(f"  input tokens        {s.input_tokens}")
            print(f"    read from cache   {s.cache_read_tokens}")
            print(f"    written to cache  {s.cache_write_tokens}")
            print(f"    uncached          {s.uncached_input_tokens}")
            print(f"  paid                {_money(s.cost)}")
            print(f"  without any cache   {_money(s.cost_without_cache)}")
            print(f"  prices              {price_data_version()}\n")
            pc.close()
            print("promptcache report:\n")
            return cli_main(["report", "--dir", str(directory)])
