"""Issue 9 item 8, the ledger's part: a child forked while the ledger is busy never blocks.

Forked children (gunicorn/uWSGI/Celery prefork workers) inherit a ledger that the parent has
used and may be folding into SQLite at that very moment. Each child must finish promptly, write
its own records (never into its parent's journal), and every record must be counted once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from promptcache import StoreWarning
from promptcache._accounting import _ledger
from promptcache._accounting._ledger import Ledger, Record

pytestmark = pytest.mark.process


def _rec(i: int = 0) -> Record:
    return Record(1.8e9 + i, "openai.chat", "openai", "m", None, (), "t",
                  0, 0, 1, 10, 0, 0, 0, 0, 0, 1, 0, 5, 7, None, None)  # fmt: skip


def _wait(pid: int, timeout: float) -> int | None:
    """Exit status of child ``pid``, or None (after killing it) if it took longer than timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def _child(body: object) -> None:
    """Run ``body()`` in a forked child and leave with its verdict, never through pytest."""
    code = 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = 0 if body() else 2  # type: ignore[operator]
    finally:
        os._exit(code)


def test_children_forked_mid_fold_finish_promptly_with_their_records(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append(_rec())
    ledger.flush()
    stop = threading.Event()
    appended = [1]

    def busy_parent() -> None:
        # Thousands of records per fold: a fold is in progress most of the time.
        i = 0
        while not stop.is_set():
            for _ in range(5000):
                ledger.append(_rec(i))
                i += 1
            appended[0] += 5000
            ledger.flush()

    worker = threading.Thread(target=busy_parent)
    worker.start()
    pids = []
    try:
        for _ in range(4):
            time.sleep(0.05)
            pid = os.fork()
            if pid == 0:

                def child() -> bool:
                    for i in range(100):
                        ledger.append(_rec(i))
                    seen = ledger.summary().requests  # folds: BEGIN IMMEDIATE in the child
                    ledger.close()
                    return seen >= 100

                _child(child)
            pids.append(pid)
        statuses = [_wait(pid, 15) for pid in pids]
    finally:
        stop.set()
        worker.join()
    assert statuses == [0, 0, 0, 0], "a forked child blocked or failed"
    ledger.close()
    assert Ledger(tmp_path).summary().requests == appended[0] + 4 * 100


def test_child_forked_while_a_fold_waits_on_another_process_leaves_sqlite_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_ledger, "FORK_WAIT", 0.3, raising=False)
    ledger = Ledger(tmp_path)
    ledger.append(_rec())
    ledger.flush()
    # Another process holds the ledger's write lock: the parent's next fold waits for it.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "c.execute('BEGIN IMMEDIATE')\n"
         "print('locked', flush=True)\n"
         "sys.stdin.read()\n",
         str(tmp_path / "ledger.sqlite3")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    try:
        for i in range(50):
            ledger.append(_rec(i))
        folding = threading.Thread(target=ledger.flush)
        folding.start()
        time.sleep(0.3)  # the fold is now waiting in BEGIN IMMEDIATE
        pid = os.fork()
        if pid == 0:

            def child() -> bool:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    for i in range(10):
                        ledger.append(_rec(i))
                    seen = ledger.summary().requests
                    ledger.close()
                ours = [w for w in caught if issubclass(w.category, StoreWarning)]
                # Only its own calls (SQLite is left alone), and it says so once.
                return seen == 10 and len(ours) == 1

            _child(child)
        status = _wait(pid, 8)
    finally:
        assert holder.stdin is not None
        holder.communicate()
    folding.join()
    assert status == 0, "the forked child blocked on a lock its parent was waiting for"
    ledger.close()
    # The child's journal was left for the next process: nothing is lost.
    assert Ledger(tmp_path).summary().requests == 1 + 50 + 10
