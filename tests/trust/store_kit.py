"""Helpers for the store's trust tests (items 5, 6, 9, 10): child processes and file modes."""

from __future__ import annotations

import ctypes
import json
import os
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import openai

from promptcache.testing import Emulator

ROOT = Path(__file__).resolve().parents[2]
OPENAI_MODEL = "gpt-4o"

# Linux capabilities that let root ignore permission bits (capabilities(7)).
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER = 1, 2, 3
_PR_CAPBSET_DROP = 24


def _drop_root_overrides() -> None:
    """In the child before exec: take from root what lets it ignore permission bits.

    Dropped from the bounding set, they are not given back at exec, so root then meets the
    permission bits of files like anyone else (as owner of the test's files, it still keeps
    the owner's bits). A non-root run needs nothing dropped.
    """
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_python(
    code: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    unprivileged: bool = False,
    umask: int | None = None,
    cwd: Path | None = None,
) -> Any:
    """Run ``code`` in a fresh interpreter importing this tree's promptcache; return its JSON.

    The child's last line of stdout must be a JSON document. ``unprivileged`` makes permission
    bits apply even when the tests run as root; ``umask`` sets the child's umask.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCACHE_")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})

    def before_exec() -> None:
        if umask is not None:
            os.umask(umask)
        if unprivileged:
            _drop_root_overrides()

    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=full_env,
        cwd=str(cwd or ROOT),
        preexec_fn=before_exec,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise AssertionError(f"child failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def openai_client(emu: Emulator, **kwargs: Any) -> openai.OpenAI:
    """A real OpenAI client pointed at the emulator."""
    return openai.OpenAI(base_url=emu.openai_base_url, api_key="test-key", max_retries=0, **kwargs)


def ask(client: openai.OpenAI, text: str) -> str:
    """One chat completion; return its text."""
    reply = client.chat.completions.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": text}]
    )
    return reply.choices[0].message.content or ""


def modes(root: Path) -> dict[str, int]:
    """Every path under ``root`` (``root`` itself as ``"."``) → its permission bits."""
    out = {".": stat.S_IMODE(root.lstat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = stat.S_IMODE(p.lstat().st_mode)
    return out


def is_ledger(name: str) -> bool:
    """Whether a path (relative to the promptcache directory) is the ledger's."""
    return name.startswith("ledger.sqlite3") or name == "journal" or name.startswith("journal/")


def not_private(found: dict[str, int], root: Path) -> dict[str, str]:
    """The paths of ``found`` whose mode is not 0700 (directories) / 0600 (files)."""
    bad = {}
    for name, mode in found.items():
        want = 0o700 if (root / name).is_dir() else 0o600
        if mode != want:
            bad[name] = oct(mode)
    return bad
