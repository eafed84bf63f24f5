"""The doctor's persisted history: ``doctor.json`` in the cache directory, versioned, 0600.

One JSON document ``{"v": 1, "findings": [...]}`` holding findings folded by their key, so it
stays small however long the app runs. Every process adds what it found since its last flush
under an exclusive ``flock`` (read, fold, write to a temporary file, rename), so several
processes sharing a directory add up instead of overwriting each other. Only findings are
stored: kinds, counts, token figures, costs, and — unless turned off — excerpts of at most
80 characters either side of a change.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

import orjson

from promptcache._doctor._findings import Finding
from promptcache._store._directory import private_file

__all__ = ["FILE_NAME", "VERSION", "add", "load"]

FILE_NAME: Final = "doctor.json"
VERSION: Final = 1
MAX_FINDINGS: Final = 2000  # the costliest are kept when a history grows past this


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    private_file(lock)
    fd = os.open(lock, os.O_RDWR)
    try:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _read(path: Path) -> dict[str, Finding]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        doc = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}  # a torn or foreign file: start again rather than fail the app
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        return {}
    out: dict[str, Finding] = {}
    for item in doc.get("findings") or ():
        try:
            f = Finding.from_json(item)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            continue
        out[f.key] = f
    return out


def load(directory: Path) -> list[Finding]:
    """Every finding persisted in ``directory`` (none when there is no history)."""
    return list(_read(directory / FILE_NAME).values())


def add(directory: Path, found: Iterable[Finding]) -> None:
    """Fold ``found`` (deltas since the last call) into the history of ``directory``."""
    path = directory / FILE_NAME
    with _locked(path):
        have = _read(path)
        for f in found:
            old = have.get(f.key)
            have[f.key] = f if old is None else old.merged(f)
        items = sorted(have.values(), key=lambda f: (f.cost or 0, f.count), reverse=True)
        doc = {"v": VERSION, "findings": [f.to_json() for f in items[:MAX_FINDINGS]]}
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        private_file(tmp)
        with open(tmp, "wb") as fh:
            fh.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)
