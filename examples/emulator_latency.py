"""Show the latency effect of prompt caching with the emulator's latency model.

Time to first token grows with the uncached prompt tokens; cached tokens are far cheaper.

    python examples/emulator_latency.py
"""

from __future__ import annotations

import time

import anthropic

from promptcache.testing import Emulator, FakeClock, LatencyModel

BOOK = "It was a bright cold day in April, and the clocks were striking thirteen. " * 1500


def main() -> None:
    with (
        Emulator(clock=FakeClock(), latency=LatencyModel()) as emu,
        anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="offline") as client,
    ):
        for attempt in ["cold", "warm", "warm again"]:
            start = time.perf_counter()
            with client.messages.stream(
                model="claude-sonnet-5",
                max_tokens=50,
                system=[{"type": "text", "text": BOOK, "cache_control": {"type": "ephemeral"}}],
                messages=[{"role": "user", "content": f"Summarise ({attempt})"}],
            ) as stream:
                first = next(iter(stream.text_stream))
                ttft = time.perf_counter() - start
                stream.until_done()
            call = emu.last_call
            print(
                f"{attempt:<11} ttft={ttft:.3f}s  first={first!r:<12} read={call.cache_read_tokens}"
                f" written={call.cache_write_tokens}"
            )


if __name__ == "__main__":
    main()
