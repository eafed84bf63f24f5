"""Per-call cost of the accountant on the request path (``LedgerAccountant``).

Captures real response bodies from the emulator (``with_raw_response``) for the three wire
APIs, JSON and SSE, with a ~2k-token prompt, then times ``record_upstream`` and
``record_local_hit`` over many calls (ledger flushes run in the background thread as in
production). The one ``orjson.loads`` of a JSON body is timed on its own, since the request
path needs it whatever the accountant does.

    .venv/bin/python benchmarks/bench_accountant.py [--n 10000]
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import tempfile
import time
from typing import Any

from promptcache._accounting._attribution import Attribution
from promptcache._api import Api, RequestInfo
from promptcache._json import loads
from promptcache.testing import Emulator, FakeClock

# Measured with this script on the accountant before the fast paths (commit 49f3c44).
BEFORE = {
    "chat json": (26.1, 2.29),
    "responses json": (39.4, 3.83),
    "anthropic json": (24.6, 2.16),
    "chat sse": (110.5, 2.28),
    "responses sse": (126.7, 2.28),
    "anthropic sse": (134.9, 2.11),
}

PROMPT = "You are a careful assistant who answers briefly and precisely. " * 180  # ~2k tokens


def capture() -> dict[str, tuple[Api, str, str, bool, bytes]]:
    """Return ``{case: (api, base_url, model, stream, body)}`` captured from the emulator."""
    import anthropic
    import openai

    out: dict[str, tuple[Api, str, str, bool, bytes]] = {}
    with Emulator(clock=FakeClock()) as emu:
        oa: Any = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
        an: Any = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x", max_retries=0)
        msgs: Any = [{"role": "system", "content": PROMPT}, {"role": "user", "content": "hi"}]
        m = "gpt-5.6-sol"
        for stream in (False, True):
            kw: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
            r = oa.chat.completions.with_raw_response.create(
                model=m, messages=msgs, **(kw if stream else {})
            )
            out[f"chat {'sse' if stream else 'json'}"] = (
                Api.OPENAI_CHAT,
                emu.openai_base_url,
                m,
                stream,
                r.http_response.read(),
            )
            r2 = oa.responses.with_raw_response.create(
                model=m, input=msgs, **({"stream": True} if stream else {})
            )
            out[f"responses {'sse' if stream else 'json'}"] = (
                Api.OPENAI_RESPONSES,
                emu.openai_base_url,
                m,
                stream,
                r2.http_response.read(),
            )
            am = "claude-sonnet-4-5"
            r3 = an.messages.with_raw_response.create(
                model=am,
                max_tokens=200,
                system=[{"type": "text", "text": PROMPT, "cache_control": {"type": "ephemeral"}}],
                messages=[{"role": "user", "content": "hi"}],
                **({"stream": True} if stream else {}),
            )
            out[f"anthropic {'sse' if stream else 'json'}"] = (
                Api.ANTHROPIC_MESSAGES, emu.anthropic_base_url, am, stream,
                r3.http_response.read(),
            )  # fmt: skip
        oa.close()
        an.close()
    return out


def per_call_us(fn: Any, n: int, repeats: int = 5) -> float:
    """Median over ``repeats`` runs of the mean µs per call of ``fn()`` over ``n`` calls."""
    runs = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter_ns() - t0) / n / 1000)
    return statistics.median(runs)


def main() -> None:
    """Print a markdown table of µs per call."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()
    from promptcache._accounting import LedgerAccountant

    bodies = capture()
    print("| case | bytes | SSE events | orjson.loads µs | record_upstream µs before | after |"
          " record_local_hit µs before | after |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        acc = LedgerAccountant(d)
        for case, (api, base, model, stream, body) in bodies.items():
            info = RequestInfo(
                api=api, base_url=base, model=model, tenant="t", stream=stream, signed=False,
                attribution=Attribution(), started=time.time(),
            )  # fmt: skip
            meta = acc.record_upstream(info, body, status=200, complete=True)
            parse = 0.0 if stream else per_call_us(functools.partial(loads, body), args.n)
            up = per_call_us(
                functools.partial(acc.record_upstream, info, body, status=200, complete=True),
                args.n,
            )
            hit = per_call_us(functools.partial(acc.record_local_hit, info, meta), args.n)
            events = body.count(b"\n\n") if stream else 0
            b_up, b_hit = BEFORE[case]
            print(f"| {case} | {len(body)} | {events} | {parse:.2f} | {b_up:.1f} | {up:.1f} | "
                  f"{b_hit:.2f} | {hit:.2f} |")  # fmt: skip
        acc.close()


if __name__ == "__main__":
    main()
