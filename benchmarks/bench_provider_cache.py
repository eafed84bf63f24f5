"""Provider-cache benchmark: every workload x API x model, each mode beside the optimum.

Every call goes through the real SDKs (``anthropic.messages``, ``openai.chat.completions``,
``openai.responses``) to ``promptcache.testing.Emulator`` on a ``FakeClock``. The SDKs keep a
production base URL - their default (``https://api.openai.com/v1``,
``https://api.anthropic.com``) or a gateway's (``GATEWAYS``) - and reach the emulator through
``emu.transport()``, so promptcache sees exactly what it sees in production. Figures are the
emulator's ground truth (``emu.calls``); "writes never read" comes from watching the emulator's
cache (``workloads.truth``).

Modes: ``bare`` (the SDK alone), ``off``/``safe``/``auto`` (``PromptCache(restructure=...)``
with default options), and ``optimum``: the SDK alone sending the ideal layout and the hints
an oracle that knows the whole workload places (``workloads.oracle``; its rules are in that
module's docstring). ``bare``, ``off`` and ``optimum`` run once per cell (default URL, no
streaming: neither changes what they send); ``safe`` and ``auto`` run in four variants:
default URL or gateway URL, streaming off or on.

Per cell it reports read share, input cost relative to no caching, the ratio to the optimum
(read share, and cost savings), and the tokens written and never read; it flags cells where
``auto`` is below 0.95 of the optimum, where ``safe`` pays for writes never read, and where a
mode beats the optimum (an oracle error). Prices: genai-prices, per call (tiers apply).

Run::

    python benchmarks/bench_provider_cache.py          # all; writes results/provider_cache.md
    python benchmarks/bench_provider_cache.py --quick  # a telling subset, in seconds
    python benchmarks/bench_provider_cache.py --workload agent --api responses --variant gateway

Hooks for features merged from other branches: ``--strict`` runs the gateway cells against an
emulator that rejects unknown fields (needs ``Emulator(strict=...)``; skipped with a note when
the emulator has no such option), ``--overflow`` appends the table of
``benchmarks/bench_overflow.py`` (``run_overflow()`` + ``table()``) and adds the 60
requests/minute workload.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import anthropic  # noqa: E402
import openai  # noqa: E402
from genai_prices import Usage, calc_price  # noqa: E402
from workloads import EXTRA_WORKLOADS, QUICK_WORKLOADS, WORKLOADS, Req, render  # noqa: E402
from workloads.oracle import Oracle, multipliers, routing_limit  # noqa: E402
from workloads.truth import WriteLedger  # noqa: E402

import promptcache  # noqa: E402
from promptcache.testing import Emulator, FakeClock, openai_has_explicit_caching  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "provider_cache.md"
GATEWAYS = {
    "openai": "https://gateway.ai.cloudflare.com/v1/acct/gw/openai",
    "anthropic": "https://gateway.ai.cloudflare.com/v1/acct/gw/anthropic",
}
MODELS = {
    "anthropic": ["claude-sonnet-5", "claude-opus-5", "claude-fable-5-1"],
    "chat": ["gpt-4.1", "gpt-5.5", "gpt-5.6-sol", "gpt-6.1-sol"],
    "responses": ["gpt-4.1", "gpt-5.5", "gpt-5.6-sol", "gpt-6.1-sol"],
}
QUICK_MODELS = {
    "anthropic": ["claude-sonnet-5"],
    "chat": ["gpt-6.1-sol"],
    "responses": ["gpt-6.1-sol"],
}
QUICK_VARIANTS = ("default", "gateway+stream")
API_LABEL = {"anthropic": "messages", "chat": "chat", "responses": "responses"}
TARGET = 0.95


@dataclass(frozen=True)
class Variant:
    """How the app reaches the provider: its base URL and whether it streams."""

    url: str  # "default" or "gateway"
    stream: bool

    @property
    def label(self) -> str:
        return {
            (False, False): "default",
            (False, True): "stream",
            (True, False): "gateway",
            (True, True): "gateway+stream",
        }[(self.url == "gateway", self.stream)]


VARIANTS = [Variant("default", False), Variant("default", True)]
VARIANTS += [Variant("gateway", False), Variant("gateway", True)]
BASE = VARIANTS[0]


@dataclass
class Run:
    """One workload run in one mode and variant: the emulator's ground truth, priced."""

    mode: str
    variant: Variant
    input_tokens: int = 0
    read: int = 0
    write: int = 0
    cost: Decimal = Decimal(0)
    cost_nocache: Decimal = Decimal(0)
    steady: float = 1.0  # median per-call cost ratio after the first call
    never_read: int | None = 0  # written tokens no later call read (None: unknown)
    never_read_last: int = 0  # of which written by the workload's last call (unknowable online)
    waste: float = 0.0  # write premium paid for never-read tokens, share of the no-cache cost
    mismatches: int = 0  # optimum only: calls whose read differs from the oracle's model
    warned: tuple[str, ...] = ()  # promptcache warnings raised during the run (class names)
    rejected: int = 0  # non-200 answers (e.g. a strict server's 400 before a retry)
    hosts: tuple[str, ...] = ()

    @property
    def read_share(self) -> float:
        return self.read / self.input_tokens if self.input_tokens else 0.0

    @property
    def cost_ratio(self) -> float:
        return float(self.cost / self.cost_nocache) if self.cost_nocache else 1.0

    def cell(self) -> str:
        return f"{self.read_share:.1%} / {self.cost_ratio:.2f}"


