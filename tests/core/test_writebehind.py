"""Write-behind: queued entries are served in-process, written by a thread, flushed on close."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from promptcache._errors import StoreError, StoreWarning
from promptcache._keys import CacheKey
from promptcache._store import DiskStore, Entry, MemoryStore, SafeStore
from promptcache._wrap import PromptCache
from tests.core.test_transport import KWARGS, Upstream
from tests.core.test_wrap_kit import RecordingAccountant, RecordingPlanner


def _key(n: int = 0) -> CacheKey:
    return CacheKey(f"v1|openai|u|t=a|ns=default:{n:032x}", f"{n:032x}")


def _entry(key: CacheKey, body: bytes = b'{"ok":true}') -> Entry:
    return Entry(key.verify, 200, (("content-type", "application/json"),), body, False, None, 1.0)


class GatedStore(MemoryStore):
    """A thread-safe store whose writes wait until the test opens the gate."""

    write_behind = True

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.writers: list[str] = []

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        self.writers.append(threading.current_thread().name)
        self.gate.wait(10)
        super().set(key, value, ttl=ttl)


class FailingStore(MemoryStore):
    """A store whose writes fail like a full disk (reads work)."""

    write_behind = True

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        raise OSError(28, "No space left on device")


def test_pending_entry_is_served_in_process_before_it_is_written() -> None:
    inner = GatedStore()
    safe = SafeStore(inner)
    assert safe.writes_behind
    key = _key()
    entry = _entry(key)
    safe.put_entry(key, entry, ttl=None)  # returns although the write is held at the gate
    assert inner.get(key.key) is None
    assert safe.get_entry(key) == entry
    # A pending entry is verified like a stored one: another request's digest misses.
    assert safe.get_entry(CacheKey(key.key, "f" * 32)) is None
    inner.gate.set()
    safe.flush()
    assert inner.get(key.key) is not None
    assert inner.writers == ["promptcache-writer"]
    assert safe.get_entry(key) == entry  # now from the store itself
    safe.close()


def test_close_flushes_to_disk_for_the_next_opener(tmp_path: Path) -> None:
    safe = SafeStore(DiskStore(tmp_path / "d"), write_behind=True)
    keys = [_key(i) for i in range(20)]
    for key in keys:
        safe.put_entry(key, _entry(key), ttl=None)
    safe.close()
    again = SafeStore(DiskStore(tmp_path / "d"))
    assert again.writes_behind  # the default for the disk store
    assert all(again.get_entry(key) == _entry(key) for key in keys)
    again.close()


def test_strict_writes_synchronously_and_raises() -> None:
    safe = SafeStore(FailingStore(), strict=True)
    assert not safe.writes_behind
    key = _key()
    with pytest.raises(StoreError, match="No space left"):
        safe.put_entry(key, _entry(key), ttl=None)
    assert SafeStore(FailingStore(), strict=True, write_behind=True).writer is None


def test_writer_failure_is_a_warning_on_the_callers_thread() -> None:
    safe = SafeStore(FailingStore())
    key = _key()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        safe.put_entry(key, _entry(key), ttl=None)  # nothing raised or warned here
    with pytest.warns(StoreWarning, match="No space left"):
        safe.flush()
    assert safe.get_entry(key) is None  # the write failed: a miss, not an error
    safe.put_entry(key, _entry(key), ttl=None)
    assert safe.writer is not None
    safe.writer.flush()
    with pytest.warns(StoreWarning, match="No space left"):
        safe.get_entry(key)  # reported by the next call
    safe.close()


def test_full_queue_falls_back_to_a_synchronous_write() -> None:
    inner = GatedStore()
    safe = SafeStore(inner)
    assert safe.writer is not None
    safe.writer.max_pending = 1
    first, second = _key(1), _key(2)
    safe.put_entry(first, _entry(first), ttl=None)  # queued, held at the gate
    done = threading.Event()

    def put_second() -> None:
        safe.put_entry(second, _entry(second), ttl=None)
        done.set()

    thread = threading.Thread(target=put_second, name="caller")
    thread.start()
    assert not done.wait(0.2)  # the queue is full: this caller writes (and waits) itself
    inner.gate.set()
    thread.join(5)
    assert done.is_set()
    safe.flush()
    assert sorted(inner.writers) == ["caller", "promptcache-writer"]
    assert inner.get(first.key) is not None and inner.get(second.key) is not None
    safe.close()


def test_delete_and_clear_do_not_let_a_queued_write_resurrect_an_entry() -> None:
    inner = GatedStore()
    inner.gate.set()
    safe = SafeStore(inner)
    key = _key()
    safe.put_entry(key, _entry(key), ttl=None)
    safe.delete(key.key)
    safe.flush()
    assert safe.get_entry(key) is None
    safe.put_entry(key, _entry(key), ttl=None)
    assert safe.clear() == 1
    assert safe.get_entry(key) is None and safe.stats().entries == 0
    safe.close()


def test_last_write_wins_for_one_key() -> None:
    inner = GatedStore()
    safe = SafeStore(inner)
    key = _key()
    safe.put_entry(key, _entry(key, b'{"n":1}'), ttl=None)
    safe.put_entry(key, _entry(key, b'{"n":2}'), ttl=None)
    found = safe.get_entry(key)
    assert found is not None and found.body == b'{"n":2}'
    inner.gate.set()
    safe.flush()
    found = safe.get_entry(key)
    assert found is not None and found.body == b'{"n":2}'
    safe.close()


def test_wrapped_client_writes_behind(pc_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTCACHE_WRITE_BEHIND", raising=False)
    upstream = Upstream()

    def make() -> PromptCache:
        return PromptCache(pc_dir, planner=RecordingPlanner(), accountant=RecordingAccountant())

    pc = make()
    assert pc.store.writes_behind
    client = pc.wrap(upstream.client())
    first = client.chat.completions.create(**KWARGS)
    assert client.chat.completions.create(**KWARGS) == first  # in-process, at once
    assert len(upstream.requests) == 1
    pc.close()
    monkeypatch.setenv("PROMPTCACHE_WRITE_BEHIND", "0")
    other = make()  # another opener of the directory sees what the first one stored
    assert not other.store.writes_behind
    assert other.wrap(upstream.client()).chat.completions.create(**KWARGS) == first
    assert len(upstream.requests) == 1
    other.close()


def test_disk_fast_insert_keeps_the_size_limit(tmp_path: Path) -> None:
    store = DiskStore(tmp_path / "small", size_limit=200_000)
    try:
        for i in range(300):  # 3 MB of small values (kept in SQLite rows)
            store.set(f"ns:{i}", bytes([i % 256]) * 10_000, ttl=None)
        stats = store.stats()
        assert stats.entries < 300
        assert stats.size_bytes <= 400_000
        assert store.get("ns:299") == bytes([299 % 256]) * 10_000  # the newest survives
        assert store.get("ns:0") is None  # the oldest went first
        store.set("ns:299", b"replaced", ttl=None)  # an existing key is overwritten
        assert store.get("ns:299") == b"replaced"
    finally:
        store.close()


def test_the_writer_drains_without_being_asked() -> None:
    inner = MemoryStore()
    safe = SafeStore(inner, write_behind=True)
    key = _key()
    safe.put_entry(key, _entry(key), ttl=None)
    deadline = time.monotonic() + 5
    while inner.get(key.key) is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert inner.get(key.key) is not None  # other processes see it without a flush or close
    safe.close()


CHILD = """
import sys
from pathlib import Path
from promptcache._keys import CacheKey
from promptcache._store import DiskStore, Entry, SafeStore

safe = SafeStore(DiskStore(Path(sys.argv[1])))
key = CacheKey("v1|openai|u|t=a|ns=default:" + "0" * 32, "0" * 32)
safe.put_entry(key, Entry(key.verify, 200, (), b"{}", False, None, 1.0), ttl=None)
# no close(): the interpreter's exit must still write the queued entry
"""


def test_exit_without_close_still_writes_the_queue(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "d")],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    safe = SafeStore(DiskStore(tmp_path / "d"))
    assert safe.get_entry(_key()) is not None
    safe.close()
