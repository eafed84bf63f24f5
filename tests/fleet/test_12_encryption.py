"""Issue 12 item 5: values encrypted with AES-GCM, bound to their key; a wrong key is a miss."""

from __future__ import annotations

import warnings
from pathlib import Path

import openai
import pytest
import redis

import promptcache
from promptcache import ConfigError, StoreWarning
from promptcache._store import MemoryStore, SafeStore
from promptcache._store._crypto import MAGIC, EncryptedStore, configured_encryption_key
from promptcache._store._redis import KEY_PREFIX
from promptcache.testing import Emulator
from tests.fleet.conftest import needs_redis

pytestmark = needs_redis

KEY_A = "encryption-key-for-fleet-a"
KEY_B = "encryption-key-for-fleet-b"


def _ask(emu: Emulator, directory: Path, url: str, text: str, key: str | None, **kw: str) -> str:
    with promptcache.PromptCache(directory, store=url, encryption_key=key, **kw) as pc:  # type: ignore[arg-type]
        bare = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-1", max_retries=0)
        reply = pc.wrap(bare).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": text}]
        )
        bare.close()
    return reply.id


def _values(url: str) -> dict[bytes, bytes]:
    server = redis.Redis.from_url(url)
    try:
        out = {}
        for k in server.scan_iter(match=f"{KEY_PREFIX}*"):
            value = server.get(k)
            assert value is not None
            out[k] = value
        return out
    finally:
        server.close()


def _flush(url: str) -> None:
    server = redis.Redis.from_url(url)
    server.flushdb()
    server.close()


def test_machines_with_the_key_share_entries_nobody_else_reads_them(
    redis_url: str, emulator: Emulator, tmp_path: Path
) -> None:
    _flush(redis_url)
    first = _ask(emulator, tmp_path / "a", redis_url, "the secret plans", KEY_A)
    assert _ask(emulator, tmp_path / "b", redis_url, "the secret plans", KEY_A) == first
    assert len(emulator.calls) == 1
    (stored,) = _values(redis_url).values()
    assert stored.startswith(MAGIC)
    assert b"secret plans" not in stored and first.encode() not in stored
    # Another key: a miss and one warning, never an exception; the entry is left alone.
    with pytest.warns(StoreWarning, match="encrypted with another key") as record:
        _ask(emulator, tmp_path / "c", redis_url, "the secret plans", KEY_B)
    assert len(record) == 1 and len(emulator.calls) == 2
    # No key at all: a miss and one warning (then it stores its own answer, in clear).
    with pytest.warns(StoreWarning, match="no PROMPTCACHE_ENCRYPTION_KEY") as record:
        _ask(emulator, tmp_path / "d", redis_url, "the secret plans", None)
    assert len(record) == 1 and len(emulator.calls) == 3


def test_a_process_without_the_key_leaves_encrypted_entries_alone() -> None:
    key = configured_encryption_key(KEY_A)
    assert key is not None
    shared = MemoryStore()
    SafeStore(EncryptedStore(shared, key)).set("k", b"value", ttl=None)
    sealed = shared.get("k")
    assert sealed is not None and sealed.startswith(MAGIC)
    plain = SafeStore(shared)
    with pytest.warns(StoreWarning, match="no PROMPTCACHE_ENCRYPTION_KEY"):
        assert plain.get("k") is None
    assert plain.get("k") is None  # once
    assert shared.get("k") == sealed  # not deleted as corrupt


def test_an_entry_moved_under_another_key_does_not_decrypt(redis_url: str) -> None:
    _flush(redis_url)
    key = configured_encryption_key(KEY_A)
    assert key is not None
    from promptcache._store._redis import RedisStore

    store = SafeStore(EncryptedStore(RedisStore.from_url(redis_url), key), write_behind=False)
    store.set("answer-for-alice", b"alice's answer", ttl=None)
    store.set("answer-for-bob", b"bob's answer", ttl=None)
    assert store.get("answer-for-bob") == b"bob's answer"
    server = redis.Redis.from_url(redis_url)
    alice, bob = sorted(_values(redis_url))
    server.set(bob, server.get(alice) or b"")  # someone with write access swaps entries
    server.close()
    with pytest.warns(StoreWarning, match="another key, or altered"):
        assert store.get("answer-for-bob") is None
    assert store.get("answer-for-alice") == b"alice's answer"
    store.close()


def test_once_per_store_not_once_per_entry() -> None:
    plain = MemoryStore()
    for i in range(5):
        plain.set(f"k{i}", b"plain text written before encryption was on", ttl=None)
    key = configured_encryption_key(KEY_A)
    assert key is not None
    store = SafeStore(EncryptedStore(plain, key))
    with pytest.warns(StoreWarning, match="is not encrypted") as record:
        assert [store.get(f"k{i}") for i in range(5)] == [None] * 5
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.set("k0", b"now encrypted", ttl=None)
        assert store.get("k0") == b"now encrypted"
    store.close()


def test_the_key_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, emulator: Emulator
) -> None:
    monkeypatch.setenv("PROMPTCACHE_ENCRYPTION_KEY", KEY_A)
    url = "memory://"
    with promptcache.PromptCache(tmp_path, store=url) as pc:
        assert isinstance(pc.store.inner, EncryptedStore)
        bare = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk", max_retries=0)
        client = pc.wrap(bare)
        for _ in range(2):
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
        bare.close()
        assert len(emulator.calls) == 1


@pytest.mark.parametrize("key", ["", "short", 42])
def test_a_weak_key_is_a_config_error(key: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        promptcache.PromptCache(tmp_path, encryption_key=key)  # type: ignore[arg-type]
