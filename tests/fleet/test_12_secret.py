"""Issue 12 item 1: one key secret for a fleet, so machines sharing a Redis share entries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import redis

import promptcache
from promptcache import ConfigError, StoreWarning
from promptcache._store import load_salt
from promptcache._store._redis import KEY_PREFIX, RedisStore
from promptcache._store._secret import SECRET_KEY, keyspace_id, stretch
from promptcache.testing import Emulator
from tests.fleet.conftest import free_port, needs_redis

pytestmark = needs_redis

ROOT = Path(__file__).resolve().parents[2]

# One "machine": its own directory (so its own salt file), the shared Redis, the real SDK.
MACHINE = """
import json, sys
import openai
from promptcache import PromptCache

base_url, directory, store, api_key, text = sys.argv[1:6]
with PromptCache(directory, store=store) as pc:
    client = pc.wrap(openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0))
    reply = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}]
    )
print(json.dumps({"id": reply.id, "content": reply.choices[0].message.content}))
"""


def _machine(
    emu: Emulator, directory: Path, store: str, api_key: str, text: str, secret: str | None = None
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCACHE_")}
    env["PYTHONPATH"] = str(ROOT)
    if secret is not None:
        env["PROMPTCACHE_SECRET"] = secret
    done = subprocess.run(
        [sys.executable, "-c", MACHINE, emu.openai_base_url, str(directory), store, api_key, text],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    reply: dict[str, Any] = json.loads(done.stdout)
    return reply


def _flush(url: str) -> None:
    server = redis.Redis.from_url(url)
    server.flushdb()
    server.close()


@pytest.mark.process
def test_two_machines_share_hits_and_tenants_never_do(
    redis_url: str, emulator: Emulator, tmp_path: Path
) -> None:
    _flush(redis_url)
    first = _machine(emulator, tmp_path / "a", redis_url, "sk-tenant-1", "shared question")
    assert len(emulator.calls) == 1
    # Another directory = another machine: its local salt differs, the store's secret does not.
    second = _machine(emulator, tmp_path / "b", redis_url, "sk-tenant-1", "shared question")
    assert len(emulator.calls) == 1
    assert second == first
    assert load_salt(tmp_path / "a") != load_salt(tmp_path / "b")
    # Same request, another API key: never served from the first tenant's entry.
    third = _machine(emulator, tmp_path / "c", redis_url, "sk-tenant-2", "shared question")
    assert len(emulator.calls) == 2
    assert third["id"] != first["id"]
    server = redis.Redis.from_url(redis_url)
    try:
        secret = server.get(SECRET_KEY)
        assert secret is not None and len(secret) == 32
        kid = keyspace_id(secret)
        keys = [k.decode() for k in server.scan_iter(match=f"{KEY_PREFIX}*")]
        assert len(keys) == 2 and all(k.startswith(f"{KEY_PREFIX}{kid}:v1|openai|") for k in keys)
    finally:
        server.close()


@pytest.mark.process
def test_a_configured_secret_is_shared_and_a_new_one_starts_afresh(
    redis_url: str, emulator: Emulator, tmp_path: Path
) -> None:
    _flush(redis_url)
    s1, s2 = "fleet-secret-one-0123456789", "fleet-secret-two-0123456789"
    first = _machine(emulator, tmp_path / "a", redis_url, "sk-1", "q", secret=s1)
    assert _machine(emulator, tmp_path / "b", redis_url, "sk-1", "q", secret=s1) == first
    assert len(emulator.calls) == 1
    _machine(emulator, tmp_path / "c", redis_url, "sk-1", "q", secret=s2)
    assert len(emulator.calls) == 2  # a new secret: a fresh keyspace
    # A machine without the configured secret keys with the store's own: no sharing either.
    _machine(emulator, tmp_path / "d", redis_url, "sk-1", "q")
    assert len(emulator.calls) == 3
    server = redis.Redis.from_url(redis_url)
    try:
        kids = {k.decode().split(":")[1] for k in server.scan_iter(match=f"{KEY_PREFIX}*")}
        salt1 = stretch(s1, purpose=b"promptcache-key")
        assert keyspace_id(salt1) in kids and len(kids) == 3
        # The configured secret itself is never written to the store.
        assert server.get(SECRET_KEY) != salt1
    finally:
        server.close()


def test_machines_starting_at_once_agree_on_one_secret(redis_url: str) -> None:
    _flush(redis_url)
    stores = [RedisStore.from_url(redis_url) for _ in range(8)]
    found: list[bytes] = []
    barrier = threading.Barrier(len(stores))

    def start(store: RedisStore) -> None:
        barrier.wait()
        found.append(store.key_secret())

    threads = [threading.Thread(target=start, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 8 and len(set(found)) == 1
    # clear() removes entries in every keyspace, never the secret.
    stores[0].set("k", b"v", ttl=None)
    assert stores[0].clear() == 1
    assert stores[1].key_secret() == found[0]
    server = redis.Redis.from_url(redis_url)
    assert server.get(SECRET_KEY) == found[0]
    server.close()
    for s in stores:
        s.close()


_SQUARED: list[int] = []


def square(x: int) -> int:
    # Module level: a closure's captured values are part of a memoized function's identity.
    _SQUARED.append(x)
    return x * x


def test_memoized_results_are_shared_by_machines_on_one_redis(
    redis_url: str, tmp_path: Path
) -> None:
    _flush(redis_url)
    calls = _SQUARED
    calls.clear()
    for name in ("a", "b"):
        with promptcache.PromptCache(tmp_path / name, store=redis_url) as pc:
            assert pc.cached(namespace="sq")(square)(7) == 49
    assert calls == [7]
    with promptcache.PromptCache(
        tmp_path / "c", store=redis_url, secret="another-fleet-secret-xyz"
    ) as pc:
        assert pc.cached(namespace="sq")(square)(7) == 49
    assert calls == [7, 7]  # another secret, another keyspace, even for @cached


def test_the_disk_store_keeps_its_directory_salt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMPTCACHE_SECRET", raising=False)
    with promptcache.PromptCache(tmp_path / "pc") as pc:
        assert pc.engine.salt == load_salt(tmp_path / "pc")
    with promptcache.PromptCache(tmp_path / "pc", secret="a-configured-secret-123") as pc:
        assert pc.engine.salt == stretch("a-configured-secret-123", purpose=b"promptcache-key")
    monkeypatch.setenv("PROMPTCACHE_SECRET", "from-the-environment-456")
    with promptcache.PromptCache(tmp_path / "pc") as pc:
        assert pc.engine.salt == stretch("from-the-environment-456", purpose=b"promptcache-key")


@pytest.mark.parametrize("secret", ["", "short", 123])
def test_a_weak_secret_is_a_config_error(secret: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 16 characters"):
        promptcache.PromptCache(tmp_path, secret=secret)


def test_no_secret_from_a_dead_store_warns_and_keys_privately(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with promptcache.PromptCache(tmp_path / "pc", store=url) as pc:
        with pytest.warns(StoreWarning, match="shared key secret"):
            salt = pc.engine.salt
        assert salt == load_salt(tmp_path / "pc")


def test_a_damaged_secret_in_the_store_is_reported(redis_url: str, tmp_path: Path) -> None:
    server = redis.Redis.from_url(redis_url)
    server.flushdb()
    server.set(SECRET_KEY, b"too short")
    try:
        with (
            promptcache.PromptCache(tmp_path / "pc", store=redis_url) as pc,
            pytest.warns(StoreWarning, match="delete that key"),
        ):
            assert pc.engine.salt == load_salt(tmp_path / "pc")
    finally:
        server.flushdb()
        server.close()


def test_fingerprints_use_the_fleet_secret_even_without_the_response_cache(
    redis_url: str, tmp_path: Path
) -> None:
    # The ledger records the tenant fingerprint: a fleet must compute it alike everywhere.
    with promptcache.PromptCache(tmp_path / "a", store=redis_url) as a:
        shared = a.engine.salt
    with promptcache.PromptCache(tmp_path / "b", store=redis_url, response_cache=False) as b:
        assert b.engine.salt == shared != load_salt(tmp_path / "b")
    with promptcache.PromptCache(tmp_path / "c", response_cache=False) as c:
        assert c.engine.salt == load_salt(tmp_path / "c")
