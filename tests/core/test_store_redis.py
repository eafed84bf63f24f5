"""RedisStore against a real redis-server on loopback, started (and stopped) by the fixture."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from promptcache._errors import StoreError, StoreWarning
from promptcache._keys import CacheKey
from promptcache._store import Entry, SafeStore, open_store
from promptcache._store._redis import KEY_PREFIX, RedisStore

REDIS = shutil.which("redis-server")
# In CI (.ci/run installs redis-server) a missing binary is a failure, not a silent skip.
if REDIS is None and os.environ.get("CI"):
    raise RuntimeError("CI must provide redis-server for the Redis backend tests")
pytestmark = pytest.mark.skipif(
    REDIS is None, reason="redis-server is not installed (apt-get install redis-server)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert REDIS is not None
    port = _free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


@pytest.fixture()
def store(redis_url: str) -> Iterator[RedisStore]:
    s = RedisStore.from_url(redis_url)
    s.clear()
    yield s
    s.clear()
    s.close()


def test_round_trip(store: RedisStore) -> None:
    big = bytes(range(256)) * 4000
    store.set("v1|openai|x:1", big, ttl=None)
    assert store.get("v1|openai|x:1") == big
    assert store.get("v1|openai|x:2") is None
    st = store.stats()
    assert (st.entries, st.size_bytes, st.hits, st.misses, st.backend) == (
        1,
        len(big),
        1,
        1,
        "redis",
    )
    store.delete("v1|openai|x:1")
    assert store.get("v1|openai|x:1") is None
    with pytest.raises(TypeError):
        store.set("k", "text", ttl=None)  # type: ignore[arg-type]


def test_native_ttl(store: RedisStore) -> None:
    store.set("short", b"v", ttl=0.05)
    store.set("long", b"v", ttl=60)
    assert store.get("short") == b"v"
    time.sleep(0.12)
    assert store.get("short") is None
    assert store.get("long") == b"v"
    store.set("gone", b"v", ttl=0)
    assert store.get("gone") is None


def test_clear_and_prefix_leave_other_data_alone(store: RedisStore, redis_url: str) -> None:
    other = redis.Redis.from_url(redis_url)
    other.set("someone-elses-key", b"keep me")
    for k in ("v1|a|[x]*:1", "v1|a|[x]*:2", "v1|a|y:1", "v1|b:1"):
        store.set(k, b"v", ttl=None)
    # Glob characters in the prefix are literal, not patterns.
    assert store.delete_prefix("v1|a|[x]*:") == 2
    assert store.get("v1|a|y:1") == b"v"
    assert store.clear() == 2
    assert other.get("someone-elses-key") == b"keep me"
    assert [k for k in other.scan_iter() if k.startswith(KEY_PREFIX.encode())] == []
    other.delete("someone-elses-key")
    other.close()


def test_two_clients_share_entries(store: RedisStore, redis_url: str) -> None:
    a = SafeStore(RedisStore.from_url(redis_url))
    b = SafeStore(open_store(redis_url, Path("/nonexistent")))
    key = CacheKey("v1|openai|u|t=a|ns=default:abc", "v" * 32)
    entry = Entry("v" * 32, 200, (("content-type", "application/json"),), b"{}", False, None, 1.0)
    a.put_entry(key, entry, ttl=60)
    a.flush()  # written behind: another client sees it once the writer got to it
    assert b.get_entry(key) == entry
    a.close()
    b.close()


def test_location_hides_the_password() -> None:
    s = RedisStore.from_url("redis://user:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in s.location and "127.0.0.1:1" in s.location
    s.close()


def test_redis_down_is_a_warned_miss() -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    safe = SafeStore(RedisStore.from_url(url))
    with pytest.warns(StoreWarning, match="ConnectionError"):
        assert safe.get("k") is None
    # One warning per outage (issue 12): the next failures are quiet misses.
    safe.set("k", b"v", ttl=None)
    strict = SafeStore(RedisStore.from_url(url), strict=True)
    with pytest.raises(StoreError):
        strict.get("k")
    safe.close()
    strict.close()
