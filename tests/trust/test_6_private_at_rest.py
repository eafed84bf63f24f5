"""Item 6: private at rest — every file promptcache creates is 0600, every directory 0700.

Whatever the umask (022, the usual one, and 000, the loosest): after real wrapped calls against
the emulator and memoized results (a large one too: diskcache used to write those to files in
0755 subdirectories), the whole promptcache directory is walked, while the store is open (its
``-wal``/``-shm`` exist then) and after ``close()``. The ledger's files are the ledger's: they
are checked by a test of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import promptcache
from promptcache.testing import Emulator
from tests.trust.store_kit import ask, is_ledger, modes, not_private, openai_client

UMASKS = [0o022, 0o000]


@pytest.fixture(params=UMASKS, ids=lambda m: f"umask{m:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    mask: int = request.param
    old = os.umask(mask)
    try:
        yield mask
    finally:
        os.umask(old)


def _use(directory: Path, emulator: Emulator) -> tuple[dict[str, int], dict[str, int]]:
    """Real calls and memo use in ``directory``; its modes while open and after close."""
    pc = promptcache.PromptCache(directory)
    with openai_client(emulator) as bare:
        client = pc.wrap(bare)
        for text in ("one", "two", "one"):
            ask(client, text)

        @pc.cached
        def blob(n: int) -> str:
            return "z" * n

        for n in (10, 200_000, 200_000):  # a large value: diskcache used to put it in a file
            blob(n)
        pc.store.flush()
        pc.ledger.flush()
        while_open = modes(directory)
        pc.close()
    return while_open, modes(directory)


def test_store_and_salt_private_whatever_the_umask(
    umask: int, emulator: Emulator, tmp_path: Path
) -> None:
    directory = tmp_path / "a" / "pc"  # parents created by promptcache too
    while_open, after = _use(directory, emulator)
    assert {"salt", "responses", "responses/cache.db"} <= set(while_open)
    assert "responses/cache.db-wal" in while_open  # SQLite's side files were there to check
    for found in (while_open, after):
        ours = {k: v for k, v in found.items() if not is_ledger(k)}
        assert not_private(ours, directory) == {}
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700  # a parent we created
    assert not list(directory.rglob("*.val"))  # large values stay inside the database


def test_files_left_by_an_older_version_are_made_private(tmp_path: Path) -> None:
    directory = tmp_path / "pc"
    (directory / "responses").mkdir(parents=True, mode=0o700)
    for name in ("salt", "responses/cache.db"):
        (directory / name).touch(mode=0o644)
    (directory / "salt").write_bytes(os.urandom(32))
    with promptcache.PromptCache(directory) as pc:
        pc.store.stats()
    # The top directory was made by the user (here, the test): its mode is theirs.
    found = {k: v for k, v in modes(directory).items() if not is_ledger(k) and k != "."}
    assert not_private(found, directory) == {}


def test_ledger_files_private(umask: int, emulator: Emulator, tmp_path: Path) -> None:
    directory = tmp_path / "pc"
    while_open, after = _use(directory, emulator)
    assert any(is_ledger(k) for k in while_open)
    for found in (while_open, after):
        ledger = {k: v for k, v in found.items() if is_ledger(k)}
        assert not_private(ledger, directory) == {}
