"""Local response cache speed: bare SDK call vs wrapped miss vs wrapped hit, on loopback.

One run measures, against the emulator (``promptcache.testing.Emulator``) on 127.0.0.1, with
prompts of about 2k, 20k and 200k tokens (the emulator counts ~4 bytes per token):

* ``bare``  — the SDK call without promptcache;
* ``miss``  — the wrapped call with the response cache on and a fresh key every iteration
  (so it always goes upstream: keying, planning, accounting and storing included);
* ``hit``   — the wrapped call answered locally, a typed SDK object returned;

as medians over many iterations and as ratios to ``bare``, for OpenAI Chat Completions and
Anthropic Messages; plus ``import promptcache`` in a fresh interpreter (no SDK imported).
Budgets (DESIGN §9): hit <= 0.10x at 2k and <= 0.05x at 200k; miss <= 1.05x; import <= 100 ms.

    python benchmarks/bench_local_cache.py [--quick] [--check]

The emulator runs in a separate process (``promptcache emulate --no-bodies``) for all three
measurements, as a real provider would be on another machine.

Prints a markdown table and writes it to ``benchmarks/results/local_cache.md``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import anthropic  # noqa: E402
import openai  # noqa: E402

from promptcache import PromptCache  # noqa: E402

SIZES = {"2k": 2_000, "20k": 20_000, "200k": 200_000}
ITERATIONS = {"2k": 300, "20k": 120, "200k": 80}
BUDGET_HIT = {"2k": 0.10, "20k": None, "200k": 0.05}
BUDGET_MISS = 1.05
BUDGET_IMPORT_MS = 100.0
_WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
]


def _text(tokens: int) -> str:
    """About ``tokens`` tokens of text at the emulator's ~4 bytes per token."""
    out: list[str] = []
    size = 0
    i = 0
    while size < tokens * 4:
        word = _WORDS[(i * 7 + i // 26) % len(_WORDS)]
        out.append(word)
        size += len(word) + 1
        i += 1
    return " ".join(out)


def _openai_kwargs(system: str, tag: str) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Question {tag}: summarise the above."},
        ],
        "max_tokens": 16,
    }


def _anthropic_kwargs(system: str, tag: str) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-5-5",
        "max_tokens": 16,
        "system": system,
        "messages": [{"role": "user", "content": f"Question {tag}: summarise the above."}],
    }


def _medians_ms(fns: dict[str, Callable[[int], Any]], n: int) -> dict[str, float]:
    """Median time of each ``fn(i)``, the functions interleaved call by call.

    Interleaving (bare, miss, hit, bare, miss, hit, …) puts every variant under the same
    machine load at the same moment, so a noisy neighbour cannot favour one of them.
    """
    for i in range(min(5, n)):  # warm up connections, imports, caches
        for fn in fns.values():
            fn(-1 - i)
    gc.collect()
    gc.disable()
    times: dict[str, list[float]] = {name: [] for name in fns}
    try:
        for i in range(n):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn(i)
                times[name].append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


class _RemoteEmulator:
    """The emulator in its own process (``promptcache emulate``), as a real provider would be.

    In-process, the emulator's request handling would compete for the GIL with the client
    (and with any background thread the client runs), which distorts bare and wrapped alike.
    """

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "promptcache", "emulate", "--port", "0", "--no-bodies"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if "listening on " not in line:
            self._proc.kill()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.base_url = line.rsplit("listening on ", 1)[1].strip()
        self.openai_base_url = self.base_url + "/v1"
        self.anthropic_base_url = self.base_url

    def __enter__(self) -> _RemoteEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def _measure(
    provider: str, size: str, emu: _RemoteEmulator, n: int, run_id: str
) -> dict[str, float]:
    system = _text(SIZES[size])
    directory = tempfile.mkdtemp(prefix="pc-bench-")
    pc = PromptCache(directory)
    if provider == "openai":
        bare: Any = openai.OpenAI(base_url=emu.openai_base_url, api_key="bench", max_retries=0)
        make = _openai_kwargs

        def call(client: Any, kwargs: dict[str, Any]) -> Any:
            return client.chat.completions.create(**kwargs)

    else:
        bare = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="bench", max_retries=0)
        make = _anthropic_kwargs

        def call(client: Any, kwargs: dict[str, Any]) -> Any:
            return client.messages.create(**kwargs)

    wrapped = pc.wrap(bare)
    hit_kwargs = make(system, "hit")
    call(wrapped, hit_kwargs)  # stored once; every timed call below is a hit
    results = _medians_ms(
        {
            # Fresh tags for bare and miss alike, so both send equal-sized, never-seen bodies.
            "bare": lambda i: call(bare, make(system, f"bare-{run_id}-{i}")),
            "miss": lambda i: call(wrapped, make(system, f"miss-{run_id}-{i}")),
        },
        n,
    )
    pc.store.flush()
    # Hits back to back (as the budget has always been measured), against the bare median
    # above; then hits interleaved with bare calls ("cold": the CPU caches hold the SDK's
    # request path, not the hit's), reported beside it.
    results["hit"] = _medians_ms({"hit": lambda i: call(wrapped, hit_kwargs)}, n)["hit"]
    cold = _medians_ms(
        {
            "bare": lambda i: call(bare, make(system, f"hbare-{run_id}-{i}")),
            "hit": lambda i: call(wrapped, hit_kwargs),
        },
        n,
    )
    results["hit_cold"] = cold["hit"]
    results["hit_cold_bare"] = cold["bare"]
    live = call(wrapped, make(system, "check"))
    again = call(wrapped, make(system, "check"))
    assert type(live) is type(again) and live == again, "a hit must equal the live object"
    pc.close()
    bare.close()
    return results


