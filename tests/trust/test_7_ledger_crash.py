"""Issue 9 item 7: the ledger survives a crash, and a broken ledger never breaks a call.

The kill tests run a child process that makes calls at full rate and writes one byte to a pipe
after each call returns; the test SIGKILLs it mid-run, reads the pipe to its end and reopens the
ledger: every call the child saw complete must be there, give or take the one in flight.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import promptcache
from promptcache import StoreWarning
from promptcache._accounting import LedgerAccountant, _ledger
from promptcache._accounting._ledger import Ledger
from promptcache.cli import main as cli_main
from promptcache.testing import Emulator

ROOT = Path(__file__).resolve().parents[2]

# Calls through the real OpenAI SDK, wrapped: 64 distinct prompts, so the first 64 reach the
# emulator and the rest are local hits (the full-rate path).
_SDK_CHILD = textwrap.dedent(
    """
    import os, sys
    import openai, promptcache
    base, directory = sys.argv[1], sys.argv[2]
    pc = promptcache.PromptCache(directory=directory, restructure="off")
    client = pc.wrap(openai.OpenAI(base_url=base, api_key="sk-test", max_retries=0))
    i = 0
    while True:
        client.chat.completions.create(
            model="gpt-5.6-sol", messages=[{"role": "user", "content": f"q{i % 64}"}]
        )
        os.write(1, b".")
        i += 1
    """
)

# The accountant driven directly (no HTTP): a faster call rate still.
_ACCOUNTANT_CHILD = textwrap.dedent(
    """
    import os, sys
    from promptcache._accounting import LedgerAccountant
    from promptcache._api import Api, RequestInfo
    body = (b'{"model": "gpt-6.1-sol", "usage": {"prompt_tokens": 1200, '
            b'"completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 1024}}}')
    acc = LedgerAccountant(sys.argv[1])
    info = RequestInfo(Api.OPENAI_CHAT, "https://api.openai.com/v1", "gpt-6.1-sol", "t", False)
    meta = acc.record_upstream(info, body, status=200, complete=True)
    os.write(1, b".")
    while True:
        acc.record_local_hit(info, meta)
        os.write(1, b".")
    """
)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PROMPTCACHE_DIR", None)
    return env


def _run_and_kill(args: list[str], *, at_least: int, extra: float) -> int:
    """Start a child, SIGKILL it once it has made ``at_least`` calls plus ``extra`` seconds
    of calls, and return how many calls it reported complete."""
    proc = subprocess.Popen(
        [sys.executable, "-c", *args], stdout=subprocess.PIPE, env=_child_env(), cwd=ROOT
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    done = 0
    deadline = time.monotonic() + 60
    while done < at_least:
        chunk = os.read(fd, 65536)
        assert chunk, f"child exited early with {proc.wait()}"
        done += len(chunk)
        assert time.monotonic() < deadline, "child too slow"
    stop = time.monotonic() + extra
    while time.monotonic() < stop:
        done += len(os.read(fd, 65536))
    os.kill(proc.pid, signal.SIGKILL)
    while chunk := os.read(fd, 65536):
        done += len(chunk)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return done


def _persisted(directory: Path) -> int:
    ledger = Ledger(directory)
    try:
        return ledger.summary().requests
    finally:
        ledger.close()


@pytest.mark.process
def test_sigkill_through_the_wrapped_sdk_loses_at_most_one_call(
    emulator: Emulator, tmp_path: Path
) -> None:
    rng = random.Random(7)
    reported = 0
    for kill in range(3):
        reported += _run_and_kill(
            [_SDK_CHILD, emulator.openai_base_url, str(tmp_path)],
            at_least=2000,
            extra=1.2 + rng.random() * 0.5,
        )
        persisted = _persisted(tmp_path)
        # Each kill may lose the one call in flight (or persist one the child had no time to
        # report): never more.
        lost = reported - persisted
        assert -(kill + 1) <= lost <= kill + 1, (
            f"after {kill + 1} kills: {reported} calls completed, {persisted} in the ledger"
        )


@pytest.mark.process
def test_sigkill_at_accountant_rate_loses_at_most_one_record_per_kill(tmp_path: Path) -> None:
    rng = random.Random(11)
    reported = 0
    for kill in range(4):
        reported += _run_and_kill(
            [_ACCOUNTANT_CHILD, str(tmp_path)], at_least=20_000, extra=rng.random() * 1.5
        )
        persisted = _persisted(tmp_path)
        assert abs(reported - persisted) <= kill + 1, (
            f"after {kill + 1} kills: {reported} records reported, {persisted} in the ledger"
        )


_ORPHAN_MAKER = textwrap.dedent(
    """
    import os, sys
    from promptcache._accounting._ledger import Ledger, Record
    ledger = Ledger(sys.argv[1])
    for i in range(int(sys.argv[2])):
        ledger.append(Record(1.8e9 + i, "openai.chat", "openai", "m", None, (), "t",
                             0, 0, 1, 10, 0, 0, 0, 0, 0, 1, 0, 5, 7, None, None))
    sys.stdout.write("ready\\n")
    sys.stdout.flush()
    sys.stdin.read()  # stay alive until told: live processes never fold each other's journals
    os._exit(0)  # no atexit: the journal is left as a dead process's
    """
)


def _make_orphans(directory: Path, n: int, records: int) -> None:
    """Leave ``n`` journals of dead processes (partly folded already: they lived a while)."""
    makers = [
        subprocess.Popen(
            [sys.executable, "-c", _ORPHAN_MAKER, str(directory), str(records)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_child_env(),
        )
        for _ in range(n)
    ]
    for m in makers:
        assert m.stdout is not None and m.stdout.readline() == b"ready\n"
    for m in makers:
        m.communicate(timeout=30)
        assert m.returncode == 0


_FOLDER = textwrap.dedent(
    """
    import sys, time
    from promptcache._accounting._ledger import Ledger
    start = float(sys.argv[2])
    while time.time() < start:
        pass
    ledger = Ledger(sys.argv[1])
    print(ledger.summary().requests)
    ledger.close()
    """
)


@pytest.mark.process
def test_dead_journals_fold_exactly_once_when_processes_race(tmp_path: Path) -> None:
    _make_orphans(tmp_path, 3, 30_000)
    journals = list((tmp_path / "ledger-journal").glob("*.jsonl"))
    assert len(journals) == 3
    start = time.time() + 1.5  # all four start folding at the same instant
    folders = [
        subprocess.Popen(
            [sys.executable, "-c", _FOLDER, str(tmp_path), str(start)],
            stdout=subprocess.PIPE,
            env=_child_env(),
            text=True,
        )
        for _ in range(4)
    ]
    outs = [f.communicate(timeout=60)[0] for f in folders]
    assert [f.returncode for f in folders] == [0, 0, 0, 0]
    # Whoever folded what, nobody saw more than there is, and in the end each record is
    # counted once.
    assert all(int(o) <= 90_000 for o in outs), outs
    assert _persisted(tmp_path) == 90_000
    assert list((tmp_path / "ledger-journal").glob("*.jsonl")) == []


@pytest.mark.process
def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    _make_orphans(tmp_path, 1, 100)
    (journal,) = (tmp_path / "ledger-journal").glob("*.jsonl")
    with journal.open("ab") as f:
        f.write(b'[1,1800000000.0,"openai.chat","ope')  # killed in the middle of a write
    ledger = Ledger(tmp_path)
    assert ledger.summary().requests == 100
    assert ledger.skipped == 1
    ledger.close()
    assert not journal.exists()


# ------------------------------------------------------------------ a broken ledger


def _client(pc: promptcache.PromptCache, emulator: Emulator) -> Any:
    return pc.wrap(openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk", max_retries=0))


def _calls(client: Any, n: int) -> None:
    for i in range(n):
        client.chat.completions.create(
            model="gpt-5.6-sol", messages=[{"role": "user", "content": f"q{i % 3}"}]
        )


def _report_json(directory: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert cli_main(["report", "--json", "--dir", str(directory)]) == 0
    payload: dict[str, Any] = json.loads(capsys.readouterr().out)
    return payload


def _store_warnings(record: Iterable[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, StoreWarning)]


def test_corrupt_ledger_is_moved_aside_and_calls_go_on(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "ledger.sqlite3").write_bytes(b"this is not a database, it was damaged " * 200)
    pc = promptcache.PromptCache(directory=tmp_path, restructure="off")
    client = _client(pc, emulator)
    with pytest.warns(StoreWarning) as record:
        _calls(client, 20)
        s = pc.ledger.summary()
        groups = pc.ledger.group_by("model")
        pc.close()
    assert len(_store_warnings(record)) == 1, _store_warnings(record)
    assert "corrupt" in _store_warnings(record)[0]
    assert s.requests == 20 and s.local_hits == 17
    assert groups["gpt-5.6-sol"].requests == 20
    aside = list(tmp_path.glob("ledger.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert _report_json(tmp_path, capsys)["requests"] == 20  # the fresh ledger is in use


def test_corrupt_ledger_report_does_not_raise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ledger.sqlite3").write_bytes(b"\x00garbage" * 1000)
    with pytest.warns(StoreWarning, match="corrupt"):
        payload = _report_json(tmp_path, capsys)
    assert payload["requests"] == 0
    assert list(tmp_path.glob("ledger.sqlite3.corrupt-*"))


def _fill_ledger(directory: Path, n: int) -> None:
    from promptcache._accounting._ledger import Record

    ledger = Ledger(directory)
    for i in range(n):
        ledger.append(
            Record(time.time() - i, "openai.chat", "openai", "m", None, (), "t",
                   0, 0, 1, 10, 0, 0, 0, 0, 0, 1, 0, 5, 7, None, None)
        )  # fmt: skip
    ledger.close()


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr!r}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _broken_ledger_case(
    emulator: Emulator, good: Path, broken: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[list[str], int, int]:
    """Calls through a wrapped client whose ledger is in ``broken``: warnings, counts."""
    acc = LedgerAccountant(broken)
    pc = promptcache.PromptCache(directory=good, restructure="off", accountant=acc)
    client = _client(pc, emulator)
    with pytest.warns(StoreWarning) as record:
        _calls(client, 30)
        first = pc.ledger.summary().requests
        _calls(client, 10)
        second = pc.ledger.summary().requests
        pc.ledger.group_by("day")
        pc.close()
    # `promptcache report` on it (another process in real life): no raw sqlite3 error.
    with warnings.catch_warnings(record=True) as report_warnings:
        warnings.simplefilter("always")
        assert _report_json(broken, capsys)["requests"] >= 0
    assert len(_store_warnings(report_warnings)) <= 1
    return _store_warnings(record), first, second


@pytest.mark.process  # mounts a tmpfs
def test_read_only_ledger_calls_go_on_with_one_warning(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _tmpfs(tmp_path / "ro", "1m") as ro:
        _fill_ledger(ro, 5)
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        messages, first, second = _broken_ledger_case(emulator, tmp_path / "pc", ro, capsys)
    assert len(messages) == 1, messages
    # this process's calls are counted, on top of what the read-only file still reads
    assert (first, second) == (35, 45)


@pytest.mark.process  # mounts a tmpfs
def test_full_disk_ledger_calls_go_on_with_one_warning(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _tmpfs(tmp_path / "full", "256k") as full:
        _fill_ledger(full, 5)
        with contextlib.suppress(OSError), (full / "filler").open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        messages, first, second = _broken_ledger_case(emulator, tmp_path / "pc", full, capsys)
    assert len(messages) == 1, messages
    assert first == 35 and second == 45


def test_unusable_ledger_directory_counts_in_memory(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    messages, first, second = _broken_ledger_case(
        emulator, tmp_path / "pc", tmp_path / "a-file" / "pc", capsys
    )
    assert len(messages) == 1, messages
    assert "in memory" in messages[0]
    assert (first, second) == (30, 40)


def test_memory_stays_bounded_when_nothing_can_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptcache._accounting._ledger import Record

    monkeypatch.setattr(_ledger, "MEMORY_ROWS", 100)
    (tmp_path / "a-file").write_text("")
    ledger = Ledger(tmp_path / "a-file" / "pc")
    with pytest.warns(StoreWarning, match="in memory"):
        for i in range(1000):
            ledger.append(
                Record(1.8e9 + i, "openai.chat", "openai", "m", None, (f"t{i % 3}",), "t",
                       0, 0, 1, 10, 0, 0, 0, 0, 0, 1, 0, 5, 7, None, None)
            )  # fmt: skip
            if i % 100 == 99:
                ledger.flush()
        s = ledger.summary()
    assert s.requests == 1000 and s.input_tokens == 10_000  # rolled up, totals exact
    assert ledger.records() <= 100
    assert ledger._mem is not None
    monkeypatch.setattr(_ledger, "QUEUE_CAP", 10)
    with ledger._io:  # hold off the background fold: the queue is full after 10
        for _ in range(50):
            ledger.append(
                Record(1.8e9, "openai.chat", "openai", "m", None, (), "t",
                       0, 0, 1, 10, 0, 0, 0, 0, 0, 1, 0, 5, 7, None, None)
            )  # fmt: skip
    assert ledger.dropped >= 30
    assert ledger.summary().requests + ledger.dropped == 1050
    ledger.close()


@pytest.mark.process
def test_report_replays_journals_of_dead_processes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _make_orphans(tmp_path, 2, 10)  # killed within a second: perhaps before any fold
    assert _report_json(tmp_path, capsys)["requests"] == 20
    assert list((tmp_path / "ledger-journal").glob("*.jsonl")) == []


def test_the_live_journal_is_rotated_and_stays_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptcache._accounting._ledger import Record

    monkeypatch.setattr(_ledger, "ROTATE_BYTES", 16_384, raising=False)
    ledger = Ledger(tmp_path)
    for i in range(5000):
        ledger.append(
            Record(1.8e9 + i, "openai.chat", "openai", "m", None, (), "t",
                   0, 0, 1, 10, 0, 0, 0, 0, 0, 1, 0, 5, 7, None, None)
        )  # fmt: skip
        if i % 500 == 0:
            ledger.flush()
    journals = list((tmp_path / "ledger-journal").glob("*.jsonl"))
    assert len(journals) == 1 and journals[0].stat().st_size < 2 * 16_384 + 500 * 200
    assert ledger.summary().requests == 5000
    ledger.close()
    assert list((tmp_path / "ledger-journal").iterdir()) == []
