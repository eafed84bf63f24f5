"""OpenAI retention as documented (PROVIDERS.md §2.1), through the real openai SDK.

* ``in_memory``: "5-10 minutes of inactivity, at most an hour" -> idle lifetime and cap are
  settings (defaults 10 minutes and 1 hour);
* default retention before gpt-5.5: ``24h`` for organisations without Zero Data Retention,
  ``in_memory`` with it; gpt-5.5 and later only ``24h`` (openai 3.51.0 docstring).
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from promptcache.testing import Emulator, FakeClock, OpenAISettings

SYSTEM = "All answers must be short. " * 222 + "abcdef"  # 1,500 tokens; shared part reads 1408


class _Session:
    def __init__(self, emu: Emulator, client: openai.OpenAI, clock: FakeClock) -> None:
        self.emu, self.client, self.clock = emu, client, clock
        self.n = 0

    def cached_after(self, gap: float, model: str = "gpt-4.1", **kw: Any) -> int:
        self.clock.advance(gap)
        self.n += 1
        resp = self.client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"q{self.n}"},
            ],
            **kw,
        )
        assert resp.usage is not None and resp.usage.prompt_tokens_details is not None
        return int(resp.usage.prompt_tokens_details.cached_tokens or 0)


def _session(settings: OpenAISettings | None = None) -> Any:
    clock = FakeClock()
    emu = Emulator(clock=clock, openai=settings).start()
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
    return emu, client, _Session(emu, client, clock)


@pytest.fixture()
def s() -> Any:
    emu, client, sess = _session()
    yield sess
    client.close()
    emu.close()


def test_in_memory_lives_ten_idle_minutes_but_at_most_an_hour(s: _Session) -> None:
    mem: Any = {"prompt_cache_retention": "in_memory"}
    assert s.cached_after(0, **mem) == 0
    # Read every 9 minutes: each read refreshes the 10-minute idle lifetime ...
    reads = [s.cached_after(9 * 60, **mem) for _ in range(6)]  # t = 9 … 54 min
    assert reads == [1408] * 6
    # ... but not past an hour after the write: at t = 63 min the entry is gone.
    assert s.cached_after(9 * 60, **mem) == 0
    # The miss wrote a fresh entry, with a fresh hour.
    assert s.cached_after(9 * 60, **mem) == 1408
    # Idle for more than 10 minutes: gone.
    assert s.cached_after(10 * 60 + 1, **mem) == 0


def test_in_memory_lifetimes_are_settings() -> None:
    emu, client, s = _session(OpenAISettings(in_memory_idle_s=300, in_memory_max_s=900))
    with emu, client:
        mem: Any = {"prompt_cache_retention": "in_memory"}
        s.cached_after(0, **mem)
        assert s.cached_after(299, **mem) == 1408
        assert s.cached_after(301, **mem) == 0  # 5 minutes idle is the lifetime now
        assert [s.cached_after(240, **mem) for _ in range(3)] == [1408, 1408, 1408]
        assert s.cached_after(240, **mem) == 0  # 16 minutes after the write: capped at 15
    with pytest.raises(ValueError, match="in_memory_idle_s"):
        OpenAISettings(in_memory_idle_s=4000)


def test_default_retention_before_gpt55_is_24h_without_zdr(s: _Session) -> None:
    for model in ("gpt-4.1", "gpt-4o", "o3"):
        s.cached_after(0, model=model)
        assert s.cached_after(3 * 3600, model=model) == 1408, model
        assert s.cached_after(24 * 3600 + 1, model=model) == 0, model


def test_zdr_organisations_default_to_in_memory_before_gpt55() -> None:
    emu, client, s = _session(OpenAISettings(zdr=True))
    with emu, client:
        s.cached_after(0)
        assert s.cached_after(9 * 60) == 1408
        assert s.cached_after(11 * 60) == 0
        # Asking for 24h still gets 24h.
        s.cached_after(0, prompt_cache_retention="24h")
        assert s.cached_after(3 * 3600, prompt_cache_retention="24h") == 1408
        # gpt-5.5 and later support only 24h, ZDR or not, in_memory asked or not.
        s.cached_after(0, model="gpt-5.5")
        assert s.cached_after(3 * 3600, model="gpt-5.5") == 1408
        s.cached_after(0, model="gpt-5.5", prompt_cache_retention="in_memory")
        assert s.cached_after(3 * 3600, model="gpt-5.5", prompt_cache_retention="in_memory") == 1408