class _NullPlanner:
    """Sends bodies as written (attributes the miss overhead to the transport alone)."""

    def rewrite(self, info: Any, body: dict[str, Any]) -> Any:
        from promptcache._hooks import Rewrite

        return Rewrite(body)

    def observe(self, info: Any, sent: Any, usage: Any) -> None:
        return None

    def rejected(self, info: Any, sent: Any, status: int, error_body: bytes) -> None:
        return None


class _NullAccountant:
    def record_upstream(self, info: Any, body: bytes, *, status: int, complete: bool) -> Any:
        return {}

    def record_local_hit(self, info: Any, meta: Any) -> None:
        return None


VARIANTS: dict[str, dict[str, Any]] = {
    "restructure off": {"restructure": "off"},
    "memory store": {"store": "memory://"},
    "transport only": {
        "store": "memory://",
        "planner": _NullPlanner(),
        "accountant": _NullAccountant(),
    },
}


def _miss_call(
    call: Callable[[Any, dict[str, Any]], Any],
    client: Any,
    make: Callable[[str, str], dict[str, Any]],
    system: str,
    tag: str,
) -> Callable[[int], Any]:
    return lambda i: call(client, make(system, f"{tag}-{i}"))


def _miss_breakdown(
    provider: str, size: str, emu: _RemoteEmulator, n: int, run_id: str
) -> dict[str, float]:
    """Miss medians with parts of the default setup swapped out, bare call interleaved."""
    system = _text(SIZES[size])
    if provider == "openai":
        bare: Any = openai.OpenAI(base_url=emu.openai_base_url, api_key="bench", max_retries=0)
        make = _openai_kwargs

        def call(client: Any, kwargs: dict[str, Any]) -> Any:
            return client.chat.completions.create(**kwargs)

    else:
        bare = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="bench", max_retries=0)
        make = _anthropic_kwargs

        def call(client: Any, kwargs: dict[str, Any]) -> Any:
            return client.messages.create(**kwargs)

    fns: dict[str, Callable[[int], Any]] = {
        "bare": lambda i: call(bare, make(system, f"b-{run_id}-{i}"))
    }
    caches = []
    for name, options in VARIANTS.items():
        pc = PromptCache(tempfile.mkdtemp(prefix="pc-bench-"), **options)
        caches.append(pc)
        wrapped = pc.wrap(bare)
        tag = f"{name}-{run_id}"
        fns[name] = _miss_call(call, wrapped, make, system, tag)
    out = _medians_ms(fns, n)
    for pc in caches:
        pc.close()
    bare.close()
    return out


