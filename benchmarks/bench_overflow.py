"""Overflow benchmark: one prompt prefix at 60 requests a minute, with and without sharding.

OpenAI routes by a hash of the prompt's first ~256 tokens plus ``prompt_cache_key``; above
about 15 requests a minute for one prefix and key the overflow lands on machines without the
cache (PROVIDERS.md §2.1). The emulator models it (``OpenAISettings.routing_limit_per_minute``,
default 15; overflow goes to one of 1,000 machines, each with its own cache). promptcache
spreads such a family over derived keys (``OpenAIOptions.routing_limit_per_minute``).

Workloads, each 5 minutes at 60 requests a minute through the real openai SDK on a FakeClock:

* ``fan-out``: 300 different questions over one ~4k-token document (system message);
* ``conversations``: 20 conversations of 15 turns over the same document, interleaved.

Modes: ``bare`` (the SDK alone), ``safe, no shards`` (``routing_limit_per_minute=None``),
``safe``, ``auto`` (sharding on, the default), and ``optimum``: the fewest keys the limit allows
(4 at 60 a minute), assigned round-robin (fan-out) or per conversation, with a breakpoint on the
document and on the end of each conversation turn on gpt-5.6+ — no overflow, one cold write per
key. Figures: read share / input cost relative to no caching, from the emulator's ground truth
(``emu.calls``) priced with genai-prices per call.

Run: ``python benchmarks/bench_overflow.py`` (about a minute); writes
``benchmarks/results/overflow.md``. ``run_overflow()`` returns the rows for other scripts.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402
from genai_prices import Usage, calc_price  # noqa: E402

import promptcache  # noqa: E402
from promptcache._api import RequestInfo  # noqa: E402
from promptcache._hooks import Rewrite, UsageMeta  # noqa: E402
from promptcache.testing import Emulator, FakeClock, openai_has_explicit_caching  # noqa: E402

MODELS = ["gpt-4.1", "gpt-6.1-sol"]
MODES = ["bare", "safe, no shards", "safe", "auto", "optimum"]
PER_MINUTE = 60.0
MINUTES = 5.0
LIMIT = 15
DOC = " ".join(
    f"Section {i}: the tenant keeps the premises in good repair and reports damage within "
    "seven days; the landlord answers within fourteen."
    for i in range(130)
)  # ~4k tokens


@dataclass(frozen=True)
class Row:
    """One workload x model x mode."""

    workload: str
    model: str
    mode: str
    requests: int
    read_share: float
    cost_ratio: float  # input cost / input cost without any caching
    overflowed: int  # requests the emulator served on an overflow machine
    keys: int  # distinct prompt_cache_keys sent


class Oracle:
    """The best the provider rules allow: the fewest shards, breakpoints where reads happen."""

    def __init__(self, model: str) -> None:
        self.explicit = openai_has_explicit_caching(model)
        self.shards = -(-int(PER_MINUTE) // LIMIT)
        self.turn = 0
        self.conversation: int | None = None

    def rewrite(self, info: RequestInfo, body: dict[str, Any]) -> Rewrite:
        out = dict(body)
        shard = self.turn % self.shards if self.conversation is None else self.conversation
        self.turn += 1
        out["prompt_cache_key"] = f"opt-s{shard % self.shards}"
        if self.explicit:
            msgs = [dict(m) for m in out["messages"]]
            marks = [0] if len(msgs) <= 2 else [0, len(msgs) - 1]
            for i in marks:
                text = msgs[i]["content"]
                msgs[i]["content"] = [
                    {"type": "text", "text": text, "prompt_cache_breakpoint": {"mode": "explicit"}}
                ]
            out["messages"] = msgs
            out["prompt_cache_options"] = {"mode": "explicit"}
        return Rewrite(out, changed=True, added_params=frozenset({"prompt_cache_key"}))

    def observe(self, info: RequestInfo, sent: Rewrite, usage: UsageMeta | None) -> None:
        return None

    def rejected(
        self, info: RequestInfo, sent: Rewrite, status: int, error_body: bytes
    ) -> dict[str, Any] | None:
        return None


def _fan_out(n: int) -> Iterator[tuple[int | None, list[dict[str, Any]]]]:
    for i in range(n):
        yield (
            None,
            [
                {"role": "system", "content": DOC},
                {"role": "user", "content": f"Question {i}: what does section {i % 130} require?"},
            ],
        )


def _conversations(n: int, parallel: int = 20) -> Iterator[tuple[int | None, list[dict[str, Any]]]]:
    history: dict[int, list[dict[str, Any]]] = {c: [] for c in range(parallel)}
    for i in range(n):
        conv = i % parallel
        msgs = history[conv]
        msgs.append({"role": "user", "content": f"Conversation {conv}, turn {i // parallel}: why?"})
        yield conv, [{"role": "system", "content": DOC}, *msgs]
        msgs.append({"role": "assistant", "content": "Because the lease says so. " * 8})


WORKLOADS: dict[str, Callable[[int], Iterator[tuple[int | None, list[dict[str, Any]]]]]] = {
    "fan-out": _fan_out,
    "conversations": _conversations,
}


def _price(model: str, c: Any) -> tuple[Decimal, Decimal]:
    u = Usage(
        input_tokens=c.input_tokens,
        cache_read_tokens=c.cache_read_tokens,
        cache_write_tokens=c.cache_write_tokens,
    )
    paid = calc_price(u, model_ref=model, provider_id="openai").input_price
    base = calc_price(Usage(input_tokens=c.input_tokens), model_ref=model, provider_id="openai")
    return Decimal(paid), Decimal(base.input_price)


def run(workload: str, model: str, mode: str, tmp: str) -> Row:
    """Run one cell and return its figures."""
    n = int(PER_MINUTE * MINUTES)
    clock = FakeClock()
    oracle = Oracle(model) if mode == "optimum" else None
    with (
        Emulator(clock=clock, record_bodies=False) as emu,
        openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0) as raw,
    ):
        client: Any = raw
        pc = None
        if mode != "bare":
            pc = promptcache.PromptCache(
                directory=tempfile.mkdtemp(dir=tmp),
                response_cache=False,
                restructure="off" if oracle else ("auto" if mode == "auto" else "safe"),
                openai=promptcache.OpenAIOptions(
                    endpoint="openai",
                    routing_limit_per_minute=None if mode == "safe, no shards" else LIMIT,
                ),
                planner=oracle,
                clock=clock.now,
            )
            client = pc.wrap(raw)
        for conv, messages in WORKLOADS[workload](n):
            if oracle is not None:
                oracle.conversation = conv
            client.chat.completions.create(model=model, messages=messages, max_tokens=16)
            clock.advance(60.0 / PER_MINUTE)
        if pc is not None:
            pc.close()
        calls = [c for c in emu.calls if c.status == 200]
    assert len(calls) == n
    paid = base = Decimal(0)
    for c in calls:
        p, b = _price(model, c)
        paid += p
        base += b
    total = sum(c.input_tokens for c in calls)
    return Row(
        workload=workload,
        model=model,
        mode=mode,
        requests=n,
        read_share=sum(c.cache_read_tokens for c in calls) / total,
        cost_ratio=float(paid / base),
        overflowed=sum(1 for c in calls if c.machine),
        keys=len({c.prompt_cache_key for c in calls}),
    )


def run_overflow(models: list[str] | None = None) -> list[Row]:
    """Every workload x model x mode; the rows ``table`` formats."""
    tmp = tempfile.mkdtemp(prefix="pc-bench-overflow-")
    try:
        return [
            run(workload, model, mode, tmp)
            for workload in WORKLOADS
            for model in models or MODELS
            for mode in MODES
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def table(rows: list[Row]) -> str:
    """A markdown table: one line per workload x model, modes side by side, vs the optimum."""
    lines = [
        "| workload | model | " + " | ".join(MODES) + " | safe read / opt | safe cost / opt |",
        "| --- | --- | " + " | ".join("---" for _ in MODES) + " | --- | --- |",
    ]
    cells: dict[tuple[str, str], dict[str, Row]] = {}
    for r in rows:
        cells.setdefault((r.workload, r.model), {})[r.mode] = r
    for (workload, model), by_mode in cells.items():
        opt, safe = by_mode["optimum"], by_mode["safe"]
        lines.append(
            f"| {workload} | {model} | "
            + " | ".join(
                f"{by_mode[m].read_share:.1%} / {by_mode[m].cost_ratio:.2f}"
                f" ({by_mode[m].overflowed} ovf, {by_mode[m].keys} keys)"
                for m in MODES
            )
            + f" | {safe.read_share / opt.read_share:.3f}"
            + f" | {safe.cost_ratio / opt.cost_ratio:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    warnings.simplefilter("ignore", DeprecationWarning)  # retired model names in the SDK
    t0 = time.perf_counter()
    rows = run_overflow(sys.argv[1:] or None)
    out = table(rows)
    print(out)
    print(f"({time.perf_counter() - t0:.1f}s)")
    if not sys.argv[1:]:
        legend = (
            "Generated by `python benchmarks/bench_overflow.py`: one ~4k-token document at 60 "
            "requests a minute for 5 minutes (300 requests) through the real openai SDK against "
            "`promptcache.testing.Emulator` (overflow routing above 15 requests a minute per "
            "prefix and key) on a FakeClock. Cells: share of input tokens read from the provider "
            "cache / input cost relative to no caching (genai-prices, per call), then requests "
            "served on an overflow machine and distinct keys sent. `optimum`: the fewest keys "
            "the limit allows (4), breakpoints where reads happen.\n"
        )
        path = ROOT / "benchmarks" / "results" / "overflow.md"
        path.write_text("# Overflow routing benchmark\n\n" + legend + "\n" + out + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
