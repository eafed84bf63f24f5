"""Issue 13: the disk store's single-flight locks are byte ranges of one file, one syscall each.

Within a process, keys that share a bucket share its range (only the same key twice is held);
across processes the range excludes; a release writes the slot's state; closing the last user
closes the descriptor.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from promptcache._store._flight import FileLocks, Lease, LockOptions

ROOT = Path(__file__).resolve().parents[2]


def _same_bucket_keys(n: int) -> list[str]:
    by_bucket: dict[int, list[str]] = {}
    i = 0
    while True:
        key = f"k{i}"
        keys = by_bucket.setdefault(FileLocks._bucket(key), [])
        keys.append(key)
        if len(keys) == n:
            return keys
        i += 1


def _other_process_try(directory: Path, key: str) -> str:
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from promptcache._store._flight import FileLocks, Lease, LockOptions
        locks = FileLocks(Path(sys.argv[1]), LockOptions())
        got = locks._try(sys.argv[2], False)
        print("lease" if isinstance(got, Lease) else got)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(directory), key],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return out.stdout.strip()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_keys_sharing_a_bucket_lead_together_in_one_process(tmp_path: Path) -> None:
    a, b = _same_bucket_keys(2)
    locks = FileLocks(tmp_path, LockOptions())
    first, second = locks._try(a, False), locks._try(b, False)
    assert isinstance(first, Lease) and isinstance(second, Lease)
    assert locks._try(a, False) == "held"  # the same key twice is held
    # A second cache on the same directory in this process: its own key is held too.
    other = FileLocks(tmp_path, LockOptions())
    assert other._try(a, False) == "held"
    first.release(True)
    second.release(True)
    other.close()
    locks.close()


def test_a_bucket_excludes_other_processes_until_its_last_key_is_released(
    tmp_path: Path,
) -> None:
    a, b, c = _same_bucket_keys(3)
    locks = FileLocks(tmp_path, LockOptions())
    first, second = locks._try(a, False), locks._try(b, False)
    assert isinstance(first, Lease) and isinstance(second, Lease)
    assert _other_process_try(tmp_path, c) == "held"
    first.release(True)
    assert _other_process_try(tmp_path, c) == "held"  # b still holds the range
    second.release(False)
    assert _other_process_try(tmp_path, c) == "lease"
    locks.close()


def test_a_released_success_reads_done_for_that_key_only(tmp_path: Path) -> None:
    a, b = _same_bucket_keys(2)
    locks = FileLocks(tmp_path, LockOptions())
    lease = locks._try(a, False)
    assert isinstance(lease, Lease)
    lease.release(True)
    # A follower that waited sees the leader's success for its own key, not another's.
    assert locks._try(a, True) == "done"
    again = locks._try(b, True)
    assert isinstance(again, Lease)
    again.release(False)
    locks.close()


def test_closing_the_last_user_closes_the_descriptor(tmp_path: Path) -> None:
    before = _open_fds()
    locks = [FileLocks(tmp_path, LockOptions()) for _ in range(3)]
    leases = [lk._try(f"key{i}", False) for i, lk in enumerate(locks)]
    assert _open_fds() == before + 1  # one descriptor for the directory, however many caches
    for lease in leases:
        assert isinstance(lease, Lease)
        lease.release(True)
    for lk in locks:
        lk.close()
    assert _open_fds() == before