@dataclass
class Cell:
    """One workload x API x model: every mode, and the comparison with the optimum."""

    workload: str
    api: str
    model: str
    runs: dict[tuple[str, str], Run] = field(default_factory=dict)  # (mode, variant label)

    def run(self, mode: str, variant: Variant = BASE) -> Run:
        return self.runs[(mode, variant.label)]

    @property
    def optimum(self) -> Run:
        return self.run("optimum")

    def read_ratio(self, r: Run) -> float | None:
        opt = self.optimum
        return r.read_share / opt.read_share if opt.read_share else None

    def savings_ratio(self, r: Run) -> float | None:
        saved = 1 - self.optimum.cost_ratio
        return (1 - r.cost_ratio) / saved if saved > 1e-9 else None

    def score(self, r: Run) -> float | None:
        """The lower of read-share ratio and savings ratio (``None`` where nothing is cacheable)."""
        ratios = [x for x in (self.read_ratio(r), self.savings_ratio(r)) if x is not None]
        return min(ratios) if ratios else None

    def flags(self) -> list[str]:
        out = []
        for v in VARIANTS:
            if ("auto", v.label) in self.runs:
                s = self.score(self.run("auto", v))
                if s is not None and s < TARGET:
                    out.append(f"auto<{TARGET} ({v.label})")
        safe = [self.run("safe", v) for v in VARIANTS if ("safe", v.label) in self.runs]
        unread = [r for r in safe if r.never_read]
        if unread:
            only_last = all(r.never_read == r.never_read_last for r in unread)
            what = "safe unread writes" + (", last call only" if only_last else "")
            out.append(what + " (" + ", ".join(r.variant.label for r in unread) + ")")
        opt = self.optimum
        for (mode, label), r in self.runs.items():
            if mode == "optimum":
                continue
            if r.cost < opt.cost * Decimal("0.995") or r.read_share > opt.read_share * 1.005 + 1e-9:
                out.append(f"beats optimum: {mode} ({label}) - oracle error")
        if opt.never_read:
            out.append("optimum has unread writes - oracle error")
        if opt.mismatches:
            out.append(f"oracle's cache model missed {opt.mismatches} reads - oracle error")
        return out


def _gap_times(reqs: Sequence[Req]) -> list[float]:
    times, t = [], 0.0
    for r in reqs:
        t += r.gap
        times.append(t)
    return times


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


def _client(api: str, emu: Emulator, variant: Variant, base_url: str | None = None) -> Any:
    provider = "anthropic" if api == "anthropic" else "openai"
    url = base_url or (GATEWAYS[provider] if variant.url == "gateway" else None)
    if provider == "anthropic":
        return anthropic.Anthropic(
            api_key="x",
            max_retries=0,
            base_url=url,
            http_client=anthropic.DefaultHttpxClient(transport=emu.transport(verify=False)),
        )
    return openai.OpenAI(
        api_key="x",
        max_retries=0,
        base_url=url,
        http_client=openai.DefaultHttpxClient(transport=emu.transport(verify=False)),
    )


def _send(client: Any, api: str, model: str, kw: dict[str, Any], stream: bool) -> None:
    if api == "anthropic":
        out = client.messages.create(model=model, stream=stream, **kw)
    elif api == "chat":
        out = client.chat.completions.create(model=model, stream=stream, **kw)
    else:
        out = client.responses.create(model=model, stream=stream, **kw)
    if stream:
        for _ in out:
            pass


