"""Gateway benchmark: OpenAI's models reached through gateways and proxies, default options.

The provider-cache benchmark (``bench_provider_cache.py``) talks to the emulator's own base URL
with ``OpenAIOptions(endpoint="openai")``. Here every client keeps a production base URL — the
SDK's default, a Cloudflare AI Gateway route, OpenRouter (``openai/<model>`` names), Portkey, a
LiteLLM proxy on localhost — and reaches the emulator through ``Emulator.transport()``, with
``PromptCache`` left at its defaults (``endpoint="auto"``), as an app would run it. A last route
is a corporate proxy that refuses fields it does not know (``StrictServer("pydantic")``): the
first call is retried once without promptcache's fields, and none are sent there again.

Cells: share of input tokens read from the provider cache / input cost relative to no caching
(genai-prices, per call). ``before``: ``auto`` with ``endpoint="compatible"``, which is what
``endpoint="auto"`` did on every host but OpenAI's and Azure's until this change.
``vs direct``: the route's read share relative to ``auto`` on the SDK's default base URL.

Run: ``python benchmarks/bench_gateway.py [workload-substring ...]``; writes
``benchmarks/results/gateway.md`` when run on every workload.
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

import openai  # noqa: E402
from genai_prices import Usage, calc_price  # noqa: E402
from workloads import WORKLOADS, render_openai  # noqa: E402

import promptcache  # noqa: E402
from promptcache import OpenAIOptions  # noqa: E402
from promptcache.testing import Emulator, FakeClock, StrictServer  # noqa: E402

MODELS = ["gpt-4.1", "gpt-5.5", "gpt-6.1-sol"]
PROXY_HOST = "llm-proxy.corp.example"
# name -> (base URL or None for the SDK's default, model prefix, strict?)
ROUTES: dict[str, tuple[str | None, str, bool]] = {
    "direct": (None, "", False),
    "cloudflare": ("https://gateway.ai.cloudflare.com/v1/acct/gw/openai", "", False),
    "openrouter": ("https://openrouter.ai/api/v1", "openai/", False),
    "portkey": ("https://api.portkey.ai/v1", "", False),
    "litellm": ("http://localhost:4000", "", False),
    "strict proxy": (f"https://{PROXY_HOST}/v1", "", True),
}
# (route, mode, stream)
CELLS = [
    ("direct", "auto", False),
    ("cloudflare", "bare", False),
    ("cloudflare", "before", False),
    ("cloudflare", "auto", False),
    ("cloudflare", "auto", True),
    ("openrouter", "auto", False),
    ("portkey", "auto", False),
    ("litellm", "auto", True),
    ("strict proxy", "auto", False),
]
_TMP = tempfile.mkdtemp(prefix="pc-bench-gw-")


@dataclass
class Result:
    input_tokens: int
    read: int
    cost: Decimal
    cost_nocache: Decimal
    attempts: int
    calls: int

    @property
    def read_share(self) -> float:
        return self.read / self.input_tokens if self.input_tokens else 0.0

    @property
    def cost_ratio(self) -> float:
        return float(self.cost / self.cost_nocache) if self.cost_nocache else 1.0


def _price(model: str, c: Any) -> tuple[Decimal, Decimal]:
    u = Usage(
        input_tokens=c.input_tokens,
        cache_read_tokens=c.cache_read_tokens,
        cache_write_tokens=c.cache_write_tokens,
    )
    paid = calc_price(u, model_ref=model, provider_id="openai").input_price
    base = calc_price(Usage(input_tokens=c.input_tokens), model_ref=model, provider_id="openai")
    return Decimal(paid), Decimal(base.input_price)


def run(model: str, workload: str, route: str, mode: str, stream: bool) -> Result:
    base_url, prefix, strict = ROUTES[route]
    reqs = WORKLOADS[workload]()
    clock = FakeClock()
    with Emulator(clock=clock, record_bodies=False) as emu:
        if strict:
            emu.strict = StrictServer("pydantic", hosts=frozenset({PROXY_HOST}))
        raw = openai.OpenAI(
            api_key="x",
            max_retries=0,
            http_client=openai.DefaultHttpxClient(transport=emu.transport()),
            base_url=base_url,  # None: the SDK's default (api.openai.com)
        )
        client: Any = raw
        pc = None
        if mode != "bare":
            pc = promptcache.PromptCache(
                directory=tempfile.mkdtemp(dir=_TMP),
                response_cache=False,
                restructure="auto" if mode == "before" else mode,  # type: ignore[arg-type]
                # "before": what endpoint="auto" did for every non-OpenAI host until now
                openai=OpenAIOptions(endpoint="compatible") if mode == "before" else None,
                clock=clock.now,
            )
            client = pc.wrap(raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", promptcache.RewriteWarning)  # the one refusal
            for req in reqs:
                clock.advance(req.gap)
                kw = render_openai(req, oracle=False)
                if stream:
                    chunks = client.chat.completions.create(
                        model=prefix + model,
                        stream=True,
                        stream_options={"include_usage": True},
                        **kw,
                    )
                    for _ in chunks:
                        pass
                else:
                    client.chat.completions.create(model=prefix + model, **kw)
        if pc is not None:
            pc.close()
        raw.close()
        served = emu.calls
    calls = [c for c in served if c.status == 200]
    assert len(calls) == len(reqs), [c.status for c in served]
    paid = base = Decimal(0)
    for c in calls:
        p, b = _price(model, c)
        paid += p
        base += b
    return Result(
        input_tokens=sum(c.input_tokens for c in calls),
        read=sum(c.cache_read_tokens for c in calls),
        cost=paid,
        cost_nocache=base,
        attempts=len(served),
        calls=len(calls),
    )


def _name(route: str, mode: str, stream: bool) -> str:
    return f"{route} {mode}" + (" (stream)" if stream else "")


def main() -> int:
    warnings.simplefilter("ignore", DeprecationWarning)
    only = sys.argv[1:]
    t0 = time.perf_counter()
    header = "| workload | model | " + " | ".join(_name(*c) for c in CELLS) + " |"
    lines = [header, "| --- | --- | " + " | ".join("---" for _ in CELLS) + " |"]
    ratios: list[str] = [
        "| workload | model | "
        + " | ".join(_name(*c) for c in CELLS if c[1] == "auto" and c[0] != "direct")
        + " | extra attempts (strict) |",
        "| --- | --- | "
        + " | ".join("---" for c in CELLS if c[1] == "auto" and c[0] != "direct")
        + " | --- |",
    ]
    worst = 1.0
    for workload in WORKLOADS:
        if only and not any(o in workload for o in only):
            continue
        for model in MODELS:
            res = {c: run(model, workload, *c) for c in CELLS}
            direct = res[("direct", "auto", False)]
            lines.append(
                f"| {workload} | {model} | "
                + " | ".join(f"{r.read_share:.1%} / {r.cost_ratio:.2f}" for r in res.values())
                + " |"
            )
            rel = []
            for c, r in res.items():
                if c[1] != "auto" or c[0] == "direct":
                    continue
                x = r.read_share / direct.read_share if direct.read_share else 1.0
                if c[0] != "strict proxy":
                    worst = min(worst, x)
                rel.append(f"{x:.3f}")
            strict = res[("strict proxy", "auto", False)]
            ratios.append(
                f"| {workload} | {model} | "
                + " | ".join(rel)
                + f" | {strict.attempts - strict.calls} |"
            )
            print(lines[-1], flush=True)
    print("\n".join(ratios))
    print(f"\nworst gateway/direct read share (strict proxy excluded): {worst:.3f}")
    print(f"({time.perf_counter() - t0:.1f}s)")
    if not only:
        out = ROOT / "benchmarks" / "results" / "gateway.md"
        out.write_text(
            "# Gateway benchmark\n\n"
            + (__doc__ or "").split("Run:")[0].strip()
            + "\n\nGenerated by `python benchmarks/bench_gateway.py`.\n\n"
            + "\n".join(lines)
            + "\n\n## Read share relative to the SDK's default base URL\n\n"
            + "\n".join(ratios)
            + f"\n\nWorst gateway/direct read share (strict proxy excluded): {worst:.3f}\n"
        )
    shutil.rmtree(_TMP, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
