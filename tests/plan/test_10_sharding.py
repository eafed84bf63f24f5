"""Traffic above OpenAI's routing limit: promptcache spreads a hot family over derived keys.

Real openai SDK -> ``PromptCache.wrap`` -> emulator on loopback, planner and emulator on one
FakeClock. The emulator models overflow routing (above 15 requests a minute for one prefix and
``prompt_cache_key`` the rest lands on cold machines); these tests measure what sharding wins
back, that each shard stays warm, that two users' keys never merge, and that a slow family is
left alone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

import promptcache
from promptcache.testing import Emulator, FakeClock, OpenAISettings, ServedCall

DOC = "Clause: the tenant shall keep the premises in good repair. " * 100  # ~1.5k tokens


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(clock=clock) as e:
        yield e


_OPEN: list[Any] = []


@pytest.fixture(autouse=True)
def _close() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def wrapped(emu: Emulator, clock: FakeClock, tmp_path: Path, **options: Any) -> openai.OpenAI:
    pc = promptcache.PromptCache(
        directory=tmp_path / f"pc{len(_OPEN)}",
        response_cache=False,
        clock=clock.now,
        openai=promptcache.OpenAIOptions(endpoint="openai", **options),
    )
    raw = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
    _OPEN.extend([raw, pc])
    return pc.wrap(raw)


def fan_out(
    client: openai.OpenAI,
    clock: FakeClock,
    *,
    per_minute: float,
    n: int,
    model: str = "gpt-4.1",
    **kw: Any,
) -> None:
    """``n`` different questions over one document, ``per_minute`` of them a minute."""
    for i in range(n):
        client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": DOC},
                {"role": "user", "content": f"Question {i}: what does clause {i} say?"},
            ],
            **kw,
        )
        clock.advance(60.0 / per_minute)


def read_share(calls: list[ServedCall]) -> float:
    return sum(c.cache_read_tokens for c in calls) / sum(c.input_tokens for c in calls)


def test_sharding_wins_back_the_reads_lost_to_overflow(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    # 300 questions at 60 a minute (five minutes), without sharding and with it.
    fan_out(
        wrapped(emu, clock, tmp_path, routing_limit_per_minute=None), clock, per_minute=60, n=300
    )
    unsharded = emu.calls
    emu.reset()
    fan_out(wrapped(emu, clock, tmp_path), clock, per_minute=60, n=300)
    sharded = emu.calls
    # Without sharding a quarter reaches the home machine, the rest lands on cold machines.
    assert {c.prompt_cache_key for c in unsharded} == {unsharded[0].prompt_cache_key}
    assert sum(c.machine == 0 for c in unsharded) == 75
    assert read_share(unsharded) < 0.35
    # With sharding nothing overflows after the first minute's ramp and reads are near the max.
    assert sum(c.machine != 0 for c in sharded) <= 3
    assert read_share(sharded) > 0.85
    best = sum(c.input_tokens for c in sharded[1:]) * 0.94 / sum(c.input_tokens for c in sharded)
    assert read_share(sharded) > 0.97 * best


def test_each_shard_stays_warm_and_below_the_limit(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    fan_out(wrapped(emu, clock, tmp_path), clock, per_minute=60, n=240)
    calls = emu.calls
    base = calls[0].prompt_cache_key
    assert base is not None
    keys = Counter(c.prompt_cache_key for c in calls)
    # 60 a minute at 80% of the limit each: five shards, the key itself being shard 0.
    assert set(keys) == {base, *(f"{base}-s{i}" for i in range(1, 5))}
    by_key: dict[str | None, list[ServedCall]] = defaultdict(list)
    for c in calls:
        by_key[c.prompt_cache_key].append(c)
    for key, served in by_key.items():
        # One cold write per shard, then every call reads: the shard stays warm.
        assert served[0].cache_read_tokens == 0 or key == base
        assert all(c.cache_read_tokens > 0 for c in served[1:]), key
        # Below the limit in every sliding minute of the last three.
        late = [c.started for c in served if c.started >= calls[60].started]
        assert all(sum(1 for t in late if s - 60 < t <= s) <= 15 for s in late), key
    # The shards share the traffic evenly once the rate is known.
    late_keys = Counter(c.prompt_cache_key for c in calls[120:])
    assert max(late_keys.values()) - min(late_keys.values()) <= 1


def test_gpt56_shards_with_breakpoints_and_pays_few_writes(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    fan_out(wrapped(emu, clock, tmp_path), clock, per_minute=60, n=180, model="gpt-5.6-sol")
    sharded = emu.calls
    emu.reset()
    client = wrapped(emu, clock, tmp_path, routing_limit_per_minute=None)
    fan_out(client, clock, per_minute=60, n=180, model="gpt-5.6-sol")
    unsharded = emu.calls
    # Every overflow lands cold and writes the document again at 1.25x.
    assert sum(c.cache_write_tokens > 0 for c in unsharded) > 100
    assert sum(c.cache_write_tokens > 0 for c in sharded) <= 8
    assert read_share(sharded) > 2.5 * read_share(unsharded)


def test_responses_api_is_sharded_too(emu: Emulator, clock: FakeClock, tmp_path: Path) -> None:
    client = wrapped(emu, clock, tmp_path)
    for i in range(120):
        client.responses.create(
            model="gpt-6.1-sol",
            input=[
                {"role": "developer", "content": DOC},
                {"role": "user", "content": f"Question {i}: what does clause {i} say?"},
            ],
        )
        clock.advance(1.0)
    calls = emu.calls
    assert len({c.prompt_cache_key for c in calls}) == 5
    assert sum(c.machine != 0 for c in calls) <= 3
    assert read_share(calls[60:]) > 0.9


def test_at_low_rates_nothing_is_sharded(emu: Emulator, clock: FakeClock, tmp_path: Path) -> None:
    client = wrapped(emu, clock, tmp_path)
    fan_out(client, clock, per_minute=10, n=40)
    fan_out(client, clock, per_minute=15, n=45)  # exactly at the limit
    calls = emu.calls
    assert len({c.prompt_cache_key for c in calls}) == 1
    assert all(c.machine == 0 for c in calls)
    assert all(c.cache_read_tokens > 0 for c in calls[1:])


def test_sharding_ends_when_the_rate_falls(emu: Emulator, clock: FakeClock, tmp_path: Path) -> None:
    client = wrapped(emu, clock, tmp_path)
    fan_out(client, clock, per_minute=60, n=120)
    emu.clear_calls()
    clock.advance(120)
    fan_out(client, clock, per_minute=6, n=12)
    assert len({c.prompt_cache_key for c in emu.calls}) == 1
    assert all(c.cache_read_tokens > 0 for c in emu.calls)  # shard 0 is the key: still warm


def test_two_users_keys_never_merge(emu: Emulator, clock: FakeClock, tmp_path: Path) -> None:
    client = wrapped(emu, clock, tmp_path)
    for i in range(240):  # two tenants, 60 a minute each, interleaved
        for user in ("tenant-a", "tenant-b"):
            client.chat.completions.create(
                model="gpt-4.1",
                messages=[
                    {"role": "system", "content": DOC},
                    {"role": "user", "content": f"{user} question {i}"},
                ],
                prompt_cache_key=user,
            )
        clock.advance(1.0)
    keys: dict[str, set[str]] = defaultdict(set)
    for c in emu.calls:
        assert c.request_body is not None and c.prompt_cache_key is not None
        user = c.request_body["messages"][1]["content"].split()[0]
        keys[user].add(c.prompt_cache_key)
    assert keys["tenant-a"] == {"tenant-a", *(f"tenant-a-s{i}" for i in range(1, 5))}
    assert keys["tenant-b"] == {"tenant-b", *(f"tenant-b-s{i}" for i in range(1, 5))}
    assert not keys["tenant-a"] & keys["tenant-b"]
    assert read_share(emu.calls[240:]) > 0.9


def test_user_keys_left_alone_when_asked(emu: Emulator, clock: FakeClock, tmp_path: Path) -> None:
    client = wrapped(emu, clock, tmp_path, shard_user_keys=False)
    fan_out(client, clock, per_minute=60, n=60, prompt_cache_key="exact-key")
    assert {c.prompt_cache_key for c in emu.calls} == {"exact-key"}
    # Keys promptcache derives itself are still sharded under the same options.
    emu.reset()
    fan_out(client, clock, per_minute=60, n=60)
    assert len({c.prompt_cache_key for c in emu.calls}) > 1


def _conversations(client: openai.OpenAI, clock: FakeClock, n: int = 20) -> None:
    """``n`` conversations of 10 turns, interleaved, one request a second (60 a minute)."""
    history: dict[int, list[Any]] = {c: [] for c in range(n)}
    for turn in range(10):
        for conv in range(n):
            msgs = history[conv]
            msgs.append(
                {"role": "user", "content": f"Conversation {conv}, turn {turn}: " + "x" * 800}
            )
            resp = client.chat.completions.create(
                model="gpt-4.1", messages=[{"role": "system", "content": DOC}, *msgs]
            )
            msgs.append({"role": "assistant", "content": resp.choices[0].message.content or ""})
            clock.advance(1.0)


def test_a_conversation_keeps_its_shard(clock: FakeClock, tmp_path: Path) -> None:
    shares = {}
    for name, routing, shard in (("ideal", None, None), ("none", 15, None), ("sharded", 15, 15)):
        with Emulator(clock=clock, openai=OpenAISettings(routing_limit_per_minute=routing)) as emu:
            _conversations(wrapped(emu, clock, tmp_path, routing_limit_per_minute=shard), clock)
            calls = emu.calls
        shares[name] = read_share(calls)
    by_conv: dict[str, list[ServedCall]] = defaultdict(list)
    for c in calls:
        assert c.request_body is not None
        by_conv[c.request_body["messages"][1]["content"].split(",")[0]].append(c)
    for served in by_conv.values():
        # From the second minute on (turn 3) the shard count is settled: a conversation stays
        # on its shard (one turn may be sent elsewhere when its shard is full that minute).
        later = Counter(c.prompt_cache_key for c in served[3:])
        assert later.most_common(1)[0][1] >= len(served[3:]) - 1, later
    # Measured: ideal (no overflow routing) 0.884, without sharding 0.248, sharded 0.838.
    assert shares["none"] < 0.35 * shares["ideal"]
    assert shares["sharded"] > 0.93 * shares["ideal"], shares


def test_routing_limit_is_validated() -> None:
    for bad in (0, -1, float("nan"), "15", True):
        with pytest.raises(promptcache.ConfigError, match="routing_limit_per_minute"):
            promptcache.OpenAIOptions(routing_limit_per_minute=bad)  # type: ignore[arg-type]
    assert promptcache.OpenAIOptions(routing_limit_per_minute=None).routing_limit_per_minute is None


def test_a_refused_derived_user_key_falls_back_to_the_users_key(
    clock: FakeClock, tmp_path: Path
) -> None:
    # A server that refuses keys longer than the app's own: the derived shard key gets a 400,
    # the call is retried with the app's key as written, and user keys are not sharded again.
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        import json

        body = json.loads(request.content)
        key = body.get("prompt_cache_key", "")
        seen.append(key)
        if key.endswith(("-s1", "-s2", "-s3", "-s4")):
            error = {
                "message": "Invalid 'prompt_cache_key': string too long.",
                "type": "invalid_request_error",
                "param": "prompt_cache_key",
                "code": "string_above_max_length",
            }
            return httpx2.Response(400, json={"error": error})
        return httpx2.Response(
            200,
            json={
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": "gpt-4.1",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
            },
        )

    pc = promptcache.PromptCache(
        directory=tmp_path / "pc",
        response_cache=False,
        clock=clock.now,
        openai=promptcache.OpenAIOptions(endpoint="openai"),
    )
    raw = openai.OpenAI(
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    _OPEN.extend([raw, pc])
    client = pc.wrap(raw)
    fan_out(client, clock, per_minute=60, n=40, prompt_cache_key="k")
    assert seen.count("k") == 40  # every call succeeded with the app's key
    assert sum(1 for k in seen if k != "k") == 1  # one refusal, never tried again
