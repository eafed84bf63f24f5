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
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
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


def hot_path(build: Callable[[int, int], dict[str, Any]], tokens: int, calls: int) -> float:
    """Fingerprint + observe of a call that read what it should (the steady state)."""
    info = RequestInfo(Api.OPENAI_CHAT, "https://api.openai.com/v1", "gpt-4.1", "t", False)
    core = Diagnoser(DoctorOptions())
    bodies = [build(tokens, q) for q in range(calls + 2)]
    first = fingerprint(info, bodies[0])
    total = first.ends[-1] // 4
    core.observe(first, Billed(total, 0, {}, "openai"), 0.0)
    it = iter(bodies[1:])
    now = [0.0]

    def one() -> None:
        now[0] += 1.0
        p = fingerprint(info, next(it))
        core.observe(p, Billed(total, total - 20, {}, "openai"), now[0])

    return median_us(one, calls)


def miss_path(build: Callable[[int, int], dict[str, Any]], tokens: int, calls: int) -> float:
    """Fingerprint + observe + explanation of a miss (a timestamp changed in the prefix)."""
    info = RequestInfo(Api.OPENAI_CHAT, "https://api.openai.com/v1", "gpt-4.1", "t", False)
    core = Diagnoser(DoctorOptions())
    bodies = []
    for q in range(calls + 2):
        b = build(tokens, q)
        b["messages"][0] = {"role": "system", "content": f"Now: 10:{q % 60:02d}\n" + "x" * 10}
        b["messages"].insert(1, {"role": "system", "content": _prose(tokens // 2, 5)})
        bodies.append(b)
    first = fingerprint(info, bodies[0])
    total = first.ends[-1] // 4
    core.observe(first, Billed(total, 0, {}, "openai"), 0.0)
    it = iter(bodies[1:])
    now = [0.0]

    def one() -> None:
        now[0] += 1.0
        p = fingerprint(info, next(it))
        core.observe(p, Billed(total, 0, {}, "openai"), now[0])

    return median_us(one, calls)


def _one_call(client: openai.OpenAI, tokens: int, q: Iterator[int]) -> None:
    client.chat.completions.create(**single(tokens, next(q)))


def sdk_calls(tokens: int, calls: int) -> tuple[float, float, float]:
    """Median µs of the bare SDK call, wrapped with the doctor off, wrapped with it on."""
    out = []
    with Emulator() as emu:
        for mode in ("bare", "off", "on"):
            raw = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
            client = raw
            pc = None
            if mode != "bare":
                pc = promptcache.PromptCache(
                    tempfile.mkdtemp(prefix="pc-bench-doctor-"),
                    response_cache=False,
                    restructure="off",
                    doctor=DoctorOptions(enabled=mode == "on", history=False),
                )
                client = pc.wrap(raw)

            call = functools.partial(_one_call, client, tokens, itertools.count())
            out.append(median_us(call, calls))
            raw.close()
            if pc is not None:
                pc.close()
    return out[0], out[1], out[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    lines = [
        "# Cache doctor: cost per call (median µs)",
        "",
        "| body | tokens | doctor, steady call | doctor, explained miss |",
        "| --- | --- | --- | --- |",
    ]
    for name, build in (("single-turn", single), ("conversation, 41 msgs", conversation)):
        for tokens in SIZES:
            hot = hot_path(build, tokens, args.calls)
            miss = miss_path(build, tokens, args.calls)
            lines.append(f"| {name} | {tokens:,} | {hot:.1f} | {miss:.1f} |")
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
