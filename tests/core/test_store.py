from __future__ import annotations

import errno
import multiprocessing
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import diskcache
import pytest

from promptcache._errors import ConfigError, StoreError, StoreWarning
from promptcache._keys import CacheKey
from promptcache._store import (
    DiskStore,
    Entry,
    MemoryStore,
    SafeStore,
    Store,
    StoreStats,
    encode_entry,
    load_salt,
    open_store,
    resolve_directory,
)


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[DiskStore]:
    s = DiskStore(tmp_path / "responses")
    yield s
    s.close()


# --- DiskStore ------------------------------------------------------------------------------


def test_disk_round_trip_small_and_large(disk: DiskStore) -> None:
    small, large = b"x" * 2048, os.urandom(800_000)
    disk.set("ns:a", small, ttl=None)
    disk.set("ns:b", large, ttl=None)
    assert disk.get("ns:a") == small
    assert disk.get("ns:b") == large
    assert disk.get("ns:c") is None
    st = disk.stats()
    assert (st.entries, st.hits, st.misses, st.backend) == (2, 2, 1, "disk")
    assert st.size_bytes >= 800_000
    disk.delete("ns:a")
    assert disk.get("ns:a") is None
    assert disk.clear() == 1
    assert disk.stats().entries == 0


def test_disk_is_a_store(disk: DiskStore) -> None:
    assert isinstance(disk, Store)
    assert isinstance(MemoryStore(), Store)


