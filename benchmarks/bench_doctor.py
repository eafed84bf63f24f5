"""Cache doctor cost per call, beside the bare SDK call (median, µs).

What the doctor adds to every call that reaches the provider: a fingerprint of the body as
sent (one orjson serialisation and one xxh3 per block) and a comparison with the family's
recent requests (integer tuples). A miss adds an explanation (a diff of one block, pricing);
that is measured too, but it runs only on misses.

Bodies: a single-turn request (one long system prompt, a question) and a conversation (five
tools, system ~10%, 40 messages filling the rest), at 2k and 100k tokens (~4 chars a token).
The "bare call" column is the SDK's ``chat.completions.create`` against the emulator on
loopback without promptcache, the "wrapped" columns the same call through ``PromptCache``
(no local cache) with the doctor off and on.

Run: ``python benchmarks/bench_doctor.py [--calls N]``; writes ``benchmarks/results/doctor.md``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

import promptcache  # noqa: E402
from promptcache._api import Api, RequestInfo  # noqa: E402
from promptcache._doctor import DoctorOptions  # noqa: E402
from promptcache._doctor._core import Billed, Diagnoser  # noqa: E402
from promptcache._doctor._fingerprint import fingerprint  # noqa: E402
from promptcache.testing import Emulator  # noqa: E402

SIZES = (2_000, 100_000)
_WORDS = ["cache", "prefix", "token", "model", "answer", "question", "context", "policy"]


@functools.lru_cache(maxsize=256)  # the same texts recur in every body, as in an app
def _prose(tokens: int, seed: int) -> str:
    out: list[str] = []
    n, i = 0, seed
    while n < tokens * 4:
        w = _WORDS[i % len(_WORDS)]
        out.append(w)
        n += len(w) + 1
        i = (i * 7 + 3) % 1_000_003
    return " ".join(out)


def single(tokens: int, q: int) -> dict[str, Any]:
    return {
        "model": "gpt-4.1",
        "messages": [
            {"role": "system", "content": _prose(tokens, 1)},
            {"role": "user", "content": f"Question {q}: what is the policy?"},
        ],
    }


def conversation(tokens: int, q: int) -> dict[str, Any]:
    tools = [
        {"type": "function", "function": {"name": f"tool_{n}", "description": _prose(40, i)}}
        for i, n in enumerate("abcde")
    ]
    per = max(1, int(tokens * 0.9) // 40)
    msgs: list[Any] = [{"role": "system", "content": _prose(tokens // 10, 2)}]
    for i in range(40):
        msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": _prose(per, i)})
    msgs.append({"role": "user", "content": f"Question {q}?"})
    return {"model": "gpt-4.1", "tools": tools, "messages": msgs}


def median_us(fn: Callable[[], object], calls: int) -> float:
    fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def _fresh(body: dict[str, Any]) -> dict[str, Any]:
    """The same body with new string objects (as parsed from the SDK's bytes)."""
    msgs = [{**m, "content": (m["content"] + " ")[:-1]} for m in body["messages"]]
    return {**body, "messages": msgs}


def _timed(
    build: Callable[[int, int], dict[str, Any]],
    tokens: int,
    calls: int,
    *,
    fresh: bool,
    miss: bool,
) -> float:
    """Return the median µs of fingerprint + observe, one new body per call.

    Each body is built untimed just before its call: a body parsed from the SDK's bytes is in
    the CPU cache when the doctor sees it.
    """
    info = RequestInfo(Api.OPENAI_CHAT, "https://api.openai.com/v1", "gpt-4.1", "t", False)
    core = Diagnoser(DoctorOptions())

    def body(q: int) -> dict[str, Any]:
        b = build(tokens, q)
        if miss:  # a timestamp at the top of the prompt, the rest after it
            b["messages"][0] = {"role": "system", "content": f"Now: 10:{q % 60:02d}\n"}
            b["messages"].insert(1, {"role": "system", "content": _prose(tokens // 2, 5)})
        return _fresh(b) if fresh else b

    first = fingerprint(info, body(0))
    total = first.ends[-1] // 4
    core.observe(first, Billed(total, 0, {}, "openai"), 0.0)
    times = []
    for q in range(1, calls + 1):
        b = body(q)
        billed = Billed(total, 0 if miss else total - 20, {}, "openai")
        t = time.perf_counter()
        core.observe(fingerprint(info, b), billed, float(q))
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def sdk_calls(tokens: int, calls: int) -> tuple[float, float, float]:
    """Median µs of the bare SDK call, wrapped with the doctor off, wrapped with it on.

    The three clients take turns call by call, so drifting machine load hits them alike.
    """
    with Emulator() as emu:
        raws = [
            openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
            for _ in range(3)
        ]
        caches = [
            promptcache.PromptCache(
                tempfile.mkdtemp(prefix="pc-bench-doctor-"),
                response_cache=False,
                restructure="off",
                doctor=DoctorOptions(enabled=on, history=False),
            )
            for on in (False, True)
        ]
        clients = [raws[0], caches[0].wrap(raws[1]), caches[1].wrap(raws[2])]
        times: list[list[float]] = [[], [], []]
        for q in range(calls + 2):
            for i, client in enumerate(clients):
                body = single(tokens, q)
                t = time.perf_counter()
                client.chat.completions.create(**body)
                if q >= 2:  # the first calls warm up (and write the provider cache)
                    times[i].append(time.perf_counter() - t)
        for r in raws:
            r.close()
        for c in caches:
            c.close()
    bare, off, on = (statistics.median(t) * 1e6 for t in times)
    return bare, off, on


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    lines = [
        "# Cache doctor: cost per call (median µs)",
        "",
        "Steady call: fingerprint + comparison of a call that read what it should. \"app's "
        "strings\": the body holds the app's own string objects (the pre-SDK fast path; a prompt "
        'string sent again is not rehashed); "fresh strings": new objects every call (a body '
        "parsed from the SDK's bytes). Explained miss: a timestamp changed in the prefix.",
        "",
        "| body | tokens | steady, app's strings | steady, fresh strings | explained miss |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, build in (("single-turn", single), ("conversation, 41 msgs", conversation)):
        for tokens in SIZES:
            same = _timed(build, tokens, args.calls, fresh=False, miss=False)
            fresh = _timed(build, tokens, args.calls, fresh=True, miss=False)
            miss = _timed(build, tokens, args.calls, fresh=True, miss=True)
            lines.append(f"| {name} | {tokens:,} | {same:.1f} | {fresh:.1f} | {miss:.1f} |")
    lines += [
        "",
        "| tokens | bare SDK call | wrapped, doctor off | wrapped, doctor on |",
        "| --- | --- | --- | --- |",
    ]
    for tokens in SIZES:
        bare, off, on = sdk_calls(tokens, max(20, args.calls // 4))
        lines.append(f"| {tokens:,} | {bare:.0f} | {off:.0f} | {on:.0f} |")
    lines += [
        "",
        "Run: `python benchmarks/bench_doctor.py` (the SDK rows go through the emulator on "
        "loopback; they are noisy at the tens-of-µs level the doctor adds).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "doctor.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