PROXY = "https://llm-proxy.corp.example/v1"  # a corporate proxy, for the strict-server cells


def strict_kwargs() -> dict[str, Any] | None:
    """Emulator options for a server that rejects unknown fields, if this emulator has one.

    HOOK (issue 10, ``gateway`` branch): ``Emulator(strict=...)`` takes a style name there
    (``"pydantic"`` is a proxy validating its request model). ``None`` makes ``--strict`` print
    a skip note.
    """
    if "strict" in inspect.signature(Emulator).parameters:
        return {"strict": "pydantic"}
    return None


_WORKLOAD_CACHE: dict[str, list[Req]] = {}


def requests(workload: str) -> list[Req]:
    """The workload's requests, generated once per process (nothing here mutates them)."""
    if workload not in _WORKLOAD_CACHE:
        _WORKLOAD_CACHE[workload] = {**WORKLOADS, **EXTRA_WORKLOADS}[workload]()
    return _WORKLOAD_CACHE[workload]


def run(
    workload: str,
    api: str,
    model: str,
    mode: str,
    variant: Variant = BASE,
    *,
    max_requests: int | None = None,
    emulator_options: dict[str, Any] | None = None,
    base_url: str | None = None,
) -> Run:
    """Run one workload through one API, model, mode and variant; price the ground truth."""
    reqs = requests(workload)[:max_requests]
    times = _gap_times(reqs)
    provider = "anthropic" if api == "anthropic" else "openai"
    clock = FakeClock()
    tmp = tempfile.mkdtemp(prefix="pc-bench-")
    oracle = None
    if mode == "optimum":
        bodies = [render(api, r, oracle=True) for r in reqs]
        oracle = Oracle(api, model, bodies, times, routing_limit())
    caught: list[warnings.WarningMessage] = []
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            Emulator(clock=clock, **(emulator_options or {})) as emu,
        ):
            # promptcache warns (once) about what it did, e.g. a refused hint: record, not raise
            warnings.simplefilter("always", promptcache.PromptCacheWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            ledger = WriteLedger.attach(emu)
            client = _client(api, emu, variant, base_url)
            pc = None
            if mode not in ("bare", "optimum"):
                pc = promptcache.PromptCache(
                    directory=tmp,
                    response_cache=False,
                    restructure=mode,  # type: ignore[arg-type]
                    clock=clock.now,
                )
                client = pc.wrap(client)
            for i, req in enumerate(reqs):
                clock.advance(req.gap)
                kw = render(api, req, oracle=oracle is not None)
                if oracle is not None:
                    kw = oracle.apply(i, kw)
                _send(client, api, model, kw, variant.stream)
            if pc is not None:
                pc.close()
            client.close()
            served = emu.calls
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    calls = [c for c in served if c.status == 200]
    assert len(calls) == len(reqs), [c.status for c in served]
    r = Run(mode, variant, rejected=len(served) - len(calls))
    r.hosts = tuple(sorted({c.host for c in served}))
    r.warned = tuple(
        sorted({type(w.message).__name__ for w in caught if isinstance(w.message, Warning)})
    )
    ratios = []
    for c in calls:
        p, b = _price(provider, model, c)
        r.cost += p
        r.cost_nocache += b
        ratios.append(float(p / b) if b else 1.0)
        r.input_tokens += c.input_tokens
        r.read += c.cache_read_tokens
        r.write += c.cache_write_tokens
    if oracle is not None and oracle.breakpoints:
        expected = [p.expected_read for p in oracle.plans]
        r.mismatches = sum(
            1 for c, e in zip(calls, expected, strict=True) if c.cache_read_tokens != e
        )
    later = sorted(ratios[1:]) or [1.0]
    r.steady = later[len(later) // 2]
    if ledger is None:
        r.never_read = None
    else:
        r.never_read = ledger.never_read
        r.never_read_last = ledger.calls[-1].never_read if ledger.calls else 0
        if r.never_read:
            _, write = multipliers(provider, model)
            premium = 0.0  # never-read tokens x (write price - input price), in input-price units
            for w in ledger.calls:
                if w.never_read:
                    per_token = sum((write.get(t, 1.25) - 1) * n for t, n in w.by_ttl.items())
                    premium += w.never_read * per_token / w.written
            r.waste = premium / r.input_tokens if r.input_tokens else 0.0
    return r


def run_cell(
    workload: str,
    api: str,
    model: str,
    variants: Sequence[Variant] = VARIANTS,
    *,
    modes: Sequence[str] = ("bare", "off", "safe", "auto", "optimum"),
    max_requests: int | None = None,
) -> Cell:
    """Every mode of one workload x API x model (``safe``/``auto`` in each variant)."""
    cell = Cell(workload, api, model)
    for mode in modes:
        vs = variants if mode in ("safe", "auto") else [BASE]
        for v in vs:
            cell.runs[(mode, v.label)] = run(
                workload, api, model, mode, v, max_requests=max_requests
            )
    return cell


def _run_cell_args(args: tuple[str, str, str, tuple[Variant, ...], int | None]) -> Cell:
    warnings.simplefilter("ignore", DeprecationWarning)
    workload, api, model, variants, max_requests = args
    return run_cell(workload, api, model, variants, max_requests=max_requests)


# ------------------------------------------------------------------------------- report


def _ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _unread(r: Run) -> str:
    if r.never_read is None:
        return "n/a"
    if not r.never_read:
        return "0"
    last = ", last call" if r.never_read == r.never_read_last else ""
    return f"{r.never_read:,} ({r.waste:.1%}{last})"


def row(cell: Cell, variants: Sequence[Variant]) -> str:
    """One markdown row: the modes at the default URL, then ratios per variant."""

    def per_variant(mode: str, f: Any) -> str:
        return " · ".join(
            f(cell.run(mode, v)) if (mode, v.label) in cell.runs else "-" for v in variants
        )

    auto = cell.run("auto")
    cols = [
        cell.workload,
        API_LABEL[cell.api],
        cell.model,
        *(cell.run(m).cell() for m in ("bare", "off", "safe", "auto", "optimum")),
        per_variant("auto", lambda r: _ratio(cell.score(r))),
        f"{_ratio(cell.read_ratio(auto))} / {_ratio(cell.savings_ratio(auto))}",
        per_variant("safe", lambda r: _ratio(cell.score(r))),
        per_variant("safe", _unread),
        _unread(auto),
        "; ".join(cell.flags()) or "",
    ]
    return "| " + " | ".join(cols) + " |"


def header(variants: Sequence[Variant]) -> list[str]:
    vl = " · ".join(v.label for v in variants)
    cols = [
        "workload",
        "API",
        "model",
        "bare",
        "off",
        "safe",
        "auto",
        "optimum",
        f"auto/opt ({vl})",
        "auto read/opt · savings/opt",
        f"safe/opt ({vl})",
        f"safe unread writes ({vl})",
        "auto unread writes",
        "flags",
    ]
    return ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]


def _group(cell: Cell) -> str:
    gen = "gpt-5.6+" if openai_has_explicit_caching(cell.model) else "before gpt-5.6"
    return "Anthropic messages" if cell.api == "anthropic" else f"OpenAI {cell.api}, {gen}"


def summary(cells: Iterable[Cell], variants: Sequence[Variant]) -> list[str]:
    """Per API group and variant: auto cells at >= 0.95 of the optimum, mean; safe waste."""
    groups: dict[str, list[Cell]] = {}
    for c in cells:
        groups.setdefault(_group(c), []).append(c)
    out = [
        "| API | variant | auto >= 0.95 of optimum | auto mean | auto min "
        "| safe cells with unread writes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for g, cs in sorted(groups.items()):
        for v in variants:
            scores = [c.score(c.run("auto", v)) for c in cs if ("auto", v.label) in c.runs]
            known = [s for s in scores if s is not None]
            ok = sum(1 for s in known if s >= TARGET)
            safe = [c.run("safe", v) for c in cs if ("safe", v.label) in c.runs]
            unread = sum(1 for r in safe if r.never_read)
            beyond = sum(1 for r in safe if (r.never_read or 0) > r.never_read_last)
            mean = f"{sum(known) / len(known):.2f}" if known else "n/a"
            low = f"{min(known):.2f}" if known else "n/a"
            out.append(
                f"| {g} | {v.label} | {ok} of {len(known)} | {mean} | {low} | "
                f"{unread} of {len(cs)} ({beyond} beyond the last call) |"
            )
    return out


LEGEND = """\
Generated by `python benchmarks/bench_provider_cache.py` (command line below): real SDKs
(openai, anthropic) against `promptcache.testing.Emulator` on a FakeClock, the SDKs keeping a
production base URL (`default`: `https://api.openai.com/v1` / `https://api.anthropic.com`;
`gateway`: `https://gateway.ai.cloudflare.com/v1/acct/gw/{openai,anthropic}`) and reaching the
emulator through `emu.transport()`. Figures are the emulator's ground truth (`emu.calls`);
prices genai-prices, per call.

Mode cells (default URL, no streaming): share of input tokens read from the provider cache /
input cost relative to no caching. `bare` is the SDK alone; `off`/`safe`/`auto` are
`PromptCache(restructure=...)` with default options; `optimum` is the SDK sending the ideal
layout with the hints of an oracle that knows the whole workload (rules:
`benchmarks/workloads/oracle.py`). `x/opt` columns, per variant (default · stream · gateway ·
gateway+stream): the lower of read share / optimum's and cost savings / optimum's (`n/a`:
nothing is cacheable). "unread writes": tokens written to the cache (and billed) that no later
call read, and in brackets the write premium they cost as a share of the no-cache input cost
("last call": all of them were written by the workload's last call, which no online planner can
know is the last).
Flags: `auto` below 0.95 of the optimum; `safe` paying for writes never read; a mode beating the
optimum (an oracle error).
"""


PUBLISHED = {"10-turn chat": 0.53, "many-shot": 0.86, "book 100k": 0.90}


def published(cells: Iterable[Cell]) -> list[str]:
    """Anthropic's launch figures (one warm call against one without) beside ``auto``."""
    out = [
        "| workload | model | Anthropic published | auto, per cached call (median) "
        "| auto, whole run | optimum, whole run |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in cells:
        if c.api == "anthropic" and c.workload in PUBLISHED:
            auto, opt = c.run("auto"), c.optimum
            out.append(
                f"| {c.workload} | {c.model} | -{PUBLISHED[c.workload]:.0%} | "
                f"-{1 - auto.steady:.1%} | -{1 - auto.cost_ratio:.1%} | -{1 - opt.cost_ratio:.1%} |"
            )
    return out if len(out) > 2 else []


def markdown(cells: list[Cell], variants: Sequence[Variant], command: str, extra: str) -> str:
    """The results file."""
    against = published(cells)
    flagged = [
        f"- {c.workload} / {API_LABEL[c.api]} / {c.model}: {'; '.join(c.flags())}"
        for c in cells
        if c.flags()
    ]
    return (
        "\n".join(
            [
                "# Provider cache benchmark",
                "",
                LEGEND,
                f"Command: `{command}`",
                "",
                *header(variants),
                *(row(c, variants) for c in cells),
                "",
                "## Summary",
                "",
                *summary(cells, variants),
                "",
                "## Flagged cells",
                "",
                *(flagged or ["none"]),
                "",
                *(
                    ["## Against Anthropic's published figures", "", *against, ""]
                    if against
                    else []
                ),
                extra,
            ]
        ).rstrip()
        + "\n"
    )


# --------------------------------------------------------------------------------- hooks


def strict_section(quick: bool, max_requests: int | None = None) -> str:
    """Gateway cells against a strict server (rejects unknown fields), if the emulator has it."""
    opts = strict_kwargs()
    lines = ["## Strict server", ""]
    if opts is None:
        lines.append(
            "Skipped: this emulator has no strict mode (`Emulator(strict=...)`, added on the "
            "`gateway` branch). Hook: `strict_kwargs()` in this file."
        )
        return "\n".join(lines) + "\n"
    lines += [
        f"`Emulator({', '.join(f'{k}={v!r}' for k, v in opts.items())})` behind `{PROXY}`: a "
        "proxy that refuses request fields it does not know. `auto` at default options; "
        "`rejected` counts the 400s the emulator answered (each costs one retry).",
        "",
        "| workload | API | model | auto, strict proxy | rejected | warnings | auto, lenient proxy "
        "| optimum |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    wl = "many-shot family, diverging" if quick else "agent, tool outputs, 3 turns"
    proxy = Variant("gateway", False)
    for api, model in [("chat", "gpt-6.1-sol"), ("responses", "gpt-6.1-sol"), ("chat", "gpt-5.5")]:
        cut: dict[str, Any] = {"max_requests": max_requests, "base_url": PROXY}
        strict = run(wl, api, model, "auto", proxy, emulator_options=opts, **cut)
        lenient = run(wl, api, model, "auto", proxy, **cut)
        opt = run(wl, api, model, "optimum", max_requests=max_requests)
        lines.append(
            f"| {wl} | {API_LABEL[api]} | {model} | {strict.cell()} | {strict.rejected} | "
            f"{', '.join(strict.warned) or '-'} | {lenient.cell()} | {opt.cell()} |"
        )
    return "\n".join(lines) + "\n"


def overflow_section(quick: bool) -> str:
    """The overflow table of ``benchmarks/bench_overflow.py`` (``routing`` branch), if present."""
    path = ROOT / "benchmarks" / "bench_overflow.py"
    lines = ["## Above the routing limit", ""]
    if not path.exists():
        lines.append("Skipped: `benchmarks/bench_overflow.py` is not on this branch.")
        return "\n".join(lines) + "\n"
    spec = importlib.util.spec_from_file_location("bench_overflow", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    # HOOK (issue 10, ``routing`` branch): ``run_overflow(models)`` + ``table(rows)`` there.
    if hasattr(mod, "markdown"):
        lines.append(str(mod.markdown(quick=quick)))
    elif hasattr(mod, "run_overflow") and hasattr(mod, "table"):
        lines.append(str(mod.table(mod.run_overflow(["gpt-6.1-sol"] if quick else None))))
    else:
        lines.append("Skipped: `bench_overflow.py` has neither `markdown()` nor `run_overflow()`.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- main


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="3 workloads x 3 APIs, default and gateway+stream variants (seconds)",
    )
    p.add_argument("--workload", action="append", default=[], help="substring; repeatable")
    p.add_argument("--api", action="append", default=[], choices=sorted(MODELS))
    p.add_argument("--model", action="append", default=[], help="substring; repeatable")
    p.add_argument("--variant", action="append", default=[], choices=[v.label for v in VARIANTS])
    p.add_argument("--max-requests", type=int, default=None, help="cut each workload (smoke runs)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (machine is shared)")
    p.add_argument("--out", type=Path, default=None, help=f"results file (default {OUT})")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--strict", action="store_true", help="add the strict-server cells (hook)")
    p.add_argument("--overflow", action="store_true", help="add the overflow section (hook)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected cells, print rows as they finish, write the results file."""
    warnings.simplefilter("ignore", DeprecationWarning)  # retired model names in the SDK
    args = _parse(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    pool = {**WORKLOADS, **(EXTRA_WORKLOADS if args.overflow else {})}
    names = list(QUICK_WORKLOADS) if args.quick else list(pool)
    extra_names = [n for n in EXTRA_WORKLOADS if any(w in n for w in args.workload)]
    names = [n for n in names if not args.workload or any(w in n for w in args.workload)]
    names += [n for n in extra_names if n not in names]
    models = QUICK_MODELS if args.quick else MODELS
    apis = args.api or list(models)
    wanted = args.variant or (QUICK_VARIANTS if args.quick else [v.label for v in VARIANTS])
    variants = [v for v in VARIANTS if v.label in wanted]
    if BASE not in variants:
        variants.insert(0, BASE)
    jobs = [
        (w, api, m, tuple(variants), args.max_requests)
        for w in names
        for api in apis
        for m in models[api]
        if not args.model or any(s in m for s in args.model)
    ]
    print("\n".join(header(variants)), flush=True)
    cells: list[Cell] = []
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            for cell in ex.map(_run_cell_args, jobs):
                cells.append(cell)
                print(row(cell, variants), flush=True)
    else:
        for job in jobs:
            cell = _run_cell_args(job)
            cells.append(cell)
            print(row(cell, variants), flush=True)
    extra = ""
    if args.strict:
        extra += strict_section(args.quick, args.max_requests) + "\n"
    if args.overflow:
        extra += overflow_section(args.quick) + "\n"
    command = "python benchmarks/bench_provider_cache.py" + (
        " " + " ".join(sys.argv[1:] if argv is None else argv) if (argv or sys.argv[1:]) else ""
    )
    text = markdown(cells, variants, command, extra)
    print("\n" + "\n".join(summary(cells, variants)))
    if extra:
        print("\n" + extra)
    full = not (args.quick or args.workload or args.api or args.model or args.variant)
    out = args.out or (OUT if full else None)
    if out is not None and not args.no_write:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")
    print(f"({time.perf_counter() - t0:.1f}s, {len(cells)} cells)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