def test_disk_refuses_non_bytes(disk: DiskStore) -> None:
    with pytest.raises(TypeError):
        disk.set("k", "text", ttl=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        disk.set("k", {"a": 1}, ttl=None)  # type: ignore[arg-type]


def test_disk_never_unpickles(disk: DiskStore) -> None:
    # Someone who can write the directory plants a pickled row: reading it must not run it.
    import diskcache

    planted = diskcache.Cache(str(disk.directory))
    planted.set("ns:evil", {"boom": 1})  # stored with MODE_PICKLE by plain diskcache
    planted.close()
    with pytest.raises(StoreError):
        disk.get("ns:evil")
    safe = SafeStore(disk)
    with pytest.warns(StoreWarning):
        assert safe.get("ns:evil") is None


def test_disk_ttl(disk: DiskStore) -> None:
    disk.set("ns:short", b"v", ttl=0.05)
    disk.set("ns:long", b"v", ttl=60)
    assert disk.get("ns:short") == b"v"
    time.sleep(0.1)
    assert disk.get("ns:short") is None
    assert disk.get("ns:long") == b"v"


def test_disk_size_limit_evicts(tmp_path: Path) -> None:
    s = DiskStore(tmp_path / "small", size_limit=200_000)
    try:
        for i in range(20):
            s.set(f"ns:{i}", os.urandom(50_000), ttl=None)
        st = s.stats()
        assert st.size_bytes <= 250_000
        assert st.entries < 20
        assert s.get("ns:19") is not None  # the newest survives
        assert s.get("ns:0") is None  # the oldest went first
    finally:
        s.close()


def test_disk_bad_eviction_policy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        DiskStore(tmp_path / "x", eviction="random")


def test_disk_delete_prefix(disk: DiskStore) -> None:
    for k in ("a|1:x", "a|1:y", "a|2:x"):
        disk.set(k, b"v", ttl=None)
    assert disk.delete_prefix("a|1:") == 2
    assert disk.get("a|2:x") == b"v"


def test_directory_is_private(tmp_path: Path) -> None:
    s = DiskStore(tmp_path / "deep" / "responses")
    s.close()
    assert stat.S_IMODE((tmp_path / "deep" / "responses").stat().st_mode) == 0o700


def _child(directory: str, n: int) -> None:
    s = DiskStore(Path(directory))
    for i in range(n):
        s.set(f"child:{i}", f"value {i}".encode(), ttl=None)
    assert s.get("parent:0") == b"from parent"
    s.close()


def test_two_processes_share_a_directory(tmp_path: Path) -> None:
    d = tmp_path / "shared"
    parent = DiskStore(d)
    parent.set("parent:0", b"from parent", ttl=None)
    ctx = multiprocessing.get_context("spawn")
    p = ctx.Process(target=_child, args=(str(d), 25))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert parent.get("child:24") == b"value 24"
    assert parent.stats().entries == 26
    parent.close()


# --- MemoryStore ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_ttl_with_injected_clock() -> None:
    clock = Clock()
    m = MemoryStore(clock=clock)
    m.set("k", b"v", ttl=10)
    m.set("forever", b"v", ttl=None)
    clock.now += 9.9
    assert m.get("k") == b"v"
    clock.now += 0.2
    assert m.get("k") is None
    assert m.get("forever") == b"v"
    assert m.stats() == StoreStats(1, 1, 2, 1, "memory://", "memory")


def test_memory_size_bound_is_lru() -> None:
    m = MemoryStore(size_limit=30)
    m.set("a", b"x" * 10, ttl=None)
    m.set("b", b"x" * 10, ttl=None)
    m.set("c", b"x" * 10, ttl=None)
    assert m.get("a") is not None  # a becomes most recently used
    m.set("d", b"x" * 10, ttl=None)
    assert m.get("b") is None
    assert {k for k in "acd" if m.get(k)} == set("acd")
    assert m.delete_prefix("a") == 1
    assert m.clear() == 2


# --- SafeStore ------------------------------------------------------------------------------


class Broken:
    """A store whose disk is full."""

    blocking = False

    def _raise(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def get(self, key: str) -> bytes | None:
        self._raise()
        return None

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        self._raise()

    def delete(self, key: str) -> None:
        self._raise()

    def clear(self) -> int:
        self._raise()
        return 0

    def stats(self) -> StoreStats:
        self._raise()
        raise AssertionError

    def close(self) -> None:
        self._raise()


def test_safe_store_degrades_to_miss_with_warning() -> None:
    safe = SafeStore(Broken())
    with pytest.warns(StoreWarning, match="No space left"):
        assert safe.get("k") is None
    with pytest.warns(StoreWarning):
        safe.set("k", b"v", ttl=None)
    with pytest.warns(StoreWarning):
        safe.delete("k")
    with pytest.warns(StoreWarning):
        assert safe.clear() == 0
    with pytest.warns(StoreWarning):
        assert safe.stats().backend == "unavailable"
    with pytest.warns(StoreWarning):
        safe.close()


def test_strict_safe_store_raises_store_error() -> None:
    safe = SafeStore(Broken(), strict=True)
    with pytest.raises(StoreError) as info:
        safe.get("k")
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(StoreError):
        safe.set("k", b"v", ttl=None)


def test_store_path_is_a_file(tmp_path: Path) -> None:
    # Works as root too (chmod would not stop root): a file where the directory should be.
    f = tmp_path / "responses"
    f.write_text("not a directory")
    with pytest.raises(OSError):
        DiskStore(f)


def test_disk_value_file_removed_is_a_plain_miss(tmp_path: Path) -> None:
    d = tmp_path / "gone"
    # Values are kept in SQLite now; an older promptcache kept large ones in files beside it.
    old = diskcache.Cache(str(d))
    old.set("k", os.urandom(100_000))
    old.close()
    s = DiskStore(d)
    assert list(d.rglob("*.val"))
    for p in sorted(d.rglob("*.val")):
        p.unlink()
    assert SafeStore(s).get("k") is None  # diskcache treats the dangling row as a miss
    s.set("big", b"v" * 100_000, ttl=None)
    assert s.get("big") == b"v" * 100_000
    assert not list(d.rglob("*.val"))  # new large values stay in the database
    s.close()


def test_disk_store_whose_database_is_garbage(tmp_path: Path) -> None:
    d = tmp_path / "garbage"
    d.mkdir()
    (d / "cache.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.warns(StoreWarning, match="corrupt"):
        s = DiskStore(d)  # moved aside, rebuilt empty (tests/trust/test_9_corrupt_store.py)
    assert s.stats().entries == 0
    s.close()


KEY = CacheKey("ns:abc", "v" * 32)
ENTRY = Entry("v" * 32, 200, (("content-type", "application/json"),), b"{}", False, None, 1.0)


def test_entries_through_safe_store() -> None:
    safe = SafeStore(MemoryStore())
    assert safe.get_entry(KEY) is None
    safe.put_entry(KEY, ENTRY, ttl=None)
    assert safe.get_entry(KEY) == ENTRY
    # Same store key, different request (a digest collision): never served.
    assert safe.get_entry(CacheKey(KEY.key, "w" * 32)) is None
    with pytest.raises(ValueError):
        safe.put_entry(CacheKey("ns:x", "other"), ENTRY, ttl=None)


def test_corrupt_entry_is_a_warned_miss_and_is_removed() -> None:
    mem = MemoryStore()
    safe = SafeStore(mem)
    mem.set(KEY.key, encode_entry(ENTRY)[:-1], ttl=None)
    with pytest.warns(StoreWarning, match="truncated"):
        assert safe.get_entry(KEY) is None
    assert mem.get(KEY.key) is None
    mem.set(KEY.key, b"garbage", ttl=None)
    with pytest.raises(StoreError):
        SafeStore(mem, strict=True).get_entry(KEY)


def test_safe_store_blocking_flag(tmp_path: Path) -> None:
    assert SafeStore(MemoryStore()).blocking is False
    d = DiskStore(tmp_path / "r")
    assert SafeStore(d).blocking is True
    d.close()


# --- directory, salt, open_store ------------------------------------------------------------


def test_resolve_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTCACHE_DIR", str(tmp_path / "env"))
    assert resolve_directory(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_directory(None) == tmp_path / "env"
    assert stat.S_IMODE((tmp_path / "env").stat().st_mode) == 0o700
    monkeypatch.delenv("PROMPTCACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_directory(None) == tmp_path / "xdg" / "promptcache"


def test_salt_is_private_and_stable(tmp_path: Path) -> None:
    salt = load_salt(tmp_path)
    assert len(salt) == 32
    assert load_salt(tmp_path) == salt
    assert stat.S_IMODE((tmp_path / "salt").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["salt"]  # no temp files left behind
    (tmp_path / "salt").write_bytes(b"short")
    fresh = load_salt(tmp_path)
    assert len(fresh) == 32 and fresh != salt


def _salt_child(directory: str, queue: multiprocessing.Queue[bytes]) -> None:
    queue.put(load_salt(Path(directory)))


def test_salt_shared_by_racing_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[bytes] = ctx.Queue()
    procs = [ctx.Process(target=_salt_child, args=(str(tmp_path), queue)) for _ in range(3)]
    for p in procs:
        p.start()
    salts = {queue.get(timeout=30) for _ in procs}
    for p in procs:
        p.join(30)
    assert salts == {load_salt(tmp_path)}


def test_open_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTCACHE_STORE", raising=False)
    default = open_store(None, tmp_path)
    assert isinstance(default, DiskStore) and default.directory == tmp_path / "responses"
    default.close()
    assert isinstance(open_store("memory://", tmp_path), MemoryStore)
    elsewhere = open_store(f"disk://{tmp_path / 'other'}", tmp_path, size_limit=10_000)
    assert isinstance(elsewhere, DiskStore) and elsewhere.directory == tmp_path / "other"
    elsewhere.close()
    mine = MemoryStore()
    assert open_store(mine, tmp_path) is mine
    monkeypatch.setenv("PROMPTCACHE_STORE", "memory://")
    assert isinstance(open_store(None, tmp_path), MemoryStore)
    for bad in ("ftp://x", "nonsense"):
        with pytest.raises(ConfigError):
            open_store(bad, tmp_path)
    with pytest.raises(ConfigError):
        open_store(42, tmp_path)  # type: ignore[arg-type]


class Minimal:
    """A user's store with only the protocol's methods (no blocking flag, no delete_prefix)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def clear(self) -> int:
        n = len(self.data)
        self.data.clear()
        return n

    def stats(self) -> StoreStats:
        return StoreStats(len(self.data), 0, 0, 0, "minimal", "minimal")

    def close(self) -> None:
        pass


def test_minimal_user_store(tmp_path: Path) -> None:
    mine = Minimal()
    assert open_store(mine, tmp_path) is mine
    safe = SafeStore(mine)
    assert safe.blocking is True  # unknown: assume it does I/O
    safe.set("k", b"v", ttl=None)
    assert safe.get("k") == b"v"
    with pytest.warns(StoreWarning, match="delete_prefix"):
        assert safe.delete_prefix("k") == 0
