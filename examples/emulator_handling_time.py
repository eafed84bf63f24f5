"""Measure the emulator's own handling time (parse + count + cache) at 2k/20k/200k tokens.

Offline: runs the emulator on loopback and posts raw JSON bodies to it. Prints the median of
``ServedCall.handling_ms`` per API and prompt size.

    python examples/emulator_handling_time.py
"""

from __future__ import annotations

import statistics
from typing import Any

import httpx2

from promptcache.testing import Emulator, FakeClock

SIZES = (2_000, 20_000, 200_000)


def bodies(tokens: int) -> dict[str, tuple[str, dict[str, Any]]]:
    text = "lorem ipsum " * (tokens // 3)  # 12 bytes = 3 tokens
    chat = [{"role": "user", "content": text}]
    return {
        "openai.chat gpt-4o": ("/v1/chat/completions", {"model": "gpt-4o", "messages": chat}),
        "openai.chat gpt-5.6": (
            "/v1/chat/completions",
            {"model": "gpt-5.6-sol", "messages": chat},
        ),
        "openai.responses": ("/v1/responses", {"model": "gpt-5.6-sol", "input": text}),
        "anthropic.messages": (
            "/v1/messages",
            {
                "model": "claude-sonnet-5",
                "max_tokens": 20,
                "system": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}],
                "messages": [{"role": "user", "content": "q"}],
            },
        ),
    }


def main() -> None:
    with Emulator(clock=FakeClock(), record_bodies=False) as emu, httpx2.Client() as http:
        print(f"{'api':<22}" + "".join(f"{n:>12,}" for n in SIZES) + "   (median ms)")
        rows: dict[str, list[float]] = {}
        for tokens in SIZES:
            for name, (path, body) in bodies(tokens).items():
                emu.clear_calls()
                for _ in range(7):
                    http.post(emu.base_url + path, json=body).raise_for_status()
                rows.setdefault(name, []).append(
                    statistics.median(c.handling_ms for c in emu.calls)
                )
        for name, values in rows.items():
            print(f"{name:<22}" + "".join(f"{v:>12.2f}" for v in values))


if __name__ == "__main__":
    main()
