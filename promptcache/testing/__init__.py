"""promptcache.testing: an offline OpenAI + Anthropic provider emulator.

A real HTTP server on loopback that the official SDKs talk to unchanged, implementing each
provider's prompt-caching rules (minimums, increments, breakpoints, TTLs on an injectable clock,
usage fields exactly as reported), with fault injection, an optional latency model and a
ground-truth record of everything served and billed::

    import openai
    from promptcache.testing import Emulator, FakeClock

    with Emulator(clock=FakeClock()) as emu:
        client = openai.OpenAI(base_url=emu.openai_base_url, api_key="x")
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert emu.calls[-1].input_tokens > 0

It imports nothing from the rest of promptcache on purpose: it is the independent referee the
wrapper, planner and accountant are tested against. See ``docs/emulator.md``.
"""

from __future__ import annotations

from promptcache.testing._clock import Clock, FakeClock, SystemClock
from promptcache.testing._models import anthropic_minimum, openai_has_explicit_caching
from promptcache.testing._server import Emulator
from promptcache.testing._strict import StrictServer, StrictStyle
from promptcache.testing._tokens import tokens_for_bytes
from promptcache.testing._types import Fault, FaultKind, LatencyModel, OpenAISettings, ServedCall

__all__ = [
    "Clock",
    "Emulator",
    "FakeClock",
    "Fault",
    "FaultKind",
    "LatencyModel",
    "OpenAISettings",
    "ServedCall",
    "StrictServer",
    "StrictStyle",
    "SystemClock",
    "anthropic_minimum",
    "openai_has_explicit_caching",
    "tokens_for_bytes",
]
