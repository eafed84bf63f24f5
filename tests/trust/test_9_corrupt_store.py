"""Item 9: a corrupt store heals.

A corrupt ``cache.db`` — garbage over its header, truncated mid-page, or overwritten while a
``PromptCache`` has it open — is moved aside (``cache.db.corrupt-…``, 0600, with its side
files), an empty store takes its place, one ``StoreWarning`` says so, and later calls are
cached again. ``promptcache cache stats`` and ``clear`` work on a corrupt store.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import promptcache
from promptcache.cli import main
from promptcache.testing import Emulator
from tests.trust.store_kit import ROOT, ask, openai_client

QUESTIONS = [f"question {i}" for i in range(24)]


def _fill(directory: Path, emulator: Emulator) -> Path:
    """Cache answers in ``directory``; return its store database, checkpointed and closed."""
    with promptcache.PromptCache(directory) as pc, openai_client(emulator) as bare:
        client = pc.wrap(bare)
        for q in QUESTIONS:
            ask(client, q)
    return directory / "responses" / "cache.db"


def _checkpoint(db: Path) -> None:
    """Move the WAL's pages into the database file (as any connection may at any time)."""
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def _garble(db: Path, *, whole: bool = False) -> None:
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.write(os.urandom(size) if whole else b"not a database, at all! " * 8)


def _truncate(db: Path) -> None:
    size = db.stat().st_size
    assert size > 8 * 4096
    os.truncate(db, size // 2 + 1000)  # mid-page


def _aside(directory: Path) -> list[Path]:
    return sorted((directory / "responses").glob("cache.db.corrupt-*"))


def _served_again(client: object, emulator: Emulator, text: str) -> int:
    before = len(emulator.calls)
    ask(client, text)  # type: ignore[arg-type]
    return len(emulator.calls) - before


def _heals_on_reopen(directory: Path, emulator: Emulator) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with promptcache.PromptCache(directory) as pc, openai_client(emulator) as bare:
            client = pc.wrap(bare)
            for q in QUESTIONS:
                ask(client, q)  # the old entries are gone: misses, no error
            pc.store.flush()
            # Cached again: every question is now a hit.
            assert sum(_served_again(client, emulator, q) for q in QUESTIONS) == 0
            assert pc.store.stats().entries == len(QUESTIONS)
    healed = [w for w in caught if issubclass(w.category, promptcache.StoreWarning)]
    assert len(healed) == 1, [str(w.message) for w in caught]
    assert "corrupt" in str(healed[0].message)
    aside = _aside(directory)
    assert aside and all(p.stat().st_mode & 0o777 == 0o600 for p in aside)
    assert aside[0].name in str(healed[0].message)


def test_garbage_header_before_open(emulator: Emulator, tmp_path: Path) -> None:
    db = _fill(tmp_path / "pc", emulator)
    _garble(db)
    _heals_on_reopen(tmp_path / "pc", emulator)


def test_truncated_mid_page_before_open(emulator: Emulator, tmp_path: Path) -> None:
    _truncate(_fill(tmp_path / "pc", emulator))
    _heals_on_reopen(tmp_path / "pc", emulator)


def test_corrupted_while_open(emulator: Emulator, tmp_path: Path) -> None:
    directory = tmp_path / "pc"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with promptcache.PromptCache(directory) as pc, openai_client(emulator) as bare:
            client = pc.wrap(bare)
            for q in QUESTIONS:
                ask(client, q)
            pc.store.flush()
            db = directory / "responses" / "cache.db"
            _checkpoint(db)
            _garble(db, whole=True)
            for q in QUESTIONS[:3]:
                assert _served_again(client, emulator, q) == 1  # lost with the corrupt file
            pc.store.flush()
            for q in QUESTIONS[:3]:
                assert _served_again(client, emulator, q) == 0  # cached again
    healed = [w for w in caught if issubclass(w.category, promptcache.StoreWarning)]
    assert len(healed) == 1, [str(w.message) for w in caught]
    assert "corrupt" in str(healed[0].message)
    assert _aside(directory)


@pytest.mark.parametrize("damage", ["garble", "truncate"])
def test_cache_cli_on_a_corrupt_store(
    damage: str, emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "pc"
    db = _fill(directory, emulator)
    if damage == "garble":
        _garble(db)
    else:
        _truncate(db)
    assert main(["cache", "stats", "--dir", str(directory)]) == 0
    out, err = capsys.readouterr()
    assert "entries:   0" in out
    assert "corrupt" in err and "moved it aside" in err
    assert _aside(directory)
    _garble(directory / "responses" / "cache.db")
    assert main(["cache", "clear", "--dir", str(directory)]) == 0
    out, err = capsys.readouterr()
    assert "removed 0 entries" in out and "corrupt" in err
    assert not _aside(directory)  # clearing removes the old, corrupt copies too
    assert main(["cache", "stats", "--dir", str(directory)]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.process
def test_cache_clear_entry_point_on_a_corrupt_store(emulator: Emulator, tmp_path: Path) -> None:
    directory = tmp_path / "pc"
    _garble(_fill(directory, emulator))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "promptcache", "cache", "clear", "--dir", str(directory)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "removed 0 entries" in done.stdout
    assert "corrupt" in done.stderr
    # And the store works: a new PromptCache caches there again, without a warning.
    with promptcache.PromptCache(directory) as pc, openai_client(emulator) as bare:
        client = pc.wrap(bare)
        ask(client, "after the clear")
        pc.store.flush()
        assert _served_again(client, emulator, "after the clear") == 0