def _import_ms(runs: int = 7) -> float:
    code = (
        "import sys, time; t = time.perf_counter(); import promptcache; "
        "d = (time.perf_counter() - t) * 1000; "
        "assert not {'openai', 'anthropic', 'pydantic', 'genai_prices'} & set(sys.modules); "
        "print(d)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def _verdict(ok: bool) -> str:
    return "ok" if ok else "OVER"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--runs", type=int, default=3, help="runs per row (median taken)")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a budget is over"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "local_cache.md"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # PriceWarning for emulator-only model names, etc.
    run_id = str(time.time_ns())
    rows = []
    with _RemoteEmulator() as emu:
        for provider in ("openai", "anthropic"):
            for size in SIZES:
                n = max(5, ITERATIONS[size] // (10 if args.quick else 1))
                # Several runs, each ratio their median: one run moves by ±0.05x on a shared box.
                runs = [_measure(provider, size, emu, n, f"{run_id}-{k}") for k in range(args.runs)]
                r = {
                    name: statistics.median(run[name] for run in runs)
                    for name in ("bare", "miss", "hit", "hit_cold")
                }
                r["miss_ratio"] = statistics.median(run["miss"] / run["bare"] for run in runs)
                r["hit_ratio"] = statistics.median(run["hit"] / run["bare"] for run in runs)
                r["cold_ratio"] = statistics.median(
                    run["hit_cold"] / run["hit_cold_bare"] for run in runs
                )
                rows.append((provider, size, n, r))
                print(f"{provider:9} {size:>4}: {r}", file=sys.stderr)
        breakdown = []
        for provider in ("openai", "anthropic"):
            for size in ("2k", "200k"):
                n = max(5, ITERATIONS[size] // (10 if args.quick else 1))
                breakdown.append((provider, size, _miss_breakdown(provider, size, emu, n, run_id)))
                print(f"{provider:9} {size:>4} breakdown: {breakdown[-1][2]}", file=sys.stderr)
    import_ms = _import_ms()
    lines = [
        "# Local cache speed",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
        f"{platform.machine()} / Python {platform.python_version()} / openai "
        f"{openai.__version__} / anthropic {anthropic.__version__}, against the emulator "
        "on loopback running in a separate process (`promptcache emulate --no-bodies`, for "
        "bare, miss and hit alike, as a real provider is another machine), default "
        '`PromptCache()` (diskcache store, `restructure="safe"`, ledger on). Medians of '
        f"n calls; every ratio is the median of {args.runs} such runs. Bare and miss calls "
        "are timed interleaved (bare, miss, "
        "bare, miss, …) so machine load weighs on both alike; *hit* is timed back to back "
        "(as the budget always was); *cold hit* interleaved with bare calls (bare, hit, …: "
        "the CPU caches then hold the SDK's request path), against those bare calls.",
        "",
        "| API | prompt | n | bare ms | miss ms | hit ms | miss / bare | hit / bare "
        "| cold hit / bare | budget |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    all_ok = True
    for provider, size, n, r in rows:
        miss_ratio, hit_ratio, cold_ratio = r["miss_ratio"], r["hit_ratio"], r["cold_ratio"]
        hit_budget = BUDGET_HIT[size]
        ok_miss = miss_ratio <= BUDGET_MISS
        ok_hit = hit_budget is None or hit_ratio <= hit_budget
        all_ok &= ok_miss and ok_hit
        budget = f"miss ≤ {BUDGET_MISS:.2f}× {_verdict(ok_miss)}"
        if hit_budget is not None:
            budget += f"; hit ≤ {hit_budget:.2f}× {_verdict(ok_hit)}"
        api = "OpenAI chat" if provider == "openai" else "Anthropic messages"
        lines.append(
            f"| {api} | ~{size} tokens | {n} | {r['bare']:.2f} | {r['miss']:.2f} | "
            f"{r['hit']:.3f} | {miss_ratio:.3f}× | {hit_ratio:.3f}× | {cold_ratio:.3f}× | "
            f"{budget} |"
        )
    miss_by_key = {(p, z): r["miss_ratio"] for p, z, _, r in rows}
    lines += [
        "",
        "Where a miss's extra time goes (miss / bare; each column swaps out one part of the",
        "default setup; measured in a second pass, so the default column may differ slightly):",
        "",
        '| API | prompt | default | restructure="off" | memory store | transport only |',
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for provider, size, b in breakdown:
        api = "OpenAI chat" if provider == "openai" else "Anthropic messages"
        cells = " | ".join(f"{b[name] / b['bare']:.3f}×" for name in VARIANTS)
        lines.append(f"| {api} | ~{size} | {miss_by_key[(provider, size)]:.3f}× | {cells} |")
    lines += [
        "",
        "*transport only* = memory store, planner and accountant replaced by no-op doubles: the",
        "cost of keying, the fast path, single-flight and the extra http layer alone.",
        "",
        "The disk store's share (default against *memory store*) is a SQLite read on every",
        "miss (~9 µs alone), the cross-process single-flight lock (a byte-range lock on one",
        "file, ~4 µs alone) and the writer thread that stores entries behind (~28 µs of CPU",
        "per entry, in one SQLite transaction every 20 ms): in this tight loop that thread",
        "competes with the caller for the GIL, which a real app waiting on a provider hides.",
        "Each column moves by about ±0.03× from run to run.",
    ]
    ok_import = import_ms <= BUDGET_IMPORT_MS
    all_ok &= ok_import
    lines += [
        "",
        f"`import promptcache` (fresh interpreter, no SDK imported): **{import_ms:.1f} ms** "
        f"(budget ≤ {BUDGET_IMPORT_MS:.0f} ms: {_verdict(ok_import)})",
        "",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return 1 if args.check and not all_ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
