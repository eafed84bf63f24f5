"""Issue 9 item 6, the ledger's part: ledger files are 0600 and its directory 0700, any umask."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import openai
import pytest

import promptcache
from promptcache._accounting._ledger import Ledger, Record
from promptcache.testing import Emulator


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _rec() -> Record:
    return Record(1.8e9, "openai.chat", "openai", "m", None, (), "t",
                  0, 0, 1, 10, 0, 0, 0, 0, 0, 1, 0, 5, 7, None, None)  # fmt: skip


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_ledger_files_are_private_whatever_the_umask(
    emulator: Emulator, tmp_path: Path, umask: int
) -> None:
    directory = tmp_path / "pc"
    old = os.umask(umask)
    try:
        pc = promptcache.PromptCache(directory=directory, restructure="off")
        client = pc.wrap(
            openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk", max_retries=0)
        )
        client.chat.completions.create(
            model="gpt-5.6-sol", messages=[{"role": "user", "content": "hi"}]
        )
        assert pc.ledger.summary().requests == 1  # the database and its WAL files now exist
        for name in ("ledger.sqlite3", "ledger.sqlite3-wal", "ledger.sqlite3-shm"):
            assert _mode(directory / name) == 0o600, name
        (journal,) = (directory / "ledger-journal").iterdir()  # this process's, still open
        assert _mode(directory / "ledger-journal") == 0o700
        assert _mode(journal) == 0o600
        pc.close()
    finally:
        os.umask(old)


def test_a_ledger_left_readable_by_others_is_made_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        conn = sqlite3.connect(tmp_path / "ledger.sqlite3")  # 0644, as older versions left it
        conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
    finally:
        os.umask(old)
    assert _mode(tmp_path / "ledger.sqlite3") == 0o644
    ledger = Ledger(tmp_path)
    ledger.append(_rec())
    assert ledger.summary().requests == 1
    assert _mode(tmp_path / "ledger.sqlite3") == 0o600
    assert _mode(tmp_path / "ledger.sqlite3-wal") == 0o600
    ledger.close()
