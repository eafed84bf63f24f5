"""Issue 12 item 3: the fleet ledger, per-minute aggregates in Redis beside each local ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import openai
import pytest
import redis

import promptcache
from promptcache import ConfigError, PromptCache, StoreWarning
from promptcache._accounting._fleet import INDEX_KEY, FleetLedger, _Batch, open_fleet
from promptcache._accounting._ledger import Record
from promptcache._store._redis import RedisStore
from promptcache.testing import Emulator
from tests.fleet.conftest import RedisServer, needs_redis

pytestmark = needs_redis

ROOT = Path(__file__).resolve().parents[2]


def _flush(url: str) -> None:
    server = redis.Redis.from_url(url)
    server.flushdb()
    server.close()


def _ask(pc: PromptCache, emu: Emulator, text: str) -> None:
    client = pc.wrap(openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-1", max_retries=0))
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}])


def test_the_fleet_ledger_sums_every_machine_and_the_report_shows_it(
    redis_url: str, emulator: Emulator, tmp_path: Path
) -> None:
    _flush(redis_url)
    with PromptCache(tmp_path / "a", store=redis_url) as a, promptcache.tag("team-a"):
        _ask(a, emulator, "one")
        _ask(a, emulator, "two")
    with PromptCache(tmp_path / "b", store=redis_url) as b:
        with promptcache.tag("team-b"):
            _ask(b, emulator, "one")  # a hit on a's entry
            _ask(b, emulator, "three")
        fleet = b.fleet_ledger.summary()
        by_tag = b.fleet_ledger.group_by("tag")
        local = b.ledger.summary()
    assert len(emulator.calls) == 3
    assert (fleet.requests, fleet.local_hits) == (4, 1)
    assert local.requests == 2  # the local ledger: this machine only
    assert {k: v.requests for k, v in by_tag.items()} == {"team-a": 2, "team-b": 2}
    assert fleet.cost is not None and fleet.cost > 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCACHE_")}
    env["PYTHONPATH"] = str(ROOT)
    args = ["report", "--store", redis_url, "--dir", str(tmp_path / "c")]
    done = subprocess.run(
        [sys.executable, "-m", "promptcache", *args, "--json", "--by", "tag"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["requests"] == 4 and report["local_hits"] == 1
    assert report["cost"] == str(fleet.cost)
    assert set(report["groups"]) == {"team-a", "team-b"}
    table = subprocess.run(
        [sys.executable, "-m", "promptcache", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "fleet ledger in redis://" in table.stdout and "gpt-4o" in table.stdout


def _record(ts: float, cost: int) -> Record:
    return Record(ts, "openai.chat", "openai", "gpt-4o", None, ("t",), "tenant",
                  0, 0, 1, 100, 40, 0, 0, 0, 0, 10, 0, cost, cost + 5, None, None)  # fmt: skip


def test_a_batch_sent_twice_counts_once(redis_url: str, tmp_path: Path) -> None:
    _flush(redis_url)
    store = RedisStore.from_url(redis_url)
    try:
        fleet = FleetLedger(store)
        batch = _Batch({})
        fleet.add(_record(1_800_000_000.0, 1000))
        fleet.add(_record(1_800_000_030.0, 2000))  # the same minute: summed in memory
        fleet.add(_record(1_800_000_090.0, 4000))  # the next minute
        batch.sums, fleet._sums = fleet._sums, {}
        fleet._apply(batch)
        fleet._apply(batch)  # a retry after a lost reply: the marker stops it
        view = fleet.view()
        total = view.summary()
        assert total.requests == 3 and total.input_tokens == 300
        assert total.cost_known * 10**12 == 7000
        # Times to the minute: the first minute alone.
        assert view.summary(until=1_800_000_060.0).requests == 2
        assert store.client.zcard(INDEX_KEY) == 2
        fleet.close()
    finally:
        store.close()


def test_a_dead_redis_never_slows_a_call_and_the_records_arrive_later(
    redis_server: RedisServer, emulator: Emulator, tmp_path: Path
) -> None:
    url = redis_server.url + "?cooldown=0.2"
    with PromptCache(tmp_path / "a", store=url) as pc:
        _ask(pc, emulator, "before")
        redis_server.kill()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StoreWarning)  # the store's one outage warning
            _ask(pc, emulator, "during")
            fleet = pc.accountant.fleet  # type: ignore[attr-defined]
            assert fleet is not None
            assert not fleet.send()  # kept in memory, not lost
        redis_server.start()
        assert fleet.flush(5.0)
        total = pc.fleet_ledger.summary()
    assert total.requests == 2 and fleet.dropped == 0


def test_the_fleet_ledger_needs_a_redis_store(tmp_path: Path) -> None:
    with PromptCache(tmp_path, store="memory://") as pc, pytest.raises(ConfigError):
        pc.fleet_ledger.summary()
    with pytest.raises(ConfigError):
        open_fleet(tmp_path, "memory://")
