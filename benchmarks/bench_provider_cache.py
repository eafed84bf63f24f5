"""Provider-cache benchmark: read share and input cost per workload, mode and model.

Every call goes through the real SDK to the emulator (``promptcache.testing.Emulator``) on a
``FakeClock``; the figures are the emulator's ground truth (``emu.calls``). Prices come from
genai-prices (per call, so tiers apply): cost relative to no caching is the input price paid
divided by the price of the same inclusive input tokens at the ordinary rate.

Modes: ``bare`` (the SDK alone), ``off``/``safe``/``auto`` (``PromptCache(...).wrap``), and
``optimum``: the same workload rendered with the ideal layout (volatile line after the prefix)
and an oracle planner that knows the future — it writes the system prompt when later calls
reuse it, reads the previous call's prefix exactly, and writes the end of a request only when
the next request extends it — i.e. the best the provider rules allow.

Run: ``python benchmarks/bench_provider_cache.py`` (about a minute); writes
``benchmarks/results/provider_cache.md``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import anthropic  # noqa: E402
import openai  # noqa: E402
from genai_prices import Usage, calc_price  # noqa: E402
from workloads import WORKLOADS, Req, render_anthropic, render_openai  # noqa: E402

import promptcache  # noqa: E402
from promptcache._api import RequestInfo  # noqa: E402
from promptcache._hooks import Rewrite, UsageMeta  # noqa: E402
from promptcache._plan import OpenAIOptions  # noqa: E402
from promptcache.testing import Emulator, FakeClock, anthropic_minimum  # noqa: E402

_TMP = tempfile.mkdtemp(prefix="pc-bench-")
TARGETS = [
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-opus-5"),
    ("anthropic", "claude-fable-5-1"),  # reads at 0.025x
    ("openai", "gpt-4.1"),
    ("openai", "gpt-5.5"),
    ("openai", "gpt-6.1-sol"),
]
MODES = ["bare", "off", "safe", "auto", "optimum"]


TARGETS_NOTE = """\
Targets (issue 5): `auto` within 5% of the optimum on every workload; `safe` within 5% where
nothing is volatile (all but the RAG time line and the unordered tools); the book, many-shot and
10-turn cases at least the cost reductions Anthropic published (-90%, -86%, -53%). Those
figures are per call with a warm cache (the published table compares one call with and without
caching), so they are compared with the per-call figure; the whole run also pays the first
write. With a 0.1x read price -90% per call is out of reach by construction (the cached share
alone costs 0.1x, and each turn's new tokens must be written to be read next turn): the book
case lands just short of it, equal to the optimum; with claude-fable-5-1 (0.025x reads) it is
far past it. The one gap in cost is the 12-minute workload: the first call cannot know that the
next one comes after 5 minutes, so it writes 5m and the second call writes again (1h from then
on); the oracle writes 1h at once.
"""


class Oracle:
    """A planner that knows the workload (``hint``) and places the ideal breakpoints."""

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.hint: Req | None = None
        self.prev: Req | None = None
        explicit = provider == "openai" and promptcache.testing.openai_has_explicit_caching(model)
        self.breakpoints = provider == "anthropic" or explicit
        self.minimum = anthropic_minimum(model) if provider == "anthropic" else 1024

    def rewrite(self, info: RequestInfo, body: dict[str, Any]) -> Rewrite:
        req = self.hint
        assert req is not None
        out = dict(body)
        if self.provider == "openai":
            out["prompt_cache_key"] = "bench-oracle"
        if self.breakpoints:
            self._place(req, out)
        self.prev = req
        return Rewrite(out, changed=True, added_params=frozenset({"prompt_cache_key"}))

    def _place(self, req: Req, out: dict[str, Any]) -> None:
        anth = self.provider == "anthropic"
        msgs = [dict(m) for m in out["messages"]]
        # wire index of the last message of each neutral message
        ends: list[int] = []
        w = 0 if anth else 1
        for m in req.messages:
            w += len(m.results) if (m.role == "tool" and not anth) else 1
            ends.append(w - 1)
        targets: list[tuple[int, bool]] = []  # (wire message index, skip trailing volatile)
        sys_tokens = len(req.system) / 4
        if req.system_reused and sys_tokens >= self.minimum:
            if anth:
                sys_cc: dict[str, Any] = {"type": "ephemeral"}
                if req.gap > 300:
                    sys_cc["ttl"] = "1h"
                out["system"] = [{"type": "text", "text": out["system"], "cache_control": sys_cc}]
            else:
                targets.append((0, False))
        if req.extends_prev and self.prev is not None:
            targets.append((ends[len(self.prev.messages) - 1], False))
        if req.extended_next:
            targets.append((ends[-1], bool(req.volatile)))
        for wi, skip in targets:
            m = msgs[wi]
            c = m.get("content")
            key = "cache_control" if anth else "prompt_cache_breakpoint"
            mark: dict[str, Any] = {"type": "ephemeral"} if anth else {"mode": "explicit"}
            if anth and req.gap > 300:
                mark["ttl"] = "1h"  # reuse past 5 minutes: the 1h write pays for itself
            part = "text"
            lst = [{"type": part, "text": c}] if isinstance(c, str) else list(c)
            j = len(lst) - (2 if skip else 1)
            lst[j] = {**lst[j], key: mark}
            m["content"] = lst
            msgs[wi] = m
        out["messages"] = msgs
        if not anth:
            out["prompt_cache_options"] = {"mode": "explicit"}

    def observe(self, info: RequestInfo, sent: Rewrite, usage: UsageMeta | None) -> None:
        return None

    def rejected(
        self, info: RequestInfo, sent: Rewrite, status: int, error_body: bytes
    ) -> dict[str, Any] | None:
        return None


@dataclass
class Result:
    input_tokens: int
    read: int
    write: int
    cost: Decimal
    cost_nocache: Decimal
    steady: float  # median cost ratio of calls after the first

    @property
    def read_share(self) -> float:
        return self.read / self.input_tokens if self.input_tokens else 0.0

    @property
    def cost_ratio(self) -> float:
        return float(self.cost / self.cost_nocache) if self.cost_nocache else 1.0


def _price(provider: str, model: str, c: Any) -> tuple[Decimal, Decimal]:
    w1h = int(c.cache_write_by_ttl.get("1h", 0))
    u = Usage(
        input_tokens=c.input_tokens,
        cache_read_tokens=c.cache_read_tokens,
        cache_write_tokens=c.cache_write_tokens,
        **({"cache_write_1h_tokens": w1h} if w1h else {}),
    )
    paid = calc_price(u, model_ref=model, provider_id=provider).input_price
    base = calc_price(Usage(input_tokens=c.input_tokens), model_ref=model, provider_id=provider)
    return Decimal(paid), Decimal(base.input_price)


def run(provider: str, model: str, workload: str, mode: str) -> Result:
    reqs = WORKLOADS[workload]()
    clock = FakeClock()
    d = tempfile.mkdtemp(dir=_TMP)
    with Emulator(clock=clock) as emu:
        oracle = Oracle(provider, model) if mode == "optimum" else None
        client: Any
        if provider == "anthropic":
            client = anthropic.Anthropic(
                base_url=emu.anthropic_base_url, api_key="x", max_retries=0
            )
        else:
            client = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
        if mode != "bare":
            pc = promptcache.PromptCache(
                directory=d,
                response_cache=False,
                restructure="off" if mode == "optimum" else mode,
                openai=OpenAIOptions(endpoint="openai"),
                planner=oracle,
                clock=clock.now,
            )
            client = pc.wrap(client)
        for req in reqs:
            clock.advance(req.gap)
            if oracle is not None:
                oracle.hint = req
            if provider == "anthropic":
                kw = render_anthropic(req, oracle=oracle is not None)
                client.messages.create(model=model, **kw)
            else:
                client.chat.completions.create(
                    model=model, **render_openai(req, oracle=oracle is not None)
                )
        if mode != "bare":
            pc.close()
        calls = [c for c in emu.calls if c.status == 200]
        assert len(calls) == len(reqs), [c.status for c in emu.calls]
        paid = base = Decimal(0)
        ratios = []
        for c in calls:
            p, b = _price(provider, model, c)
            paid += p
            base += b
            ratios.append(float(p / b) if b else 1.0)
        later = sorted(ratios[1:]) or [1.0]
        return Result(
            input_tokens=sum(c.input_tokens for c in calls),
            read=sum(c.cache_read_tokens for c in calls),
            write=sum(c.cache_write_tokens for c in calls),
            cost=paid,
            cost_nocache=base,
            steady=later[len(later) // 2],
        )


def main() -> int:
    warnings.simplefilter("ignore", DeprecationWarning)  # retired model names in the SDK
    only = sys.argv[1:]
    t0 = time.perf_counter()
    lines = [
        "| workload | model | " + " | ".join(MODES) + " | auto/opt | safe/opt |",
        "| --- | --- | " + " | ".join("---" for _ in MODES) + " | --- | --- |",
    ]
    misses: list[str] = []
    checks: list[str] = []
    published = {"book 100k": 0.90, "many-shot": 0.86, "10-turn chat": 0.53}
    volatile = {"rag (time at top)", "agent, tools unordered"}
    for workload in WORKLOADS:
        if only and not any(o in workload for o in only):
            continue
        for provider, model in TARGETS:
            res = {m: run(provider, model, workload, m) for m in MODES}
            opt = res["optimum"]

            def cell(r: Result) -> str:
                return f"{r.read_share:.1%} / {r.cost_ratio:.2f} ({r.steady:.2f})"

            def rel(r: Result, opt: Result = opt) -> str:
                return f"{r.read_share / opt.read_share:.3f}" if opt.read_share else "n/a"

            lines.append(
                f"| {workload} | {model} | "
                + " | ".join(cell(res[m]) for m in MODES)
                + f" | {rel(res['auto'])} | {rel(res['safe'])} |"
            )
            print(lines[-1], flush=True)
            auto, safe = res["auto"], res["safe"]
            if opt.read_share and auto.read_share < 0.95 * opt.read_share:
                misses.append(f"auto misses target on {workload} / {model}")
            if (
                workload not in volatile
                and opt.read_share
                and safe.read_share < 0.95 * opt.read_share
            ):
                misses.append(f"safe misses target on {workload} / {model}")
            if opt.read_share:
                checks.append(
                    f"| {workload} | {model} | {auto.read_share / opt.read_share:.3f} | "
                    f"{auto.cost_ratio / opt.cost_ratio:.3f} | "
                    + (
                        f"{safe.read_share / opt.read_share:.3f}"
                        if workload not in volatile
                        else "volatile"
                    )
                    + " |"
                    + (
                        f" -{published[workload]:.0%} | -{1 - auto.cost_ratio:.1%} | "
                        f"-{1 - auto.steady:.1%} |"
                        if workload in published and provider == "anthropic"
                        else " | | |"
                    )
                )
    table = "\n".join(lines)
    legend = (
        "Generated by `python benchmarks/bench_provider_cache.py`: real SDKs (openai 3.57, "
        "anthropic 2.14) against `promptcache.testing.Emulator` on a FakeClock; figures are the "
        "emulator's ground truth (`emu.calls`). Prices: genai-prices 0.2.3, per call.\n\n"
        "Cells: share of input tokens read from the provider cache / input cost relative to no "
        "caching, aggregate over the workload (median per-call cost ratio after the first call "
        "in brackets). auto/opt and safe/opt: read share relative to the optimum. `bare` is the "
        "SDK alone; `optimum` renders the workload with the ideal layout (volatile line after "
        "the prefix, tools sorted) and lets an oracle that knows the future place breakpoints: "
        "the system prompt when it is reused, the previous call's end so it is read exactly, "
        "and the end of the call when the next call extends it, with a 1h TTL when calls are "
        "more than 5 minutes apart.\n"
    )
    out = ROOT / "benchmarks" / "results" / "provider_cache.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    check_table = "\n".join(
        [
            "| workload | model | auto read / opt | auto cost / opt | safe read / opt "
            "| Anthropic published | auto, whole run | auto, per cached call |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *checks,
        ]
    )
    if not only:
        out.write_text(
            "# Provider cache benchmark\n\n"
            + legend
            + "\n"
            + table
            + "\n\n## Targets\n\n"
            + TARGETS_NOTE
            + "\n"
            + check_table
            + "\n"
        )
    print("\n" + "\n".join(misses or ["all auto targets met"]))
    print(f"({time.perf_counter() - t0:.1f}s)")
    shutil.rmtree(_TMP, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
