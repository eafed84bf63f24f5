"""Cost of ``@pc.cached``: decoration (the function's identity) and a hit (keying the call).

    python benchmarks/bench_memo.py

Prints microseconds per operation, the minimum of several repeats (the machine's noise only
ever adds time). Compare two checkouts by running it with each on ``PYTHONPATH``.
"""

from __future__ import annotations

import tempfile
import timeit
from collections.abc import Callable
from typing import Any

import promptcache

HISTORY = [{"role": "user", "content": "x" * 200, "n": i} for i in range(50)]
PROMPT = "Summarise this text: " + "lorem ipsum " * 100
OPTIONS = {"a": 1, "b": [1, 2, 3], "c": None}


def per_call(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e6


def measure(store: str | None) -> dict[str, float]:
    with promptcache.PromptCache(directory=tempfile.mkdtemp(), store=store) as pc:
        scale = 2  # a captured value: part of the identity

        def summarise(text: str, *, model: str = "gpt-4o", options: Any = None) -> str:
            return text[: 10 * scale]

        f = pc.cached(summarise)
        f(PROMPT, options=OPTIONS)
        f("chat", options=HISTORY)
        return {
            "decorate": per_call(lambda: pc.cached(summarise), 2000),
            "hit, small args": per_call(lambda: f(PROMPT, options=OPTIONS), 5000),
            "hit, 50-message arg": per_call(lambda: f("chat", options=HISTORY), 1000),
        }


def main() -> None:
    for store in ("memory://", None):
        for what, us in measure(store).items():
            print(f"{store or 'disk':10} {what:20} {us:7.1f} µs")


if __name__ == "__main__":
    main()
