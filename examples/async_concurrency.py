"""Async clients and single-flight: 10 identical concurrent requests make one upstream call.

``AsyncOpenAI`` and ``AsyncAnthropic`` wrap like their sync twins. When many tasks send the
same request at the same moment (a burst of users asking the same thing), the first goes to
the provider and the others wait for its answer and replay it, instead of all missing the
cache together. The emulator is given some latency so the requests really overlap; its call
log (``emu.calls``) shows how many reached the provider.

    python examples/async_concurrency.py
"""

from __future__ import annotations

import asyncio
import tempfile

import anthropic
import openai

import promptcache
from promptcache.testing import Emulator, LatencyModel


async def burst(name: str, send, emu: Emulator) -> None:
    before = len(emu.calls)
    replies = await asyncio.gather(*(send() for _ in range(10)))
    print(
        f"{name:<15} 10 concurrent requests -> {len(emu.calls) - before} upstream call(s), "
        f"{len({r.id for r in replies})} distinct answer id(s)"
    )


async def main() -> None:
    with Emulator(latency=LatencyModel(base_s=0.2)) as emu:  # 0.2 s to the first token
        pc = promptcache.PromptCache(directory=tempfile.mkdtemp())
        bare_gpt = openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="sk-o")
        bare_claude = anthropic.AsyncAnthropic(base_url=emu.anthropic_base_url, api_key="k")
        gpt, claude = pc.wrap(bare_gpt), pc.wrap(bare_claude)
        print("still an AsyncOpenAI:", isinstance(gpt, openai.AsyncOpenAI))

        question = [{"role": "user", "content": "What are your opening hours?"}]
        await burst(
            "AsyncOpenAI",
            lambda: gpt.chat.completions.create(model="gpt-5.5", messages=question),
            emu,
        )
        await burst(
            "AsyncAnthropic",
            lambda: claude.messages.create(
                model="claude-sonnet-4-6", max_tokens=50, messages=question
            ),
            emu,
        )
        # Without the local cache every task pays for its own call.
        with promptcache.bypass():
            await burst(
                "bypass()",
                lambda: gpt.chat.completions.create(model="gpt-5.5", messages=question),
                emu,
            )

        s = pc.ledger.summary()
        print(f"ledger: {s.requests} requests, {s.local_hits} served without a provider call")
        await bare_gpt.close()  # the connection pool belongs to the client you wrapped
        await bare_claude.close()
        pc.close()


if __name__ == "__main__":
    asyncio.run(main())
